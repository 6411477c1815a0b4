/*
 * results.c: reading replay's results (CSV or JSON) and timelines (CSV) for `plot`.
 *
 * Input is untrusted: every malformed file ends in one line "heaplab: FILE:LINE: what is
 * wrong" and exit 1, never a crash.  The CSV reader follows RFC 4180 (quoted fields may
 * hold commas, doubled quotes and newlines); the JSON reader is a small recursive-descent
 * parser into a tree, then mapped onto the same columns as the CSV (latency.malloc.p50
 * becomes lat_malloc_p50), so the rest of plot sees one model.  Unknown columns and keys
 * are ignored so that newer replay output still plots.
 */
#include "json.h"
#include "plot.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const struct hl_col_info hl_cols[HL_NCOLS] = {
#define HL_RES_INFO(id, name, numeric) {name, numeric},
    HL_RESULT_COLUMNS(HL_RES_INFO)
#undef HL_RES_INFO
};



static int col_by_name(const char *name)
{
    for (int c = 0; c < HL_NCOLS; c++)
        if (strcmp(hl_cols[c].name, name) == 0)
            return c;
    return -1;
}

/* A value for a numeric column: a finite number, or unmeasured (empty, or a reason such
 * as "n/a: no hardware counters").  Returns 0 if it is neither. */
static int numeric_ok(const char *s)
{
    if (!*s || strncmp(s, "n/a", 3) == 0)
        return 1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    return end != s && !*end && !errno && isfinite(v);
}

/* Die naming a field that is not a `kind` of number, shown up to 40 bytes and to its first
 * line break or other control character (a quoted CSV field may hold them), so that the
 * message stays one line. */
__attribute__((noreturn)) static void die_not_number(const char *file, int line,
                                                     const char *what, const char *kind,
                                                     const char *text)
{
    int n = 0;
    while (n < 40 && text[n] && !iscntrl((unsigned char)text[n]))
        n++;
    hl_die("%s:%d: %s is not a %s: '%.*s%s'", file, line, what, kind, n, text,
           text[n] ? "..." : "");
}

static void set_field(struct hl_row *row, int col, const char *text, const char *file,
                      int line)
{
    if (hl_cols[col].numeric && !numeric_ok(text))
        die_not_number(file, line, hl_cols[col].name, "number", text);
    free(row->v[col]);
    row->v[col] = (*text && !(hl_cols[col].numeric && strncmp(text, "n/a", 3) == 0))
                      ? hl_xstrdup(text) : NULL;
}

/* ---------------------------------------------------------------- CSV */

struct csv {
    const char *file;
    const char *p;
    int line;       /* line of the current position */
    char **f;       /* fields of the current record */
    int nf, capf;
    char *buf;      /* field text storage */
    size_t nbuf, capbuf;
};

/* Read one record into c->f; returns 0 at end of input.  Blank lines are skipped. */
static int csv_record(struct csv *c, int *record_line)
{
    while (*c->p == '\n' || (*c->p == '\r' && c->p[1] == '\n')) {
        c->p += *c->p == '\r' ? 2 : 1;
        c->line++;
    }
    if (!*c->p)
        return 0;
    *record_line = c->line;
    c->nf = 0;
    c->nbuf = 0;
    size_t *starts = NULL;
    int nstarts = 0;
    for (;;) {
        /* one field */
        if (nstarts == c->capf) {
            c->capf = c->capf ? c->capf * 2 : 64;
            c->f = hl_xrealloc(c->f, (size_t)c->capf * sizeof *c->f);
        }
        starts = hl_xrealloc(starts, (size_t)(nstarts + 1) * sizeof *starts);
        starts[nstarts++] = c->nbuf;
        int quoted = *c->p == '"';
        if (quoted)
            c->p++;
        for (;;) {
            char ch = *c->p;
            if (quoted) {
                if (!ch)
                    hl_die("%s:%d: unterminated quoted field", c->file, *record_line);
                if (ch == '"') {
                    if (c->p[1] == '"') {
                        c->p++;
                    } else {
                        c->p++;
                        ch = *c->p;
                        if (ch != ',' && ch != '\n' && ch != '\r' && ch)
                            hl_die("%s:%d: text after a closing quote", c->file, c->line);
                        break;
                    }
                }
                if (ch == '\n')
                    c->line++;
            } else {
                if (ch == ',' || ch == '\n' || !ch || (ch == '\r' && c->p[1] == '\n'))
                    break;
                if (ch == '"')
                    hl_die("%s:%d: stray quote inside an unquoted field", c->file, c->line);
            }
            if (c->nbuf + 2 > c->capbuf)
                c->buf = hl_xrealloc(c->buf, c->capbuf = c->capbuf ? c->capbuf * 2 : 4096);
            c->buf[c->nbuf++] = *c->p++;
        }
        if (c->nbuf + 1 > c->capbuf)
            c->buf = hl_xrealloc(c->buf, c->capbuf = c->capbuf ? c->capbuf * 2 : 4096);
        c->buf[c->nbuf++] = 0;
        if (*c->p == ',') {
            c->p++;
            continue;
        }
        if (*c->p == '\r')
            c->p++;
        if (*c->p == '\n') {
            c->p++;
            c->line++;
        }
        break;
    }
    for (int i = 0; i < nstarts; i++)
        c->f[i] = c->buf + starts[i];
    c->nf = nstarts;
    free(starts);
    return 1;
}

static void csv_free(struct csv *c)
{
    free(c->f);
    free(c->buf);
}

static void results_read_csv(struct hl_results *r, const char *path, const char *text)
{
    struct csv c = {.file = path, .p = text, .line = 1};
    int line;
    if (!csv_record(&c, &line))
        hl_die("%s:1: empty file, expected a results CSV header", path);
    int ncols = c.nf;
    int *map = hl_xrealloc(NULL, (size_t)ncols * sizeof *map);
    int have_trace = 0, have_alloc = 0;
    for (int i = 0; i < ncols; i++) {
        map[i] = col_by_name(c.f[i]);
        for (int j = 0; j < i; j++)
            if (map[i] >= 0 && map[j] == map[i])
                hl_die("%s:%d: column '%s' appears twice", path, line, c.f[i]);
        have_trace |= map[i] == HL_RES_TRACE;
        have_alloc |= map[i] == HL_RES_ALLOCATOR;
    }
    if (!have_trace || !have_alloc)
        hl_die("%s:%d: not a heaplab results header (no 'trace' and 'allocator' columns)",
               path, line);
    while (csv_record(&c, &line)) {
        if (c.nf != ncols)
            hl_die("%s:%d: %d fields, the header has %d", path, line, c.nf, ncols);
        r->rows = hl_xrealloc(r->rows, (size_t)(r->nrows + 1) * sizeof *r->rows);
        struct hl_row *row = &r->rows[r->nrows++];
        memset(row, 0, sizeof *row);
        row->line = line;
        for (int i = 0; i < ncols; i++)
            if (map[i] >= 0)
                set_field(row, map[i], c.f[i], path, line);
    }
    free(map);
    csv_free(&c);
}

/* Set a column from a JSON scalar: null -> unmeasured; objects and arrays are wrong. */
static void jset(struct hl_row *row, int col, const struct hl_json *v, const char *file)
{
    if (!v || v->t == HL_JSON_NULL)
        return;
    if (v->t == HL_JSON_OBJ || v->t == HL_JSON_ARR)
        hl_die("%s:%d: %s should be a number or a string", file, v->line, hl_cols[col].name);
    set_field(row, col, v->s, file, v->line);
}

static void results_read_json(struct hl_results *r, const char *path, const char *text)
{
    struct hl_json *doc = hl_json_parse(path, text);
    if (doc->t != HL_JSON_OBJ)
        hl_die("%s:%d: expected an object with a \"results\" array", path, doc->line);
    const struct hl_json *res = hl_json_get(doc, "results");
    if (!res || res->t != HL_JSON_ARR)
        hl_die("%s:%d: no \"results\" array (neither replay results nor `heaplab stat "
               "--json` output)", path, res ? res->line : doc->line);
    static const enum hl_col prov[] = {HL_RES_HEAPLAB_VERSION, HL_RES_CPU, HL_RES_KERNEL,
                                       HL_RES_DATE, HL_RES_HOST, HL_RES_CORES, HL_RES_LIBC};
    for (int i = 0; i < res->n; i++) {
        const struct hl_json *o = res->items[i];
        if (o->t != HL_JSON_OBJ)
            hl_die("%s:%d: a result should be an object", path, o->line);
        r->rows = hl_xrealloc(r->rows, (size_t)(r->nrows + 1) * sizeof *r->rows);
        struct hl_row *row = &r->rows[r->nrows++];
        memset(row, 0, sizeof *row);
        row->line = o->line;
        /* Provenance from the document, unless the result says otherwise. */
        for (size_t k = 0; k < sizeof prov / sizeof prov[0]; k++)
            jset(row, prov[k], hl_json_get(doc, hl_cols[prov[k]].name), path);
        for (int k = 0; k < o->n; k++) {
            int col = col_by_name(o->keys[k]);
            if (col >= 0)
                jset(row, col, o->items[k], path);
        }
        const struct hl_json *lat = hl_json_get(o, "latency");
        static const char *const ops[] = {"malloc", "free"};
        static const char *const pct[] = {"p50", "p99", "p999", "max"};
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 4; b++) {
                char name[32];
                snprintf(name, sizeof name, "lat_%s_%s", ops[a], pct[b]);
                jset(row, col_by_name(name), hl_json_get(hl_json_get(lat, ops[a]), pct[b]), path);
            }
        jset(row, HL_RES_ALLOC_TIME_NS, hl_json_get(hl_json_get(o, "time_split"), "allocator_ns"), path);
        if (!row->v[HL_RES_TRACE] || !row->v[HL_RES_ALLOCATOR])
            hl_die("%s:%d: a result without \"trace\" or \"allocator\"", path, o->line);
    }
    hl_json_free(doc);
}

/* ---------------------------------------------------------------- results */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void hl_results_read(struct hl_results *r, const char *path)
{
    size_t len;
    char *text = hl_plot_slurp(path, &len);
    memset(r, 0, sizeof *r);
    r->file = path;
    const char *p = text;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a UTF-8 byte order mark, as spreadsheets write */
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    if (*p == '{')
        results_read_json(r, path, text);
    else
        results_read_csv(r, path, p);
    free(text);
    if (r->nrows == 0)
        hl_die("%s: no results (the header is there but no rows)", path);

    for (int i = 0; i < r->nrows; i++)
        if (!r->rows[i].v[HL_RES_TRACE] || !r->rows[i].v[HL_RES_ALLOCATOR])
            hl_die("%s:%d: empty trace or allocator name", path, r->rows[i].line);

    /* Groups: a trace, or trace#process where one trace holds several processes. */
    r->row_group = hl_xrealloc(NULL, (size_t)r->nrows * sizeof *r->row_group);
    for (int i = 0; i < r->nrows; i++) {
        const struct hl_row *row = &r->rows[i];
        int multi = 0;
        for (int k = 0; k < r->nrows; k++) {
            const char *p1 = row->v[HL_RES_PROCESS], *p2 = r->rows[k].v[HL_RES_PROCESS];
            if (strcmp(r->rows[k].v[HL_RES_TRACE], row->v[HL_RES_TRACE]) == 0 &&
                strcmp(p1 ? p1 : "", p2 ? p2 : "") != 0)
                multi = 1;
        }
        char label[512];
        if (multi)
            snprintf(label, sizeof label, "%s#%s", row->v[HL_RES_TRACE],
                     row->v[HL_RES_PROCESS] ? row->v[HL_RES_PROCESS] : "?");
        else
            snprintf(label, sizeof label, "%s", row->v[HL_RES_TRACE]);
        int g;
        for (g = 0; g < r->ngroups; g++)
            if (strcmp(r->group[g], label) == 0)
                break;
        if (g == r->ngroups) {
            r->group = hl_xrealloc(r->group, (size_t)(r->ngroups + 1) * sizeof *r->group);
            r->group[r->ngroups++] = hl_xstrdup(label);
        }
        r->row_group[i] = g;
    }
    /* Short labels, unless two groups would share one. */
    r->label = hl_xrealloc(NULL, (size_t)r->ngroups * sizeof *r->label);
    for (int g = 0; g < r->ngroups; g++) {
        char label[512];
        hl_trace_label(label, sizeof label, r->group[g]);
        r->label[g] = hl_xstrdup(label);
    }
    for (int g = 0; g < r->ngroups; g++)
        for (int k = 0; k < r->ngroups; k++)
            if (k != g && strcmp(r->label[g], r->label[k]) == 0) {
                char label[512];
                hl_trace_label(label, sizeof label, r->group[k]);
                if (strcmp(label, r->label[k]) == 0) { /* not yet widened */
                    free(r->label[k]);
                    r->label[k] = hl_xstrdup(r->group[k]);
                }
                free(r->label[g]);
                r->label[g] = hl_xstrdup(r->group[g]);
            }
    /* Allocators in name order, so that the palette does not depend on row order. */
    for (int i = 0; i < r->nrows; i++)
        if (hl_results_alloc(r, r->rows[i].v[HL_RES_ALLOCATOR]) < 0) {
            r->alloc = hl_xrealloc(r->alloc, (size_t)(r->nallocs + 1) * sizeof *r->alloc);
            r->alloc[r->nallocs++] = r->rows[i].v[HL_RES_ALLOCATOR];
        }
    qsort(r->alloc, (size_t)r->nallocs, sizeof *r->alloc, cmp_str);
    for (int i = 0; i < r->nrows; i++)
        for (int k = 0; k < i; k++)
            if (r->row_group[k] == r->row_group[i] &&
                strcmp(r->rows[k].v[HL_RES_ALLOCATOR], r->rows[i].v[HL_RES_ALLOCATOR]) == 0)
                hl_die("%s:%d: a second result for trace '%s' and allocator '%s' (line %d)",
                       path, r->rows[i].line, r->group[r->row_group[i]],
                       r->rows[i].v[HL_RES_ALLOCATOR], r->rows[k].line);
}

void hl_trace_label(char *out, size_t n, const char *trace)
{
    /* "dir/gcc.hlt[2267]" -> "gcc[2267]": a suffix naming the process ([pid] as replay
     * writes it, or #process) is kept. */
    const char *base = strrchr(trace, '/');
    base = base && base[1] ? base + 1 : trace;
    size_t len = strcspn(base, "[#");
    if (len > 4 && memcmp(base + len - 4, ".hlt", 4) == 0)
        snprintf(out, n, "%.*s%s", (int)(len - 4), base, base + len);
    else
        snprintf(out, n, "%s", base);
}

void hl_results_free(struct hl_results *r)
{
    for (int i = 0; i < r->nrows; i++)
        for (int c = 0; c < HL_NCOLS; c++)
            free(r->rows[i].v[c]);
    for (int g = 0; g < r->ngroups; g++) {
        free(r->group[g]);
        free(r->label[g]);
    }
    free(r->rows);
    free(r->group);
    free(r->label);
    free(r->row_group);
    free(r->alloc); /* the names belong to the rows */
    memset(r, 0, sizeof *r);
}

void hl_timelines_free(struct hl_timelines *t)
{
    for (int i = 0; i < t->n; i++) {
        struct hl_timeline *s = &t->t[i];
        free(s->trace);
        free(s->alloc);
        free(s->event);
        free(s->live);
        free(s->rss);
        free(s->time);
    }
    free(t->t);
    memset(t, 0, sizeof *t);
}

int hl_results_alloc(const struct hl_results *r, const char *name)
{
    for (int a = 0; a < r->nallocs; a++)
        if (strcmp(r->alloc[a], name) == 0)
            return a;
    return -1;
}

const struct hl_row *hl_results_find(const struct hl_results *r, int g, int a)
{
    for (int i = 0; i < r->nrows; i++)
        if (r->row_group[i] == g && strcmp(r->rows[i].v[HL_RES_ALLOCATOR], r->alloc[a]) == 0)
            return &r->rows[i];
    return NULL;
}

double hl_row_num(const struct hl_row *row, enum hl_col col)
{
    if (!row || col >= HL_NCOLS || !row->v[col])
        return NAN;
    return strtod(row->v[col], NULL);
}

/* ---------------------------------------------------------------- timelines */

struct tl_point {
    double event, live, rss, time;
    size_t order;
};

static int cmp_point(const void *a, const void *b)
{
    const struct tl_point *x = a, *y = b;
    if (x->event != y->event)
        return x->event < y->event ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static void sort_series(struct hl_timeline *s)
{
    struct tl_point *p = hl_xrealloc(NULL, s->n * sizeof *p);
    for (size_t i = 0; i < s->n; i++)
        p[i] = (struct tl_point){s->event[i], s->live[i], s->rss[i], s->time[i], i};
    qsort(p, s->n, sizeof *p, cmp_point);
    for (size_t i = 0; i < s->n; i++) {
        s->event[i] = p[i].event;
        s->live[i] = p[i].live;
        s->rss[i] = p[i].rss;
        s->time[i] = p[i].time;
    }
    free(p);
}

void hl_timelines_read(struct hl_timelines *t, const char *path)
{
    size_t len;
    char *text = hl_plot_slurp(path, &len);
    struct csv c = {.file = path, .p = text, .line = 1};
    int line;
    static const char *const want[] = {"trace", "allocator", "run", "event", "time_ns",
                                       "live_bytes", "rss_bytes"};
    enum { W_TRACE, W_ALLOC, W_RUN, W_EVENT, W_TIME, W_LIVE, W_RSS, W_N };
    int idx[W_N];
    if (!csv_record(&c, &line))
        hl_die("%s:1: empty file, expected a timeline CSV header", path);
    for (int w = 0; w < W_N; w++) {
        idx[w] = -1;
        for (int i = 0; i < c.nf; i++)
            if (strcmp(c.f[i], want[w]) == 0)
                idx[w] = i;
        if (idx[w] < 0 && w != W_TIME)
            hl_die("%s:%d: not a timeline header (no '%s' column)", path, line, want[w]);
    }
    int ncols = c.nf;
    int before = t->n;
    while (csv_record(&c, &line)) {
        if (c.nf != ncols)
            hl_die("%s:%d: %d fields, the header has %d", path, line, c.nf, ncols);
        double num[W_N] = {0};
        for (int w = W_RUN; w < W_N; w++) {
            if (idx[w] < 0)
                continue;
            const char *s = c.f[idx[w]];
            char *end;
            num[w] = strtod(s, &end);
            if (w == W_RSS && !*s) {
                num[w] = NAN; /* not sampled */
                continue;
            }
            if (end == s || *end || !isfinite(num[w]))
                die_not_number(path, line, want[w], "number", s);
            if (w == W_RUN && !(num[w] >= 0 && num[w] <= INT_MAX && num[w] == floor(num[w])))
                die_not_number(path, line, want[w], "run number", s);
        }
        if (!*c.f[idx[W_TRACE]] || !*c.f[idx[W_ALLOC]])
            hl_die("%s:%d: empty trace or allocator name", path, line);
        /* Find the series; keep only the lowest run of each trace and allocator. */
        struct hl_timeline *s = NULL;
        for (int i = 0; i < t->n; i++)
            if (strcmp(t->t[i].trace, c.f[idx[W_TRACE]]) == 0 &&
                strcmp(t->t[i].alloc, c.f[idx[W_ALLOC]]) == 0)
                s = &t->t[i];
        if (s && s - t->t < before)
            continue; /* an earlier file gave this series; it wins */
        if (s && (long)num[W_RUN] > s->run)
            continue;
        if (s && (long)num[W_RUN] < s->run) {
            s->n = 0;
            s->run = (long)num[W_RUN];
        }
        if (!s) {
            t->t = hl_xrealloc(t->t, (size_t)(t->n + 1) * sizeof *t->t);
            s = &t->t[t->n++];
            memset(s, 0, sizeof *s);
            s->trace = hl_xstrdup(c.f[idx[W_TRACE]]);
            s->alloc = hl_xstrdup(c.f[idx[W_ALLOC]]);
            s->run = (long)num[W_RUN];
        }
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 256;
            s->event = hl_xrealloc(s->event, s->cap * sizeof *s->event);
            s->live = hl_xrealloc(s->live, s->cap * sizeof *s->live);
            s->rss = hl_xrealloc(s->rss, s->cap * sizeof *s->rss);
            s->time = hl_xrealloc(s->time, s->cap * sizeof *s->time);
        }
        s->event[s->n] = num[W_EVENT];
        s->live[s->n] = num[W_LIVE];
        s->rss[s->n] = num[W_RSS];
        s->time[s->n] = idx[W_TIME] >= 0 ? num[W_TIME] : NAN;
        s->n++;
    }
    if (t->n == before)
        hl_die("%s: no timeline rows (the header is there but no samples)", path);
    /* With one replay thread per recorded thread, each thread writes its own samples
     * (by global event number), so a series arrives in several runs: order it. */
    for (int i = before; i < t->n; i++)
        sort_series(&t->t[i]);
    csv_free(&c);
    free(text);
}
