/*
 * baseline.h: the allocator's start-up memory, told apart from the harness's at the
 * worker's baseline (baseline.c).
 *
 * The worker's peak RSS is its VmHWM less the harness's own resident memory at the
 * baseline, so that it counts what a program running under the allocator pays: the
 * allocator's start-up (its library, the libraries only it loads, the memory it set up
 * before the first replayed call) and everything the replay made it hold.
 */
#ifndef HEAPLAB_REPLAY_BASELINE_H
#define HEAPLAB_REPLAY_BASELINE_H

#include <stddef.h>
#include <stdint.h>

/* Register [p, p+n) as the harness's own memory (the worker's anonymous maps, its
 * threads' stacks).  At most HL_BL_MAX_OWN ranges: -1 past that. */
#define HL_BL_MAX_OWN 256
int hl_bl_own(const void *p, size_t n);

/* Resident bytes now that are the allocator's, not the harness's (baseline.c says how
 * they are told apart).  0 when /proc/self/smaps cannot be read. */
uint64_t hl_bl_allocator_rss(void);

#endif
