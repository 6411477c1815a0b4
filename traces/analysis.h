/*
 * analysis.h: the streaming trace analysis behind `heaplab stat`.
 *
 * One struct hl_analysis per process section.  Events are fed in batches straight from
 * hl_reader_events(); the analysis keeps only the live blocks (a hash map keyed by slot)
 * plus fixed-size histograms and small tables, so memory follows the number of live
 * blocks and distinct sizes, never the number of events.  hl_analysis_finish() turns the
 * remaining live blocks into the leak report and drops the map.
 *
 * Definitions (what the figures mean; `stat --json` uses the same names):
 *  - bytes_requested: sum of hl_event_bytes() over allocating calls that succeeded.
 *  - live bytes: requested bytes of the blocks allocated and not yet freed; peak_live is
 *    its maximum, first reached after event peak_event (0-based index in the section).
 *  - size histogram: successful allocations by requested bytes in power-of-two buckets;
 *    bucket 0 holds size 0, bucket k >= 1 holds [2^(k-1), 2^k).
 *  - lifetime: from the allocating event to the event that frees it (free, or a realloc
 *    that moves it), in events (index difference, power-of-two buckets as above) and in
 *    nanoseconds (decade buckets: k holds [10^k, 10^(k+1)) ns, 0 ns in bucket 0).
 *    Blocks never freed have no lifetime; they are the leaks.
 *  - temporary: a block freed by free() in the same thread before that thread allocated
 *    anything else (heaptrack's notion, per thread so that interleaving does not matter).
 *  - cross-thread free: a free or moving realloc done by another thread than the one
 *    that allocated the block.
 *  - realloc growth: for reallocs of a live block, new bytes vs old bytes; growth factor
 *    buckets for the grows.
 *  - unknown frees: frees/reallocs flagged HL_EV_UNKNOWN (pointer never allocated or
 *    already freed).  double frees: a free naming a slot that is no longer live.
 *  - leak trend: least-squares line through live bytes over time, weighting each value
 *    by how long it held (live bytes is a step function of time), so bursts of events do
 *    not skew it; slope in bytes per second and R^2.  Also a plain per-event regression
 *    (slope in bytes per event), which is what traces without timestamps can use.
 */
#ifndef HEAPLAB_ANALYSIS_H
#define HEAPLAB_ANALYSIS_H

#include <stddef.h>
#include <stdint.h>

#include "trace.h"

#define HL_AN_POW2_BUCKETS 65   /* 0, then [2^(k-1), 2^k) for k = 1..64 */
#define HL_AN_DECADE_BUCKETS 14 /* [10^k, 10^(k+1)) ns, k = 0..13 (last one open) */
#define HL_AN_GROWTH_BUCKETS 6  /* realloc growth factor buckets, see hl_an_growth_bounds */

/* Upper bounds (inclusive) of the growth factor buckets; the last is open. */
extern const double hl_an_growth_bounds[HL_AN_GROWTH_BUCKETS];

/* Lower bound of power-of-two bucket k (0 for bucket 0). */
uint64_t hl_an_pow2_lo(int k);
/* Bucket of a value. */
int hl_an_pow2_bucket(uint64_t v);

struct hl_an_thread {
    uint64_t allocs, frees, bytes, failed;
    uint64_t cross_frees; /* frees/reallocs by this thread of blocks other threads made */
    uint64_t temporary;
    uint64_t last_alloc; /* slot of this thread's latest allocation, HL_NO_SLOT if none
                            or already freed (for the temporary rule) */
};

/* A (size, blocks) pair, for top sizes and leaks grouped by size. */
struct hl_an_size {
    uint64_t size, count;
};

/* Weighted running regression state (Chan et al. pairwise update). */
struct hl_an_reg {
    double w, mx, my, cxx, cxy, cyy;
};

struct hl_analysis {
    /* counts */
    uint64_t events;
    uint64_t ops[HL_OP_COUNT_];
    uint64_t failed[HL_OP_COUNT_];
    uint64_t bad_ops;        /* events with an op value this build does not know */
    uint64_t allocations;    /* blocks created */
    uint64_t frees;          /* blocks given back (free or moving realloc) */
    uint64_t bytes_requested;
    uint64_t unknown_frees, double_frees, null_frees;
    uint64_t double_allocs;  /* a slot allocated while live (only in damaged traces) */
    uint64_t cross_thread_frees, temporary;

    /* live bytes */
    uint64_t live_bytes, live_blocks;
    uint64_t peak_live, peak_event, peak_time_ns;
    uint64_t peak_blocks; /* largest number of blocks live at once */

    /* time */
    uint64_t first_time_ns, last_time_ns;

    /* histograms */
    uint64_t size_hist[HL_AN_POW2_BUCKETS];
    uint64_t size_hist_bytes[HL_AN_POW2_BUCKETS];
    uint64_t life_events_hist[HL_AN_POW2_BUCKETS];
    uint64_t life_ns_hist[HL_AN_DECADE_BUCKETS];

    /* realloc */
    uint64_t realloc_grow, realloc_shrink, realloc_same;
    uint64_t realloc_from_null, realloc_to_zero;
    uint64_t growth_hist[HL_AN_GROWTH_BUCKETS];
    double growth_log_sum; /* sum of ln(factor) over grows from a non-empty block, */
    uint64_t growth_log_n; /* and their number: the geometric mean growth factor */

    /* leaks (filled by hl_analysis_finish) */
    uint64_t leaked_blocks, leaked_bytes;
    struct hl_an_size *leaks_by_size; /* sorted by bytes, descending */
    size_t nleak_sizes;

    /* exact sizes: every distinct size, sorted by count descending (filled by finish) */
    struct hl_an_size *sizes;
    size_t nsizes;
    uint64_t sizes_untracked; /* allocations not in the table because it hit its cap */

    /* threads */
    struct hl_an_thread *threads;
    uint32_t nthreads;

    /* trend */
    struct hl_an_reg reg_time;  /* x = seconds, weighted by duration */
    struct hl_an_reg reg_event; /* x = event index */
    double slope_bytes_per_s, r2_time;     /* NaN when no time passes */
    double slope_bytes_per_event, r2_event; /* NaN with fewer than 2 events */

    /* private state */
    void *priv_;
};

/* Allocate and initialise.  Returns NULL on out-of-memory. */
struct hl_analysis *hl_analysis_new(void);
/* Feed events in trace order. */
void hl_analysis_feed(struct hl_analysis *a, const struct hl_event *ev, size_t n);
/* Compute leaks, top sizes and slopes; frees the live-block map.  Call once. */
void hl_analysis_finish(struct hl_analysis *a);
/* After finish: make the thread list at least n long (threads the section header
 * counts that made no call). */
void hl_analysis_add_threads(struct hl_analysis *a, uint32_t n);
/* Sum src's counts and histograms into dst (both finished).  Threads are appended,
 * size tables merged; trends are not combined (dst keeps its own). */
void hl_analysis_merge(struct hl_analysis *dst, const struct hl_analysis *src);
void hl_analysis_free(struct hl_analysis *a);

/* Distinct sizes tracked exactly; later new sizes only count in sizes_untracked. */
#define HL_AN_MAX_SIZES (1u << 20)

#endif
