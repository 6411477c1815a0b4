/*
 * registry.c: built-in allocator names -> libraries, and NAME=/path specs (registry.h).
 *
 * The table is small and fixed on purpose: what a name means must not depend on what
 * happens to be installed, only whether it is available does.
 */
#include "allocators/registry.h"
#include "allocators/registry_paths.h"
#include "allocators/settings.h"
#include "config.h"
#include "paths.h"

#include <errno.h>
#include <gnu/libc-version.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum where { W_NONE, W_BUILD, W_OWN };

static const struct builtin {
    const char *name;
    enum where where;
    const char *lib; /* build-time path (W_BUILD) or soname (W_OWN) */
    const char *pkg; /* what to install when missing */
} builtins[] = {
    {"glibc", W_NONE, "", ""},
    {"jemalloc", W_BUILD, HL_JEMALLOC_PATH, "libjemalloc-dev"},
    {"mimalloc", W_BUILD, HL_MIMALLOC_PATH, "libmimalloc-dev"},
    {"heaplab", W_OWN, "libheaplab-malloc.so", ""},
    {"heaplab-firstfit", W_OWN, "libheaplab-firstfit.so", ""},
    {"heaplab-bestfit", W_OWN, "libheaplab-bestfit.so", ""},
    {"heaplab-buddy", W_OWN, "libheaplab-buddy.so", ""},
};
#define NBUILTINS (int)(sizeof builtins / sizeof builtins[0])

static void fill(const struct builtin *b, struct hl_alloc *a)
{
    memset(a, 0, sizeof *a);
    snprintf(a->name, sizeof a->name, "%s", b->name);
    a->available = 1;
    switch (b->where) {
    case W_NONE:
        break;
    case W_BUILD:
        if (!b->lib[0]) {
            a->available = 0;
            snprintf(a->why, sizeof a->why, "not found at build time (install %s)", b->pkg);
        } else if (access(b->lib, R_OK) != 0) {
            a->available = 0;
            snprintf(a->why, sizeof a->why, "%s: %s", b->lib, strerror(errno));
        }
        snprintf(a->path, sizeof a->path, "%s", b->lib);
        break;
    case W_OWN: {
        const char *p = hl_find_lib(b->lib);
        if (p) {
            snprintf(a->path, sizeof a->path, "%s", p);
        } else {
            a->available = 0;
            snprintf(a->why, sizeof a->why, "%s not built", b->lib);
        }
        break;
    }
    }
}

int hl_registry_list(struct hl_alloc *out, int max)
{
    int n = 0;
    for (int i = 0; i < NBUILTINS && n < max; i++)
        fill(&builtins[i], &out[n++]);
    return n;
}

static int resolve_plain(const char *spec, struct hl_alloc *out, char *why, int whylen);

int hl_registry_resolve(const char *spec, struct hl_alloc *out, char *why, int whylen)
{
    const char *colon = strchr(spec, ':');
    if (!colon)
        return resolve_plain(spec, out, why, whylen);
    char base[PATH_MAX + 80];
    if ((size_t)(colon - spec) >= sizeof base || !colon[1]) {
        snprintf(why, (size_t)whylen, "%s: expected NAME:KEY=VALUE[,KEY=VALUE...]", spec);
        return -1;
    }
    memcpy(base, spec, (size_t)(colon - spec));
    base[colon - spec] = 0;
    if (resolve_plain(base, out, why, whylen) != 0)
        return -1;
    if (hl_settings_apply(out, colon + 1, why, (size_t)whylen) != 0)
        return -1;
    /* The row is named after the variant: the allocator's name, then its settings. */
    char name[sizeof out->name];
    int k = snprintf(name, sizeof name, "%s:%s", out->name, out->settings);
    if (k < 0 || (size_t)k >= sizeof name) {
        snprintf(why, (size_t)whylen, "%s: name too long (at most %zu characters)", spec,
                 sizeof name - 1);
        return -1;
    }
    memcpy(out->name, name, sizeof name);
    return 0;
}

static int resolve_plain(const char *spec, struct hl_alloc *out, char *why, int whylen)
{
    const char *eq = strchr(spec, '=');
    if (eq) {
        size_t nl = (size_t)(eq - spec);
        if (nl == 0 || nl >= sizeof out->name || !eq[1]) {
            snprintf(why, (size_t)whylen, "%s: expected NAME=/path/to/lib.so", spec);
            return -1;
        }
        memset(out, 0, sizeof *out);
        memcpy(out->name, spec, nl);
        const char *path = eq + 1;
        /* LD_PRELOAD treats a name without a slash as a search-path lookup; a path
         * given by the user is made absolute so that what we check is what loads. */
        if (path[0] != '/') {
            char *abs = realpath(path, NULL);
            if (!abs) {
                snprintf(why, (size_t)whylen, "%s: %s", path, strerror(errno));
                return -1;
            }
            snprintf(out->path, sizeof out->path, "%s", abs);
            free(abs);
        } else {
            snprintf(out->path, sizeof out->path, "%s", path);
        }
        if (access(out->path, R_OK) != 0) {
            snprintf(why, (size_t)whylen, "%s: %s", out->path, strerror(errno));
            return -1;
        }
        out->available = 1;
        return 0;
    }
    for (int i = 0; i < NBUILTINS; i++) {
        if (strcmp(builtins[i].name, spec) == 0) {
            fill(&builtins[i], out);
            if (!out->available) {
                snprintf(why, (size_t)whylen, "allocator %s is not available: %s", spec,
                         out->why);
                return -1;
            }
            return 0;
        }
    }
    snprintf(why, (size_t)whylen,
             "unknown allocator '%s' (see 'heaplab allocators', or give NAME=/path/lib.so)",
             spec);
    return -1;
}

/* The Debian package owning path, then its version.  Runs dpkg-query twice; only called
 * for a handful of libraries per command. */
static int dpkg_version(const char *path, char *out, size_t n)
{
    char cmd[PATH_MAX + 128], line[512];
    if (strchr(path, '\'') || access("/usr/bin/dpkg-query", X_OK) != 0)
        return -1;
    snprintf(cmd, sizeof cmd, "dpkg-query -S '%s' 2>/dev/null", path);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char *got = fgets(line, sizeof line, f);
    pclose(f);
    char *colon = got ? strstr(line, ": ") : NULL;
    if (!colon)
        return -1;
    *colon = 0;
    if (strchr(line, ',') || strchr(line, '\''))
        return -1;
    snprintf(cmd, sizeof cmd, "dpkg-query -W -f='${Version}' '%s' 2>/dev/null", line);
    f = popen(cmd, "r");
    if (!f)
        return -1;
    got = fgets(out, (int)n, f);
    pclose(f);
    if (!got || !out[0])
        return -1;
    out[strcspn(out, "\n")] = 0;
    return 0;
}

void hl_registry_static_version(struct hl_alloc *a)
{
    if (!a->path[0]) {
        snprintf(a->version, sizeof a->version, "%s", gnu_get_libc_version());
        return;
    }
    if (strncmp(a->name, "heaplab", 7) == 0 && strstr(a->path, "libheaplab-")) {
        snprintf(a->version, sizeof a->version, "%s", HEAPLAB_VERSION);
        return;
    }
    char v[64];
    if (dpkg_version(a->path, v, sizeof v) == 0) {
        snprintf(a->version, sizeof a->version, "%s", v);
        return;
    }
    char *real = realpath(a->path, NULL);
    if (real && dpkg_version(real, v, sizeof v) == 0)
        snprintf(a->version, sizeof a->version, "%s", v);
    free(real);
}
