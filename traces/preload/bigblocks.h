/*
 * bigblocks.h: the interposer's table of live large blocks, for HL_RAW_PAGES records
 * (raw.h): which blocks of HL_RAW_PAGES_MIN bytes or more (malloc, calloc) are live,
 * and how many of their pages are resident when one is given back.
 *
 * Data model.  An open-addressed table of HL_RAW_PAGES_TRACKED (address, bytes)
 * entries under a spinlock (large blocks are rare: the lock is not on the common
 * path), and a counting filter of the live addresses' hashes that every free and
 * realloc reads first, without the lock: one load decides, for nearly every small
 * block, that it is not in the table.  A block that finds the table full is not
 * tracked (the replay then touches all of it, as before HL_RAW_PAGES).
 *
 * Giving a new block's resident pages back changes nothing a correct program can see
 * (a malloc'd block's contents are unspecified, a calloc'd one reads as zeros either
 * way); only glibc's heap and reused memory have any, a fresh mapping has none.
 *
 * Callers hold the interposer's guard (interpose.c), so a signal handler's malloc
 * never reaches the lock.  A fork child inherits the table: the parent's blocks are
 * live in it too (its finaliser knows no slot for them and ignores their records).
 */
#ifndef HEAPLAB_BIGBLOCKS_H
#define HEAPLAB_BIGBLOCKS_H

#include <stddef.h>
#include <stdint.h>

#define HL_BIG_FILTER 4096u /* counters of the filter (a power of two) */

extern uint16_t hl_big_filter_[HL_BIG_FILTER];

static inline uint32_t hl_big_hash(uintptr_t p)
{
    return (uint32_t)(((uint64_t)p * 0x9e3779b97f4a7c15ull) >> 52) & (HL_BIG_FILTER - 1);
}

/* May p be in the table?  (No false negatives; false positives take hl_big_take's
 * lock for nothing.) */
static inline int hl_big_maybe(uintptr_t p)
{
    return __atomic_load_n(&hl_big_filter_[hl_big_hash(p)], __ATOMIC_RELAXED) != 0;
}

/* Track the new block p of `bytes` (>= HL_RAW_PAGES_MIN); nothing if the table is
 * full.  The whole pages inside it that are resident already (memory the allocator
 * reused, or zeroed for calloc) are given back first (MADV_DONTNEED: they read as
 * zeros again, which a new block's contents may be), so that what is resident when
 * it is given back is what the program wrote. */
void hl_big_add(uintptr_t p, size_t bytes);
/* Stop tracking p: its bytes, or 0 if it was not tracked. */
size_t hl_big_take(uintptr_t p);
/* Pages of [p, p + bytes) resident now (mincore), counting the pages the block
 * overlaps; bytes / page size rounded up if mincore fails. */
uint64_t hl_big_resident(uintptr_t p, size_t bytes);
/* Blocks not tracked because the table was full (no page count: replayed whole). */
uint32_t hl_big_untracked(void);
/* In a fork child: the lock may have been held by a thread the child does not have. */
void hl_big_after_fork(void);
/* Take every tracked block out of the table, calling fn(ctx, p, bytes) for each. */
void hl_big_drain(void (*fn)(void *ctx, uintptr_t p, size_t bytes), void *ctx);

#endif
