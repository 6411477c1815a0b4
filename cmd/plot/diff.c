/*
 * diff.c: two result sets compared cell by cell (`heaplab diff`, plot.h).
 *
 * Cells match on trace (its hash, else its file name without the folder), process and
 * allocator, so that a reference and a new run match wherever their traces were
 * written.  Per metric the ratio new/base is reported, and whether the change is beyond
 * the run-to-run spread:
 *   time, rss      measured over several runs, with min and max: a change is beyond
 *                  the spread when the two runs' min..max ranges do not overlap
 *                  (worse: new min > base max; better: new max < base min);
 *   instructions,  single values: any difference is beyond the spread.  Simulated
 *   l1d, llc,      counts (--counters=sim) repeat exactly for single-threaded traces,
 *   faults         so this is the metric for a gate that must not flake.
 * Except on cells replayed with several threads (recorded_threads > 1, threads_mode
 * recorded): there the counts move by a few percent from run to run (threads waiting
 * on each other spin), so their changes are printed but no rule judges them.
 * A rule ALLOC:METRIC>PCT% fails when some cell of ALLOC got worse beyond the spread
 * and by more than PCT percent; a rule that finds no cell with the metric in both sets
 * fails too (a gate that compares nothing must not pass).
 */
#include "plot.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const struct diff_metric {
    const char *name;
    enum hl_col col, lo, hi; /* lo, hi: HL_NCOLS when single-valued */
    int bytes, ns;
} metrics[] = {
    {"time", HL_RES_TIME_NS, HL_RES_TIME_NS_MIN, HL_RES_TIME_NS_MAX, 0, 1},
    {"rss", HL_RES_PEAK_RSS, HL_RES_PEAK_RSS_MIN, HL_RES_PEAK_RSS_MAX, 1, 0},
    {"faults", HL_RES_MINOR_FAULTS, HL_NCOLS, HL_NCOLS, 0, 0},
    {"instructions", HL_RES_INSTRUCTIONS, HL_NCOLS, HL_NCOLS, 0, 0},
    {"l1d", HL_RES_L1D_MISSES, HL_NCOLS, HL_NCOLS, 0, 0},
    {"llc", HL_RES_LLC_MISSES, HL_NCOLS, HL_NCOLS, 0, 0},
};
#define NMETRICS (int)(sizeof metrics / sizeof metrics[0])

int hl_diff_metric(const char *name)
{
    for (int i = 0; i < NMETRICS; i++)
        if (strcmp(metrics[i].name, name) == 0)
            return i;
    return -1;
}

const char *hl_diff_metric_names(void)
{
    static char names[128];
    size_t l = 0;
    for (int i = 0; i < NMETRICS && l < sizeof names; i++)
        l += (size_t)snprintf(names + l, sizeof names - l, "%s%s", i ? ", " : "", metrics[i].name);
    return names;
}

int hl_diff_rule_parse(const char *s, struct hl_diff_rule *out)
{
    /* ALLOC:METRIC>PCT% ; ALLOC may itself hold ':' (a variant): the last ':' counts. */
    const char *gt = strchr(s, '>');
    if (!gt)
        return -1;
    const char *colon = NULL;
    for (const char *p = s; p < gt; p++)
        if (*p == ':')
            colon = p;
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof out->alloc)
        return -1;
    char metric[32];
    size_t ml = (size_t)(gt - colon - 1);
    if (ml == 0 || ml >= sizeof metric)
        return -1;
    memcpy(metric, colon + 1, ml);
    metric[ml] = 0;
    out->metric = hl_diff_metric(metric);
    char *end;
    out->pct = strtod(gt + 1, &end);
    if (out->metric < 0 || end == gt + 1 || strcmp(end, "%") != 0 || !(out->pct >= 0))
        return -1;
    memcpy(out->alloc, s, (size_t)(colon - s));
    out->alloc[colon - s] = 0;
    return 0;
}

static const char *v(const struct hl_row *row, enum hl_col c)
{
    return row->v[c] ? row->v[c] : "";
}

static int same_cell(const struct hl_row *a, const struct hl_row *b)
{
    if (strcmp(v(a, HL_RES_ALLOCATOR), v(b, HL_RES_ALLOCATOR)) != 0 ||
        strcmp(v(a, HL_RES_PROCESS), v(b, HL_RES_PROCESS)) != 0)
        return 0;
    if (a->v[HL_RES_TRACE_HASH] && b->v[HL_RES_TRACE_HASH])
        return strcmp(a->v[HL_RES_TRACE_HASH], b->v[HL_RES_TRACE_HASH]) == 0;
    char la[512], lb[512];
    hl_trace_label(la, sizeof la, v(a, HL_RES_TRACE));
    hl_trace_label(lb, sizeof lb, v(b, HL_RES_TRACE));
    return strcmp(la, lb) == 0;
}

static void fmt(char *out, size_t n, const struct diff_metric *m, double x)
{
    if (isnan(x))
        snprintf(out, n, "-");
    else if (m->bytes)
        hl_fmt_bytes(out, n, x);
    else if (m->ns)
        hl_fmt_ns(out, n, x);
    else
        snprintf(out, n, "%.0f", x);
}

/* Single values repeat exactly only where one replay thread ran. */
static int one_thread(const struct hl_row *r)
{
    double t = hl_row_num(r, HL_RES_RECORDED_THREADS);
    return isnan(t) || t <= 1 || strcmp(v(r, HL_RES_THREADS_MODE), "serial") == 0;
}

/* -1 better, 0 within the spread, +1 worse; *ratio = new / base. */
static int compare(const struct diff_metric *m, const struct hl_row *b, const struct hl_row *n,
                   double *ratio)
{
    double bv = hl_row_num(b, m->col), nv = hl_row_num(n, m->col);
    *ratio = nv / bv;
    if (m->lo == HL_NCOLS)
        return nv > bv ? 1 : nv < bv ? -1 : 0;
    double blo = hl_row_num(b, m->lo), bhi = hl_row_num(b, m->hi);
    double nlo = hl_row_num(n, m->lo), nhi = hl_row_num(n, m->hi);
    if (isnan(blo) || isnan(bhi) || isnan(nlo) || isnan(nhi))
        return nv > bv ? 1 : nv < bv ? -1 : 0;
    return nlo > bhi ? 1 : nhi < blo ? -1 : 0;
}

int hl_results_diff(FILE *out, const struct hl_results *base, const struct hl_results *new,
                    const struct hl_diff_rule *rules, int nrules, unsigned metric_mask, int all)
{
    int failed = 0, matched = 0;
    int *rule_cells = calloc((size_t)nrules + 1, sizeof *rule_cells);
    if (!rule_cells)
        hl_die("out of memory");
    fprintf(out, "%-28s %-24s %-12s %12s %12s %8s  %s\n", "trace", "allocator", "metric",
            "base", "new", "new/base", "verdict");
    for (int i = 0; i < new->nrows; i++) {
        const struct hl_row *n = &new->rows[i], *b = NULL;
        for (int k = 0; k < base->nrows && !b; k++)
            if (same_cell(&base->rows[k], n))
                b = &base->rows[k];
        if (!b)
            continue;
        matched++;
        char label[512];
        hl_trace_label(label, sizeof label, v(n, HL_RES_TRACE));
        for (int m = 0; m < NMETRICS; m++) {
            const struct diff_metric *dm = &metrics[m];
            double bv = hl_row_num(b, dm->col), nv = hl_row_num(n, dm->col);
            if (isnan(bv) || isnan(nv) || bv <= 0)
                continue;
            double ratio;
            int verdict = compare(dm, b, n, &ratio);
            int fail = 0;
            int gated = dm->lo != HL_NCOLS || (one_thread(b) && one_thread(n));
            for (int r = 0; r < nrules && gated; r++)
                if (rules[r].metric == m && strcmp(rules[r].alloc, v(n, HL_RES_ALLOCATOR)) == 0) {
                    rule_cells[r]++;
                    if (verdict > 0 && (ratio - 1) * 100 > rules[r].pct)
                        fail = 1;
                }
            failed |= fail;
            if (!(metric_mask & (1u << m)) || (!all && !verdict && !fail))
                continue;
            char bs[32], ns[32];
            fmt(bs, sizeof bs, dm, bv);
            fmt(ns, sizeof ns, dm, nv);
            fprintf(out, "%-28.28s %-24.24s %-12s %12s %12s %8.3f  %s%s\n", label,
                    v(n, HL_RES_ALLOCATOR), dm->name, bs, ns, ratio,
                    verdict > 0 ? "worse" : verdict < 0 ? "better" : "within spread",
                    fail ? "  FAIL" : gated ? "" : "  (threads: not gated)");
        }
    }
    fprintf(out, "\n%d cells in both; spread: time and rss changed when the runs' min..max "
                 "ranges do not overlap, counts whenever they differ\n", matched);
    for (int r = 0; r < nrules; r++)
        if (!rule_cells[r]) {
            fprintf(out, "FAIL %s:%s: no cell of %s has %s in both result sets\n",
                    rules[r].alloc, metrics[rules[r].metric].name, rules[r].alloc,
                    metrics[rules[r].metric].name);
            failed = 1;
        }
    free(rule_cells);
    return failed;
}
