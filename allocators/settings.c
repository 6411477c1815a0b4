/*
 * settings.c: allocator variants and the settings each allocator family takes
 * (settings.h).
 *
 * What an allocator accepts is asked of the allocator itself wherever it can answer:
 * glibc's dynamic loader lists its tunables with their ranges, jemalloc prints its
 * options (MALLOC_CONF=stats_print:true) and complains about a bad pair on stderr,
 * mimalloc lists its options and warns about a bad value under MIMALLOC_VERBOSE=1.
 * Only tcmalloc (gperftools), which reads its variables silently, and heaplab's own
 * allocators (allocators/heaplab/options.h) are known from a table.  The questions
 * run the heaplab executable itself (--version) with the library preloaded.
 */
#include "allocators/settings.h"
#include "allocators/heaplab/options.h"
#include "allocators/registry.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------- variants */

/* Does token (KEY=VALUE, no ':', no '/' in VALUE) continue the previous variant's
 * settings rather than name an allocator? */
static int is_setting(const char *tok, size_t len, const char *prev)
{
    if (!prev || !strchr(prev, ':'))
        return 0;
    const char *eq = memchr(tok, '=', len);
    return eq && eq != tok && !memchr(tok, ':', len) && !memchr(eq, '/', len - (size_t)(eq - tok));
}

/* Expand the first {A,B,...} of item into out; recursive for the next ones. */
static int expand_one(const char *item, char *out, size_t outlen, int *n, int max, char *why,
                      size_t whylen)
{
    const char *open = strchr(item, '{');
    if (!open) {
        if (strchr(item, '}')) {
            snprintf(why, whylen, "-a %s: '}' without '{'", item);
            return -1;
        }
        if (*n >= max) {
            snprintf(why, whylen, "-a: more than %d allocator variants", max);
            return -1;
        }
        if (strlen(item) >= outlen) {
            snprintf(why, whylen, "-a %.80s...: too long", item);
            return -1;
        }
        snprintf(out + (size_t)*n * outlen, outlen, "%s", item);
        (*n)++;
        return 0;
    }
    const char *close = strchr(open, '}');
    const char *nested = strchr(open + 1, '{');
    if (!close || (nested && nested < close) || close == open + 1 || !strchr(item, ':') ||
        strchr(item, ':') > open) {
        snprintf(why, whylen, "-a %s: a sweep is {A,B,...} in a setting's value "
                 "(NAME:KEY={A,B})", item);
        return -1;
    }
    for (const char *a = open + 1; a <= close;) {
        size_t alen = strcspn(a, ",}");
        if (alen == 0) {
            snprintf(why, whylen, "-a %s: an empty value in a sweep", item);
            return -1;
        }
        char buf[1024];
        int k = snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)(open - item), item, (int)alen, a,
                         close + 1);
        if (k < 0 || (size_t)k >= sizeof buf) {
            snprintf(why, whylen, "-a %.80s...: too long", item);
            return -1;
        }
        if (expand_one(buf, out, outlen, n, max, why, whylen) != 0)
            return -1;
        a += alen + 1;
    }
    return 0;
}

int hl_variants_expand(const char *list, char *out, size_t outlen, int *n, int max, char *why,
                       size_t whylen)
{
    /* First the items, at the commas outside braces, settings joined to their variant. */
    char items[64][1024];
    int ni = 0;
    const char *p = list;
    while (*p) {
        const char *q = p;
        int depth = 0;
        for (; *q && (depth || *q != ','); q++)
            depth += *q == '{' ? 1 : *q == '}' ? -1 : 0;
        size_t len = (size_t)(q - p);
        if (len == 0) {
            snprintf(why, whylen, "-a %s: an empty allocator name", list);
            return -1;
        }
        char *prev = ni ? items[ni - 1] : NULL;
        if (is_setting(p, len, prev)) {
            size_t pl = strlen(prev);
            if (pl + 1 + len >= sizeof items[0]) {
                snprintf(why, whylen, "-a: too long");
                return -1;
            }
            snprintf(prev + pl, sizeof items[0] - pl, ",%.*s", (int)len, p);
        } else {
            if (ni == 64 || len >= sizeof items[0]) {
                snprintf(why, whylen, "-a: too many or too long allocator names");
                return -1;
            }
            snprintf(items[ni++], sizeof items[0], "%.*s", (int)len, p);
        }
        p = *q ? q + 1 : q;
    }
    for (int i = 0; i < ni; i++)
        if (expand_one(items[i], out, outlen, n, max, why, whylen) != 0)
            return -1;
    return 0;
}

/* ---------------------------------------------------------------- families */

enum fam { FAM_NONE, FAM_GLIBC, FAM_JEMALLOC, FAM_MIMALLOC, FAM_TCMALLOC, FAM_HEAPLAB };

static const struct family {
    const char *name;   /* the allocator name (or prefix) of the family */
    const char *lib;    /* its library's file name starts so */
    const char *how;    /* for --settings */
} families[] = {
    [FAM_GLIBC] = {"glibc", "libc.so", "GLIBC_TUNABLES=glibc.malloc.KEY=VALUE (names and ranges "
                                       "from ld.so --list-tunables; 0x0: glibc's built-in default)"},
    [FAM_JEMALLOC] = {"jemalloc", "libjemalloc", "MALLOC_CONF=KEY:VALUE,... (names and defaults "
                                                 "from jemalloc's stats_print)"},
    [FAM_MIMALLOC] = {"mimalloc", "libmimalloc", "MIMALLOC_KEY=VALUE (names and defaults "
                                                 "from MIMALLOC_VERBOSE=1)"},
    [FAM_TCMALLOC] = {"tcmalloc", "libtcmalloc", "TCMALLOC_KEY=VALUE (gperftools' documented names; it cannot list them)"},
    [FAM_HEAPLAB] = {"heaplab", "libheaplab-", "HEAPLAB_KEY=VALUE (allocators/heaplab/options.h)"},
};

static enum fam family_of(const struct hl_alloc *a)
{
    if (!a->path[0])
        return FAM_GLIBC;
    const char *base = strrchr(a->path, '/');
    base = base ? base + 1 : a->path;
    for (int f = FAM_JEMALLOC; f <= FAM_HEAPLAB; f++)
        if (strncmp(base, families[f].lib, strlen(families[f].lib)) == 0)
            return (enum fam)f;
    for (int f = FAM_JEMALLOC; f <= FAM_HEAPLAB; f++)
        if (strncmp(a->name, families[f].name, strlen(families[f].name)) == 0)
            return (enum fam)f;
    return FAM_NONE;
}

/* What a family accepts: name, default ("" when unknown), a note (range, help). */
struct known {
    char name[96], def[96], note[160];
    uint64_t min, max; /* glibc only: the range, when has_range */
    int has_range;
};
#define MAXKNOWN 160

static const struct tc_setting {
    const char *name, *def, *note;
} tc_table[] = {
    {"max_total_thread_cache_bytes", "", "bound on the bytes in all thread caches"},
    {"release_rate", "1.0", "how fast unused memory goes back to the system (0: never)"},
    {"aggressive_decommit", "false", "give back every free span at once"},
    {"heap_limit_mb", "0", "fail allocations beyond this heap size (0: no limit)"},
    {"sample_parameter", "0", "heap-profile sampling interval in bytes (0: off)"},
    {"large_alloc_report_threshold", "1073741824", "report allocations this large"},
    {"transfer_num_obj", "", "objects moved between the thread and central caches at once"},
    {"skip_sbrk", "false", "never get memory with sbrk"},
    {"skip_mmap", "false", "never get memory with mmap"},
};

/* Run argv (argv[0] a path) with the extra "VAR=value" entries in the environment
 * (replacing same-named ones; LD_PRELOAD dropped unless given) and capture what it
 * writes on fd (1 or 2) into buf.  Returns 0 when it ran, -1 otherwise. */
static int run_capture(char *const argv[], const char *const *extra, int nextra, int fd,
                       char *buf, size_t buflen)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        return -1;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + (size_t)nextra + 1, sizeof *env);
    if (!env) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t vl = strcspn(environ[i], "=");
        int drop = strncmp(environ[i], "LD_PRELOAD=", 11) == 0;
        for (int j = 0; j < nextra && !drop; j++)
            drop = strncmp(environ[i], extra[j], vl + 1) == 0;
        if (!drop)
            env[k++] = environ[i];
    }
    for (int j = 0; j < nextra; j++)
        env[k++] = (char *)extra[j];
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        dup2(null, fd == 1 ? 2 : 1);
        dup2(pfd[1], fd);
        execve(argv[0], argv, env);
        _exit(127);
    }
    free(env);
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        return -1;
    }
    size_t used = 0;
    for (;;) {
        char tmp[4096];
        ssize_t r = read(pfd[0], tmp, sizeof tmp);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        size_t take = (size_t)r < buflen - 1 - used ? (size_t)r : buflen - 1 - used;
        memcpy(buf + used, tmp, take);
        used += take;
    }
    buf[used] = 0;
    close(pfd[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 127 ? -1 : 0;
}

/* The heaplab executable with library preloaded, saying its version. */
static int ask_library(const char *lib, const char *const *vars, int nvars, char *buf,
                       size_t buflen)
{
    char preload[PATH_MAX + 16];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", lib);
    const char *extra[HL_ALLOC_MAXENV + 2];
    int ne = 0;
    extra[ne++] = preload;
    for (int i = 0; i < nvars && ne < HL_ALLOC_MAXENV + 1; i++)
        extra[ne++] = vars[i];
    char self[] = "/proc/self/exe", ver[] = "--version";
    char *argv[] = {self, ver, NULL};
    return run_capture(argv, extra, ne, 2, buf, buflen);
}

static int find_ldso(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    const char *n = info->dlpi_name;
    const char *base = n ? strrchr(n, '/') : NULL;
    if (base && strncmp(base + 1, "ld-", 3) == 0 && strstr(base, ".so")) {
        snprintf(data, PATH_MAX, "%s", n);
        return 1;
    }
    return 0;
}

static void trim(char *s)
{
    size_t l = strlen(s);
    while (l && isspace((unsigned char)s[l - 1]))
        s[--l] = 0;
}

/* What a library lists when asked with var: one "NAME ... VALUE" line per option, read
 * with fmt (two %95 conversions); a "(...)" after the value is dropped, repeats and the
 * option that made it list are skipped. */
static int library_settings(const struct hl_alloc *a, const char *var, const char *fmt,
                            struct known *k)
{
    static char buf[1 << 16];
    const char *v[] = {var};
    if (ask_library(a->path, v, 1, buf, sizeof buf) != 0)
        return 0;
    int n = 0;
    char *save = NULL;
    for (char *l = strtok_r(buf, "\n", &save); l && n < MAXKNOWN; l = strtok_r(NULL, "\n", &save)) {
        char name[96], def[96];
        if (sscanf(l, fmt, name, def) != 2)
            continue;
        char *paren = strstr(def, " (");
        if (paren)
            *paren = 0;
        trim(def);
        int dup = strcasestr(var, name) != NULL;
        for (int i = 0; i < n; i++)
            dup |= strcmp(k[i].name, name) == 0;
        if (dup)
            continue;
        snprintf(k[n].name, sizeof k[n].name, "%s", name);
        snprintf(k[n].def, sizeof k[n].def, "%s", def);
        n++;
    }
    return n;
}

/* Fill k[] with what family f of allocator a accepts.  Returns the count, or -1. */
static int known_settings(const struct hl_alloc *a, enum fam f, struct known *k, char *why,
                          size_t whylen)
{
    static char buf[1 << 16];
    int n = 0;
    char *save = NULL;
    switch (f) {
    case FAM_GLIBC: {
        char ldso[PATH_MAX] = "";
        dl_iterate_phdr(find_ldso, ldso);
        char opt[] = "--list-tunables";
        char *argv[] = {ldso, opt, NULL};
        if (!ldso[0] || run_capture(argv, NULL, 0, 1, buf, sizeof buf) != 0 || !buf[0]) {
            snprintf(why, whylen, "glibc: cannot list its tunables (%s --list-tunables)",
                     ldso[0] ? ldso : "ld.so");
            return -1;
        }
        /* glibc.malloc.trim_threshold: 0x0 (min: 0x0, max: 0xffffffffffffffff) */
        for (char *l = strtok_r(buf, "\n", &save); l && n < MAXKNOWN; l = strtok_r(NULL, "\n", &save)) {
            char name[96], def[96];
            const char *mn = strstr(l, "(min: "), *mx = strstr(l, ", max: ");
            if (!mn || !mx || sscanf(l, "%95[^:]: %95s", name, def) != 2 ||
                strncmp(name, "glibc.malloc.", 13) != 0) /* the allocator's own only */
                continue;
            unsigned long long lo = strtoull(mn + 6, NULL, 0), hi = strtoull(mx + 7, NULL, 0);
            snprintf(k[n].name, sizeof k[n].name, "%s", name);
            snprintf(k[n].def, sizeof k[n].def, "%s", def);
            snprintf(k[n].note, sizeof k[n].note, "%llu..%llu", lo, hi);
            k[n].min = lo;
            k[n].max = hi;
            k[n].has_range = 1;
            n++;
        }
        break;
    }
    case FAM_JEMALLOC:
        /*   opt.dirty_decay_ms: 10000 (arenas.dirty_decay_ms: 10000) */
        n = library_settings(a, "MALLOC_CONF=stats_print:true", " opt.%95[^:]: %95[^\n]", k);
        break;
    case FAM_MIMALLOC:
        /* mimalloc: option 'decommit_delay': 25 */
        n = library_settings(a, "MIMALLOC_VERBOSE=1", "mimalloc: option '%95[^']': %95[^\n]", k);
        break;
    case FAM_TCMALLOC:
        for (size_t i = 0; i < sizeof tc_table / sizeof tc_table[0]; i++, n++) {
            snprintf(k[n].name, sizeof k[n].name, "%s", tc_table[i].name);
            snprintf(k[n].def, sizeof k[n].def, "%s", tc_table[i].def);
            snprintf(k[n].note, sizeof k[n].note, "%s", tc_table[i].note);
        }
        break;
    case FAM_HEAPLAB: {
#define HL_KNOWN_HEAPLAB(id, env, dflt, help)                                                  \
    snprintf(k[n].name, sizeof k[n].name, "%s", env + 8);                                      \
    snprintf(k[n].def, sizeof k[n].def, "%llu", (unsigned long long)(dflt));                   \
    snprintf(k[n].note, sizeof k[n].note, "%s", help);                                         \
    n++;
        HLM_OPTIONS(HL_KNOWN_HEAPLAB)
#undef HL_KNOWN_HEAPLAB
        for (int i = 0; i < n; i++)
            for (char *c = k[i].name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        break;
    }
    case FAM_NONE:
        break;
    }
    if (n == 0) {
        snprintf(why, whylen, "%s: could not learn which settings it takes", a->name);
        return -1;
    }
    return n;
}

/* ---------------------------------------------------------------- applying */

/* "128k" -> "131072"; anything else unchanged. */
static void size_value(const char *v, char *out, size_t n)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    int shift = 0;
    if (end != v && isdigit((unsigned char)v[0]) && end[0] && !end[1] && !errno) {
        switch (end[0]) {
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        }
    }
    if (shift && x <= (ULLONG_MAX >> shift))
        snprintf(out, n, "%llu", x << shift);
    else
        snprintf(out, n, "%s", v);
}

static const struct known *find_known(const struct known *k, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(k[i].name, name) == 0)
            return &k[i];
    return NULL;
}

static int add_env(struct hl_alloc *a, const char *var, const char *val)
{
    if (a->nenv == HL_ALLOC_MAXENV)
        return -1;
    int w = snprintf(a->env[a->nenv], sizeof a->env[0], "%s=%s", var, val);
    if (w < 0 || (size_t)w >= sizeof a->env[0])
        return -1;
    a->nenv++;
    return 0;
}

/* Whatever the library said on stderr about the settings, as one line. */
static int library_complaint(const struct hl_alloc *a, const char *marker, const char *extra,
                             char *why, size_t whylen)
{
    static char buf[1 << 16];
    const char *vars[HL_ALLOC_MAXENV + 1];
    int nv = 0;
    for (int i = 0; i < a->nenv; i++)
        vars[nv++] = a->env[i];
    if (extra)
        vars[nv++] = extra;
    if (ask_library(a->path, vars, nv, buf, sizeof buf) != 0) {
        snprintf(why, whylen, "%s: could not run with its library to check the settings", a->name);
        return -1;
    }
    char *m = strstr(buf, marker);
    if (!m)
        return 0;
    m[strcspn(m, "\n")] = 0;
    snprintf(why, whylen, "-a %s:%s: %s", a->name, a->settings, m);
    return -1;
}

int hl_settings_apply(struct hl_alloc *a, const char *settings, char *why, size_t whylen)
{
    enum fam f = family_of(a);
    if (f == FAM_NONE) {
        snprintf(why, whylen, "-a %s:%s: heaplab does not know how %s takes settings "
                 "(glibc, jemalloc, mimalloc, tcmalloc and heaplab's do)", a->name, settings,
                 a->name);
        return -1;
    }
    static struct known k[MAXKNOWN];
    int nk = known_settings(a, f, k, why, whylen);
    if (nk < 0)
        return -1;
    if (strlen(settings) >= sizeof a->settings) {
        snprintf(why, whylen, "-a %s: settings too long", a->name);
        return -1;
    }
    snprintf(a->settings, sizeof a->settings, "%s", settings);
    a->nenv = 0;
    char joined[1024] = "";
    size_t jl = 0;
    char copy[sizeof a->settings];
    snprintf(copy, sizeof copy, "%s", settings);
    char *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        if (!eq || eq == kv || !eq[1]) {
            snprintf(why, whylen, "-a %s:%s: '%s' is not KEY=VALUE", a->name, settings, kv);
            return -1;
        }
        *eq = 0;
        const char *key = kv;
        char val[128], full[128];
        size_value(eq + 1, val, sizeof val);
        if (f == FAM_GLIBC && !strchr(key, '.'))
            snprintf(full, sizeof full, "glibc.malloc.%s", key);
        else
            snprintf(full, sizeof full, "%s", key);
        const struct known *d = find_known(k, nk, full);
        if (!d) {
            snprintf(why, whylen, "-a %s:%s: %s has no setting '%s' (see 'heaplab allocators "
                     "--settings %s')", a->name, settings, families[f].name, key, a->name);
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long long x = strtoull(val, &end, 0);
        int numeric = val[0] != '-' && end != val && !*end && !errno;
        if ((f == FAM_GLIBC || f == FAM_HEAPLAB) &&
            (!numeric || (d->has_range && (x < d->min || x > d->max)))) {
            snprintf(why, whylen, "-a %s:%s: %s=%s: expected a number%s%s", a->name, settings,
                     key, eq + 1, d->has_range ? " in " : " (k, m, g: KiB, MiB, GiB)",
                     d->has_range ? d->note : "");
            return -1;
        }
        if (f == FAM_TCMALLOC) {
            errno = 0;
            strtod(val, &end);
            if (end == val || *end || errno) {
                if (strcmp(val, "true") && strcmp(val, "false")) {
                    snprintf(why, whylen, "-a %s:%s: %s=%s: expected a number, true or false",
                             a->name, settings, key, eq + 1);
                    return -1;
                }
            }
        }
        char var[160];
        switch (f) {
        case FAM_GLIBC:
        case FAM_JEMALLOC:
            jl += (size_t)snprintf(joined + jl, sizeof joined - jl, "%s%s%s%s",
                                   jl ? (f == FAM_GLIBC ? ":" : ",") : "", full,
                                   f == FAM_GLIBC ? "=" : ":", val);
            if (jl >= sizeof joined) {
                snprintf(why, whylen, "-a %s: settings too long", a->name);
                return -1;
            }
            continue;
        case FAM_MIMALLOC:
        case FAM_TCMALLOC:
        case FAM_HEAPLAB:
            snprintf(var, sizeof var, "%s_%s",
                     f == FAM_MIMALLOC ? "MIMALLOC" : f == FAM_TCMALLOC ? "TCMALLOC" : "HEAPLAB", key);
            for (char *c = var; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            if (add_env(a, var, val) != 0) {
                snprintf(why, whylen, "-a %s: too many settings", a->name);
                return -1;
            }
            continue;
        case FAM_NONE:
            break;
        }
    }
    if (jl && add_env(a, f == FAM_GLIBC ? "GLIBC_TUNABLES" : "MALLOC_CONF", joined) != 0) {
        snprintf(why, whylen, "-a %s: settings too long", a->name);
        return -1;
    }
    /* Values only the library can judge: ask it. */
    if (f == FAM_JEMALLOC)
        return library_complaint(a, "<jemalloc>", NULL, why, whylen);
    if (f == FAM_MIMALLOC)
        return library_complaint(a, "invalid value", "MIMALLOC_VERBOSE=1", why, whylen);
    return 0;
}

int hl_settings_list(const struct hl_alloc *a, char *why, size_t whylen)
{
    enum fam f = family_of(a);
    if (f == FAM_NONE) {
        snprintf(why, whylen, "%s: heaplab does not know how it takes settings", a->name);
        return -1;
    }
    static struct known k[MAXKNOWN];
    int n = known_settings(a, f, k, why, whylen);
    if (n < 0)
        return -1;
    int w = 7, wd = 7;
    for (int i = 0; i < n; i++) {
        const char *nm = k[i].name;
        if (f == FAM_GLIBC && strncmp(nm, "glibc.malloc.", 13) == 0)
            nm += 13;
        w = (int)strlen(nm) > w ? (int)strlen(nm) : w;
        wd = (int)strlen(k[i].def) > wd ? (int)strlen(k[i].def) : wd;
    }
    printf("%s takes its settings through %s\n", a->name, families[f].how);
    printf("%-*s  %-*s  %s\n", w, "setting", wd, "default", f == FAM_GLIBC ? "range" : "");
    for (int i = 0; i < n; i++) {
        const char *nm = k[i].name;
        if (f == FAM_GLIBC && strncmp(nm, "glibc.malloc.", 13) == 0)
            nm += 13;
        printf("%-*s  %-*s  %s\n", w, nm, wd, k[i].def[0] ? k[i].def : "-", k[i].note);
    }
    return 0;
}
