/*
 * text.c: the text form of traces (text.h): export through hl_reader, import through
 * hl_writer.
 *
 * The importer is a line parser for input people write by hand and for hostile input
 * (tests/fuzz/): every line is split into at most a few words, every number is checked
 * for overflow, and every error names the file and line.  The slot rule is checked
 * here too, so that the message points at the line rather than at an event number.
 */
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- export ---- */

static int fmt_ref(char *buf, size_t n, uint64_t slot, int unknown)
{
    if (unknown)
        return snprintf(buf, n, "?");
    if (slot == HL_NO_SLOT)
        return snprintf(buf, n, "NULL");
    return snprintf(buf, n, "#%" PRIu64, slot);
}

int hl_text_format_event(char *buf, size_t n, const struct hl_event *e)
{
    const char *name = hl_op_name(e->op);
    char ref[32], args[96], res[32];
    int unknown = !!(e->flags & HL_EV_UNKNOWN);
    if (!name)
        return snprintf(buf, n, "%" PRIu64 " t%" PRIu32 " op%d", e->time_ns, e->thread, e->op);
    if (e->op == HL_OP_FREE) {
        fmt_ref(ref, sizeof ref, e->slot, unknown);
        return snprintf(buf, n, "%" PRIu64 " t%" PRIu32 " free %s", e->time_ns, e->thread, ref);
    }
    switch (e->op) {
    case HL_OP_CALLOC:
        snprintf(args, sizeof args, "%" PRIu64 "x%" PRIu64, e->aux, e->size);
        break;
    case HL_OP_REALLOC:
        fmt_ref(ref, sizeof ref, e->old_slot, unknown);
        snprintf(args, sizeof args, "%s %" PRIu64, ref, e->size);
        break;
    case HL_OP_REALLOCARRAY:
        fmt_ref(ref, sizeof ref, e->old_slot, unknown);
        snprintf(args, sizeof args, "%s %" PRIu64 "x%" PRIu64, ref, e->aux, e->size);
        break;
    case HL_OP_POSIX_MEMALIGN:
    case HL_OP_ALIGNED_ALLOC:
    case HL_OP_MEMALIGN:
        snprintf(args, sizeof args, "align=%" PRIu64 " %" PRIu64, e->aux, e->size);
        break;
    default:
        snprintf(args, sizeof args, "%" PRIu64, e->size);
        break;
    }
    if (e->flags & HL_EV_FAILED)
        snprintf(res, sizeof res, "FAILED");
    else
        snprintf(res, sizeof res, "#%" PRIu64, e->slot);
    return snprintf(buf, n, "%" PRIu64 " t%" PRIu32 " %s %s -> %s", e->time_ns, e->thread, name,
                    args, res);
}

/* Quote s for a process line; out must hold 4 * strlen(s) + 3 bytes. */
static void quote(char *out, const char *s)
{
    *out++ = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            *out++ = '\\';
            *out++ = (char)c;
        } else if (c == '\n') {
            *out++ = '\\';
            *out++ = 'n';
        } else if (c == '\t') {
            *out++ = '\\';
            *out++ = 't';
        } else if (c < 0x20 || c == 0x7f) {
            out += sprintf(out, "\\x%02x", c);
        } else {
            *out++ = (char)c;
        }
    }
    *out++ = '"';
    *out = 0;
}

int hl_text_format_process(char *buf, size_t n, const struct hl_process *p)
{
    char exe[4 * sizeof p->exe + 3], cmd[4 * sizeof p->cmdline + 3];
    quote(exe, p->exe);
    quote(cmd, p->cmdline);
    /* flags, first_slot and the losses only where they are not 0, as most sections
     * have them. */
    char extra[192] = "";
    if (p->flags)
        snprintf(extra, sizeof extra, " flags=%" PRIu32, p->flags);
    if (p->first_slot)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), " first_slot=%" PRIu64,
                 p->first_slot);
    if (p->dropped || p->missed || p->cut_errno)
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra),
                 " dropped=%" PRIu64 " missed=%" PRIu64 " cut_errno=%" PRIu32, p->dropped,
                 p->missed, p->cut_errno);
    return snprintf(buf, n,
                    "process pid=%" PRIu32 " ppid=%" PRIu32 " page_size=%" PRIu32
                    " start_ns=%" PRIu64 "%s exe=%s cmdline=%s",
                    p->pid, p->ppid, p->page_size, p->start_realtime_ns, extra, exe, cmd);
}

int hl_text_export(const char *in, FILE *out, const char *outname, struct hl_err *err)
{
    struct hl_reader *r = hl_reader_open(in, err);
    if (!r)
        return -1;
    char line[4 * 1536 + 256];
    struct hl_process p;
    int rc, more;
    fprintf(out, "# heaplab-text %d\n", HL_TEXT_VERSION);
    while ((more = hl_reader_next_process(r, &p, err)) > 0) {
        hl_text_format_process(line, sizeof line, &p);
        fprintf(out, "%s\n", line);
        struct hl_pages *pg;
        ssize_t npg = hl_reader_pages(r, &pg, err);
        if (npg < 0) {
            more = -1;
            break;
        }
        const struct hl_event *ev;
        ssize_t k;
        while ((k = hl_reader_events(r, &ev, err)) > 0)
            for (ssize_t i = 0; i < k; i++) {
                hl_text_format_event(line, sizeof line, &ev[i]);
                fputs(line, out);
                putc('\n', out);
            }
        /* After the events: each names a block allocated before it. */
        for (ssize_t i = 0; k == 0 && i < npg; i++)
            fprintf(out, "pages #%" PRIu64 " %" PRIu64 "\n", pg[i].slot, pg[i].pages);
        free(pg);
        if (k < 0) {
            more = -1;
            break;
        }
    }
    rc = more < 0 ? -1 : 0;
    hl_reader_close(r);
    if (fflush(out) != 0 || ferror(out)) {
        if (rc == 0)
            snprintf(err->msg, sizeof err->msg, "%s: write failed: %s", outname, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* ---- import ---- */

#define MAX_WORDS 16

struct parser {
    const char *name;
    unsigned long line;
    struct hl_writer *w;
    int in_process;
    uint64_t next_slot;
    struct hl_err *err;
};

__attribute__((format(printf, 2, 3))) static int perr(struct parser *ps, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(ps->err->msg, sizeof ps->err->msg, "%s:%lu: %s", ps->name, ps->line, what);
    return -1;
}

/* Split s into words at blanks; a double-quoted part (with backslash escapes) may hold
 * blanks.  A word starting with # and not followed by a digit ends the line. */
static int split(struct parser *ps, char *s, char **words, int *nwords)
{
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '\r')
            s++;
        if (!*s || (*s == '#' && !isdigit((unsigned char)s[1])))
            break;
        if (n == MAX_WORDS)
            return perr(ps, "too many words on the line");
        words[n++] = s;
        int quoted = 0;
        for (; *s && (quoted || (*s != ' ' && *s != '\t' && *s != '\r')); s++) {
            if (*s == '"')
                quoted = !quoted;
            else if (quoted && *s == '\\' && s[1])
                s++;
        }
        if (quoted)
            return perr(ps, "unterminated string");
        if (*s)
            *s++ = 0;
    }
    *nwords = n;
    return 0;
}

static int parse_number(const char *s, uint64_t *out, int allow_hex)
{
    uint64_t v = 0;
    int base = 10;
    if (allow_hex && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s += 2;
    }
    if (!*s)
        return -1;
    for (; *s; s++) {
        int d;
        if (*s >= '0' && *s <= '9')
            d = *s - '0';
        else if (base == 16 && isxdigit((unsigned char)*s))
            d = tolower((unsigned char)*s) - 'a' + 10;
        else
            return -1;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    return parse_number(s, out, 1);
}

static int parse_u32(const char *s, uint32_t *out)
{
    uint64_t v;
    if (parse_u64(s, &v) < 0 || v > UINT32_MAX)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

/* Unquote a process field value into out (cap bytes with the NUL). */
static int parse_string(struct parser *ps, const char *key, const char *s, char *out, size_t cap)
{
    size_t n = 0;
    if (*s != '"') { /* unquoted: taken as is */
        if (strlen(s) >= cap)
            return perr(ps, "%s is too long", key);
        strcpy(out, s);
        return 0;
    }
    for (s++; *s != '"'; s++) {
        char c = *s;
        if (!c)
            return perr(ps, "unterminated string in %s", key);
        if (c == '\\') {
            c = *++s;
            if (c == 'n')
                c = '\n';
            else if (c == 't')
                c = '\t';
            else if (c == 'x' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                char hex[3] = {s[1], s[2], 0};
                c = (char)strtol(hex, NULL, 16);
                s += 2;
                if (!c)
                    return perr(ps, "NUL byte in %s", key);
            } else if (c != '"' && c != '\\')
                return perr(ps, "bad escape in %s", key);
        }
        if (n + 1 >= cap)
            return perr(ps, "%s is too long", key);
        out[n++] = c;
    }
    if (s[1])
        return perr(ps, "junk after the closing quote of %s", key);
    out[n] = 0;
    return 0;
}

static int begin_process(struct parser *ps, const struct hl_process *p)
{
    hl_writer_set_first_slot(ps->w, p->first_slot);
    if (hl_writer_begin_process(ps->w, p, ps->err) < 0)
        return -1;
    hl_writer_set_losses(ps->w, p->dropped, p->missed, p->cut_errno);
    ps->in_process = 1;
    ps->next_slot = p->first_slot;
    return 0;
}

static int parse_process(struct parser *ps, char **words, int n)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.page_size = 4096;
    for (int i = 1; i < n; i++) {
        char *eq = strchr(words[i], '=');
        if (!eq)
            return perr(ps, "expected key=value, got '%.40s'", words[i]);
        *eq = 0;
        const char *k = words[i], *v = eq + 1;
        int bad = 0;
        if (strcmp(k, "pid") == 0)
            bad = parse_u32(v, &p.pid);
        else if (strcmp(k, "ppid") == 0)
            bad = parse_u32(v, &p.ppid);
        else if (strcmp(k, "page_size") == 0)
            bad = parse_u32(v, &p.page_size);
        else if (strcmp(k, "start_ns") == 0)
            bad = parse_u64(v, &p.start_realtime_ns);
        else if (strcmp(k, "flags") == 0)
            bad = parse_u32(v, &p.flags) || (p.flags & ~HL_PROC_KNOWN_FLAGS);
        else if (strcmp(k, "dropped") == 0)
            bad = parse_u64(v, &p.dropped);
        else if (strcmp(k, "missed") == 0)
            bad = parse_u64(v, &p.missed);
        else if (strcmp(k, "cut_errno") == 0)
            bad = parse_u32(v, &p.cut_errno);
        else if (strcmp(k, "first_slot") == 0)
            bad = parse_u64(v, &p.first_slot) || p.first_slot > HL_NO_SLOT / 2;
        else if (strcmp(k, "exe") == 0)
            bad = parse_string(ps, k, v, p.exe, sizeof p.exe) ? -2 : 0;
        else if (strcmp(k, "cmdline") == 0)
            bad = parse_string(ps, k, v, p.cmdline, sizeof p.cmdline) ? -2 : 0;
        else
            return perr(ps, "unknown process field '%.40s'", k);
        if (bad == -2)
            return -1;
        if (bad)
            return perr(ps, "bad number for %s: '%.40s'", k, v);
    }
    return begin_process(ps, &p);
}

/* A block given back: #N, NULL or ?. */
static int parse_ref(struct parser *ps, const char *s, struct hl_event *e, uint64_t *ref)
{
    if (strcmp(s, "?") == 0) {
        e->flags |= HL_EV_UNKNOWN;
        *ref = HL_NO_SLOT;
        return 0;
    }
    if (strcmp(s, "NULL") == 0) {
        *ref = HL_NO_SLOT;
        return 0;
    }
    if (s[0] != '#' || parse_u64(s + 1, ref) < 0 || *ref == HL_NO_SLOT)
        return perr(ps, "expected a block (#N, NULL or ?), got '%.40s'", s);
    if (*ref >= ps->next_slot)
        return perr(ps, "block #%" PRIu64 " is not allocated yet (the next slot is #%" PRIu64 ")",
                    *ref, ps->next_slot);
    return 0;
}

/* "NxS" (both decimal, so that "0x16" is 0 x 16) or "N" "S": nmemb then element size. */
static int parse_array(struct parser *ps, char **args, int nargs, struct hl_event *e)
{
    if (nargs == 1) {
        char *x = strchr(args[0], 'x');
        if (x) {
            *x = 0;
            int bad = parse_number(args[0], &e->aux, 0) || parse_number(x + 1, &e->size, 0);
            *x = 'x';
            if (!bad)
                return 0;
        }
    } else if (nargs == 2 && parse_u64(args[0], &e->aux) == 0 && parse_u64(args[1], &e->size) == 0) {
        return 0;
    }
    return perr(ps, "%s takes NMEMBxSIZE", hl_op_name(e->op));
}

static int parse_event(struct parser *ps, char **words, int n)
{
    struct hl_event e = {0};
    e.slot = e.old_slot = HL_NO_SLOT;
    int i = 0;
    if (i < n && isdigit((unsigned char)words[i][0])) {
        if (parse_u64(words[i], &e.time_ns) < 0)
            return perr(ps, "bad time '%.40s'", words[i]);
        i++;
    }
    if (i < n && words[i][0] == 't' && isdigit((unsigned char)words[i][1])) {
        if (parse_u32(words[i] + 1, &e.thread) < 0)
            return perr(ps, "bad thread '%.40s'", words[i]);
        i++;
    }
    if (i >= n)
        return perr(ps, "expected an operation");
    int op = hl_op_from_name(words[i]);
    if (!op)
        return perr(ps, "unknown operation '%.40s'", words[i]);
    e.op = (uint8_t)op;
    i++;

    /* Arguments run up to "->"; then the result. */
    char **args = words + i;
    int nargs = 0;
    while (i < n && strcmp(words[i], "->") != 0) {
        i++;
        nargs++;
    }
    const char *result = NULL;
    if (i < n) {
        if (op == HL_OP_FREE)
            return perr(ps, "free has no result");
        if (i + 2 != n)
            return perr(ps, "expected one result after '->'");
        result = words[i + 1];
    }

    uint64_t ref = HL_NO_SLOT;
    switch (op) {
    case HL_OP_FREE:
        if (nargs != 1)
            return perr(ps, "free takes one block (#N, NULL or ?)");
        if (parse_ref(ps, args[0], &e, &ref) < 0)
            return -1;
        e.slot = ref;
        break;
    case HL_OP_REALLOC:
        if (nargs != 2)
            return perr(ps, "realloc takes a block and a size");
        if (parse_ref(ps, args[0], &e, &ref) < 0)
            return -1;
        if (parse_u64(args[1], &e.size) < 0)
            return perr(ps, "bad size '%.40s'", args[1]);
        e.old_slot = ref;
        break;
    case HL_OP_REALLOCARRAY:
        if (nargs < 2 || nargs > 3)
            return perr(ps, "reallocarray takes a block and NMEMBxSIZE");
        if (parse_ref(ps, args[0], &e, &ref) < 0 || parse_array(ps, args + 1, nargs - 1, &e) < 0)
            return -1;
        e.old_slot = ref;
        break;
    case HL_OP_CALLOC:
        if (nargs < 1 || nargs > 2 || parse_array(ps, args, nargs, &e) < 0)
            return nargs < 1 || nargs > 2 ? perr(ps, "calloc takes NMEMBxSIZE") : -1;
        break;
    case HL_OP_POSIX_MEMALIGN:
    case HL_OP_ALIGNED_ALLOC:
    case HL_OP_MEMALIGN: {
        int have_align = 0, have_size = 0;
        for (int a = 0; a < nargs; a++) {
            if (strncmp(args[a], "align=", 6) == 0 && !have_align) {
                if (parse_u64(args[a] + 6, &e.aux) < 0)
                    return perr(ps, "bad alignment '%.40s'", args[a]);
                have_align = 1;
            } else if (!have_align && nargs == 2 && a == 0) {
                if (parse_u64(args[a], &e.aux) < 0) /* "A SIZE", the C argument order */
                    return perr(ps, "bad alignment '%.40s'", args[a]);
                have_align = 1;
            } else if (!have_size) {
                if (parse_u64(args[a], &e.size) < 0)
                    return perr(ps, "bad size '%.40s'", args[a]);
                have_size = 1;
            } else {
                return perr(ps, "%s takes align=A SIZE", hl_op_name(op));
            }
        }
        if (!have_align || !have_size)
            return perr(ps, "%s takes align=A SIZE", hl_op_name(op));
        break;
    }
    default:
        if (nargs != 1)
            return perr(ps, "%s takes one size", hl_op_name(op));
        if (parse_u64(args[0], &e.size) < 0)
            return perr(ps, "bad size '%.40s'", args[0]);
        break;
    }

    if (op != HL_OP_FREE) {
        if (result && strcmp(result, "FAILED") == 0) {
            e.flags |= HL_EV_FAILED;
        } else {
            uint64_t s = ps->next_slot;
            if (result && (result[0] != '#' || parse_u64(result + 1, &s) < 0))
                return perr(ps, "expected a result (#N or FAILED), got '%.40s'", result);
            if (s != ps->next_slot)
                return perr(ps, "the result must be the next slot #%" PRIu64 ", got #%" PRIu64,
                            ps->next_slot, s);
            e.slot = s;
        }
    }

    if (!ps->in_process) {
        struct hl_process p = {0};
        p.page_size = 4096;
        if (begin_process(ps, &p) < 0)
            return -1;
    }
    struct hl_err werr;
    if (hl_writer_event(ps->w, &e, &werr) < 0) {
        /* The writer's message starts with the output's name; the line is more use. */
        const char *m = strstr(werr.msg, ": event ");
        return perr(ps, "%s", m ? m + 2 : werr.msg);
    }
    if (op != HL_OP_FREE && !(e.flags & HL_EV_FAILED))
        ps->next_slot++;
    return 0;
}

/* pages #N P: block #N had P pages resident (struct hl_pages). */
static int parse_pages(struct parser *ps, char **words, int n)
{
    uint64_t slot, pages;
    if (n != 3 || words[1][0] != '#' || parse_u64(words[1] + 1, &slot) < 0 ||
        parse_u64(words[2], &pages) < 0)
        return perr(ps, "expected: pages #SLOT PAGES");
    if (!ps->in_process)
        return perr(ps, "pages before any event");
    if (hl_writer_pages(ps->w, slot, pages, ps->err) < 0)
        return perr(ps, "pages #%" PRIu64 ": no such block allocated before, or too many pages", slot);
    return 0;
}

static int parse_line(struct parser *ps, char *line)
{
    char *words[MAX_WORDS];
    int n = 0;
    const char *s = line;
    while (*s == ' ' || *s == '\t')
        s++;
    if (strncmp(s, "# heaplab-text ", 15) == 0) {
        uint64_t v;
        char ver[24];
        snprintf(ver, sizeof ver, "%s", s + 15);
        ver[strcspn(ver, " \t\r")] = 0;
        if (parse_u64(ver, &v) < 0 || v != HL_TEXT_VERSION)
            return perr(ps, "unsupported text trace version '%s' (this heaplab reads %d)", ver,
                        HL_TEXT_VERSION);
        return 0;
    }
    if (split(ps, line, words, &n) < 0)
        return -1;
    if (n == 0)
        return 0;
    if (strcmp(words[0], "process") == 0)
        return parse_process(ps, words, n);
    if (strcmp(words[0], "pages") == 0)
        return parse_pages(ps, words, n);
    return parse_event(ps, words, n);
}

static int import_stream(FILE *f, const char *name, const char *out, struct hl_err *err)
{
    struct parser ps = {.name = name, .err = err};
    ps.w = hl_writer_open(out, err);
    if (!ps.w)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        ps.line++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = 0;
        if (strlen(line) != (size_t)len) {
            rc = perr(&ps, "NUL byte in the line");
            break;
        }
        if (len > 16384) {
            rc = perr(&ps, "line too long");
            break;
        }
        if ((rc = parse_line(&ps, line)) < 0)
            break;
    }
    if (rc == 0 && ferror(f))
        rc = perr(&ps, "read error: %s", strerror(errno));
    free(line);
    if (rc < 0) {
        hl_writer_abort(ps.w);
        return -1;
    }
    return hl_writer_close(ps.w, err);
}

int hl_text_import(const char *in, const char *out, struct hl_err *err)
{
    FILE *f = strcmp(in, "-") == 0 ? stdin : fopen(in, "r");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", in, strerror(errno));
        return -1;
    }
    int rc = import_stream(f, strcmp(in, "-") == 0 ? "<stdin>" : in, out, err);
    if (f != stdin)
        fclose(f);
    return rc;
}

int hl_text_import_mem(const char *buf, size_t len, const char *name, const char *out,
                       struct hl_err *err)
{
    if (len == 0) { /* fmemopen refuses an empty buffer on some libcs */
        struct hl_writer *w = hl_writer_open(out, err);
        return w ? hl_writer_close(w, err) : -1;
    }
    FILE *f = fmemopen((void *)buf, len, "r");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", name, strerror(errno));
        return -1;
    }
    int rc = import_stream(f, name, out, err);
    fclose(f);
    return rc;
}
