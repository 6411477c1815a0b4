/*
 * mtrace.c: glibc mtrace log -> heaplab trace (see mtrace.h for the format and the
 * mapping).  Strict: a line that is not an mtrace line stops the import with its line
 * number, so a wrong file is never silently turned into an empty trace.
 */
#include "mtrace.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct imp {
    const char *in;
    unsigned long line;
    struct hl_writer *w;
    struct hl_slotmap *map;
    struct hl_err *err;
    uint64_t next_slot;
    uint64_t time;
    /* a "<" waiting for its ">" */
    int pending;
    uint64_t pending_slot;
    uint8_t pending_flags;
};

static int emit(struct imp *m, struct hl_event *e)
{
    e->time_ns = m->time++;
    return hl_writer_event(m->w, e, m->err);
}

/* An allocation at addr: returns its slot.  If addr is still live, the log lost that
 * block's free: emit it first. */
static int alloc_at(struct imp *m, uint64_t addr, uint64_t *slot)
{
    uint64_t prev = hl_slotmap_put(m->map, addr, m->next_slot);
    if (prev != HL_NO_SLOT) {
        struct hl_event f = {.slot = prev, .old_slot = HL_NO_SLOT, .op = HL_OP_FREE};
        if (emit(m, &f) < 0)
            return -1;
    }
    *slot = m->next_slot++;
    return 0;
}

/* A "<" never followed by its ">": the block was given back; keep that much. */
static int flush_pending(struct imp *m)
{
    if (!m->pending)
        return 0;
    m->pending = 0;
    struct hl_event f = {.slot = m->pending_slot, .old_slot = HL_NO_SLOT, .op = HL_OP_FREE,
                         .flags = m->pending_flags};
    return emit(m, &f);
}

static int bad(struct imp *m, const char *what)
{
    snprintf(m->err->msg, sizeof m->err->msg, "%s: line %lu: %s", m->in, m->line, what);
    return -1;
}

/* "0x1c3d010" or "(nil)" (0). */
static int parse_hex(const char *s, uint64_t *v)
{
    if (strcmp(s, "(nil)") == 0) {
        *v = 0;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(s, &end, 16);
    if (errno || end == s || *end)
        return -1;
    *v = x;
    return 0;
}

static int do_line(struct imp *m, char *s)
{
    char *tok[8];
    int n = 0;
    for (char *t = strtok(s, " \t\r\n"); t && n < 8; t = strtok(NULL, " \t\r\n"))
        tok[n++] = t;
    if (n == 0)
        return 0;
    if (strcmp(tok[0], "=") == 0) /* "= Start" / "= End" */
        return 0;
    int i = 0;
    if (strcmp(tok[0], "@") == 0) {
        /* the caller: "./prog:[0x4005d4]" or "[0x4005d4]"; skip to the op */
        i = 2;
        while (i < n && strlen(tok[i]) != 1)
            i++;
    }
    if (i >= n || strlen(tok[i]) != 1)
        return bad(m, "not a glibc mtrace line");
    char op = tok[i][0];
    int nargs = n - i - 1;
    uint64_t addr = 0, size = 0;
    if (nargs < 1 || parse_hex(tok[i + 1], &addr) < 0)
        return bad(m, "bad or missing address");
    if (nargs >= 2 && parse_hex(tok[i + 2], &size) < 0)
        return bad(m, "bad size");
    int want = (op == '+' || op == '>' || op == '!') ? 2 : 1;
    if (nargs != want)
        return bad(m, "wrong number of fields");

    if (op != '>' && flush_pending(m) < 0)
        return -1;
    struct hl_event e = {.slot = HL_NO_SLOT, .old_slot = HL_NO_SLOT};
    switch (op) {
    case '+':
        e.op = HL_OP_MALLOC;
        e.size = size;
        if (addr == 0)
            e.flags = HL_EV_FAILED;
        else if (alloc_at(m, addr, &e.slot) < 0)
            return -1;
        return emit(m, &e);
    case '-':
        e.op = HL_OP_FREE;
        e.slot = addr ? hl_slotmap_take(m->map, addr) : HL_NO_SLOT;
        if (addr && e.slot == HL_NO_SLOT)
            e.flags = HL_EV_UNKNOWN;
        return emit(m, &e);
    case '<':
        m->pending = 1;
        m->pending_slot = hl_slotmap_take(m->map, addr);
        m->pending_flags = m->pending_slot == HL_NO_SLOT ? HL_EV_UNKNOWN : 0;
        return 0;
    case '>':
        e.op = HL_OP_REALLOC;
        e.size = size;
        if (m->pending) {
            e.old_slot = m->pending_slot;
            e.flags = m->pending_flags;
            m->pending = 0;
        }
        if (addr == 0) /* does not happen in glibc's output; keep it honest anyway */
            e.flags |= HL_EV_FAILED;
        else if (alloc_at(m, addr, &e.slot) < 0)
            return -1;
        return emit(m, &e);
    case '!': {
        e.op = HL_OP_REALLOC;
        e.size = size;
        e.flags = HL_EV_FAILED;
        /* the block passed in stays live: look it up without removing it */
        uint64_t s = hl_slotmap_take(m->map, addr);
        if (s != HL_NO_SLOT)
            hl_slotmap_put(m->map, addr, s);
        else
            e.flags |= HL_EV_UNKNOWN;
        e.old_slot = s;
        return emit(m, &e);
    }
    default:
        return bad(m, "unknown mtrace operation");
    }
}

int hl_mtrace_import(const char *in, const char *out, struct hl_err *err)
{
    FILE *f = strcmp(in, "-") == 0 ? stdin : fopen(in, "r");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", in, strerror(errno));
        return -1;
    }
    struct imp m = {.in = in, .err = err};
    m.map = hl_slotmap_new();
    m.w = m.map ? hl_writer_open(out, err) : NULL;
    if (!m.map)
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", in);
    int rc = -1;
    if (m.w) {
        struct hl_process p;
        memset(&p, 0, sizeof p);
        p.page_size = 4096;
        snprintf(p.cmdline, sizeof p.cmdline, "(mtrace log %s)", in);
        rc = hl_writer_begin_process(m.w, &p, err);
    }
    char *line = NULL;
    size_t cap = 0;
    while (rc == 0 && getline(&line, &cap, f) >= 0) {
        m.line++;
        rc = do_line(&m, line);
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err->msg, sizeof err->msg, "%s: read error: %s", in, strerror(errno));
        rc = -1;
    }
    if (rc == 0)
        rc = flush_pending(&m);
    if (rc == 0 && m.line == 0) {
        snprintf(err->msg, sizeof err->msg, "%s: empty file, not a glibc mtrace log", in);
        rc = -1;
    }
    if (rc == 0)
        rc = hl_writer_end_process(m.w, err);
    if (m.w) {
        if (rc == 0)
            rc = hl_writer_close(m.w, err);
        else
            hl_writer_abort(m.w);
    }
    free(line);
    if (m.map)
        hl_slotmap_free(m.map);
    if (f != stdin)
        fclose(f);
    return rc;
}
