/*
 * output.c: replay results as a terminal table, CSV or JSON (see output.h).
 *
 * CSV and JSON are produced from one field list per cell (cell_fields), so the two
 * can never disagree on names, order or what counts as unmeasured: an unmeasured value
 * is an empty CSV field and a JSON null, never a zero.
 */
#include "output.h"
#include "config.h"
#include "util.h"

#include <gnu/libc-version.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { F_NULL, F_STR, F_U64, F_DBL };

struct fld {
    const char *key;
    int type;
    const char *s;
    uint64_t u;
    double d;
    int prec;
};

#define MAXF 64

static int add_s(struct fld *f, int n, const char *k, const char *s)
{
    f[n] = (struct fld){k, s && s[0] ? F_STR : F_NULL, s, 0, 0, 0};
    return n + 1;
}
static int add_u(struct fld *f, int n, const char *k, uint64_t u, int valid)
{
    f[n] = (struct fld){k, valid ? F_U64 : F_NULL, NULL, u, 0, 0};
    return n + 1;
}
static int add_d(struct fld *f, int n, const char *k, double d, int prec, int valid)
{
    f[n] = (struct fld){k, valid && isfinite(d) ? F_DBL : F_NULL, NULL, 0, d, prec};
    return n + 1;
}

/* Fragmentation: the peak RSS the replay's blocks made the allocator hold (its start-up
 * memory left out: a property of the library, not of how it packs blocks) over the
 * replay's own live peak.  NAN when either is unknown. */
static double fragmentation(const struct hl_rp_cell *c)
{
    const struct hl_rp_result *r = &c->med;
    if (!c->rss_ok || !r->live_peak)
        return NAN;
    const uint64_t rss = c->rss_med > r->startup_rss ? c->rss_med - r->startup_rss : 0;
    return (double)rss / (double)r->live_peak;
}

static int cell_fields(const struct hl_rp_cell *c, const struct hl_rp_meta *m, struct fld *f)
{
    const struct hl_rp_result *r = &c->med;
    const struct hl_rp_row *row = c->row;
    const int ok = !c->na[0]; /* measured at all */
    int n = 0;
    n = add_s(f, n, "trace", row->name);
    n = add_s(f, n, "trace_hash", row->hash);
    n = add_u(f, n, "process", row->pid, 1);
    n = add_s(f, n, "allocator", c->alloc->name);
    n = add_s(f, n, "allocator_version", c->alloc->version);
    n = add_s(f, n, "allocator_path", c->alloc->path);
    /* "ok", or why nothing was measured ("n/a: timed out after 5 s"); the measured
     * columns of such a cell are empty (CSV) or null (JSON), never text in a number. */
    n = add_s(f, n, "status", ok ? "ok" : c->na);
    n = add_u(f, n, "runs", (uint64_t)c->runs, 1);
    n = add_u(f, n, "ops", r->ops, 1);
    n = add_u(f, n, "time_ns", r->time_ns, ok);
    n = add_u(f, n, "time_ns_min", c->time_min, ok);
    n = add_u(f, n, "time_ns_max", c->time_max, ok);
    n = add_d(f, n, "ns_per_op", r->ops ? (double)r->time_ns / (double)r->ops : 0, 3,
              ok && r->ops > 0);
    n = add_d(f, n, "ops_per_s", r->time_ns ? (double)r->ops * 1e9 / (double)r->time_ns : 0, 0,
              ok && r->time_ns > 0);
    n = add_u(f, n, "peak_rss_bytes", c->rss_med, ok && c->rss_ok);
    n = add_u(f, n, "peak_rss_min", c->rss_min, ok && c->rss_ok);
    n = add_u(f, n, "peak_rss_max", c->rss_max, ok && c->rss_ok);
    /* peak_live_bytes: the recorded program's; replay_live_bytes: what this replay
     * held at most, which fragmentation divides by (replay.h, live_peak). */
    n = add_u(f, n, "peak_live_bytes", row->plan.peak_live, 1);
    n = add_d(f, n, "fragmentation", fragmentation(c), 4, ok);
    n = add_u(f, n, "replay_live_bytes", r->live_peak, ok);
    n = add_u(f, n, "user_ns", r->user_ns, ok);
    n = add_u(f, n, "sys_ns", r->sys_ns, ok);
    n = add_u(f, n, "minor_faults", r->minor_faults, ok);
    n = add_u(f, n, "major_faults", r->major_faults, ok);
    n = add_u(f, n, "instructions", r->instructions, r->have_counters);
    n = add_u(f, n, "l1d_misses", r->l1d_misses, r->have_counters);
    n = add_u(f, n, "llc_misses", r->llc_misses, r->have_counters);
    n = add_u(f, n, "dtlb_misses", r->dtlb_misses, r->have_counters && r->have_dtlb);
    n = add_s(f, n, "counters_source", r->counters_source);
    static const char *const lk[2][4] = {
        {"lat_malloc_p50", "lat_malloc_p99", "lat_malloc_p999", "lat_malloc_max"},
        {"lat_free_p50", "lat_free_p99", "lat_free_p999", "lat_free_max"}};
    for (int i = 0; i < 2; i++) {
        const struct hl_rp_lat *l = &r->lat[i == 0 ? HL_OP_MALLOC : HL_OP_FREE];
        n = add_u(f, n, lk[i][0], l->p50, l->samples > 0);
        n = add_u(f, n, lk[i][1], l->p99, l->samples > 0);
        n = add_u(f, n, lk[i][2], l->p999, l->samples > 0);
        n = add_u(f, n, lk[i][3], l->max, l->samples > 0);
    }
    n = add_u(f, n, "violations", c->violations, ok);
    n = add_s(f, n, "threads_mode", m->threads_mode);
    n = add_s(f, n, "touch", m->touch);
    n = add_s(f, n, "tunables", m->tunables);
    n = add_s(f, n, "heaplab_version", HEAPLAB_VERSION);
    n = add_s(f, n, "cpu", m->cpu);
    n = add_s(f, n, "kernel", m->kernel);
    n = add_s(f, n, "date", m->date);
    /* Appended to the schema: the variant's variables, and the machine. */
    char settings[HL_ALLOC_MAXENV * 322];
    size_t sl = 0;
    settings[0] = 0;
    for (int i = 0; i < c->alloc->nenv; i++)
        sl += (size_t)snprintf(settings + sl, sizeof settings - sl, "%s%s", i ? " " : "",
                               c->alloc->env[i]);
    n = add_s(f, n, "settings", settings);
    n = add_s(f, n, "host", m->host);
    n = add_u(f, n, "cores", (uint64_t)m->cores, m->cores > 0);
    n = add_s(f, n, "libc", m->libc);
    /* Of peak RSS, the allocator's start-up memory (the median run's; replay.h). */
    n = add_u(f, n, "startup_rss_bytes", r->startup_rss, ok && c->rss_ok);
    /* Not in time_ns (the timed window is the replay loop): what starting a process
     * under the allocator costs, median of the runs (replay.h, startup_ns). */
    n = add_u(f, n, "startup_ns", c->startup_med, ok && c->startup_med > 0);
    return n;
}

void hl_rp_machine(struct hl_rp_meta *m)
{
    if (gethostname(m->host, sizeof m->host) != 0)
        snprintf(m->host, sizeof m->host, "unknown");
    m->host[sizeof m->host - 1] = 0;
    m->cores = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(m->libc, sizeof m->libc, "glibc %s", gnu_get_libc_version());
}

/* ---- CSV ---- */



static void put_value(FILE *f, const struct fld *x, int json);

void hl_rp_write_csv(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m)
{
    struct fld fl[MAXF];
    static const struct hl_rp_row norow;
    static const struct hl_alloc noalloc;
    struct hl_rp_cell dummy = {.row = &norow, .alloc = &noalloc};
    int nf = cell_fields(n ? &c[0] : &dummy, m, fl);
    for (int i = 0; i < nf; i++)
        fprintf(f, "%s%s", i ? "," : "", fl[i].key);
    fputc('\n', f);
    for (int k = 0; k < n; k++) {
        nf = cell_fields(&c[k], m, fl);
        for (int i = 0; i < nf; i++) {
            if (i)
                fputc(',', f);
            put_value(f, &fl[i], 0);
        }
        fputc('\n', f);
    }
}

/* ---- JSON ---- */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A field's value: numbers alike in both forms; a string quoted the form's way; an
 * unmeasured value empty in CSV, null in JSON. */
static void put_value(FILE *f, const struct fld *x, int json)
{
    switch (x->type) {
    case F_NULL:
        if (json)
            fputs("null", f);
        break;
    case F_STR:
        (json ? json_str : hl_csv_str)(f, x->s);
        break;
    case F_U64:
        fprintf(f, "%llu", (unsigned long long)x->u);
        break;
    case F_DBL:
        fprintf(f, "%.*f", x->prec, x->d);
        break;
    }
}

void hl_rp_write_json(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m)
{
    fprintf(f, "{\"heaplab_version\": ");
    json_str(f, HEAPLAB_VERSION);
    fprintf(f, ", \"cpu\": ");
    json_str(f, m->cpu);
    fprintf(f, ", \"kernel\": ");
    json_str(f, m->kernel);
    fprintf(f, ", \"date\": ");
    json_str(f, m->date);
    fprintf(f, ", \"host\": ");
    json_str(f, m->host);
    fprintf(f, ", \"cores\": %ld, \"libc\": ", m->cores);
    json_str(f, m->libc);
    fprintf(f, ",\n \"results\": [");
    for (int k = 0; k < n; k++) {
        struct fld fl[MAXF];
        int nf = cell_fields(&c[k], m, fl);
        fprintf(f, "%s\n  {", k ? "," : "");
        for (int i = 0; i < nf; i++) {
            fprintf(f, "%s\"%s\": ", i ? ", " : "", fl[i].key);
            put_value(f, &fl[i], 1);
        }
        const struct hl_rp_result *r = &c[k].med;
        const struct hl_plan_info *p = &c[k].row->plan;
        fprintf(f, ",\n   \"check\": ");
        json_str(f, m->check);
        fprintf(f, ", \"events\": %llu, \"skipped_unknown\": %llu, \"skipped_failed\": %llu, "
                   "\"recorded_threads\": %u, \"alloc_failures\": %llu, \"median_run\": %d",
                (unsigned long long)p->events, (unsigned long long)p->skipped_unknown,
                (unsigned long long)p->skipped_failed, p->recorded_threads,
                (unsigned long long)r->alloc_failures, c[k].med_run);
        if (!c[k].na[0] && r->thread_ns && r->timed_events) {
            /* Measured in replay-thread time (replay.h); each part's share of the threads'
             * time is applied to the wall time, so the parts add up to time_ns exactly.
             * The call and touch estimates are sampled: should they overshoot the
             * threads' time less the waits (possible on a loaded machine), they are
             * scaled down together, and "rest" is 0. */
            double busy = (double)r->thread_ns, w = (double)r->wait_ns;
            double a = (double)r->call_ns, t = (double)r->touch_ns, g = (double)r->gap_ns;
            if (g > busy)
                g = busy;
            if (w > busy - g)
                w = busy - g;
            if (a + t > busy - w - g) {
                double k = (busy - w - g) / (a + t);
                a *= k;
                t *= k;
            }
            double sc = (double)r->time_ns / busy;
            uint64_t an = (uint64_t)(a * sc + 0.5), tn = (uint64_t)(t * sc + 0.5),
                     wn = (uint64_t)(w * sc + 0.5), gn = (uint64_t)(g * sc + 0.5);
            uint64_t used = an + tn + wn + gn;
            if (used > r->time_ns) { /* rounding only */
                wn -= wn < used - r->time_ns ? wn : used - r->time_ns;
                used = an + tn + wn + gn;
            }
            fprintf(f, ",\n   \"time_split\": {\"allocator_ns\": %llu, \"touch_check_ns\": %llu, "
                       "\"wait_ns\": %llu, \"gap_ns\": %llu, \"rest_ns\": %llu, "
                       "\"from_events\": %llu, \"thread_ns\": %llu, \"off_cpu_ns\": %llu}",
                    (unsigned long long)an, (unsigned long long)tn, (unsigned long long)wn,
                    (unsigned long long)gn,
                    (unsigned long long)(r->time_ns > used ? r->time_ns - used : 0),
                    (unsigned long long)r->timed_events, (unsigned long long)r->thread_ns,
                    (unsigned long long)((double)r->off_cpu_ns * sc + 0.5));
        } else {
            fprintf(f, ",\n   \"time_split\": null");
        }
        if (r->gap_recorded_ns)
            fprintf(f, ",\n   \"gaps\": {\"recorded_ns\": %llu, \"lines_written\": %llu}",
                    (unsigned long long)r->gap_recorded_ns, (unsigned long long)r->gap_lines);
        fprintf(f, ",\n   \"latency\": {");
        int first = 1;
        for (int op = 1; op < HL_OP_COUNT_; op++) {
            const struct hl_rp_lat *l = &r->lat[op];
            if (!l->samples)
                continue;
            fprintf(f, "%s\"%s\": {\"p50\": %llu, \"p99\": %llu, \"p999\": %llu, \"max\": %llu, "
                       "\"samples\": %llu}",
                    first ? "" : ", ", hl_op_name(op), (unsigned long long)l->p50,
                    (unsigned long long)l->p99, (unsigned long long)l->p999,
                    (unsigned long long)l->max, (unsigned long long)l->samples);
            first = 0;
        }
        fprintf(f, "},\n   \"violations_detail\": [");
        for (int i = 0; i < HL_RP_NVIOL && (uint64_t)i < r->violations; i++) {
            if (i)
                fprintf(f, ", ");
            json_str(f, r->viol[i]);
        }
        fprintf(f, "]}");
    }
    fprintf(f, "\n ]}\n");
}

/* ---- timeline CSV ---- */

void hl_rp_write_timeline(FILE *f, const struct hl_rp_cell *c, int n)
{
    fprintf(f, "trace,allocator,run,event,time_ns,live_bytes,rss_bytes\n");
    for (int k = 0; k < n; k++)
        for (uint64_t i = 0; i < c[k].ntl; i++) {
            const struct hl_rp_tlsample *s = &c[k].tl[i];
            hl_csv_str(f, c[k].row->name);
            fputc(',', f);
            hl_csv_str(f, c[k].alloc->name);
            fprintf(f, ",%d,%llu,%llu,%llu,%llu\n", c[k].med_run,
                    (unsigned long long)s->op_index, (unsigned long long)s->time_ns,
                    (unsigned long long)s->live_bytes, (unsigned long long)s->rss_bytes);
        }
}

/* ---- the terminal table ---- */

enum { C_TRACE, C_ALLOC, C_TIME, C_RANGE, C_NSOP, C_OPSS, C_RSS, C_FRAG, C_FAULTS,
       C_LAT, C_INSN, C_L1D, C_LLC, C_VIOL, NCOL };
static const char *const col_name[NCOL] = {"trace", "allocator", "time", "min..max",
                                           "ns/op", "ops/s", "peak RSS", "frag", "faults",
                                           "malloc p50", "instr", "L1d miss", "LLC miss",
                                           "viol"};
/* +1: lower is better, -1: higher is better, 0: not ranked */
static const int col_rank[NCOL] = {0, 0, 1, 0, 1, -1, 1, 1, 1, 1, 1, 1, 1, 0};

struct tcell {
    char s[48];
    double v;
    int valid;
};

/* A long name keeps its end (the file name and [pid]), which tells rows apart. */
static void fit_tail(char *dst, size_t n, const char *name)
{
    size_t len = strlen(name);
    if (len < n)
        snprintf(dst, n, "%s", name);
    else
        snprintf(dst, n, "...%s", name + len - (n - 4));
}

void hl_rp_write_table(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m)
{
    struct tcell(*t)[NCOL] = calloc((size_t)n + 1, sizeof *t);
    if (!t)
        return;
    int any_viol = 0;
    const char *counters_why = NULL;
    for (int k = 0; k < n; k++) {
        const struct hl_rp_result *r = &c[k].med;
        struct tcell *row = t[k];
        char a[20], b[20];
        fit_tail(row[C_TRACE].s, sizeof row[C_TRACE].s, c[k].row->name);
        snprintf(row[C_ALLOC].s, sizeof row[C_ALLOC].s, "%.47s", c[k].alloc->name);
        if (c[k].na[0]) { /* nothing measured: every column says so, none can win */
            snprintf(row[C_TIME].s, sizeof row[C_TIME].s, "timed out");
            for (int i = C_TIME + 1; i < NCOL; i++)
                snprintf(row[i].s, sizeof row[i].s, "n/a");
            continue;
        }
        hl_fmt_ns(row[C_TIME].s, sizeof row[C_TIME].s, (double)r->time_ns);
        row[C_TIME].v = (double)r->time_ns;
        row[C_TIME].valid = 1;
        hl_fmt_ns(a, sizeof a, (double)c[k].time_min);
        hl_fmt_ns(b, sizeof b, (double)c[k].time_max);
        snprintf(row[C_RANGE].s, sizeof row[C_RANGE].s, "%.19s..%.19s", a, b);
        if (r->ops) {
            row[C_NSOP].v = (double)r->time_ns / (double)r->ops;
            snprintf(row[C_NSOP].s, sizeof row[C_NSOP].s, "%.1f", row[C_NSOP].v);
            row[C_NSOP].valid = 1;
        }
        if (r->time_ns) {
            row[C_OPSS].v = (double)r->ops * 1e9 / (double)r->time_ns;
            hl_fmt_count(row[C_OPSS].s, sizeof row[C_OPSS].s, row[C_OPSS].v);
            row[C_OPSS].valid = 1;
        }
        if (c[k].rss_ok) {
            row[C_RSS].v = (double)c[k].rss_med;
            hl_fmt_bytes(row[C_RSS].s, sizeof row[C_RSS].s, row[C_RSS].v);
            row[C_RSS].valid = 1;
            if (isfinite(fragmentation(&c[k]))) {
                row[C_FRAG].v = fragmentation(&c[k]);
                snprintf(row[C_FRAG].s, sizeof row[C_FRAG].s, "%.2f", row[C_FRAG].v);
                row[C_FRAG].valid = 1;
            }
        }
        row[C_FAULTS].v = (double)r->minor_faults + (double)r->major_faults;
        hl_fmt_count(row[C_FAULTS].s, sizeof row[C_FAULTS].s, row[C_FAULTS].v);
        row[C_FAULTS].valid = 1;
        if (r->lat[HL_OP_MALLOC].samples) {
            row[C_LAT].v = (double)r->lat[HL_OP_MALLOC].p50;
            snprintf(row[C_LAT].s, sizeof row[C_LAT].s, "%llu cyc",
                     (unsigned long long)r->lat[HL_OP_MALLOC].p50);
            row[C_LAT].valid = 1;
        }
        if (r->have_counters) {
            row[C_INSN].v = (double)r->instructions;
            row[C_L1D].v = (double)r->l1d_misses;
            row[C_LLC].v = (double)r->llc_misses;
            for (int i = C_INSN; i <= C_LLC; i++) {
                hl_fmt_count(row[i].s, sizeof row[i].s, row[i].v);
                row[i].valid = 1;
            }
        } else {
            for (int i = C_INSN; i <= C_LLC; i++)
                snprintf(row[i].s, sizeof row[i].s, "n/a");
            counters_why = r->counters_source;
        }
        snprintf(row[C_VIOL].s, sizeof row[C_VIOL].s, "%llu%s",
                 (unsigned long long)c[k].violations, c[k].violations ? " !" : "");
        any_viol |= c[k].violations > 0;
    }
    /* Best per column within each trace; a row that broke the contract never wins. */
    for (int k = 0; k < n; k++) {
        if (k > 0 && c[k].row == c[k - 1].row)
            continue;
        int end = k;
        while (end < n && c[end].row == c[k].row)
            end++;
        if (end - k < 2)
            continue;
        for (int col = 0; col < NCOL; col++) {
            if (!col_rank[col])
                continue;
            int best = -1;
            for (int i = k; i < end; i++) {
                if (!t[i][col].valid || c[i].violations)
                    continue;
                if (best < 0 || (col_rank[col] > 0 ? t[i][col].v < t[best][col].v
                                                   : t[i][col].v > t[best][col].v))
                    best = i;
            }
            for (int i = k; best >= 0 && i < end; i++)
                if (t[i][col].valid && !c[i].violations && t[i][col].v == t[best][col].v) {
                    size_t l = strlen(t[i][col].s);
                    if (l + 2 < sizeof t[i][col].s)
                        memcpy(t[i][col].s + l, " *", 3);
                }
        }
    }
    int w[NCOL], show[NCOL];
    /* Counters that nobody measured are one note, not three columns of n/a. */
    int all_na = 1;
    for (int k = 0; k < n; k++)
        all_na &= !c[k].med.have_counters;
    for (int col = 0; col < NCOL; col++) {
        show[col] = !(all_na && col >= C_INSN && col <= C_LLC);
        w[col] = (int)strlen(col_name[col]);
        for (int k = 0; k < n; k++)
            if ((int)strlen(t[k][col].s) > w[col])
                w[col] = (int)strlen(t[k][col].s);
    }
    for (int col = 0; col < NCOL; col++)
        if (show[col])
            fprintf(f, col <= C_ALLOC ? "%-*s  " : "%*s  ", w[col], col_name[col]);
    fputc('\n', f);
    for (int k = 0; k < n; k++) {
        for (int col = 0; col < NCOL; col++) {
            if (!show[col])
                continue;
            if (col <= C_ALLOC)
                fprintf(f, "%-*s  ", w[col], t[k][col].s);
            else
                fprintf(f, "%*s  ", w[col], t[k][col].s);
        }
        fputc('\n', f);
    }
    fprintf(f, "\n* best in its column for the trace (median of %d run%s; %s threads, touch=%s, "
               "check=%s)\n",
            n ? c[0].runs : 0, n && c[0].runs == 1 ? "" : "s", m->threads_mode, m->touch,
            m->check);
    if (any_viol)
        fprintf(f, "! the allocator broke the malloc contract during replay (details: "
                   "--format json); it is never marked best\n");
    for (int k = 0; k < n; k++) {
        const struct hl_plan_info *p = &c[k].row->plan;
        if ((k == 0 || c[k].row != c[k - 1].row) && (p->skipped_unknown || p->skipped_failed))
            fprintf(f, "%s: skipped %llu free/realloc of unknown or already freed blocks and "
                       "%llu failed calls (not replayed)\n",
                    c[k].row->name, (unsigned long long)p->skipped_unknown,
                    (unsigned long long)p->skipped_failed);
    }
    for (int k = 0; k < n; k++)
        if (c[k].na[0])
            fprintf(f, "%s: %s: %s\n", c[k].row->name, c[k].alloc->name, c[k].na);
    if (all_na && counters_why)
        fprintf(f, "counters: %s\n", counters_why);
    /* Each variant once: the variables its workers ran with. */
    for (int k = 0; k < n; k++) {
        const struct hl_alloc *a = c[k].alloc;
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = c[j].alloc == a;
        if (seen || !a->nenv)
            continue;
        fprintf(f, "%s ran with", a->name);
        for (int i = 0; i < a->nenv; i++)
            fprintf(f, " %s", a->env[i]);
        fputc('\n', f);
    }
    free(t);
}
