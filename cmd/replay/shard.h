/*
 * shard.h: `replay --shard I/N`: a deterministic share of the (trace, allocator) cells.
 *
 * Cells are numbered from 0 in the order replay lays them out (each trace row, every
 * allocator of it); shard I of N owns the cells whose number is I-1 modulo N.  Every
 * job of a fan-out is given the same traces and allocators, so N jobs cover every cell
 * exactly once, and round-robin keeps their loads alike.
 */
#ifndef HEAPLAB_REPLAY_SHARD_H
#define HEAPLAB_REPLAY_SHARD_H

#include "output.h"

struct hl_rp_shard {
    int i, n; /* 1 <= i <= n */
};

/* Parse "I/N".  Returns 0, or -1 when malformed or out of range. */
int hl_rp_shard_parse(const char *s, struct hl_rp_shard *out);
/* Does the shard own cell number cell? */
int hl_rp_shard_has(const struct hl_rp_shard *s, int cell);
/* Drop the cells that were not run (no row): returns the count kept, in order. */
int hl_rp_shard_compact(struct hl_rp_cell *cells, int n);

#endif
