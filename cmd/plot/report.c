/*
 * report.c: report.md, the Markdown page that `heaplab plot` writes next to its charts.
 *
 * It says where the numbers come from (heaplab version, CPU, kernel, date, each
 * allocator's version, library and tunables), flags allocators that broke the malloc
 * contract, and for each metric embeds the chart and gives the table of values it was
 * drawn from, the best value per trace in bold.  Metrics that were not charted are listed
 * with the reason.  It links only charts that were written.
 */
#include "plot.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The distinct values of a column, joined with ", ". */
static void distinct(const struct hl_results *r, enum hl_col col, char *out, size_t n)
{
    out[0] = 0;
    for (int i = 0; i < r->nrows; i++) {
        const char *v = r->rows[i].v[col];
        if (!v)
            continue;
        int seen = 0;
        for (int k = 0; k < i; k++)
            if (r->rows[k].v[col] && strcmp(r->rows[k].v[col], v) == 0)
                seen = 1;
        if (seen)
            continue;
        size_t len = strlen(out);
        snprintf(out + len, n - len, "%s%s", len ? ", " : "", v);
    }
    if (!out[0])
        snprintf(out, n, "not recorded");
}

/* The dates of the runs: one, or the first and the last (ISO dates sort as text). */
static void date_range(const struct hl_results *r, char *out, size_t n)
{
    const char *lo = NULL, *hi = NULL;
    for (int i = 0; i < r->nrows; i++) {
        const char *d = r->rows[i].v[HL_RES_DATE];
        if (!d)
            continue;
        if (!lo || strcmp(d, lo) < 0)
            lo = d;
        if (!hi || strcmp(d, hi) > 0)
            hi = d;
    }
    if (!lo)
        snprintf(out, n, "not recorded");
    else if (strcmp(lo, hi) == 0)
        snprintf(out, n, "%s", lo);
    else
        snprintf(out, n, "%s to %s", lo, hi);
}

static const char *chart_file(const struct hl_chart_opts *o, const struct hl_chart *c,
                              char *buf, size_t n)
{
    snprintf(buf, n, "%s.%s", c->id, o->png ? "png" : "svg");
    return buf;
}

static void embed(FILE *f, const struct hl_chart_opts *o, const struct hl_chart *c)
{
    char file[160];
    fprintf(f, "![%s](%s)", c->title, chart_file(o, c, file, sizeof file));
    if (o->png && o->svg)
        fprintf(f, "\n\n[%s.svg](%s.svg) (vector)", c->id, c->id);
    fputs("\n\n", f);
}

static void fmt_metric(char *buf, size_t n, const struct hl_metric *m, double v)
{
    if (isnan(v))
        snprintf(buf, n, "-");
    else if (m->bytes)
        hl_fmt_bytes(buf, n, v);
    else if ((m->col == HL_RES_TIME_NS || m->col == HL_RES_ALLOC_TIME_NS) && v >= 1000)
        hl_fmt_ns(buf, n, v);
    else if (m->col == HL_RES_TIME_NS || m->col == HL_RES_ALLOC_TIME_NS)
        snprintf(buf, n, v < 10 ? "%.2f ns" : "%.1f ns", v);
    else if (m->col == HL_RES_FRAGMENTATION)
        snprintf(buf, n, "%.2f", v);
    else if (m->per_op)
        snprintf(buf, n, v < 10 ? "%.2f" : "%.1f", v);
    else
        hl_fmt_count(buf, n, v);
}

static double table_value(const struct hl_results *r, const struct hl_metric *m, int g, int a)
{
    const struct hl_row *row = hl_results_find(r, g, a);
    return row ? hl_metric_value(m, row, NULL, NULL) : NAN;
}

/* The values of one metric, a row per trace and a column per allocator; allocators and
 * traces without any value for it are left out (the chart names them). */
static void metric_table(FILE *f, const struct hl_results *r, const struct hl_metric *m,
                         const struct hl_chart_opts *o)
{
    int *col = calloc((size_t)r->nallocs + 1, sizeof *col);
    if (!col)
        hl_die("out of memory");
    for (int a = 0; a < r->nallocs; a++)
        for (int g = 0; g < r->ngroups; g++)
            col[a] |= !isnan(table_value(r, m, g, a));
    fputs("| trace |", f);
    for (int a = 0; a < r->nallocs; a++)
        if (col[a]) {
            fputc(' ', f);
            hl_md_cell(f, r->alloc[a], "-");
            fputs(" |", f);
        }
    fputs("\n|---|", f);
    for (int a = 0; a < r->nallocs; a++)
        if (col[a])
            fputs("---:|", f);
    fputc('\n', f);
    for (int g = 0; g < r->ngroups; g++) {
        double best = NAN;
        int any = 0;
        for (int a = 0; a < r->nallocs; a++) {
            double v = table_value(r, m, g, a);
            any |= !isnan(v);
            if (hl_row_num(hl_results_find(r, g, a), HL_RES_VIOLATIONS) > 0)
                continue; /* broke the contract: never the winner */
            if (!isnan(v) && (isnan(best) || (m->lower_is_better ? v < best : v > best)))
                best = v;
        }
        if (!any)
            continue;
        double refv = o->normalise ? table_value(r, m, g, o->norm_index) : NAN;
        fputs("| ", f);
        hl_md_cell(f, r->label[g], "-");
        fputs(" |", f);
        for (int a = 0; a < r->nallocs; a++) {
            if (!col[a])
                continue;
            double v = table_value(r, m, g, a);
            char buf[64];
            fmt_metric(buf, sizeof buf, m, v);
            int bold = !isnan(v) && v == best;
            int broke = hl_row_num(hl_results_find(r, g, a), HL_RES_VIOLATIONS) > 0;
            fprintf(f, " %s%s%s%s", bold ? "**" : "", buf, bold ? "**" : "",
                    broke ? " (!)" : "");
            if (refv > 0 && !isnan(v))
                fprintf(f, " (%.2fx)", v / refv);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    free(col);
}

/* At a glance: per allocator, the geometric mean over the traces of its time, peak RSS
 * and instructions relative to one allocator (--normalise, else glibc, else the first);
 * a geometric mean because the ratios multiply (2x faster on one trace and 2x slower on
 * another is even). */
static void summary(FILE *f, const struct hl_results *r, const struct hl_chart_opts *o)
{
    int ref = o->normalise ? o->norm_index : hl_results_alloc(r, "glibc");
    if (ref < 0)
        ref = 0;
    static const char *const ids[] = {"time", "alloc-time", "peak-rss", "instructions"};
    const struct hl_metric *ms[4];
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < hl_nmetrics; i++)
            if (strcmp(hl_metrics[i].id, ids[k]) == 0)
                ms[k] = &hl_metrics[i];
    double gm[64][4];
    int cnt[64][4], shown[4] = {0, 0, 0, 0};
    int na = r->nallocs < 64 ? r->nallocs : 64;
    for (int a = 0; a < na; a++)
        for (int k = 0; k < 4; k++) {
            double logsum = 0;
            int n = 0;
            for (int g = 0; g < r->ngroups; g++) {
                const struct hl_row *x = hl_results_find(r, g, a), *y = hl_results_find(r, g, ref);
                double v = x ? hl_metric_value(ms[k], x, NULL, NULL) : NAN;
                double w = y ? hl_metric_value(ms[k], y, NULL, NULL) : NAN;
                if (v > 0 && w > 0) {
                    logsum += log(v / w);
                    n++;
                }
            }
            cnt[a][k] = n;
            gm[a][k] = n ? exp(logsum / n) : NAN;
            shown[k] |= n > 0 && a != ref;
        }
    if (!shown[0] && !shown[2])
        return;
    fprintf(f, "## Summary\n\nEach allocator against %s: the geometric mean, over the traces "
               "both replayed, of its value divided by %s's (below 1.00 is better; the "
               "number of traces in parentheses).  The sections below give every trace.\n\n"
               "| allocator |", r->alloc[ref], r->alloc[ref]);
    static const char *const heads[] = {"time per operation", "time in allocator calls",
                                        "peak RSS", "instructions"};
    for (int k = 0; k < 4; k++)
        if (shown[k])
            fprintf(f, " %s |", heads[k]);
    fputs("\n|---|", f);
    for (int k = 0; k < 4; k++)
        if (shown[k])
            fputs("---:|", f);
    fputc('\n', f);
    /* An allocator that broke the contract anywhere is flagged and never the best. */
    int broke[64] = {0};
    for (int i = 0; i < r->nrows; i++)
        if (hl_row_num(&r->rows[i], HL_RES_VIOLATIONS) > 0) {
            int a = hl_results_alloc(r, r->rows[i].v[HL_RES_ALLOCATOR]);
            if (a >= 0 && a < 64)
                broke[a] = 1;
        }
    double best[4];
    for (int k = 0; k < 4; k++) {
        best[k] = NAN;
        for (int a = 0; a < na; a++)
            if (!broke[a] && !isnan(gm[a][k]) && (isnan(best[k]) || gm[a][k] < best[k]))
                best[k] = gm[a][k];
    }
    for (int a = 0; a < na; a++) {
        fputs("| ", f);
        hl_md_cell(f, r->alloc[a], "-");
        fputs(broke[a] ? " (!) |" : " |", f);
        for (int k = 0; k < 4; k++) {
            if (!shown[k])
                continue;
            int bold = !broke[a] && gm[a][k] == best[k];
            if (isnan(gm[a][k]))
                fputs(" - |", f);
            else
                fprintf(f, " %s%.2f%s (%d) |", bold ? "**" : "", gm[a][k], bold ? "**" : "",
                        cnt[a][k]);
        }
        fputc('\n', f);
    }
    fputc('\n', f);
    for (int a = 0; a < na; a++)
        if (broke[a]) {
            fprintf(f, "(!) broke the malloc contract on some trace (see Correctness): its "
                       "figures are not comparable.\n\n");
            break;
        }
}

void hl_report_write(const char *path, const struct hl_results *r,
                     const struct hl_timelines *tl, const struct hl_charts *charts,
                     const struct hl_chart_opts *o, const char *input)
{
    FILE *f = fopen(path, "w");
    if (!f)
        hl_die("%s: %s", path, strerror(errno));
    char buf[2048];
    const char *base = strrchr(input, '/');
    base = base ? base + 1 : input;

    fprintf(f, "# Allocator comparison\n\n");
    fprintf(f, "Made by `heaplab plot` from `%s`: %d traces replayed against %d allocators. "
               "Each allocator ran in its own worker process with its library preloaded; "
               "values are medians of the runs.\n\n", base, r->ngroups, r->nallocs);

    summary(f, r, o);

    fprintf(f, "## Provenance\n\n| | |\n|---|---|\n");
    static const struct { enum hl_col col; const char *label; } prov[] = {
        {HL_RES_HEAPLAB_VERSION, "heaplab version"}, {HL_RES_CPU, "CPU"},
        {HL_RES_HOST, "host"}, {HL_RES_CORES, "cores"}, {HL_RES_LIBC, "C library"},
        {HL_RES_KERNEL, "kernel"}, {HL_RES_DATE, "date of the runs"},
        {HL_RES_RUNS, "runs per allocator"}, {HL_RES_THREADS_MODE, "thread mode"},
        {HL_RES_TOUCH, "memory touched"}, {HL_RES_COUNTERS_SOURCE, "cache counters"},
    };
    for (size_t i = 0; i < sizeof prov / sizeof prov[0]; i++) {
        if (prov[i].col == HL_RES_DATE)
            date_range(r, buf, sizeof buf);
        else
            distinct(r, prov[i].col, buf, sizeof buf);
        fprintf(f, "| %s | ", prov[i].label);
        hl_md_cell(f, buf, "-");
        fputs(" |\n", f);
    }
    if (o->normalise)
        fprintf(f, "| normalised to | %s |\n", o->normalise);

    fprintf(f, "\n## Allocators\n\nThe colour of an allocator is the same in every chart.\n\n"
               "| allocator | version | library | tunables in effect |\n|---|---|---|---|\n");
    for (int a = 0; a < r->nallocs; a++) {
        const struct hl_row *row = NULL;
        for (int i = 0; i < r->nrows && !row; i++)
            if (strcmp(r->rows[i].v[HL_RES_ALLOCATOR], r->alloc[a]) == 0)
                row = &r->rows[i];
        if (!row)
            continue; /* seen only in a timeline */
        fputs("| ", f);
        hl_md_cell(f, r->alloc[a], "-");
        fputs(" | ", f);
        hl_md_cell(f, row->v[HL_RES_ALLOCATOR_VERSION], "-");
        fputs(" | ", f);
        if (row->v[HL_RES_ALLOCATOR_PATH]) {
            fputc('`', f);
            hl_md_cell(f, row->v[HL_RES_ALLOCATOR_PATH], "-");
            fputc('`', f);
        } else {
            fputs("the system's (no preload)", f);
        }
        fputs(" | ", f);
        /* A variant's own settings, else what every worker inherited. */
        const char *t = row->v[HL_RES_SETTINGS] ? row->v[HL_RES_SETTINGS] : row->v[HL_RES_TUNABLES];
        if (t && t[strlen(t) - 1] != '=') {
            fputc('`', f);
            hl_md_cell(f, t, "-");
            fputc('`', f);
        } else {
            fputs("defaults", f);
        }
        fputs(" |\n", f);
    }

    fprintf(f, "\n## Traces\n\n| trace | file | hash | events | peak live bytes |\n"
               "|---|---|---|---:|---:|\n");
    for (int g = 0; g < r->ngroups; g++) {
        const struct hl_row *row = NULL;
        for (int i = 0; i < r->nrows && !row; i++)
            if (r->row_group[i] == g)
                row = &r->rows[i];
        char ops[32], live[32];
        double nops = hl_row_num(row, HL_RES_OPS), nlive = hl_row_num(row, HL_RES_PEAK_LIVE);
        fputs("| ", f);
        hl_md_cell(f, r->label[g], "-");
        fputs(" | `", f);
        hl_md_cell(f, row->v[HL_RES_TRACE], "-");
        fputs("` | ", f);
        hl_md_cell(f, row->v[HL_RES_TRACE_HASH], "-");
        fprintf(f, " | %s | %s |\n", isnan(nops) ? "-" : hl_fmt_count(ops, sizeof ops, nops),
                isnan(nlive) ? "-" : hl_fmt_bytes(live, sizeof live, nlive));
    }

    /* A fast allocator that breaks the contract must not look like a winner. */
    int have_checks = 0, bad = 0;
    for (int i = 0; i < r->nrows; i++) {
        double v = hl_row_num(&r->rows[i], HL_RES_VIOLATIONS);
        have_checks |= !isnan(v);
        bad |= v > 0;
    }
    fprintf(f, "\n## Correctness\n\n");
    if (!have_checks) {
        fprintf(f, "The results do not say whether the allocators' blocks were checked.\n");
    } else if (!bad) {
        fprintf(f, "No allocator broke the malloc contract on these traces (alignment, "
                   "usable size, zeroed calloc memory).\n");
    } else {
        fprintf(f, "**Warning: some allocators broke the malloc contract; their numbers "
                   "are not comparable.**\n\n| trace | allocator | violations |\n|---|---|---:|\n");
        for (int i = 0; i < r->nrows; i++)
            if (hl_row_num(&r->rows[i], HL_RES_VIOLATIONS) > 0) {
                fputs("| ", f);
                hl_md_cell(f, r->label[r->row_group[i]], "-");
                fputs(" | ", f);
                hl_md_cell(f, r->rows[i].v[HL_RES_ALLOCATOR], "-");
                fprintf(f, " | %s |\n", r->rows[i].v[HL_RES_VIOLATIONS]);
            }
    }

    /* Bar charts, one section each. */
    for (int i = 0; i < charts->n; i++) {
        const struct hl_chart *c = &charts->c[i];
        if (!c->metric || !c->drawn)
            continue;
        fprintf(f, "\n## %s\n\n%c%s.\n\n", c->title, toupper((unsigned char)c->metric->what[0]),
                c->metric->what + 1);
        embed(f, o, c);
        if (c->missing[0])
            fprintf(f, "Not measured, so not in the chart: %s.\n\n", c->missing);
        metric_table(f, r, c->metric, o);
        if (bad)
            fprintf(f, "(!) marks an allocator that broke the malloc contract on that "
                       "trace; it is never marked best.\n\n");
    }

    int any_tl = 0;
    for (int i = 0; i < charts->n; i++)
        any_tl |= strncmp(charts->c[i].id, "memory-", 7) == 0 && charts->c[i].drawn;
    fprintf(f, "\n## Memory over time\n\n");
    if (any_tl) {
        fprintf(f, "The grey area is the trace's live bytes (what the program asked for and "
                   "had not freed); each line is an allocator's RSS at the same point of the "
                   "trace.  The gap between a line and the area is fragmentation and "
                   "overhead; a line that comes down is memory given back to the system.\n\n");
        for (int i = 0; i < charts->n; i++)
            if (strncmp(charts->c[i].id, "memory-", 7) == 0 && charts->c[i].drawn) {
                fprintf(f, "### %s\n\n", charts->c[i].title);
                embed(f, o, &charts->c[i]);
            }
    } else {
        fprintf(f, "No timeline was given (`heaplab replay --timeline FILE`, then "
                   "`heaplab plot ... --timeline FILE`).\n");
    }
    (void)tl;

    /* Latency: one table for all traces, then the charts. */
    int any_lat = 0;
    for (int i = 0; i < charts->n; i++)
        any_lat |= strncmp(charts->c[i].id, "latency-", 8) == 0 && charts->c[i].drawn;
    fprintf(f, "\n## Call latency\n\n");
    if (any_lat) {
        static const enum hl_col lat[] = {
            HL_RES_LAT_MALLOC_P50, HL_RES_LAT_MALLOC_P99, HL_RES_LAT_MALLOC_P999,
            HL_RES_LAT_MALLOC_MAX, HL_RES_LAT_FREE_P50, HL_RES_LAT_FREE_P99,
            HL_RES_LAT_FREE_P999, HL_RES_LAT_FREE_MAX};
        fprintf(f, "CPU cycles per call, sampled; the charts use a logarithmic scale.\n\n"
                   "| trace | allocator | malloc p50 | p99 | p99.9 | max | free p50 | p99 | "
                   "p99.9 | max |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (int g = 0; g < r->ngroups; g++)
            for (int a = 0; a < r->nallocs; a++) {
                const struct hl_row *row = hl_results_find(r, g, a);
                if (!row)
                    continue;
                fputs("| ", f);
                hl_md_cell(f, r->label[g], "-");
                fputs(" | ", f);
                hl_md_cell(f, r->alloc[a], "-");
                for (size_t k = 0; k < sizeof lat / sizeof lat[0]; k++) {
                    double v = hl_row_num(row, lat[k]);
                    char b[32];
                    fprintf(f, " | %s", isnan(v) ? "-" : hl_fmt_count(b, sizeof b, v));
                }
                fputs(" |\n", f);
            }
        fputc('\n', f);
        for (int i = 0; i < charts->n; i++)
            if (strncmp(charts->c[i].id, "latency-", 8) == 0 && charts->c[i].drawn) {
                fprintf(f, "### %s\n\n", charts->c[i].title);
                embed(f, o, &charts->c[i]);
            }
    } else {
        fprintf(f, "No latency samples in the results.\n");
    }

    int skipped = 0;
    for (int i = 0; i < charts->n; i++)
        if (!charts->c[i].drawn) {
            if (!skipped++)
                fprintf(f, "\n## Not charted\n\n");
            fprintf(f, "- %s: %s.\n", charts->c[i].title, charts->c[i].note);
        }
    if (ferror(f) | fclose(f))
        hl_die("%s: write error", path);
}
