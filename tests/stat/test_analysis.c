/*
 * test_analysis.c: the analysis engine behind `heaplab stat`, fed hand-built event
 * sequences whose every figure is worked out by hand in the comments.
 */
#include "analysis.h"
#include "tap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N HL_NO_SLOT

static struct hl_event ev(uint64_t t, uint32_t thr, int op, uint64_t size, uint64_t aux,
                          uint64_t slot, uint64_t old, int flags)
{
    struct hl_event e = {t, size, aux, slot, old, thr, (uint8_t)op, (uint8_t)flags};
    return e;
}

static int near(double got, double want)
{
    return fabs(got - want) <= 1e-9 * (fabs(want) > 1 ? fabs(want) : 1);
}

/* live bytes 1000 on [0 s, 1 s), 2000 on [1 s, 2 s): the time-weighted least-squares
 * line has slope 0.75 * 1000 B/s and R^2 = 0.75 (x uniform on [0,2): var 1/3,
 * cov(x, y) = 250). */
static void test_trend_exact(void)
{
    struct hl_event e[] = {
        ev(0, 0, HL_OP_MALLOC, 1000, 0, 0, N, 0),
        ev(1000000000, 0, HL_OP_MALLOC, 1000, 0, 1, N, 0),
        ev(2000000000, 0, HL_OP_FREE, 0, 0, 0, N, 0),
    };
    struct hl_analysis *a = hl_analysis_new();
    hl_analysis_feed(a, e, 3);
    hl_analysis_finish(a);
    TAP_CHECK(near(a->slope_bytes_per_s, 750.0), "trend: slope of a step is 750 B/s");
    TAP_CHECK(near(a->r2_time, 0.75), "trend: R^2 of a step is 0.75");
    /* per event: points (0,1000) (1,2000) (2,1000): no slope, no fit */
    TAP_CHECK(near(a->slope_bytes_per_event, 0.0), "trend: per-event slope is 0 for up-down");
    TAP_EQ_U(a->peak_live, 2000, "peak live bytes");
    TAP_EQ_U(a->peak_event, 1, "peak reached at event 1");
    TAP_EQ_U(a->peak_time_ns, 1000000000, "peak reached at 1 s");
    TAP_EQ_U(a->leaked_blocks, 1, "one block leaked");
    TAP_EQ_U(a->leaked_bytes, 1000, "1000 bytes leaked");
    TAP_EQ_U(a->life_events_hist[2], 1, "lifetime of 2 events in bucket [2,3]");
    TAP_EQ_U(a->life_ns_hist[9], 1, "lifetime of 2 s in decade bucket [1e9,1e10) ns");
    hl_analysis_free(a);
}

/* A slow leak: every 10 ms one 100-byte block is kept, the others are freed at once:
 * live bytes grow by 10 kB/s and the line fits well. */
static void test_trend_leak(void)
{
    struct hl_analysis *a = hl_analysis_new();
    uint64_t slot = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t t = (uint64_t)i * 1000000;
        struct hl_event e = ev(t, 0, HL_OP_MALLOC, 100, 0, slot, N, 0);
        hl_analysis_feed(a, &e, 1);
        if (i % 10) {
            e = ev(t + 500, 0, HL_OP_FREE, 0, 0, slot, N, 0);
            hl_analysis_feed(a, &e, 1);
        }
        slot++;
    }
    hl_analysis_finish(a);
    TAP_CHECK(a->slope_bytes_per_s > 9000 && a->slope_bytes_per_s < 11000,
              "trend: a slow leak of 10 kB/s shows a slope near 10 kB/s");
    TAP_CHECK(a->r2_time > 0.95, "trend: the leak's line fits (R^2 > 0.95)");
    TAP_EQ_U(a->leaked_blocks, 100, "slow leak: 100 blocks leaked");
    TAP_EQ_U(a->temporary, 900, "slow leak: the 900 freed blocks were temporary");
    hl_analysis_free(a);
}

/* Every kind of event once; the expected figures are worked out below. */
static const struct hl_event mixed[] = {
    /* 0 */ {0, 0, 0, 0, N, 0, HL_OP_MALLOC, 0},
    /* 1 */ {1000, 1, 0, 1, N, 0, HL_OP_MALLOC, 0},
    /* 2 */ {2000, 24, 0, 2, N, 0, HL_OP_MALLOC, 0},
    /* 3 */ {3000, 0, 0, 2, N, 0, HL_OP_FREE, 0},           /* temporary */
    /* 4 */ {4000, 24, 0, 3, N, 1, HL_OP_MALLOC, 0},
    /* 5 */ {5000, 0, 0, 3, N, 0, HL_OP_FREE, 0},           /* cross-thread */
    /* 6 */ {6000, 24, 10, 4, N, 0, HL_OP_CALLOC, 0},       /* 240 bytes */
    /* 7 */ {7000, 480, 0, 5, 4, 0, HL_OP_REALLOC, 0},      /* grow x2 */
    /* 8 */ {8000, 480, 0, 6, 5, 0, HL_OP_REALLOC, 0},      /* same */
    /* 9 */ {9000, 100, 0, 7, 6, 0, HL_OP_REALLOC, 0},      /* shrink */
    /* 10 */ {10000, 24, 0, 8, N, 0, HL_OP_REALLOC, 0},     /* from NULL */
    /* 11 */ {11000, 1ull << 62, 0, N, N, 0, HL_OP_MALLOC, HL_EV_FAILED},
    /* 12 */ {12000, 0, 0, N, N, 0, HL_OP_FREE, HL_EV_UNKNOWN},
    /* 13 */ {13000, 0, 0, N, N, 0, HL_OP_FREE, 0},         /* free(NULL) */
    /* 14 */ {14000, 64, 4096, 9, N, 1, HL_OP_POSIX_MEMALIGN, 0},
    /* 15 */ {15000, 0, 0, 9, N, 1, HL_OP_FREE, 0},         /* temporary (thread 1) */
    /* 16 */ {16000, 0, 0, 0, N, 0, HL_OP_FREE, 0},         /* lives 16 events */
};
#define NMIXED (sizeof mixed / sizeof mixed[0])

static void check_mixed(struct hl_analysis *a, const char *how)
{
    TAP_EQ_U(a->events, 17, "mixed: 17 events");
    int ok = a->ops[HL_OP_MALLOC] == 5 && a->ops[HL_OP_CALLOC] == 1 && a->ops[HL_OP_REALLOC] == 4 &&
             a->ops[HL_OP_FREE] == 6 && a->ops[HL_OP_POSIX_MEMALIGN] == 1;
    TAP_CHECK(ok, "mixed (%s): op counts", how);
    TAP_EQ_U(a->failed[HL_OP_MALLOC], 1, "mixed: one failed malloc");
    TAP_EQ_U(a->allocations, 10, "mixed: 10 blocks created");
    TAP_EQ_U(a->frees, 7, "mixed: 7 blocks given back (frees and moving reallocs)");
    TAP_EQ_U(a->bytes_requested, 1437, "mixed: bytes requested (calloc counts nmemb*size)");
    /* live after each event: 0 1 25 1 25 1 241 481 481 101 125 125 125 125 189 125 125 */
    TAP_EQ_U(a->peak_live, 481, "mixed: peak live bytes");
    TAP_EQ_U(a->peak_event, 7, "mixed: peak first reached at event 7");
    TAP_EQ_U(a->peak_time_ns, 7000, "mixed: peak time");
    TAP_EQ_U(a->leaked_blocks, 3, "mixed: 3 blocks leaked");
    TAP_EQ_U(a->leaked_bytes, 125, "mixed: 125 bytes leaked");
    TAP_CHECK(a->nleak_sizes == 3 && a->leaks_by_size[0].size == 100 &&
                  a->leaks_by_size[1].size == 24 && a->leaks_by_size[2].size == 1,
              "mixed: leaks grouped by size, largest bytes first");
    TAP_EQ_U(a->unknown_frees, 1, "mixed: unknown free counted");
    TAP_EQ_U(a->null_frees, 1, "mixed: free(NULL) counted");
    TAP_EQ_U(a->double_frees, 0, "mixed: no double free");
    TAP_EQ_U(a->cross_thread_frees, 1, "mixed: one cross-thread free");
    TAP_EQ_U(a->temporary, 2, "mixed: two temporary allocations");
    /* sizes 0 | 1 | 24 24 24 | 64 100 | 240 | 480 480 */
    uint64_t want[HL_AN_POW2_BUCKETS] = {0};
    want[0] = 1, want[1] = 1, want[5] = 3, want[7] = 2, want[8] = 1, want[9] = 2;
    TAP_CHECK(memcmp(a->size_hist, want, sizeof want) == 0, "mixed: power-of-two size histogram");
    TAP_EQ_U(a->size_hist_bytes[9], 960, "mixed: bytes in the 256-511 bucket");
    TAP_CHECK(a->nsizes == 7 && a->sizes[0].size == 24 && a->sizes[0].count == 3 &&
                  a->sizes[1].size == 480 && a->sizes[1].count == 2 && a->sizes[2].size == 0,
              "mixed: top exact sizes by count");
    TAP_CHECK(a->life_events_hist[1] == 6 && a->life_events_hist[5] == 1,
              "mixed: lifetime histogram in events");
    TAP_CHECK(a->life_ns_hist[3] == 6 && a->life_ns_hist[4] == 1, "mixed: lifetime histogram in ns");
    TAP_CHECK(a->realloc_grow == 1 && a->realloc_same == 1 && a->realloc_shrink == 1 &&
                  a->realloc_from_null == 1,
              "mixed: realloc grow/same/shrink/from NULL");
    TAP_CHECK(a->growth_hist[2] == 1 && near(exp(a->growth_log_sum / (double)a->growth_log_n), 2.0),
              "mixed: growth factor 2 in the (1.5, 2] bucket");
    TAP_CHECK(a->nthreads == 2 && a->threads[0].allocs == 8 && a->threads[1].allocs == 2 &&
                  a->threads[0].frees == 6 && a->threads[1].frees == 1 &&
                  a->threads[0].cross_frees == 1 && a->threads[1].temporary == 1,
              "mixed: per-thread counts");
}

static void test_mixed(void)
{
    struct hl_analysis *a = hl_analysis_new();
    hl_analysis_feed(a, mixed, NMIXED);
    hl_analysis_finish(a);
    check_mixed(a, "one batch");
    hl_analysis_free(a);

    /* Streaming: the batch boundaries must not matter. */
    a = hl_analysis_new();
    for (size_t i = 0; i < NMIXED; i++)
        hl_analysis_feed(a, &mixed[i], 1);
    hl_analysis_finish(a);
    TAP_CHECK(a->peak_live == 481 && a->temporary == 2 && a->frees == 7 && a->leaked_bytes == 125,
              "mixed fed one event at a time gives the same figures");
    hl_analysis_free(a);
}

static void test_double_free(void)
{
    struct hl_event e[] = {
        ev(0, 0, HL_OP_MALLOC, 8, 0, 0, N, 0),
        ev(1, 0, HL_OP_FREE, 0, 0, 0, N, 0),
        ev(2, 0, HL_OP_FREE, 0, 0, 0, N, 0),
    };
    struct hl_analysis *a = hl_analysis_new();
    hl_analysis_feed(a, e, 3);
    hl_analysis_finish(a);
    TAP_EQ_U(a->double_frees, 1, "a free of a slot no longer live is a double free");
    TAP_EQ_U(a->live_bytes, 0, "a double free does not make live bytes negative");
    hl_analysis_free(a);
}

static void test_merge(void)
{
    struct hl_analysis *t = hl_analysis_new(), *a = hl_analysis_new(), *b = hl_analysis_new();
    hl_analysis_finish(t);
    hl_analysis_feed(a, mixed, NMIXED);
    hl_analysis_finish(a);
    struct hl_event e[] = {ev(0, 0, HL_OP_MALLOC, 24, 0, 0, N, 0), ev(5, 0, HL_OP_MALLOC, 4000, 0, 1, N, 0)};
    hl_analysis_feed(b, e, 2);
    hl_analysis_finish(b);
    hl_analysis_merge(t, a);
    hl_analysis_merge(t, b);
    TAP_EQ_U(t->events, 19, "merge: events add up");
    TAP_EQ_U(t->peak_live, 4024, "merge: peak is the largest process's peak");
    TAP_EQ_U(t->leaked_bytes, 125 + 4024, "merge: leaks add up");
    TAP_CHECK(t->sizes[0].size == 24 && t->sizes[0].count == 4, "merge: exact size tables merge");
    TAP_EQ_U(t->nthreads, 3, "merge: threads of each process are listed");
    hl_analysis_free(t);
    hl_analysis_free(a);
    hl_analysis_free(b);
}

/* Memory follows live blocks: a million alloc/free pairs with one block live at a time
 * must not grow the live map (checked indirectly: it runs and ends with no leak). */
static void test_many(void)
{
    struct hl_analysis *a = hl_analysis_new();
    struct hl_event e[2];
    for (uint32_t i = 0; i < 200000; i++) {
        e[0] = ev(2 * (uint64_t)i, i % 4, HL_OP_MALLOC, 16 + i % 100, 0, i, N, 0);
        e[1] = ev(2 * (uint64_t)i + 1, (i + 1) % 4, HL_OP_FREE, 0, 0, i, N, 0);
        hl_analysis_feed(a, e, 2);
    }
    hl_analysis_finish(a);
    TAP_CHECK(a->leaked_blocks == 0 && a->peak_blocks == 1 && a->cross_thread_frees == 200000,
              "200k alloc/free pairs across 4 threads: no leak, one block live at a time");
    TAP_EQ_U(a->nsizes, 100, "100 distinct sizes");
    hl_analysis_free(a);
}

int main(void)
{
    test_trend_exact();
    test_trend_leak();
    test_mixed();
    test_double_free();
    test_merge();
    test_many();
    return tap_done();
}
