/*
 * slotmap.c: address -> slot map for producers that see raw addresses (the record
 * finaliser, the mtrace importer).
 *
 * Open addressing with linear probing and backward-shift deletion in a single malloc'd
 * table, so there are no tombstones and lookups stay short however many blocks come and
 * go.  Keys are addresses; 0 marks an empty cell (malloc never returns NULL for a live
 * block, and a producer never puts address 0).
 */
#include "trace.h"

#include <stdlib.h>

struct cell {
    uint64_t addr;
    uint64_t slot;
};

struct hl_slotmap {
    struct cell *cells;
    size_t mask; /* capacity - 1, capacity a power of two */
    size_t count;
};

/* Locality-preserving at the scale of a page: blocks are at least 16-byte aligned,
 * so address/16 is a granule, and the 256 granules of each 4 KiB of heap keep their
 * order in a run of 256 cells (one 4 KiB page of the table) placed by a hash of the
 * rest of the address.  Blocks allocated near each other then land in nearby cells,
 * which the finaliser (touching the map once per event) finds in cache far more
 * often than with a mixing hash; and placing whole pages at random keeps dense heaps
 * from piling onto the same cells, as keeping megabytes of heap together did (probes
 * of 50-80 cells, depending on where ASLR put the heap). */
#define GROUP_BITS 8

static inline size_t hash_addr(uint64_t a)
{
    a >>= 4;
    uint64_t g = a >> GROUP_BITS;
    g ^= g >> 33;
    g *= 0xff51afd7ed558ccdull;
    g ^= g >> 33;
    return (size_t)(g << GROUP_BITS | (a & ((1u << GROUP_BITS) - 1)));
}

struct hl_slotmap *hl_slotmap_new(void)
{
    struct hl_slotmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mask = 63; /* small: many maps stay small (sections of short processes, the old
                     slots of a live set); it doubles as it fills */
    m->cells = calloc(m->mask + 1, sizeof *m->cells);
    if (!m->cells) {
        free(m);
        return NULL;
    }
    return m;
}

void hl_slotmap_free(struct hl_slotmap *m)
{
    if (!m)
        return;
    free(m->cells);
    free(m);
}

static int grow(struct hl_slotmap *m)
{
    size_t ncap = (m->mask + 1) * 2;
    struct cell *nc = calloc(ncap, sizeof *nc);
    if (!nc)
        return -1;
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->cells[i].addr)
            continue;
        size_t j = hash_addr(m->cells[i].addr) & (ncap - 1);
        while (nc[j].addr)
            j = (j + 1) & (ncap - 1);
        nc[j] = m->cells[i];
    }
    free(m->cells);
    m->cells = nc;
    m->mask = ncap - 1;
    return 0;
}

uint64_t hl_slotmap_put(struct hl_slotmap *m, uint64_t addr, uint64_t slot)
{
    if (addr == 0)
        return HL_NO_SLOT;
    /* Keep the load under 1/4 (1/2 once the table is 256 MiB): the hash keeps
     * neighbouring blocks in neighbouring cells, so a dense heap fills runs of cells,
     * and a sparser table keeps those runs short (Python capture: finalise CPU 0.77 s
     * -> 0.60 s against 1/2).  If growing fails we go on in the old table, which still has
     * room until it is completely full. */
    if ((m->count + 1) * (m->mask + 1 < ((size_t)1 << 24) ? 4 : 2) > m->mask + 1)
        if (grow(m) < 0 && m->count + 1 > m->mask)
            abort();
    size_t i = hash_addr(addr) & m->mask;
    while (m->cells[i].addr) {
        if (m->cells[i].addr == addr) {
            uint64_t old = m->cells[i].slot;
            m->cells[i].slot = slot;
            return old;
        }
        i = (i + 1) & m->mask;
    }
    m->cells[i].addr = addr;
    m->cells[i].slot = slot;
    m->count++;
    return HL_NO_SLOT;
}

uint64_t hl_slotmap_take(struct hl_slotmap *m, uint64_t addr)
{
    if (addr == 0)
        return HL_NO_SLOT;
    size_t i = hash_addr(addr) & m->mask;
    while (m->cells[i].addr != addr) {
        if (!m->cells[i].addr)
            return HL_NO_SLOT;
        i = (i + 1) & m->mask;
    }
    uint64_t slot = m->cells[i].slot;
    /* Backward-shift deletion: move later members of the probe run into the hole
     * when their home position allows it. */
    size_t hole = i;
    for (size_t j = (i + 1) & m->mask; m->cells[j].addr; j = (j + 1) & m->mask) {
        size_t home = hash_addr(m->cells[j].addr) & m->mask;
        /* j may move to hole iff home is not cyclically in (hole, j]. */
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->cells[hole] = m->cells[j];
            hole = j;
        }
    }
    m->cells[hole].addr = 0;
    m->count--;
    return slot;
}

void hl_slotmap_prefetch(const struct hl_slotmap *m, uint64_t addr)
{
    __builtin_prefetch(&m->cells[hash_addr(addr) & m->mask]);
}

size_t hl_slotmap_count(const struct hl_slotmap *m)
{
    return m->count;
}

void hl_slotmap_each(const struct hl_slotmap *m, void (*fn)(void *ctx, uint64_t addr, uint64_t slot),
                     void *ctx)
{
    for (size_t i = 0; i <= m->mask; i++)
        if (m->cells[i].addr)
            fn(ctx, m->cells[i].addr, m->cells[i].slot);
}
