/*
 * slotmap.h: the address -> slot map's layout and its fast paths, inline for the
 * record finaliser, which touches the map once or twice per event (private to
 * traces/; everyone else goes through the hl_slotmap_* calls of trace.h, which are
 * these same functions).
 *
 * Open addressing with linear probing and backward-shift deletion in a single malloc'd
 * table, so there are no tombstones and lookups stay short however many blocks come and
 * go.  Keys are addresses; 0 marks an empty cell (malloc never returns NULL for a live
 * block, and a producer never puts address 0).
 *
 * Invariants: the capacity (mask + 1) is a power of two; count <= grow_at, unless
 * growing failed (out of memory: then count stays below the capacity, or put
 * aborts), so a probe always meets an empty cell; every key sits in the probe run
 * from its home cell (hl_slotmap_hash_ & mask) with no empty cell between.
 */
#ifndef HEAPLAB_SLOTMAP_H
#define HEAPLAB_SLOTMAP_H

#include "trace.h"

#include <stddef.h>
#include <stdint.h>

struct hl_slotmap_cell {
    uint64_t addr;
    uint64_t slot;
};

struct hl_slotmap {
    struct hl_slotmap_cell *cells;
    size_t mask;    /* capacity - 1, capacity a power of two */
    size_t count;
    size_t grow_at; /* a put that would take count past this grows the table first */
};

/* Locality-preserving at the scale of a page: blocks are at least 16-byte aligned,
 * so address/16 is a granule, and the 256 granules of each 4 KiB of heap keep their
 * order in a run of 256 cells (one 4 KiB page of the table) placed by a hash of the
 * rest of the address.  Blocks allocated near each other then land in nearby cells,
 * which the finaliser (touching the map once per event) finds in cache far more
 * often than with a mixing hash; and placing whole pages at random keeps dense heaps
 * from piling onto the same cells, as keeping megabytes of heap together did (probes
 * of 50-80 cells, depending on where ASLR put the heap). */
#define HL_SLOTMAP_GROUP_BITS 8

static inline size_t hl_slotmap_hash_(uint64_t a)
{
    a >>= 4;
    uint64_t g = a >> HL_SLOTMAP_GROUP_BITS;
    g ^= g >> 33;
    g *= 0xff51afd7ed558ccdull;
    g ^= g >> 33;
    return (size_t)(g << HL_SLOTMAP_GROUP_BITS | (a & ((1u << HL_SLOTMAP_GROUP_BITS) - 1)));
}

/* The slow path of a put: a bigger table (or abort when full and out of memory). */
void hl_slotmap_grow_(struct hl_slotmap *m);

/* The calls below come in two forms: given addr's hash (hl_slotmap_hash_, which a
 * caller touching the map several times for one address computes once), or not. */
static inline uint64_t hl_slotmap_put_h_(struct hl_slotmap *m, uint64_t addr, size_t h,
                                         uint64_t slot)
{
    if (addr == 0)
        return HL_NO_SLOT;
    if (__builtin_expect(m->count + 1 > m->grow_at, 0))
        hl_slotmap_grow_(m);
    struct hl_slotmap_cell *cells = m->cells;
    size_t i = h & m->mask;
    while (cells[i].addr) {
        if (cells[i].addr == addr) {
            uint64_t old = cells[i].slot;
            cells[i].slot = slot;
            return old;
        }
        i = (i + 1) & m->mask;
    }
    cells[i].addr = addr;
    cells[i].slot = slot;
    m->count++;
    return HL_NO_SLOT;
}

static inline uint64_t hl_slotmap_put_(struct hl_slotmap *m, uint64_t addr, uint64_t slot)
{
    return hl_slotmap_put_h_(m, addr, hl_slotmap_hash_(addr), slot);
}

/* The slot of live addr, HL_NO_SLOT if it is not live (the map unchanged). */
static inline uint64_t hl_slotmap_get_h_(const struct hl_slotmap *m, uint64_t addr, size_t h)
{
    const struct hl_slotmap_cell *cells = m->cells;
    for (size_t i = h & m->mask; addr && cells[i].addr; i = (i + 1) & m->mask)
        if (cells[i].addr == addr)
            return cells[i].slot;
    return HL_NO_SLOT;
}

static inline uint64_t hl_slotmap_take_h_(struct hl_slotmap *m, uint64_t addr, size_t h)
{
    if (addr == 0)
        return HL_NO_SLOT;
    struct hl_slotmap_cell *cells = m->cells;
    size_t mask = m->mask;
    size_t i = h & mask;
    while (cells[i].addr != addr) {
        if (!cells[i].addr)
            return HL_NO_SLOT;
        i = (i + 1) & mask;
    }
    uint64_t slot = cells[i].slot;
    /* Backward-shift deletion: move later members of the probe run into the hole
     * when their home position allows it. */
    size_t hole = i;
    for (size_t j = (i + 1) & mask; cells[j].addr; j = (j + 1) & mask) {
        size_t home = hl_slotmap_hash_(cells[j].addr) & mask;
        /* j may move to hole iff home is not cyclically in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            cells[hole] = cells[j];
            hole = j;
        }
    }
    cells[hole].addr = 0;
    m->count--;
    return slot;
}

static inline uint64_t hl_slotmap_take_(struct hl_slotmap *m, uint64_t addr)
{
    return hl_slotmap_take_h_(m, addr, hl_slotmap_hash_(addr));
}

/* The cache line of h's home cell and the one after it (a cell is a quarter of a
 * line): a probe that runs past its line, and the deletion's scan of the cells after
 * the one taken, go on there. */
static inline void hl_slotmap_prefetch_h_(const struct hl_slotmap *m, size_t h)
{
    __builtin_prefetch(&m->cells[h & m->mask]);
    __builtin_prefetch(&m->cells[(h + 4) & m->mask]);
}

static inline void hl_slotmap_prefetch_(const struct hl_slotmap *m, uint64_t addr)
{
    hl_slotmap_prefetch_h_(m, hl_slotmap_hash_(addr));
}

#endif
