/*
 * spawn.h: starting worker processes (`heaplab __worker`) with an allocator preloaded,
 * and reading their answer; --counters=sim wraps the worker in callgrind.
 */
#ifndef HEAPLAB_REPLAY_SPAWN_H
#define HEAPLAB_REPLAY_SPAWN_H

#include "allocators/registry.h"
#include "replay.h"

#include <stddef.h>

struct hl_rp_wopts {
    int touch, check, counters, timeline; /* enums in replay.h */
    int gap_fd;                           /* --gaps: the row's gap table (gaps.h), else -1 */
    long timeout_s;                       /* per worker run; 0: none */
    /* Called about once a second while a worker runs, with the seconds elapsed. */
    void (*tick)(void *arg, long elapsed_s);
    void *tick_arg;
};

/* hl_rp_spawn_run's answer when the worker ran past o->timeout_s (it was killed). */
#define HL_RP_TIMED_OUT (-2)

/* Run one replay of the plan in plan_fd with allocator a.  On success fills *res and,
 * when the worker sent a timeline, *tl (malloc'd, res->ntimeline samples).  With
 * o->counters == HL_CNT_SIM the worker runs under callgrind and the simulated counts
 * are filled in.  Returns 0, HL_RP_TIMED_OUT (err says so), or -1 with a one-line
 * message in err. */
int hl_rp_spawn_run(const struct hl_alloc *a, int plan_fd, const struct hl_rp_wopts *o,
                    struct hl_rp_result *res, struct hl_rp_tlsample **tl, char *err,
                    size_t errlen);

/* Check in a fresh process that a's library loads and replaces malloc, and fill
 * a->version (the library's own report, else the Debian package's).  Returns 0 or -1
 * with the reason in err. */
int hl_rp_probe(struct hl_alloc *a, char *err, size_t errlen);

#endif
