/*
 * gaps.h: the program's own time between its calls, for `heaplab replay --gaps`.
 *
 * A trace stamps every event with the program's clock (read with rdtsc about every 30
 * events, interpolated between).  The gap table of a process section holds, for each
 * run of HL_GAP_EVENTS consecutive events of its global order, the time the program
 * spent from the event before the run to the run's last event: its own work between
 * the calls, and the calls themselves.  It is written, as uint32_t nanoseconds
 * (saturating), to an unlinked file whose descriptor the worker reads (--gap-fd).
 *
 * With --gaps the worker replays serially and, after each run of HL_GAP_EVENTS events,
 * spends the run's gap as the program would have: writing to the blocks it allocated
 * most recently that are still live, HL_GAP_LINES_PER_US cache lines per microsecond
 * of gap (a fixed amount of work, the same for every allocator, so that how long it
 * takes depends on where the allocator put the blocks).  The table is indexed by the
 * trace's events; events the plan skips (unknown or failed calls) shift it by as many.
 */
#ifndef HEAPLAB_REPLAY_GAPS_H
#define HEAPLAB_REPLAY_GAPS_H

#include "replay.h"

#define HL_GAP_EVENTS 64         /* events per gap; the worker's timing block (LAT_EVERY) */
#define HL_GAP_LINES_PER_US 250  /* cache lines written per microsecond of recorded gap */
#define HL_GAP_RECENT 256        /* the most recent allocations the gaps write to */
#define HL_GAP_BLOCK_BYTES 4096  /* at most this much of each block written per pass */

/* Gap tables of the rows hl_plan_trace appended for path (rows[0 .. nrows-1], in its
 * order: the sections with events, only process pid when pid >= 0): fds[i] gets the
 * table of rows[i].  Returns 0, or -1 with a one-line message naming the file. */
int hl_gaps_trace(const char *path, long pid, const struct hl_rp_row *rows, int nrows,
                  int *fds, struct hl_err *err);

#endif
