/*
 * stats.c: `heaplab plot STAT.json`: the size and lifetime histograms of `heaplab stat
 * --json` output, and stat-report.md.
 *
 * The input is one stat object (one trace) or an array of them (several traces); each
 * object carries its whole-file figures and a process_list.  Every trace gets two
 * charts, sizes-STEM (blocks and bytes per power-of-two size bucket) and lifetimes-STEM
 * (lifetimes in events and, with timestamps, in time, plus the blocks never freed).  A
 * file with several processes also gets charts per process, but only for processes big
 * enough to have a shape (MIN_ALLOCS allocations), and not for a lone big process whose
 * charts would repeat the file's.  The drawing is in scripts/gnuplot/stat-*.gp; this
 * file validates the input, lays the buckets out and writes the data and the report.
 *
 * stat leaves empty buckets out; here every bucket between the smallest and the largest
 * is drawn (empty ones without a bar), so the x axis is a true scale.
 */
#include "json.h"
#include "plot.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_ALLOCS 100   /* fewer allocations than this: a process gets no charts */
#define MIN_SHARE 0.02   /* nor with less than this share of the file's allocations */
#define MAX_PROCS 8      /* charted processes per file at most (the largest) */
#define SAME_SHARE 0.95  /* a lone charted process with this share is the file's charts */
#define TOP_SIZES 10     /* exact sizes listed in the report */
#define TOP_LEAKS 5      /* leak sizes listed in the report */
#define TABLE_PROCS 20   /* processes listed in the report (the largest), the rest summed */
#define MAX_BUCKETS 80   /* more than 2^64 or 10^14 ns: not stat output */

/* The figures read from each object; "required" ones must be there. */
#define STAT_FIGURES(X)                                                              \
    X(EVENTS, "events", 1) X(ALLOCATIONS, "allocations", 1) X(FREES, "frees", 0)     \
    X(BYTES, "bytes_requested", 0) X(PEAK_LIVE, "peak_live_bytes", 1)                \
    X(PEAK_EVENT, "peak_live_event", 0) X(PEAK_TIME, "peak_live_time_ns", 0)         \
    X(PEAK_BLOCKS, "peak_live_blocks", 0) X(LEAKED_BLOCKS, "leaked_blocks", 1)       \
    X(LEAKED_BYTES, "leaked_bytes", 1) X(DURATION, "duration_ns", 0)                 \
    X(THREADS, "threads", 0) X(PROCESSES, "processes", 0)                            \
    X(TEMPORARY, "temporary_allocations", 0) X(CROSS, "cross_thread_frees", 0)       \
    X(DISTINCT, "distinct_sizes", 0)

enum {
#define STAT_ENUM(id, key, req) F_##id,
    STAT_FIGURES(STAT_ENUM)
#undef STAT_ENUM
    F_N
};

static const struct {
    const char *key;
    int required;
} figure[F_N] = {
#define STAT_INFO(id, key, req) {key, req},
    STAT_FIGURES(STAT_INFO)
#undef STAT_INFO
};

struct bucket {
    double lo, count, bytes; /* bytes: size histogram only */
    int open;                /* the last decade: no upper bound */
};

struct hist {
    struct bucket *b;
    int n;
};

struct unit {
    char label[256];    /* in titles and the report: "gcc", "gcc[2267]" */
    char program[128];  /* a process's program (the first word of its command line) */
    char stem[80];
    const char *file, *hash, *error;
    long pid;           /* -1: a whole file */
    int complete;
    double f[F_N];
    double slope_s, r2_s, slope_ev, r2_ev;
    struct hist size, life_ev, life_ns;
    const struct hl_json *top, *leaks;
    int parent;         /* a process: index of its file's unit; a file: -1 */
    int nprocs;         /* a file: its process units */
    int charted, has_time;
    int unread;         /* stat could not open the file: only its error is known */
    char note[256];     /* why a process is not charted */
    char sizes_id[96], life_id[96]; /* charts written, "" when none */
};

struct hl_stats {
    const char *input;
    struct unit *u;
    int n;
};

/* ---------------------------------------------------------------- reading */

int hl_stats_is_stat(const struct hl_json *doc)
{
    if (doc->t == HL_JSON_ARR)
        return 1; /* replay's results are an object; stat prints an array for several */
    return doc->t == HL_JSON_OBJ && !hl_json_get(doc, "results") &&
           (hl_json_get(doc, "size_histogram") ||
            (hl_json_get(doc, "file") && hl_json_get(doc, "error")));
}

/* A number member: NaN when absent (dies if required) or null; dies on another type. */
static double num(const struct hl_json *o, const char *key, int required, const char *file)
{
    const struct hl_json *v = hl_json_get(o, key);
    if (!v) {
        if (required)
            hl_die("%s:%d: no \"%s\" (not `heaplab stat --json` output?)", file, o->line, key);
        return NAN;
    }
    if (v->t == HL_JSON_NULL)
        return NAN;
    if (v->t != HL_JSON_NUM)
        hl_die("%s:%d: \"%s\" should be a number", file, v->line, key);
    double d = strtod(v->s, NULL);
    if (d < 0 && strcmp(key, "slope_bytes_per_s") && strcmp(key, "slope_bytes_per_event") &&
        strcmp(key, "r2") && strcmp(key, "r2_event"))
        hl_die("%s:%d: \"%s\" is negative", file, v->line, key);
    return d;
}

static const char *str(const struct hl_json *o, const char *key, const char *file)
{
    const struct hl_json *v = hl_json_get(o, key);
    if (!v || v->t == HL_JSON_NULL)
        return NULL;
    if (v->t != HL_JSON_STR)
        hl_die("%s:%d: \"%s\" should be a string", file, v->line, key);
    return v->s;
}

static int is_pow(double x, double base)
{
    if (x == 0)
        return 1;
    while (x > 1 && fmod(x, base) == 0)
        x /= base;
    return x == 1;
}

/* A histogram array: objects with lo (or lo_ns) and count, ascending, and for sizes the
 * bytes.  The empty buckets stat leaves out are put back between the first and the last
 * (base 2 or 10: bucket 0 is [0, base), then powers of base), when the bounds are. */
static void read_hist(struct hist *h, const struct hl_json *o, const char *key,
                      const char *lo_key, int with_bytes, double base, const char *file)
{
    const struct hl_json *a = hl_json_get(o, key);
    memset(h, 0, sizeof *h);
    if (!a)
        hl_die("%s:%d: no \"%s\" (not `heaplab stat --json` output?)", file, o->line, key);
    if (a->t != HL_JSON_ARR)
        hl_die("%s:%d: \"%s\" should be an array of buckets", file, a->line, key);
    if (a->n > MAX_BUCKETS)
        hl_die("%s:%d: \"%s\" has %d buckets, more than a histogram of stat can", file,
               a->line, key, a->n);
    struct bucket in[MAX_BUCKETS];
    int regular = 1;
    for (int i = 0; i < a->n; i++) {
        const struct hl_json *b = a->items[i];
        if (b->t != HL_JSON_OBJ)
            hl_die("%s:%d: a bucket of \"%s\" should be an object", file, b->line, key);
        in[i].lo = num(b, lo_key, 1, file);
        in[i].count = num(b, "count", 1, file);
        in[i].bytes = with_bytes ? num(b, "bytes", 1, file) : NAN;
        in[i].open = 0;
        if (isnan(in[i].lo) || isnan(in[i].count))
            hl_die("%s:%d: a bucket of \"%s\" without a number for %s or count", file,
                   b->line, key, lo_key);
        const struct hl_json *hi = hl_json_get(b, base == 10 ? "hi_ns" : "hi");
        in[i].open = hi && hi->t == HL_JSON_NULL;
        if (i > 0 && !(in[i].lo > in[i - 1].lo))
            hl_die("%s:%d: the buckets of \"%s\" are not in ascending order", file, b->line,
                   key);
        regular &= is_pow(in[i].lo, base);
    }
    if (a->n == 0)
        return;
    int cap = regular ? MAX_BUCKETS : a->n;
    h->b = calloc((size_t)cap, sizeof *h->b);
    if (!h->b)
        hl_die("out of memory");
    if (!regular) { /* not stat's buckets, but sorted: draw them as they are */
        memcpy(h->b, in, (size_t)a->n * sizeof *in);
        h->n = a->n;
        return;
    }
    int k = 0;
    /* bucket 0 is [0, 1) for sizes and events, [0, 10) ns for time */
    double first = base == 2 ? 1 : base;
    for (double lo = in[0].lo; h->n < cap; lo = lo == 0 ? first : lo * base) {
        struct bucket *b = &h->b[h->n++];
        b->lo = lo;
        b->count = b->bytes = NAN;
        if (k < a->n && in[k].lo == lo)
            *b = in[k++];
        if (k == a->n)
            break;
    }
    if (k < a->n)
        hl_die("%s:%d: the buckets of \"%s\" span more than a histogram of stat can", file,
               a->line, key);
}

static void read_unit(struct unit *u, const struct hl_json *o, const char *file)
{
    for (int i = 0; i < F_N; i++)
        u->f[i] = num(o, figure[i].key, figure[i].required, file);
    const struct hl_json *trend = hl_json_get(o, "leak_trend");
    if (trend && trend->t != HL_JSON_OBJ && trend->t != HL_JSON_NULL)
        hl_die("%s:%d: \"leak_trend\" should be an object", file, trend->line);
    u->slope_s = trend ? num(trend, "slope_bytes_per_s", 0, file) : NAN;
    u->r2_s = trend ? num(trend, "r2", 0, file) : NAN;
    u->slope_ev = trend ? num(trend, "slope_bytes_per_event", 0, file) : NAN;
    u->r2_ev = trend ? num(trend, "r2_event", 0, file) : NAN;
    read_hist(&u->size, o, "size_histogram", "lo", 1, 2, file);
    read_hist(&u->life_ev, o, "lifetime_events_histogram", "lo", 0, 2, file);
    read_hist(&u->life_ns, o, "lifetime_ns_histogram", "lo_ns", 0, 10, file);
    u->top = hl_json_get(o, "top_sizes");
    u->leaks = hl_json_get(o, "leaks_by_size");
    /* The tables of the report read size/count/blocks/bytes: check them now. */
    const struct hl_json *tabs[2] = {u->top, u->leaks};
    for (int t = 0; t < 2; t++) {
        if (!tabs[t] || tabs[t]->t == HL_JSON_NULL) {
            tabs[t] = NULL;
            continue;
        }
        if (tabs[t]->t != HL_JSON_ARR)
            hl_die("%s:%d: \"%s\" should be an array", file, tabs[t]->line,
                   t ? "leaks_by_size" : "top_sizes");
        for (int i = 0; i < tabs[t]->n; i++) {
            const struct hl_json *e = tabs[t]->items[i];
            if (e->t != HL_JSON_OBJ)
                hl_die("%s:%d: an entry of \"%s\" should be an object", file, e->line,
                       t ? "leaks_by_size" : "top_sizes");
            num(e, "size", 1, file);
            num(e, t ? "blocks" : "count", 1, file);
            if (t)
                num(e, "bytes", 1, file);
        }
    }
    u->top = tabs[0];
    u->leaks = tabs[1];
    /* Lifetimes in time need timestamps: a trace written without them (all 0) has every
     * block in the first bucket. */
    for (int i = 0; i < u->life_ns.n; i++)
        if (u->life_ns.b[i].lo > 0 && u->life_ns.b[i].count > 0)
            u->has_time = 1;
}

static struct unit *new_unit(struct hl_stats *s)
{
    struct unit *u = realloc(s->u, (size_t)(s->n + 1) * sizeof *u);
    if (!u)
        hl_die("out of memory");
    s->u = u;
    u = &s->u[s->n++];
    memset(u, 0, sizeof *u);
    u->parent = -1;
    u->pid = -1;
    u->complete = 1;
    return u;
}

/* A unique chart stem for a label. */
static void set_stem(struct hl_stats *s, struct unit *u, const char *label)
{
    char stem[64];
    hl_file_stem(stem, sizeof stem, label);
    snprintf(u->stem, sizeof u->stem, "%s", stem);
    for (int k = 2;; k++) {
        int clash = 0;
        for (int i = 0; i < s->n; i++)
            if (&s->u[i] != u && strcmp(s->u[i].stem, u->stem) == 0)
                clash = 1;
        if (!clash)
            break;
        snprintf(u->stem, sizeof u->stem, "%s-%d", stem, k);
    }
}

static void read_file(struct hl_stats *s, const struct hl_json *o, const char *input)
{
    if (o->t != HL_JSON_OBJ)
        hl_die("%s:%d: expected a `heaplab stat --json` object for a trace", input, o->line);
    struct unit *u = new_unit(s);
    int fi = s->n - 1;
    u->file = str(o, "file", input);
    if (!u->file)
        hl_die("%s:%d: a trace without \"file\" (not `heaplab stat --json` output?)", input,
               o->line);
    u->hash = str(o, "hash", input);
    u->error = str(o, "error", input);
    const struct hl_json *complete = hl_json_get(o, "complete");
    u->complete = !complete || complete->t != HL_JSON_BOOL || strcmp(complete->s, "0") != 0;
    hl_trace_label(u->label, sizeof u->label, u->file);
    set_stem(s, u, u->label);
    if (u->error && !hl_json_get(o, "events")) {
        u->complete = 0; /* stat could not open it: only the error to report */
        u->unread = 1;
        return;
    }
    read_unit(u, o, input);
    const struct hl_json *pl = hl_json_get(o, "process_list");
    if (!pl || pl->t == HL_JSON_NULL)
        return;
    if (pl->t != HL_JSON_ARR)
        hl_die("%s:%d: \"process_list\" should be an array", input, pl->line);
    if (pl->n < 2)
        return; /* the file's charts are the process's */
    for (int i = 0; i < pl->n; i++) {
        const struct hl_json *p = pl->items[i];
        if (p->t != HL_JSON_OBJ)
            hl_die("%s:%d: a process should be an object", input, p->line);
        struct unit *pu = new_unit(s);
        u = &s->u[fi]; /* new_unit moved the array */
        u->nprocs++;
        pu->parent = fi;
        pu->file = u->file;
        pu->complete = u->complete;
        read_unit(pu, p, input);
        double pid = num(p, "pid", 1, input);
        pu->pid = (long)pid;
        const char *cmd = str(p, "cmdline", input);
        if (!cmd || !*cmd)
            cmd = str(p, "exe", input);
        if (cmd) {
            size_t w = strcspn(cmd, " ");
            const char *base = cmd;
            for (const char *q = cmd; q < cmd + w; q++)
                if (*q == '/')
                    base = q + 1;
            snprintf(pu->program, sizeof pu->program, "%.*s", (int)(cmd + w - base), base);
        }
        /* exec keeps the pid: later images of one process are pid.2, pid.3, ... as
         * replay names them */
        int image = 1;
        for (int k = fi + 1; k < s->n - 1; k++)
            image += s->u[k].pid == pu->pid;
        char stem[300];
        if (image > 1) {
            snprintf(pu->label, sizeof pu->label, "%.200s[%ld.%d]", u->label, pu->pid, image);
            snprintf(stem, sizeof stem, "%s-%ld.%d", u->label, pu->pid, image);
        } else {
            snprintf(pu->label, sizeof pu->label, "%.200s[%ld]", u->label, pu->pid);
            snprintf(stem, sizeof stem, "%s-%ld", u->label, pu->pid);
        }
        set_stem(s, pu, stem);
    }
}

/* Which units get charts: every file with allocations; the processes of a file with
 * several that are big enough to have a shape (MIN_ALLOCS allocations and MIN_SHARE of
 * the file's), the MAX_PROCS largest at most, and none when a single one is nearly the
 * whole file (its charts would be the file's again). */
static void choose(struct hl_stats *s)
{
    for (int i = 0; i < s->n; i++) {
        struct unit *u = &s->u[i];
        if (u->parent < 0) {
            u->charted = u->f[F_ALLOCATIONS] > 0 && u->size.n > 0;
            continue;
        }
        double all = s->u[u->parent].f[F_ALLOCATIONS];
        if (u->f[F_ALLOCATIONS] >= MIN_ALLOCS && u->f[F_ALLOCATIONS] >= MIN_SHARE * all &&
            u->size.n > 0)
            u->charted = 1;
        else if (u->f[F_ALLOCATIONS] >= MIN_ALLOCS && u->size.n > 0)
            snprintf(u->note, sizeof u->note, "under %.0f%% of the file's allocations",
                     MIN_SHARE * 100);
        else
            snprintf(u->note, sizeof u->note, "too few allocations to chart");
    }
    for (int i = 0; i < s->n; i++) {
        if (s->u[i].parent >= 0)
            continue;
        int nbig = 0, big = -1;
        for (int k = 0; k < s->n; k++)
            if (s->u[k].parent == i && s->u[k].charted) {
                nbig++;
                big = k;
            }
        /* Keep the MAX_PROCS largest: drop the smallest until that many are left. */
        for (; nbig > MAX_PROCS; nbig--) {
            int least = -1;
            for (int k = 0; k < s->n; k++)
                if (s->u[k].parent == i && s->u[k].charted &&
                    (least < 0 || s->u[k].f[F_ALLOCATIONS] < s->u[least].f[F_ALLOCATIONS]))
                    least = k;
            s->u[least].charted = 0;
            snprintf(s->u[least].note, sizeof s->u[least].note,
                     "not among the %d largest processes", MAX_PROCS);
        }
        double all = s->u[i].f[F_ALLOCATIONS];
        if (nbig == 1 && s->u[big].f[F_ALLOCATIONS] >= SAME_SHARE * all) {
            s->u[big].charted = 0;
            snprintf(s->u[big].note, sizeof s->u[big].note,
                     "%.0f%% of the file's allocations: the file's charts show it",
                     floor(100 * s->u[big].f[F_ALLOCATIONS] / all));
        }
    }
}

struct hl_stats *hl_stats_read(const struct hl_json *doc, const char *input)
{
    struct hl_stats *s = calloc(1, sizeof *s);
    if (!s)
        hl_die("out of memory");
    s->input = input;
    if (doc->t == HL_JSON_ARR) {
        if (doc->n == 0)
            hl_die("%s:%d: an empty array: no traces", input, doc->line);
        for (int i = 0; i < doc->n; i++)
            read_file(s, doc->items[i], input);
    } else {
        read_file(s, doc, input);
    }
    choose(s);
    return s;
}

void hl_stats_free(struct hl_stats *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++) {
        free(s->u[i].size.b);
        free(s->u[i].life_ev.b);
        free(s->u[i].life_ns.b);
    }
    free(s->u);
    free(s);
}

/* ---------------------------------------------------------------- charts */

/* A power-of-two bucket's lower bound, short: 512, 1K, 64M (K = 1024). */
static void pow2_label(char *out, size_t n, double lo)
{
    static const char *const unit[] = {"", "K", "M", "G", "T", "P", "E"};
    int u = 0;
    while (lo >= 1024 && u < 6) {
        lo /= 1024;
        u++;
    }
    snprintf(out, n, "%g%s", lo, unit[u]);
}

/* A decade bucket of nanoseconds: "<10 ns", "100 ns", "1 µs", "10 s", "10000 s+". */
static void decade_label(char *out, size_t n, const struct bucket *b)
{
    static const char *const unit[] = {"ns", "µs", "ms", "s"};
    double lo = b->lo;
    int u = 0;
    if (lo == 0) {
        snprintf(out, n, "<10 ns");
        return;
    }
    while (lo >= 1000 && u < 3) {
        lo /= 1000;
        u++;
    }
    snprintf(out, n, "%g %s%s", lo, unit[u], b->open ? "+" : "");
}

static void count_label(char *out, size_t n, double v)
{
    if (isnan(v)) {
        out[0] = 0;
        return;
    }
    hl_fmt_count(out, n, v);
    char *sp = strchr(out, ' '); /* "1.62 k" -> "1.62k": narrow bars */
    if (sp)
        memmove(sp, sp + 1, strlen(sp));
}

/* A y axis for values (NaN = no bar): log once they span more than two decades.  room:
 * leave space above the tallest bar for its value label. */
struct axis {
    int log;
    double min, max;
    const char *format;
    char tics[512]; /* explicit tics ("" for gnuplot's own) */
};

static struct axis make_axis(const double *v, int n, int room)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > 0) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
    struct axis a = {0, 0, 1, "%g", ""};
    if (!(hi > 0))
        return a;
    if (hi / lo > 100) {
        a.log = 1;
        a.min = pow(10, floor(log10(lo)));
        if (lo < a.min * 1.5)
            a.min /= 2; /* a bar at the bottom decade must still show */
        a.max = pow(10, ceil(log10(hi * 1.01)));
        a.format = "%.0s%c";
        /* The tallest bar (and its label) clear of the frame, without a whole empty
         * decade above it. */
        if (a.max < hi * (room ? 3 : 1.6))
            a.max = hi * (room ? 3 : 1.6);
    } else {
        a.max = hi * (room ? 1.15 : 1.05);
        a.format = hi >= 10000 ? "%.0s%c" : "%g";
        if (hi < 6)
            snprintf(a.tics, sizeof a.tics, "1"); /* counts: no 0.2 blocks */
    }
    return a;
}

/* A log axis of bytes (values in bytes): tics at powers of two, every 2^step so that
 * there are at most maxtics of them, labelled in binary units ("32 KiB"), so that they match
 * the buckets below (decimal decades of bytes would read as nonsense: "100m MiB"). */
static void bytes_log_tics(struct axis *a, const double *v, int n, int room, int maxtics)
{
    double lo = INFINITY, hi = 0;
    for (int i = 0; i < n; i++)
        if (v[i] > 0) {
            lo = v[i] < lo ? v[i] : lo;
            hi = v[i] > hi ? v[i] : hi;
        }
    int e0 = (int)floor(log2(lo)), e1 = (int)ceil(log2(hi * 1.01));
    if (lo < ldexp(1, e0) * 1.5)
        e0--;
    if (ldexp(1, e1) < hi * 1.5)
        e1++; /* the tallest bar does not touch the frame */
    if (room)
        e1 += 2; /* nor its value label */
    int step = 1;
    while ((e1 - e0) / step > maxtics)
        step++;
    e0 = e0 / step * step - (e0 < 0 && e0 % step ? step : 0);
    e1 = e0 + (e1 - e0 + step - 1) / step * step; /* the frame ends on a labelled tic */
    a->min = ldexp(1, e0);
    a->max = ldexp(1, e1);
    size_t k = (size_t)snprintf(a->tics, sizeof a->tics, "(");
    for (int e = e0; e <= e1 && k < sizeof a->tics - 40; e += step) {
        char b[32];
        hl_fmt_bytes(b, sizeof b, ldexp(1, e));
        /* "2.00 MiB" -> "2 MiB": powers of two have no fraction in binary units */
        char *dot = strchr(b, '.'), *sp = strchr(b, ' ');
        if (dot && sp && dot < sp)
            memmove(dot, sp, strlen(sp) + 1);
        k += (size_t)snprintf(a->tics + k, sizeof a->tics - k, "%s\"%s\" %.17g",
                              e == e0 ? "" : ", ", b, ldexp(1, e));
    }
    snprintf(a->tics + k, sizeof a->tics - k, ")");
}

static void set_axis(FILE *f, const char *prefix, const struct axis *a, const char *ylabel)
{
    fprintf(f, "%s_log = %d\n%s_ymin = %.17g\n%s_ymax = %.17g\n", prefix, a->log, prefix,
            a->min, prefix, a->max);
    char name[64], label[256];
    snprintf(name, sizeof name, "%s_format", prefix);
    hl_gp_set(f, name, a->format);
    snprintf(name, sizeof name, "%s_tics", prefix);
    hl_gp_set(f, name, a->tics);
    snprintf(name, sizeof name, "%s_ylabel", prefix);
    snprintf(label, sizeof label, "%s%s", ylabel, a->log ? " (log scale)" : "");
    hl_gp_set(f, name, label);
}

/* Labels of n buckets fit flat under a plot width, or are rotated. */
static int rotation(long plot_px, int n, size_t maxlen)
{
    return n > 0 && (double)maxlen * 7 + 6 > (double)plot_px / n ? 45 : 0;
}

/* Value labels above bars: only when every bar is wide enough for its text. */
static int labels_fit(long plot_px, int n, size_t maxlen)
{
    return n > 0 && (double)maxlen * 6 + 4 <= (double)plot_px / n;
}

/* A gnuplot data-file string: double quotes, none inside. */
static void dat_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++)
        fputc(*s == '"' ? '\'' : *s, f);
    fputc('"', f);
}

static void sizes_chart(struct hl_charts *out, struct unit *u, const struct hl_chart_opts *o)
{
    struct hl_chart *c = hl_chart_new(out);
    snprintf(c->id, sizeof c->id, "sizes-%s", u->stem);
    snprintf(c->title, sizeof c->title, "Allocation sizes: %.150s%s%.60s%s", u->label,
             u->program[0] ? " (" : "", u->program, u->program[0] ? ")" : "");
    int n = u->size.n;
    double *blocks = malloc((size_t)(n ? n : 1) * sizeof *blocks);
    double *bytes = malloc((size_t)(n ? n : 1) * sizeof *bytes);
    if (!blocks || !bytes)
        hl_die("out of memory");
    double maxb = 0;
    size_t value_len = 1; /* the longest value label, to know whether they fit */
    for (int i = 0; i < n; i++) {
        char v[64];
        blocks[i] = u->size.b[i].count;
        bytes[i] = u->size.b[i].bytes;
        maxb = bytes[i] > maxb ? bytes[i] : maxb;
        count_label(v, sizeof v, blocks[i]);
        value_len = strlen(v) > value_len ? strlen(v) : value_len;
        if (!isnan(bytes[i]))
            hl_fmt_bytes(v, sizeof v, bytes[i]);
        value_len = strlen(v) > value_len ? strlen(v) : value_len;
    }
    /* A linear bytes axis in B below 10 KiB (hand-written traces ask for a few bytes),
     * else in KiB/MiB/GiB; a log axis stays in bytes with binary tics. */
    const char *unit = "B";
    double div = 1;
    long width = o->width ? o->width : 1000, height = o->height ? o->height : 700;
    long plot_px = width - 120;
    int labels = labels_fit(plot_px, n, value_len);
    struct axis ay = make_axis(bytes, n, labels);
    if (ay.log)
        bytes_log_tics(&ay, bytes, n, labels, (int)((height - 200) / 2 / 30) < 3 ? 3
                                              : (int)((height - 200) / 2 / 30) > 8 ? 8
                                              : (int)((height - 200) / 2 / 30));
    else if (maxb >= 10240)
        hl_byte_unit(maxb, &unit, &div);
    for (int i = 0; i < n; i++)
        bytes[i] /= div;
    ay.max /= div;
    size_t maxlen = 1;
    char data[4096], pre[4096], lab[64], v1[64], v2[64];
    snprintf(data, sizeof data, "%s/%s.dat", o->datadir, c->id);
    FILE *f = hl_plot_open(data);
    fprintf(f, "# %s: bucket (lower bound, bytes), blocks, bytes requested (%s), their "
               "labels\n", c->title, unit);
    for (int i = 0; i < n; i++) {
        pow2_label(lab, sizeof lab, u->size.b[i].lo);
        count_label(v1, sizeof v1, blocks[i]);
        if (isnan(bytes[i]))
            v2[0] = 0;
        else
            hl_fmt_bytes(v2, sizeof v2, u->size.b[i].bytes);
        maxlen = strlen(lab) > maxlen ? strlen(lab) : maxlen;
        dat_str(f, lab);
        if (isnan(blocks[i]) || blocks[i] == 0)
            fprintf(f, " NaN NaN");
        else if (!(bytes[i] > 0)) /* malloc(0): no bar, even on a log axis */
            fprintf(f, " %.17g NaN", blocks[i]);
        else
            fprintf(f, " %.17g %.6g", blocks[i], bytes[i]);
        fputc(' ', f);
        dat_str(f, v1);
        fputc(' ', f);
        dat_str(f, v2);
        fputc('\n', f);
    }
    hl_plot_close(f, data);
    f = hl_gp_preamble(o, c->id, pre, sizeof pre, width, height);
    hl_gp_set(f, "datafile", data);
    hl_gp_set(f, "chart_title", c->title);
    hl_gp_set(f, "xlabel", "requested size (bytes, power-of-two buckets; K = 1024, M = 1024²)");
    fprintf(f, "nbuckets = %d\n", n);
    struct axis ab = make_axis(blocks, n, labels);
    set_axis(f, "blocks", &ab, "blocks");
    char ylabel[64];
    if (ay.log)
        snprintf(ylabel, sizeof ylabel, "bytes requested");
    else
        snprintf(ylabel, sizeof ylabel, "bytes requested (%s)", unit);
    set_axis(f, "bytes", &ay, ylabel);
    fprintf(f, "value_labels = %d\nxrotate = %d\n", labels, rotation(plot_px, n, maxlen));
    hl_plot_close(f, pre);
    hl_gp_run(o, "stat-sizes.gp", pre, c->id);
    c->drawn = 1;
    snprintf(u->sizes_id, sizeof u->sizes_id, "%s", c->id);
    free(blocks);
    free(bytes);
}

/* One panel of the lifetime chart: the buckets, then "never freed" when there are
 * leaks.  Returns the number of rows; values into v for the axis. */
static int life_panel(FILE *f, const struct hist *h, int decades, double leaked, double *v,
                      size_t *maxlen, size_t *maxval)
{
    int rows = 0;
    char lab[64], val[64];
    for (int i = 0; i < h->n; i++) {
        if (decades)
            decade_label(lab, sizeof lab, &h->b[i]);
        else
            pow2_label(lab, sizeof lab, h->b[i].lo);
        double x = h->b[i].count > 0 ? h->b[i].count : NAN;
        count_label(val, sizeof val, x);
        *maxlen = strlen(lab) > *maxlen ? strlen(lab) : *maxlen;
        *maxval = strlen(val) > *maxval ? strlen(val) : *maxval;
        dat_str(f, lab);
        fprintf(f, isnan(x) ? " NaN 0 " : " %.17g 0 ", x);
        dat_str(f, val);
        fputc('\n', f);
        v[rows++] = x;
    }
    if (leaked > 0) {
        *maxlen = *maxlen > 11 ? *maxlen : 11; /* strlen("never freed") */
        count_label(val, sizeof val, leaked);
        fprintf(f, "\"never freed\" %.17g 1 ", leaked);
        dat_str(f, val);
        fputc('\n', f);
        *maxval = strlen(val) > *maxval ? strlen(val) : *maxval;
        v[rows++] = leaked;
    }
    return rows;
}

static void lifetimes_chart(struct hl_charts *out, struct unit *u,
                            const struct hl_chart_opts *o)
{
    struct hl_chart *c = hl_chart_new(out);
    snprintf(c->id, sizeof c->id, "lifetimes-%s", u->stem);
    snprintf(c->title, sizeof c->title, "Block lifetimes: %.150s%s%.60s%s", u->label,
             u->program[0] ? " (" : "", u->program, u->program[0] ? ")" : "");
    double leaked = u->f[F_LEAKED_BLOCKS];
    long width = o->width ? o->width : (u->has_time ? 1200 : 800);
    long height = o->height ? o->height : 500;
    long plot_px = u->has_time ? (width - 190) / 2 : width - 100;
    double vev[MAX_BUCKETS + 1], vns[MAX_BUCKETS + 1];
    size_t len_ev = 1, len_ns = 1, maxval = 1;
    char data[4096], pre[4096];
    snprintf(data, sizeof data, "%s/%s.dat", o->datadir, c->id);
    FILE *f = hl_plot_open(data);
    fprintf(f, "# %s, in events: bucket (lower bound), blocks, never freed?, label\n",
            c->title);
    int nev = life_panel(f, &u->life_ev, 0, leaked, vev, &len_ev, &maxval);
    fprintf(f, "\n\n# in time (decades of nanoseconds)\n");
    int nns = 0;
    if (u->has_time)
        nns = life_panel(f, &u->life_ns, 1, leaked, vns, &len_ns, &maxval);
    else
        fprintf(f, "\"none\" NaN 0 \"\"\n"); /* the index must exist */
    hl_plot_close(f, data);
    f = hl_gp_preamble(o, c->id, pre, sizeof pre, width, height);
    hl_gp_set(f, "datafile", data);
    hl_gp_set(f, "chart_title", c->title);
    fprintf(f, "has_time = %d\nnev = %d\nnns = %d\n", u->has_time, nev, nns ? nns : 1);
    int labels = labels_fit(plot_px, nev > nns ? nev : nns, maxval);
    struct axis aev = make_axis(vev, nev, labels), ans = make_axis(vns, nns, labels);
    if (u->has_time) { /* one y range for both panels: the same blocks, two clocks */
        aev.log |= ans.log;
        ans.log = aev.log;
        struct axis both = aev.max >= ans.max ? aev : ans;
        double lo = fmin(aev.min > 0 ? aev.min : INFINITY, ans.min > 0 ? ans.min : INFINITY);
        aev = ans = both;
        if (both.log) {
            aev.min = ans.min = isfinite(lo) ? lo : 1;
            aev.format = ans.format = "%.0s%c";
        } else {
            aev.min = ans.min = 0;
        }
    }
    set_axis(f, "ev", &aev, "blocks");
    set_axis(f, "ns", &ans, "blocks");
    hl_gp_set(f, "ev_xlabel", u->has_time
                                  ? "events from allocation to free (power-of-two buckets)"
                                  : "lifetime: events from allocation to free "
                                    "(power-of-two buckets)");
    hl_gp_set(f, "ns_xlabel", "time from allocation to free (decades)");
    fprintf(f, "value_labels = %d\nev_xrotate = %d\nns_xrotate = %d\n", labels,
            rotation(plot_px, nev, len_ev), rotation(plot_px, nns, len_ns));
    hl_plot_close(f, pre);
    hl_gp_run(o, "stat-lifetimes.gp", pre, c->id);
    c->drawn = 1;
    snprintf(u->life_id, sizeof u->life_id, "%s", c->id);
}

/* ---------------------------------------------------------------- report */

static void fmt_int(char *out, size_t n, double v)
{
    if (isnan(v)) {
        snprintf(out, n, "-");
        return;
    }
    /* 1234567 -> 1,234,567: exact counts read better with separators */
    char digits[32];
    snprintf(digits, sizeof digits, "%.0f", v);
    size_t len = strlen(digits), k = 0;
    for (size_t i = 0; i < len && k + 2 < n; i++) {
        if (i && (len - i) % 3 == 0)
            out[k++] = ',';
        out[k++] = digits[i];
    }
    out[k] = 0;
}

static void fmt_bytes(char *out, size_t n, double v)
{
    if (isnan(v))
        snprintf(out, n, "-");
    else
        hl_fmt_bytes(out, n, v);
}

/* The leak trend: "+1.2 MiB/s (R² 0.93)", per event when no time passed. */
static void fmt_trend(char *out, size_t n, const struct unit *u)
{
    char b[32];
    if (!isnan(u->slope_s)) {
        hl_fmt_bytes(b, sizeof b, fabs(u->slope_s));
        snprintf(out, n, "%s%s/s (R² %.2f)", u->slope_s < 0 ? "-" : "+", b,
                 isnan(u->r2_s) ? 0.0 : u->r2_s);
    } else if (!isnan(u->slope_ev)) {
        snprintf(out, n, "%+.3g B/event (R² %.2f)", u->slope_ev, isnan(u->r2_ev) ? 0.0 : u->r2_ev);
    } else if (u->nprocs) {
        snprintf(out, n, "per process: see below");
    } else {
        snprintf(out, n, "-");
    }
}

/* A Markdown table cell: '|' and newlines would break the table; empty writes `empty`. */
void hl_md_cell(FILE *f, const char *s, const char *empty)
{
    if (!s || !*s) {
        fputs(empty, f);
        return;
    }
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

static void embed(FILE *f, const struct hl_chart_opts *o, const char *id, const char *alt)
{
    fprintf(f, "![%s](%s.%s)\n\n", alt, id, o->png ? "png" : "svg");
    if (o->png && o->svg)
        fprintf(f, "[%s.svg](%s.svg) (vector)\n\n", id, id);
}

static void summary_row(FILE *f, const struct unit *u)
{
    char ev[32], al[32], by[32], pk[32], pt[64], lb[32], ly[32], tr[64];
    fmt_int(ev, sizeof ev, u->f[F_EVENTS]);
    fmt_int(al, sizeof al, u->f[F_ALLOCATIONS]);
    fmt_bytes(by, sizeof by, u->f[F_BYTES]);
    fmt_bytes(pk, sizeof pk, u->f[F_PEAK_LIVE]);
    fmt_int(lb, sizeof lb, u->f[F_LEAKED_BLOCKS]);
    fmt_bytes(ly, sizeof ly, u->f[F_LEAKED_BYTES]);
    fmt_trend(tr, sizeof tr, u);
    pt[0] = 0;
    if (u->has_time && u->f[F_PEAK_TIME] > 0) {
        char t[32];
        hl_fmt_ns(t, sizeof t, u->f[F_PEAK_TIME]);
        snprintf(pt, sizeof pt, " at %s", t);
    } else if (!isnan(u->f[F_PEAK_EVENT])) {
        char e[32];
        fmt_int(e, sizeof e, u->f[F_PEAK_EVENT]);
        snprintf(pt, sizeof pt, " at event %s", e);
    }
    fprintf(f, " %s | %s | %s | %s%s | %s block%s, %s | %s |\n", ev, al, by, pk, pt, lb,
            u->f[F_LEAKED_BLOCKS] == 1 ? "" : "s", ly, tr);
}

static void size_tables(FILE *f, const struct unit *u)
{
    if (u->top && u->top->n) {
        char nd[32];
        fmt_int(nd, sizeof nd, u->f[F_DISTINCT]);
        fprintf(f, "Most frequent exact sizes (%s distinct sizes):\n\n"
                   "| size (bytes) | blocks | share of the allocations |\n|---:|---:|---:|\n",
                nd);
        int n = u->top->n < TOP_SIZES ? u->top->n : TOP_SIZES;
        for (int i = 0; i < n; i++) {
            const struct hl_json *e = u->top->items[i];
            double size = strtod(hl_json_get(e, "size")->s, NULL);
            double cnt = strtod(hl_json_get(e, "count")->s, NULL);
            char a[32], b[32];
            fmt_int(a, sizeof a, size);
            fmt_int(b, sizeof b, cnt);
            fprintf(f, "| %s | %s | %.1f%% |\n", a, b,
                    u->f[F_ALLOCATIONS] > 0 ? 100 * cnt / u->f[F_ALLOCATIONS] : 0.0);
        }
        fputc('\n', f);
    }
}

static void leak_table(FILE *f, const struct unit *u)
{
    if (!(u->f[F_LEAKED_BLOCKS] > 0)) {
        fprintf(f, "Every block was freed.\n\n");
        return;
    }
    char lb[32], ly[32];
    fmt_int(lb, sizeof lb, u->f[F_LEAKED_BLOCKS]);
    fmt_bytes(ly, sizeof ly, u->f[F_LEAKED_BYTES]);
    fprintf(f, "Never freed: %s blocks, %s.", lb, ly);
    if (!u->leaks || !u->leaks->n) {
        fputs("\n\n", f);
        return;
    }
    fprintf(f, " The largest by size:\n\n| size (bytes) | blocks | bytes |\n|---:|---:|---:|\n");
    int n = u->leaks->n < TOP_LEAKS ? u->leaks->n : TOP_LEAKS;
    for (int i = 0; i < n; i++) {
        const struct hl_json *e = u->leaks->items[i];
        char a[32], b[32], c[32];
        fmt_int(a, sizeof a, strtod(hl_json_get(e, "size")->s, NULL));
        fmt_int(b, sizeof b, strtod(hl_json_get(e, "blocks")->s, NULL));
        fmt_bytes(c, sizeof c, strtod(hl_json_get(e, "bytes")->s, NULL));
        fprintf(f, "| %s | %s | %s |\n", a, b, c);
    }
    fputc('\n', f);
}

static void unit_charts(FILE *f, const struct hl_chart_opts *o, const struct unit *u,
                        const char *h)
{
    fprintf(f, "%s Allocation sizes\n\n", h);
    embed(f, o, u->sizes_id, "allocation sizes");
    size_tables(f, u);
    fprintf(f, "%s Lifetimes\n\n", h);
    if (u->life_id[0])
        embed(f, o, u->life_id, "block lifetimes");
    else
        fprintf(f, "No block was freed and none is left: no lifetimes to draw.\n\n");
    if (!u->has_time)
        fprintf(f, "No lifetimes in time: the trace has no timestamps.\n\n");
    leak_table(f, u);
}

static void write_report(const struct hl_stats *s, const struct hl_chart_opts *o,
                         const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        hl_die("%s: %s", path, strerror(errno));
    const char *base = strrchr(s->input, '/');
    base = base ? base + 1 : s->input;
    int nfiles = 0;
    for (int i = 0; i < s->n; i++)
        nfiles += s->u[i].parent < 0;
    fprintf(f, "# Trace statistics\n\nMade by `heaplab plot` from `%s` (`heaplab stat "
               "--json`): %d trace%s.  Sizes are what the program asked for; a lifetime "
               "runs from a block's allocation to its free (a free or a realloc that "
               "moves it); blocks never freed are the leaks.  The leak trend is a "
               "least-squares line through live bytes over time: a positive slope with "
               "R² near 1 is memory growing steadily.\n\n",
            base, nfiles, nfiles == 1 ? "" : "s");
    fprintf(f, "## Summary\n\n| trace | events | allocations | bytes requested | peak live "
               "bytes | never freed | leak trend |\n|---|---:|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < s->n; i++) {
        const struct unit *u = &s->u[i];
        if (u->parent >= 0)
            continue;
        fputs("| ", f);
        hl_md_cell(f, u->label, "");
        fputs(" |", f);
        if (u->unread)
            fputs(" - | - | - | - | - | - |\n", f);
        else
            summary_row(f, u);
    }
    fputc('\n', f);

    for (int i = 0; i < s->n; i++) {
        const struct unit *u = &s->u[i];
        if (u->parent >= 0)
            continue;
        fprintf(f, "## %s\n\n`", u->label);
        hl_md_cell(f, u->file, "");
        fputc('`', f);
        if (u->hash && *u->hash)
            fprintf(f, " (hash %s)", u->hash);
        char d[32];
        if (u->f[F_DURATION] > 0)
            hl_fmt_ns(d, sizeof d, u->f[F_DURATION]);
        else
            snprintf(d, sizeof d, "no timestamps");
        if (!u->unread)
            fprintf(f, ": %.0f process%s, %.0f thread%s, %s.", u->f[F_PROCESSES],
                    u->f[F_PROCESSES] == 1 ? "" : "es", u->f[F_THREADS],
                    u->f[F_THREADS] == 1 ? "" : "s", d);
        fputs("\n\n", f);
        if (u->error) {
            fprintf(f, "**%s: ", u->complete ? "Note" : "Damaged");
            hl_md_cell(f, u->error, "");
            fprintf(f, "**%s\n\n", u->unread ? ""
                                   : " (the figures cover what was read before it)");
        }
        if (u->unread)
            continue;
        char ev[32], al[32], fr[32], tmp[32], cr[32], pk[32], pb[32], tr[64];
        fmt_int(ev, sizeof ev, u->f[F_EVENTS]);
        fmt_int(al, sizeof al, u->f[F_ALLOCATIONS]);
        fmt_int(fr, sizeof fr, u->f[F_FREES]);
        fmt_int(tmp, sizeof tmp, u->f[F_TEMPORARY]);
        fmt_int(cr, sizeof cr, u->f[F_CROSS]);
        fmt_bytes(pk, sizeof pk, u->f[F_PEAK_LIVE]);
        fmt_int(pb, sizeof pb, u->f[F_PEAK_BLOCKS]);
        fmt_trend(tr, sizeof tr, u);
        fprintf(f, "- events: %s; allocations: %s; frees: %s\n", ev, al, fr);
        fprintf(f, "- peak live bytes: %s (%s blocks)\n", pk, pb);
        fprintf(f, "- temporary allocations (freed before the thread's next allocation): %s; "
                   "cross-thread frees: %s\n", tmp, cr);
        fprintf(f, "- leak trend: %s\n\n", tr);
        if (!u->charted) {
            fprintf(f, "No allocations, so no charts.\n\n");
            continue;
        }
        unit_charts(f, o, u, "###");
        if (!u->nprocs)
            continue;
        fprintf(f, "### Processes\n\n| process | program | events | allocations | bytes "
                   "requested | peak live bytes | never freed | leak trend | charts |\n"
                   "|---|---|---:|---:|---:|---:|---:|---:|---|\n");
        /* The TABLE_PROCS largest processes (by allocations, charted ones first), in
         * file order; a fork-and-exec-heavy program has hundreds of tiny ones. */
        int rest = 0;
        double rest_allocs = 0;
        for (int k = 0; k < s->n; k++) {
            const struct unit *p = &s->u[k];
            if (p->parent != i)
                continue;
            int larger = 0;
            for (int q = 0; q < s->n; q++)
                if (s->u[q].parent == i && q != k &&
                    (s->u[q].charted > p->charted ||
                     (s->u[q].charted == p->charted &&
                      (s->u[q].f[F_ALLOCATIONS] > p->f[F_ALLOCATIONS] ||
                       (s->u[q].f[F_ALLOCATIONS] == p->f[F_ALLOCATIONS] && q < k)))))
                    larger++;
            if (larger >= TABLE_PROCS) {
                rest++;
                rest_allocs += p->f[F_ALLOCATIONS];
                continue;
            }
            char ev2[32], al2[32], by2[32], pk2[32], lb2[32], ly2[32], tr2[64];
            fmt_int(ev2, sizeof ev2, p->f[F_EVENTS]);
            fmt_int(al2, sizeof al2, p->f[F_ALLOCATIONS]);
            fmt_bytes(by2, sizeof by2, p->f[F_BYTES]);
            fmt_bytes(pk2, sizeof pk2, p->f[F_PEAK_LIVE]);
            fmt_int(lb2, sizeof lb2, p->f[F_LEAKED_BLOCKS]);
            fmt_bytes(ly2, sizeof ly2, p->f[F_LEAKED_BYTES]);
            fmt_trend(tr2, sizeof tr2, p);
            fputs("| ", f);
            hl_md_cell(f, p->label, "");
            fputs(" | ", f);
            hl_md_cell(f, p->program, "-");
            fprintf(f, " | %s | %s | %s | %s | %s block%s, %s | %s | ", ev2, al2, by2, pk2,
                    lb2, p->f[F_LEAKED_BLOCKS] == 1 ? "" : "s", ly2, tr2);
            if (p->charted)
                fprintf(f, "below");
            else
                hl_md_cell(f, p->note, "");
            fputs(" |\n", f);
        }
        if (rest) {
            char ra[32];
            fmt_int(ra, sizeof ra, rest_allocs);
            fprintf(f, "\nAnd %d smaller processes (%s allocations in all), not listed; "
                       "`heaplab stat` shows each.\n", rest, ra);
        }
        fputc('\n', f);
        for (int k = 0; k < s->n; k++) {
            const struct unit *p = &s->u[k];
            if (p->parent != i || !p->charted)
                continue;
            fprintf(f, "### Process %s%s%s%s\n\n", p->label, p->program[0] ? " (" : "",
                    p->program, p->program[0] ? ")" : "");
            unit_charts(f, o, p, "####");
        }
    }
    if (ferror(f) | fclose(f))
        hl_die("%s: write error", path);
}

int hl_stats_plot(struct hl_stats *s, const struct hl_chart_opts *o, char *report,
                  size_t report_n)
{
    struct hl_charts charts = {0};
    for (int i = 0; i < s->n; i++)
        if (s->u[i].charted) {
            sizes_chart(&charts, &s->u[i], o);
            if (s->u[i].life_ev.n > 0 || s->u[i].f[F_LEAKED_BLOCKS] > 0)
                lifetimes_chart(&charts, &s->u[i], o);
        }
    snprintf(report, report_n, "%s/stat-report.md", o->outdir);
    write_report(s, o, report);
    int drawn = 0;
    for (int k = 0; k < charts.n; k++)
        drawn += charts.c[k].drawn;
    free(charts.c);
    return drawn;
}
