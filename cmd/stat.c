/*
 * stat.c: `heaplab stat [--json] TRACE...`: what a trace holds.
 *
 * Orchestration only: each process section is streamed through the analysis engine
 * (traces/analysis.h, where every figure is defined), the sections of a file are merged
 * into the file's totals, and the result is printed as a compact human summary or as
 * JSON (one object per file; an array of them for several files).  A damaged file still
 * prints what was read before the damage, then one error line naming the file and the
 * byte offset, and the command exits 1.
 */
#include "analysis.h"
#include "cmd.h"
#include "options.h"
#include "trace.h"
#include "util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOP_SIZES_JSON 20
#define TOP_SIZES_HUMAN 8
#define LEAK_SIZES_JSON 50
#define LEAK_SIZES_HUMAN 5
#define THREADS_HUMAN 16

struct proc {
    struct hl_process p;
    struct hl_analysis *a;
};

struct file {
    const char *path;
    char hash[32];
    int opened;       /* the file could be opened at all */
    int failed;       /* damaged: err holds the message */
    struct hl_err err;
    struct proc *procs;
    size_t nprocs;
    struct hl_analysis *total;
    uint64_t duration_ns;
};

/* ---- reading ---- */

static void analyse_file(struct file *f)
{
    struct hl_reader *r = hl_reader_open(f->path, &f->err);
    if (!r) {
        f->failed = 1;
        return;
    }
    f->opened = 1;
    hl_reader_hash_begin(r); /* hashed while the events are analysed */
    f->total = hl_analysis_new();
    if (!f->total)
        hl_die("out of memory");
    hl_analysis_finish(f->total); /* the totals only receive merges */
    uint64_t t_min = UINT64_MAX, t_max = 0;
    for (;;) {
        struct hl_process p;
        int k = hl_reader_next_process(r, &p, &f->err);
        if (k < 0)
            f->failed = 1;
        if (k <= 0)
            break;
        struct hl_analysis *a = hl_analysis_new();
        struct proc *np = realloc(f->procs, (f->nprocs + 1) * sizeof *np);
        if (!a || !np)
            hl_die("out of memory");
        f->procs = np;
        f->procs[f->nprocs].p = p;
        f->procs[f->nprocs].a = a;
        f->nprocs++;
        const struct hl_event *ev;
        ssize_t n;
        while ((n = hl_reader_events(r, &ev, &f->err)) > 0)
            hl_analysis_feed(a, ev, (size_t)n);
        hl_analysis_finish(a);
        hl_analysis_add_threads(a, p.nthreads); /* threads that made no call count too */
        hl_analysis_merge(f->total, a);
        /* Sections of one file may overlap in time (fork) or follow each other (exec):
         * the file's duration spans from the first start to the last event. */
        uint64_t start = p.start_realtime_ns, end = start + a->last_time_ns;
        if (start < t_min && !(p.flags & HL_PROC_UNRECORDED)) /* no events: no span */
            t_min = start;
        if (end > t_max && !(p.flags & HL_PROC_UNRECORDED))
            t_max = end;
        if (n < 0) {
            f->failed = 1;
            break;
        }
    }
    f->duration_ns = f->nprocs ? t_max - t_min : 0;
    if (f->nprocs == 1) { /* one section: its trend is the file's trend */
        struct hl_analysis *a = f->procs[0].a, *t = f->total;
        t->slope_bytes_per_s = a->slope_bytes_per_s;
        t->r2_time = a->r2_time;
        t->slope_bytes_per_event = a->slope_bytes_per_event;
        t->r2_event = a->r2_event;
        t->first_time_ns = a->first_time_ns;
        t->last_time_ns = a->last_time_ns;
    }
    snprintf(f->hash, sizeof f->hash, "%s", hl_reader_hash(r));
    hl_reader_close(r);
}

/* Sections recorded by attaching to a running process (record -p), and the frees
 * and reallocs there of blocks allocated before the attach (its unknown frees). */
static uint64_t attached_sections(const struct file *f, uint64_t *before)
{
    uint64_t n = 0;
    *before = 0;
    for (size_t i = 0; i < f->nprocs; i++)
        if (f->procs[i].p.flags & HL_PROC_ATTACHED) {
            n++;
            *before += f->procs[i].a->unknown_frees;
        }
    return n;
}

/* Why a capture file could not grow, in a few words. */
static const char *cut_why(uint32_t e)
{
    switch (e) {
    case ENOSPC:
        return "disk full";
    case EDQUOT:
        return "disk quota exceeded";
    case EFBIG:
        return "file size limit";
    default:
        return strerror((int)e);
    }
}

/* Totals over the sections: unrecorded processes, dropped events, missed calls. */
static void losses(const struct file *f, uint64_t *unrec, uint64_t *dropped, uint64_t *missed)
{
    *unrec = *dropped = *missed = 0;
    for (size_t i = 0; i < f->nprocs; i++) {
        *unrec += !!(f->procs[i].p.flags & HL_PROC_UNRECORDED);
        *dropped += f->procs[i].p.dropped;
        *missed += f->procs[i].p.missed;
    }
}

static char *fc(char *buf, double v);
static const char *one_line(char *buf, size_t n, const char *cmdline);

/* The lines naming what the recording did not capture, if anything. */
static void print_losses(FILE *o, const struct file *f)
{
    char cmd[128], x[32];
    for (size_t i = 0; i < f->nprocs; i++) {
        const struct proc *pr = &f->procs[i];
        if (pr->p.flags & HL_PROC_UNRECORDED)
            fprintf(o, "  unrecorded pid %u (%s, child of %u): %s\n", pr->p.pid,
                    pr->p.exe[0] ? one_line(cmd, sizeof cmd, pr->p.exe) : "?", pr->p.ppid,
                    hl_unrecorded_name(hl_proc_why(pr->p.flags)));
        if (pr->p.cut_errno || pr->p.dropped)
            fprintf(o, "  truncated  pid %u: %s after %s events, %llu more dropped\n", pr->p.pid,
                    cut_why(pr->p.cut_errno ? pr->p.cut_errno : ENOSPC),
                    fc(x, (double)pr->a->events), (unsigned long long)pr->p.dropped);
        if (pr->p.missed)
            fprintf(o, "  missed     pid %u: %llu calls not recorded (made while the recorder's "
                       "wrapper ran: a signal handler, or the allocator calling itself)\n",
                    pr->p.pid, (unsigned long long)pr->p.missed);
    }
}

static void free_file(struct file *f)
{
    for (size_t i = 0; i < f->nprocs; i++)
        hl_analysis_free(f->procs[i].a);
    free(f->procs);
    hl_analysis_free(f->total);
}

/* ---- JSON ---- */

struct json {
    FILE *out;
    int depth;
    int first; /* nothing written yet at this level */
};

static void j_indent(struct json *j)
{
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

static void j_key(struct json *j, const char *key)
{
    if (!j->first)
        fputc(',', j->out);
    j->first = 0;
    if (j->depth)
        j_indent(j);
    if (key)
        fprintf(j->out, "\"%s\": ", key);
}

static void j_str_raw(struct json *j, const char *s)
{
    fputc('"', j->out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(j->out, "\\%c", c);
        else if (c < 0x20)
            fprintf(j->out, "\\u%04x", c);
        else
            fputc(c, j->out);
    }
    fputc('"', j->out);
}

static void j_open(struct json *j, const char *key, char brace)
{
    j_key(j, key);
    fputc(brace, j->out);
    j->depth++;
    j->first = 1;
}

static void j_close(struct json *j, char brace)
{
    j->depth--;
    if (!j->first)
        j_indent(j);
    fputc(brace, j->out);
    j->first = 0;
}

static void j_u64(struct json *j, const char *key, uint64_t v)
{
    j_key(j, key);
    fprintf(j->out, "%llu", (unsigned long long)v);
}

static void j_num(struct json *j, const char *key, double v)
{
    j_key(j, key);
    if (isfinite(v))
        fprintf(j->out, "%.17g", v);
    else
        fputs("null", j->out);
}

static void j_str(struct json *j, const char *key, const char *s)
{
    j_key(j, key);
    j_str_raw(j, s);
}

/* Small objects on one line keep the histograms readable. */
static void j_inline_begin(struct json *j)
{
    j_key(j, NULL);
    fputc('{', j->out);
}

static void j_analysis(struct json *j, const struct hl_analysis *a, uint64_t nprocs,
                       uint64_t duration_ns, const struct proc *procs)
{
    j_u64(j, "processes", nprocs);
    j_u64(j, "threads", a->nthreads);
    j_u64(j, "events", a->events);
    j_open(j, "ops", '{');
    for (int op = 1; op < HL_OP_COUNT_; op++)
        j_u64(j, hl_op_name(op), a->ops[op]);
    j_close(j, '}');
    j_open(j, "failed", '{');
    for (int op = 1; op < HL_OP_COUNT_; op++)
        if (hl_op_allocates(op))
            j_u64(j, hl_op_name(op), a->failed[op]);
    j_close(j, '}');
    uint64_t failed = 0;
    for (int op = 1; op < HL_OP_COUNT_; op++)
        failed += a->failed[op];
    j_u64(j, "failed_calls", failed);
    j_u64(j, "bytes_requested", a->bytes_requested);
    j_u64(j, "allocations", a->allocations);
    j_u64(j, "frees", a->frees);
    j_u64(j, "peak_live_bytes", a->peak_live);
    j_u64(j, "peak_live_event", a->peak_event);
    j_u64(j, "peak_live_time_ns", a->peak_time_ns);
    j_u64(j, "peak_live_blocks", a->peak_blocks);
    j_u64(j, "leaked_blocks", a->leaked_blocks);
    j_u64(j, "leaked_bytes", a->leaked_bytes);
    j_u64(j, "duration_ns", duration_ns);
    j_u64(j, "unknown_frees", a->unknown_frees);
    j_u64(j, "double_frees", a->double_frees);
    j_u64(j, "null_frees", a->null_frees);
    j_u64(j, "cross_thread_frees", a->cross_thread_frees);
    j_u64(j, "temporary_allocations", a->temporary);
    if (a->bad_ops)
        j_u64(j, "unknown_ops", a->bad_ops);
    if (a->double_allocs)
        j_u64(j, "slots_allocated_twice", a->double_allocs);

    j_open(j, "size_histogram", '[');
    for (int k = 0; k < HL_AN_POW2_BUCKETS; k++) {
        if (!a->size_hist[k])
            continue;
        j_inline_begin(j);
        fprintf(j->out, "\"lo\": %llu, \"hi\": %llu, \"count\": %llu, \"bytes\": %llu}",
                (unsigned long long)hl_an_pow2_lo(k),
                (unsigned long long)(k == 64 ? UINT64_MAX : k ? hl_an_pow2_lo(k + 1) - 1 : 0),
                (unsigned long long)a->size_hist[k], (unsigned long long)a->size_hist_bytes[k]);
    }
    j_close(j, ']');
    j_u64(j, "distinct_sizes", a->nsizes);
    if (a->sizes_untracked)
        j_u64(j, "sizes_untracked", a->sizes_untracked);
    j_open(j, "top_sizes", '[');
    for (size_t i = 0; i < a->nsizes && i < TOP_SIZES_JSON; i++) {
        j_inline_begin(j);
        fprintf(j->out, "\"size\": %llu, \"count\": %llu}", (unsigned long long)a->sizes[i].size,
                (unsigned long long)a->sizes[i].count);
    }
    j_close(j, ']');

    j_open(j, "lifetime_events_histogram", '[');
    for (int k = 0; k < HL_AN_POW2_BUCKETS; k++) {
        if (!a->life_events_hist[k])
            continue;
        j_inline_begin(j);
        fprintf(j->out, "\"lo\": %llu, \"hi\": %llu, \"count\": %llu}",
                (unsigned long long)hl_an_pow2_lo(k),
                (unsigned long long)(k == 64 ? UINT64_MAX : k ? hl_an_pow2_lo(k + 1) - 1 : 0),
                (unsigned long long)a->life_events_hist[k]);
    }
    j_close(j, ']');
    j_open(j, "lifetime_ns_histogram", '[');
    uint64_t p10 = 1;
    for (int k = 0; k < HL_AN_DECADE_BUCKETS; k++, p10 *= 10) {
        if (!a->life_ns_hist[k])
            continue;
        j_inline_begin(j);
        if (k == HL_AN_DECADE_BUCKETS - 1)
            fprintf(j->out, "\"lo_ns\": %llu, \"hi_ns\": null, ", (unsigned long long)p10);
        else
            fprintf(j->out, "\"lo_ns\": %llu, \"hi_ns\": %llu, ",
                    (unsigned long long)(k ? p10 : 0), (unsigned long long)(p10 * 10 - 1));
        fprintf(j->out, "\"count\": %llu}", (unsigned long long)a->life_ns_hist[k]);
    }
    j_close(j, ']');

    j_open(j, "realloc", '{');
    j_u64(j, "grow", a->realloc_grow);
    j_u64(j, "shrink", a->realloc_shrink);
    j_u64(j, "same", a->realloc_same);
    j_u64(j, "from_null", a->realloc_from_null);
    j_u64(j, "to_zero", a->realloc_to_zero);
    j_num(j, "mean_growth_factor", a->growth_log_n ? exp(a->growth_log_sum / (double)a->growth_log_n)
                                                   : NAN);
    j_open(j, "growth_factor_histogram", '[');
    for (int k = 0; k < HL_AN_GROWTH_BUCKETS; k++) {
        j_inline_begin(j);
        if (isfinite(hl_an_growth_bounds[k]))
            fprintf(j->out, "\"max\": %g, \"count\": %llu}", hl_an_growth_bounds[k],
                    (unsigned long long)a->growth_hist[k]);
        else
            fprintf(j->out, "\"max\": null, \"count\": %llu}", (unsigned long long)a->growth_hist[k]);
    }
    j_close(j, ']');
    j_close(j, '}');

    j_open(j, "leaks_by_size", '[');
    for (size_t i = 0; i < a->nleak_sizes && i < LEAK_SIZES_JSON; i++) {
        j_inline_begin(j);
        fprintf(j->out, "\"size\": %llu, \"blocks\": %llu, \"bytes\": %llu}",
                (unsigned long long)a->leaks_by_size[i].size,
                (unsigned long long)a->leaks_by_size[i].count,
                (unsigned long long)(a->leaks_by_size[i].size * a->leaks_by_size[i].count));
    }
    j_close(j, ']');

    j_open(j, "leak_trend", '{');
    j_num(j, "slope_bytes_per_s", a->slope_bytes_per_s);
    j_num(j, "r2", a->r2_time);
    j_num(j, "slope_bytes_per_event", a->slope_bytes_per_event);
    j_num(j, "r2_event", a->r2_event);
    j_close(j, '}');

    j_open(j, "thread_list", '[');
    /* procs != NULL: the file's totals, threads appended section after section */
    size_t pi = 0;
    uint32_t left = procs ? procs[0].a->nthreads : a->nthreads;
    for (uint32_t t = 0, tt = 0; t < a->nthreads; t++, tt++) {
        while (procs && left == 0) {
            pi++;
            left = procs[pi].a->nthreads;
            tt = 0;
        }
        left--;
        const struct hl_an_thread *th = &a->threads[t];
        j_inline_begin(j);
        if (procs)
            fprintf(j->out, "\"pid\": %u, ", procs[pi].p.pid);
        fprintf(j->out,
                "\"thread\": %u, \"allocs\": %llu, \"frees\": %llu, \"bytes\": %llu, "
                "\"failed\": %llu, \"cross_thread_frees\": %llu, \"temporary\": %llu}",
                tt, (unsigned long long)th->allocs, (unsigned long long)th->frees,
                (unsigned long long)th->bytes, (unsigned long long)th->failed,
                (unsigned long long)th->cross_frees, (unsigned long long)th->temporary);
    }
    j_close(j, ']');
}

static void print_json(struct json *j, const struct file *f)
{
    j_open(j, NULL, '{');
    j_str(j, "file", f->path);
    if (!f->opened) {
        j_str(j, "error", f->err.msg);
        j_close(j, '}');
        return;
    }
    j_str(j, "hash", f->hash);
    j_key(j, "complete");
    fputs(f->failed ? "false" : "true", j->out);
    if (f->failed)
        j_str(j, "error", f->err.msg);
    j_analysis(j, f->total, f->nprocs, f->duration_ns, f->procs);
    uint64_t before;
    j_u64(j, "attached_sections", attached_sections(f, &before));
    j_u64(j, "frees_from_before_attach", before);
    uint64_t nunrec, ndropped, nmissed;
    losses(f, &nunrec, &ndropped, &nmissed);
    j_u64(j, "unrecorded_processes", nunrec);
    j_u64(j, "dropped_events", ndropped);
    j_u64(j, "missed_calls", nmissed);
    j_open(j, "process_list", '[');
    for (size_t i = 0; i < f->nprocs; i++) {
        const struct proc *pr = &f->procs[i];
        j_open(j, NULL, '{');
        j_u64(j, "pid", pr->p.pid);
        j_u64(j, "ppid", pr->p.ppid);
        j_str(j, "cmdline", pr->p.cmdline);
        j_str(j, "exe", pr->p.exe);
        j_u64(j, "start_realtime_ns", pr->p.start_realtime_ns);
        j_key(j, "attached");
        fputs(pr->p.flags & HL_PROC_ATTACHED ? "true" : "false", j->out);
        j_key(j, "unrecorded");
        fputs(pr->p.flags & HL_PROC_UNRECORDED ? "true" : "false", j->out);
        if (pr->p.flags & HL_PROC_UNRECORDED)
            j_str(j, "unrecorded_reason", hl_unrecorded_name(hl_proc_why(pr->p.flags)));
        j_u64(j, "dropped_events", pr->p.dropped);
        j_u64(j, "missed_calls", pr->p.missed);
        if (pr->p.cut_errno)
            j_str(j, "truncated", cut_why(pr->p.cut_errno));
        j_analysis(j, pr->a, 1, pr->a->last_time_ns, NULL);
        j_close(j, '}');
    }
    j_close(j, ']');
    j_close(j, '}');
}

/* ---- human ---- */


static char *fb(char *buf, double v)
{
    return hl_fmt_bytes(buf, 32, v);
}
static char *fc(char *buf, double v)
{
    return hl_fmt_count(buf, 32, v);
}
static char *fns(char *buf, double v)
{
    return hl_fmt_ns(buf, 32, v);
}

static void bar(FILE *o, uint64_t v, uint64_t max)
{
    int n = max ? (int)((double)v * 30.0 / (double)max + 0.5) : 0;
    if (v && !n)
        n = 1;
    fputc(' ', o);
    for (int i = 0; i < n; i++)
        fputc('#', o);
}

static void size_range(char *buf, size_t n, int k)
{
    char x[32], y[32];
    if (k <= 1)
        snprintf(buf, n, "%s", fb(x, (double)hl_an_pow2_lo(k)));
    else
        snprintf(buf, n, "%s-%s", fb(x, (double)hl_an_pow2_lo(k)),
                 k == 64 ? "" : fb(y, (double)(hl_an_pow2_lo(k + 1) - 1)));
}

/* A command line on one table line: control characters (a `python3 -c` script's
 * newlines) become spaces, and it is cut to fit buf. */
static const char *one_line(char *buf, size_t n, const char *cmdline)
{
    size_t i = 0;
    for (; cmdline[i] && i + 1 < n; i++)
        buf[i] = (unsigned char)cmdline[i] < 0x20 ? ' ' : cmdline[i];
    buf[i] = 0;
    return buf;
}

static void print_human(FILE *o, const struct file *f)
{
    const struct hl_analysis *a = f->total;
    char x[32], y[32], z[32], w[32], cmd[208];

    fprintf(o, "%s: %zu process%s, %u thread%s, %s events over %s\n", f->path, f->nprocs,
            f->nprocs == 1 ? "" : "es", a->nthreads, a->nthreads == 1 ? "" : "s",
            fc(x, (double)a->events), fns(y, (double)f->duration_ns));
    if (f->nprocs > 1) {
        fprintf(o, "  %8s %8s %9s %7s %10s %10s  %s\n", "pid", "ppid", "events", "threads",
                "peak live", "leaked", "command");
        for (size_t i = 0; i < f->nprocs; i++) {
            const struct proc *pr = &f->procs[i];
            fprintf(o, "  %8u %8u %9s %7u %10s %10s  %.60s\n", pr->p.pid, pr->p.ppid,
                    fc(x, (double)pr->a->events), pr->a->nthreads,
                    fb(y, (double)pr->a->peak_live), fb(z, (double)pr->a->leaked_bytes),
                    one_line(cmd, 61, pr->p.cmdline));
        }
    } else if (f->nprocs == 1 && f->procs[0].p.cmdline[0]) {
        fprintf(o, "  command    %s (pid %u)\n", one_line(cmd, sizeof cmd, f->procs[0].p.cmdline),
                f->procs[0].p.pid);
    }

    fprintf(o, "  ops       ");
    for (int op = 1; op < HL_OP_COUNT_; op++)
        if (a->ops[op])
            fprintf(o, " %s %s", hl_op_name(op), fc(x, (double)a->ops[op]));
    fputc('\n', o);
    fprintf(o, "  requested  %s in %s blocks", fb(x, (double)a->bytes_requested),
            fc(y, (double)a->allocations));
    if (a->allocations)
        fprintf(o, " (mean %s)", fb(z, (double)a->bytes_requested / (double)a->allocations));
    fputc('\n', o);
    char where[64] = "";
    for (size_t i = 0; f->nprocs > 1 && i < f->nprocs; i++)
        if (f->procs[i].a->peak_live == a->peak_live) { /* the process the peak is from */
            snprintf(where, sizeof where, " in pid %u", f->procs[i].p.pid);
            break;
        }
    fprintf(o, "  peak live  %s%s at event %s (%s); at most %s blocks live\n",
            fb(x, (double)a->peak_live), where, fc(z, (double)a->peak_event),
            fns(w, (double)a->peak_time_ns), fc(y, (double)a->peak_blocks));
    fprintf(o, "  leaked     %s blocks, %s\n", fc(x, (double)a->leaked_blocks),
            fb(y, (double)a->leaked_bytes));
    fprintf(o, "  frees      %s: %s cross-thread, %s temporary", fc(x, (double)a->frees),
            fc(y, (double)a->cross_thread_frees), fc(z, (double)a->temporary));
    if (a->unknown_frees || a->double_frees || a->null_frees)
        fprintf(o, "; %llu unknown, %llu double, %llu of NULL", (unsigned long long)a->unknown_frees,
                (unsigned long long)a->double_frees, (unsigned long long)a->null_frees);
    fputc('\n', o);
    uint64_t before, nattached = attached_sections(f, &before);
    if (nattached)
        fprintf(o, "  attached   recording began while %s ran: %s frees/reallocs of blocks "
                   "from before (counted as unknown; their sizes are not known)\n",
                nattached == f->nprocs ? "the program" : "some of its processes",
                fc(x, (double)before));
    print_losses(o, f);
    uint64_t failed = 0;
    for (int op = 1; op < HL_OP_COUNT_; op++)
        failed += a->failed[op];
    if (failed) {
        fprintf(o, "  failed     %llu:", (unsigned long long)failed);
        for (int op = 1; op < HL_OP_COUNT_; op++)
            if (a->failed[op])
                fprintf(o, " %s %llu", hl_op_name(op), (unsigned long long)a->failed[op]);
        fputc('\n', o);
    }
    uint64_t nre = a->realloc_grow + a->realloc_shrink + a->realloc_same;
    if (nre || a->realloc_from_null || a->realloc_to_zero) {
        fprintf(o, "  realloc    %s grow", fc(x, (double)a->realloc_grow));
        if (a->growth_log_n)
            fprintf(o, " (x%.2f geometric mean)", exp(a->growth_log_sum / (double)a->growth_log_n));
        fprintf(o, ", %s shrink, %s same, %s from NULL, %s to size 0\n",
                fc(y, (double)a->realloc_shrink), fc(z, (double)a->realloc_same),
                fc(w, (double)a->realloc_from_null), fc(x, (double)a->realloc_to_zero));
    }
    if (isfinite(a->slope_bytes_per_s) || isfinite(a->slope_bytes_per_event)) {
        fprintf(o, "  trend     ");
        if (isfinite(a->slope_bytes_per_s)) {
            fprintf(o, " %s%s/s", a->slope_bytes_per_s < 0 ? "-" : "+",
                    fb(x, fabs(a->slope_bytes_per_s)));
            if (isfinite(a->r2_time))
                fprintf(o, " (R2 %.2f)", a->r2_time);
            fputc(',', o);
        }
        if (isfinite(a->slope_bytes_per_event)) {
            fprintf(o, " %s%.3g B/event", a->slope_bytes_per_event < 0 ? "-" : "+",
                    fabs(a->slope_bytes_per_event));
            if (isfinite(a->r2_event))
                fprintf(o, " (R2 %.2f)", a->r2_event);
        }
        fprintf(o, "%s\n", a->slope_bytes_per_s > 0 && a->r2_time > 0.5 ? ": live bytes grow steadily"
                                                                        : "");
    } else if (f->nprocs > 1) {
        fprintf(o, "  trend      per process: see --json\n");
    }

    /* size histogram */
    uint64_t max = 0;
    for (int k = 0; k < HL_AN_POW2_BUCKETS; k++)
        if (a->size_hist[k] > max)
            max = a->size_hist[k];
    if (max) {
        fprintf(o, "  sizes      %-17s %9s %10s\n", "", "blocks", "bytes");
        for (int k = 0; k < HL_AN_POW2_BUCKETS; k++) {
            if (!a->size_hist[k])
                continue;
            char r[64];
            size_range(r, sizeof r, k);
            fprintf(o, "             %-17s %9s %10s", r, fc(x, (double)a->size_hist[k]),
                    fb(y, (double)a->size_hist_bytes[k]));
            bar(o, a->size_hist[k], max);
            fputc('\n', o);
        }
        fprintf(o, "  top sizes ");
        for (size_t i = 0; i < a->nsizes && i < TOP_SIZES_HUMAN; i++)
            fprintf(o, " %s x%s%s", fb(x, (double)a->sizes[i].size), fc(y, (double)a->sizes[i].count),
                    i + 1 < a->nsizes && i + 1 < TOP_SIZES_HUMAN ? "," : "");
        fprintf(o, " (%zu distinct)\n", a->nsizes);
    }

    /* lifetimes */
    max = 0;
    for (int k = 0; k < HL_AN_POW2_BUCKETS; k++)
        if (a->life_events_hist[k] > max)
            max = a->life_events_hist[k];
    if (max) {
        fprintf(o, "  lifetime   %-17s %9s\n", "in events", "blocks");
        for (int k = 0; k < HL_AN_POW2_BUCKETS; k++) {
            if (!a->life_events_hist[k])
                continue;
            char r[64];
            if (k <= 1)
                snprintf(r, sizeof r, "%llu", (unsigned long long)hl_an_pow2_lo(k));
            else if (k < 64)
                snprintf(r, sizeof r, "%llu-%llu", (unsigned long long)hl_an_pow2_lo(k),
                         (unsigned long long)(hl_an_pow2_lo(k + 1) - 1));
            else
                snprintf(r, sizeof r, ">= %llu", (unsigned long long)hl_an_pow2_lo(k));
            fprintf(o, "             %-17s %9s", r, fc(z, (double)a->life_events_hist[k]));
            bar(o, a->life_events_hist[k], max);
            fputc('\n', o);
        }
        max = 0;
        for (int k = 0; k < HL_AN_DECADE_BUCKETS; k++)
            if (a->life_ns_hist[k] > max)
                max = a->life_ns_hist[k];
        fprintf(o, "  lifetime   %-17s %9s\n", "in time", "blocks");
        double p10 = 1;
        for (int k = 0; k < HL_AN_DECADE_BUCKETS; k++, p10 *= 10) {
            if (!a->life_ns_hist[k])
                continue;
            char r[64];
            if (k == HL_AN_DECADE_BUCKETS - 1)
                snprintf(r, sizeof r, ">= %s", fns(x, p10));
            else if (k == 0)
                snprintf(r, sizeof r, "< %s", fns(x, p10 * 10));
            else
                snprintf(r, sizeof r, "%s-%s", fns(x, p10), fns(y, p10 * 10));
            fprintf(o, "             %-17s %9s", r, fc(z, (double)a->life_ns_hist[k]));
            bar(o, a->life_ns_hist[k], max);
            fputc('\n', o);
        }
    }

    /* threads: only for processes that have several (a single-threaded process's row
     * would repeat its totals); labelled pid/thread when the file has several processes */
    uint32_t multi = 0, shown = 0, hidden = 0;
    for (size_t i = 0; i < f->nprocs; i++)
        if (f->procs[i].a->nthreads > 1)
            multi += f->procs[i].a->nthreads;
    if (multi) {
        fprintf(o, "  threads    %12s %9s %9s %10s %12s %9s\n", "thread", "allocs", "frees",
                "bytes", "cross-frees", "temporary");
        for (size_t i = 0, base = 0; i < f->nprocs; base += f->procs[i].a->nthreads, i++) {
            const struct proc *pr = &f->procs[i];
            if (pr->a->nthreads < 2)
                continue;
            for (uint32_t t = 0; t < pr->a->nthreads; t++) {
                const struct hl_an_thread *th = &a->threads[base + t];
                if (!th->allocs && !th->frees && !th->failed)
                    continue;
                if (shown == THREADS_HUMAN) {
                    hidden++;
                    continue;
                }
                shown++;
                char label[32];
                if (f->nprocs > 1)
                    snprintf(label, sizeof label, "%u/%u", pr->p.pid, t);
                else
                    snprintf(label, sizeof label, "%u", t);
                fprintf(o, "             %12s %9s %9s %10s", label, fc(x, (double)th->allocs),
                        fc(y, (double)th->frees), fb(z, (double)th->bytes));
                fprintf(o, " %12s", fc(x, (double)th->cross_frees));
                fprintf(o, " %9s\n", fc(y, (double)th->temporary));
            }
        }
        if (hidden)
            fprintf(o, "             (%u more threads; see --json)\n", hidden);
    }

    /* leaks */
    if (a->nleak_sizes) {
        fprintf(o, "  leaks by size");
        for (size_t i = 0; i < a->nleak_sizes && i < LEAK_SIZES_HUMAN; i++)
            fprintf(o, "%s %s x%s", i ? "," : "", fb(x, (double)a->leaks_by_size[i].size),
                    fc(y, (double)a->leaks_by_size[i].count));
        if (a->nleak_sizes > LEAK_SIZES_HUMAN)
            fprintf(o, ", ... (%zu sizes)", a->nleak_sizes);
        fputc('\n', o);
    }
}

int cmd_stat(int argc, char **argv)
{
    static const char *const usage[] = {
        "heaplab stat [--json] TRACE...",
        "Summarise what a trace holds: calls per function, bytes requested, peak live",
        "bytes and when it is reached, leaks grouped by size, a size histogram (powers",
        "of two, plus the most frequent exact sizes), block lifetimes in events and in",
        "time, per-thread counts and cross-thread frees, realloc growth, temporary",
        "allocations (freed before the thread's next allocation), failed calls, unknown",
        "and double frees, and the trend of live bytes over time (least-squares slope in",
        "bytes per second with its R2: a slow leak shows a steady positive slope).",
        "The trace is streamed: memory follows the number of live blocks, not events.",
        NULL};
    int json = 0;
    struct hl_option opts[] = {
        HL_OPT_FLAG('j', "json", &json, "print JSON: one object per file (an array for several)"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, 0);
    if (i >= argc)
        hl_usage_die("stat: no trace given (see 'heaplab stat --help')");

    int nfiles = argc - i, status = 0;
    struct json j = {stdout, 0, 1};
    if (json && nfiles > 1)
        j_open(&j, NULL, '[');
    for (int k = 0; k < nfiles; k++) {
        struct file f;
        memset(&f, 0, sizeof f);
        f.path = argv[i + k];
        analyse_file(&f);
        if (json) {
            print_json(&j, &f);
        } else if (f.opened) {
            if (k)
                fputc('\n', stdout);
            print_human(stdout, &f);
        }
        if (f.failed) {
            /* the output so far first, then the one error line */
            fflush(stdout);
            fprintf(stderr, "heaplab: %s\n", f.err.msg);
            status = 1;
        }
        free_file(&f);
    }
    if (json && nfiles > 1)
        j_close(&j, ']');
    if (json)
        fputc('\n', stdout);
    return status;
}
