/*
 * runs.h: the runs of one trace row against every allocator, and their aggregation
 * into one cell per allocator (median with min and max).
 *
 * Timed runs replay with the contract checks off (--check=none in the worker), so
 * that no reported time, latency or counter includes them; when checks are asked for,
 * one more run per allocator, whose time is never reported, replays with them on and
 * gives the cell its violations.  A worker that crashes, fails or runs past its
 * timeout makes its cell n/a with the reason; the other cells are still measured.
 */
#ifndef HEAPLAB_REPLAY_RUNS_H
#define HEAPLAB_REPLAY_RUNS_H

#include "output.h"
#include "shard.h"
#include "spawn.h"

/* Default time limit for a worker run: HL_RP_TIMEOUT_FACTOR times the shortest run
 * already seen on the same trace row (at least HL_RP_TIMEOUT_MIN_S), and never more
 * than HL_RP_TIMEOUT_CAP_S; before any run finished, the cap. */
#define HL_RP_TIMEOUT_FACTOR 20
#define HL_RP_TIMEOUT_MIN_S 10
#define HL_RP_TIMEOUT_CAP_S 600

struct hl_rp_runner {
    const struct hl_alloc *allocs;
    int nalloc;
    int runs;
    struct hl_rp_wopts wo;   /* as asked; timeout_s 0 = the default limit above */
    /* Progress: trace, run (from 1), runs, allocator; trace NULL clears the line. */
    void (*progress)(const char *trace, int run, int runs, const char *alloc);
    const struct hl_rp_shard *shard; /* the cells to run (shard.h) */
    const int *gap_fds;              /* --gaps: each row's gap table (gaps.h), else NULL */
};

/* Run row number r against every allocator whose cell the shard owns and fill
 * cells[0 .. nalloc-1]; a cell not run keeps no row (hl_rp_shard_compact drops it). */
void hl_rp_run_row(const struct hl_rp_runner *rn, const struct hl_rp_row *row, int r,
                   struct hl_rp_cell *cells);

#endif
