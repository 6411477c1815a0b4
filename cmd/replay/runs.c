/*
 * runs.c: the runs of one trace row and their aggregation (see runs.h).
 *
 * Runs are interleaved across allocators, A B C A B C, so that drift on the machine
 * hits all of them alike.  After the timed runs come the runs whose time is not
 * reported: the verification run (contract checks) and, with --counters=sim, the run
 * under callgrind.
 */
#include "runs.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_sample(const void *a, const void *b)
{
    const struct hl_rp_tlsample *x = a, *y = b;
    return x->op_index < y->op_index ? -1 : x->op_index > y->op_index;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The time limit of the next run (runs.h); shortest: the shortest run seen, 0: none. */
static long run_limit(const struct hl_rp_runner *rn, double shortest)
{
    if (rn->wo.timeout_s > 0)
        return rn->wo.timeout_s;
    if (shortest <= 0)
        return HL_RP_TIMEOUT_CAP_S;
    double s = shortest * HL_RP_TIMEOUT_FACTOR;
    if (s < HL_RP_TIMEOUT_MIN_S)
        s = HL_RP_TIMEOUT_MIN_S;
    return s > HL_RP_TIMEOUT_CAP_S ? HL_RP_TIMEOUT_CAP_S : (long)ceil(s);
}

/* One worker run; on failure the cell's reason goes to na (and one line to stderr).
 * Returns 0 when the run was measured. */
static int one_run(const struct hl_rp_runner *rn, const struct hl_rp_row *row,
                   const struct hl_alloc *a, const struct hl_rp_wopts *o, double *shortest,
                   struct hl_rp_result *res, struct hl_rp_tlsample **tl, const char *what,
                   char *na, size_t nalen)
{
    char why[1024];
    struct hl_rp_wopts w = *o;
    w.timeout_s = run_limit(rn, *shortest);
    const double t0 = now_s();
    int rc = hl_rp_spawn_run(a, row->plan.fd, &w, res, tl, why, sizeof why);
    const double el = now_s() - t0;
    if (rc == 0) {
        if (*shortest <= 0 || el < *shortest)
            *shortest = el;
        return 0;
    }
    if (rn->progress)
        rn->progress(NULL, 0, 0, NULL);
    /* why starts with the allocator's name; the cell names it already */
    const char *reason = why;
    size_t k = strlen(a->name);
    if (strncmp(why, a->name, k) == 0 && why[k] == ':' && why[k + 1] == ' ')
        reason = why + k + 2;
    if (rc == HL_RP_TIMED_OUT)
        snprintf(na, nalen, "n/a: timed out after %ld s", w.timeout_s);
    else
        snprintf(na, nalen, "n/a: %.80s", reason);
    hl_warn("%s: %s: %s (%s); reported as n/a", row->name, a->name, reason, what);
    return -1;
}

/* The cell of allocator a from its runs rr[0 .. runs-1] (and their timelines tt). */
static void aggregate(struct hl_rp_cell *c, struct hl_rp_result *rr, struct hl_rp_tlsample **tt,
                      int runs)
{
    uint64_t t[1000], rss[1000], st[1000];
    for (int k = 0; k < runs; k++) {
        t[k] = rr[k].time_ns;
        rss[k] = rr[k].peak_rss;
        st[k] = rr[k].startup_ns;
    }
    qsort(t, (size_t)runs, sizeof *t, cmp_u64);
    qsort(rss, (size_t)runs, sizeof *rss, cmp_u64);
    qsort(st, (size_t)runs, sizeof *st, cmp_u64);
    c->startup_med = st[(runs - 1) / 2];
    const uint64_t tmed = t[(runs - 1) / 2];
    int med = 0;
    for (int k = 0; k < runs; k++)
        if (rr[k].time_ns == tmed) {
            med = k;
            break;
        }
    c->med = rr[med];
    c->med_run = med + 1;
    c->time_min = t[0];
    c->time_max = t[runs - 1];
    c->rss_med = rss[(runs - 1) / 2];
    c->rss_min = rss[0];
    c->rss_max = rss[runs - 1];
    c->rss_ok = 1;
    for (int k = 0; k < runs; k++)
        c->rss_ok &= rr[k].rss_ok;
    c->tl = tt[med];
    c->ntl = rr[med].ntimeline;
    /* threads send their samples one after the other: put them in trace order */
    if (c->ntl)
        qsort(c->tl, c->ntl, sizeof *c->tl, cmp_sample);
    for (int k = 0; k < runs; k++)
        if (k != med) {
            free(tt[k]);
            tt[k] = NULL;
        }
}

/* A run whose time is not reported (checks, callgrind): without a timeline, with
 * check and counters as given.  Returns the result (malloc'd) or NULL, the reason then
 * in na.  shortest NULL: the limit is the cap (callgrind is slow). */
static struct hl_rp_result *extra_run(const struct hl_rp_runner *rn, const struct hl_rp_row *row,
                                      const struct hl_alloc *a, int check, int counters,
                                      const char *label, double *shortest, char *na, size_t nalen)
{
    struct hl_rp_result *r = calloc(1, sizeof *r);
    if (!r)
        hl_die("out of memory");
    struct hl_rp_wopts o = rn->wo;
    o.timeline = 0;
    o.check = check;
    o.counters = counters;
    o.gap_fd = -1; /* the checks and the counts are about the allocator's calls alone */
    if (rn->progress)
        rn->progress(row->name, rn->runs, rn->runs, label);
    double none = 0;
    if (one_run(rn, row, a, &o, shortest ? shortest : &none, r, NULL, label, na, nalen) == 0)
        return r;
    free(r);
    return NULL;
}

/* The verification run: the contract checks, untimed; its violations go to the cell. */
static void verify(const struct hl_rp_runner *rn, const struct hl_rp_row *row,
                   const struct hl_alloc *a, double *shortest, struct hl_rp_cell *c)
{
    char na[sizeof c->na];
    struct hl_rp_result *v =
        extra_run(rn, row, a, rn->wo.check, HL_CNT_NONE, "checks", shortest, na, sizeof na);
    if (!v) {
        memcpy(c->na, na, sizeof c->na);
        return;
    }
    c->violations = v->violations;
    c->med.violations = v->violations;
    memcpy(c->med.viol, v->viol, sizeof c->med.viol);
    free(v);
}

/* --counters=sim: one more run under callgrind for the counts. */
static void simulate(const struct hl_rp_runner *rn, const struct hl_rp_row *row,
                     const struct hl_alloc *a, struct hl_rp_cell *c)
{
    char na[sizeof c->na];
    struct hl_rp_result *sim =
        extra_run(rn, row, a, HL_CHECK_NONE, HL_CNT_SIM, "callgrind", NULL, na, sizeof na);
    if (!sim) {
        snprintf(c->med.counters_source, sizeof c->med.counters_source, "%s", na);
        return;
    }
    c->med.have_counters = sim->have_counters;
    c->med.have_dtlb = 0;
    c->med.instructions = sim->instructions;
    c->med.l1d_misses = sim->l1d_misses;
    c->med.llc_misses = sim->llc_misses;
    snprintf(c->med.counters_source, sizeof c->med.counters_source, "sim");
    free(sim);
}

void hl_rp_run_row(const struct hl_rp_runner *rn, const struct hl_rp_row *row, int r,
                   struct hl_rp_cell *cells)
{
    const int na_ = rn->nalloc, runs = rn->runs;
    struct hl_rp_result *all = calloc((size_t)na_ * (size_t)runs, sizeof *all);
    struct hl_rp_tlsample **tls = calloc((size_t)na_ * (size_t)runs, sizeof *tls);
    if (!all || !tls)
        hl_die("out of memory");
    struct hl_rp_wopts timed = rn->wo;
    timed.check = HL_CHECK_NONE;         /* checks run apart, untimed (verify) */
    timed.gap_fd = rn->gap_fds ? rn->gap_fds[r] : -1;
    if (timed.counters == HL_CNT_SIM)    /* timed runs natively; one extra run for counts */
        timed.counters = HL_CNT_NONE;
    double shortest = 0;
    for (int a = 0; a < na_; a++) {
        if (!hl_rp_shard_has(rn->shard, r * na_ + a))
            continue; /* another shard's cell: no row, dropped later */
        cells[a].row = row;
        cells[a].alloc = &rn->allocs[a];
        cells[a].runs = runs;
    }
    for (int k = 0; k < runs; k++)
        for (int a = 0; a < na_; a++) {
            struct hl_rp_cell *c = &cells[a];
            if (!c->row || c->na[0]) /* one failure is enough: no more runs of it here */
                continue;
            if (rn->progress)
                rn->progress(row->name, k + 1, runs, rn->allocs[a].name);
            size_t i = (size_t)a * (size_t)runs + (size_t)k;
            one_run(rn, row, &rn->allocs[a], &timed, &shortest, &all[i], &tls[i], "timed run",
                    c->na, sizeof c->na);
        }
    for (int a = 0; a < na_; a++) {
        struct hl_rp_cell *c = &cells[a];
        struct hl_rp_result *rr = &all[(size_t)a * (size_t)runs];
        struct hl_rp_tlsample **tt = &tls[(size_t)a * (size_t)runs];
        if (!c->row)
            continue;
        if (!c->na[0]) {
            aggregate(c, rr, tt, runs);
            if (rn->wo.check != HL_CHECK_NONE)
                verify(rn, row, &rn->allocs[a], &shortest, c);
            if (!c->na[0] && rn->wo.counters == HL_CNT_SIM)
                simulate(rn, row, &rn->allocs[a], c);
        }
        if (c->na[0]) {
            /* Nothing measured stands in for the runs that did not finish. */
            for (int k = 0; k < runs; k++)
                free(tt[k]); /* the median's is c->tl, if aggregated */
            memset(&c->med, 0, sizeof c->med);
            c->tl = NULL;
            c->ntl = 0;
            snprintf(c->med.counters_source, sizeof c->med.counters_source, "%s", c->na);
            c->med.ops = row->plan.ops;
        }
    }
    free(all);
    free(tls);
}
