/*
 * slotmap.c: address -> slot map for producers that see raw addresses (the record
 * finaliser, the mtrace importer).
 *
 * The layout and the fast paths are in slotmap.h (inline there for the finaliser);
 * this file holds the table's life cycle, its growth and the out-of-line calls.
 */
#include "slotmap.h"

#include <stdlib.h>

/* Keep the load under 1/8 while the table is under 16 MiB, under 1/4 until it is
 * 256 MiB, then under 1/2.  The hash keeps the blocks of a heap page together in one
 * group of cells, so the load a probe meets is that of its group (the heap pages
 * placed there and how densely each is used), not the table's: a sparser table keeps
 * the runs short, and with them the finaliser's probes and deletion shifts.  The
 * sparsest load costs at most 8 MiB; past that, memory per live block wins.  Measured
 * in traces/HISTORY.md ("The address map's load"). */
static size_t grow_at(size_t cap)
{
    if (cap < ((size_t)1 << 20))
        return cap / 8;
    return cap < ((size_t)1 << 24) ? cap / 4 : cap / 2;
}

struct hl_slotmap *hl_slotmap_new(void)
{
    struct hl_slotmap *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->mask = 63; /* small: many maps stay small (sections of short processes, the old
                     slots of a live set); it doubles as it fills */
    m->grow_at = grow_at(m->mask + 1);
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

/* If growing fails we go on in the old table, which still has room until it is
 * completely full (the next put tries again). */
void hl_slotmap_grow_(struct hl_slotmap *m)
{
    size_t ncap = (m->mask + 1) * 2;
    struct hl_slotmap_cell *nc = calloc(ncap, sizeof *nc);
    if (!nc) {
        if (m->count + 1 > m->mask)
            abort();
        return;
    }
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->cells[i].addr)
            continue;
        size_t j = hl_slotmap_hash_(m->cells[i].addr) & (ncap - 1);
        while (nc[j].addr)
            j = (j + 1) & (ncap - 1);
        nc[j] = m->cells[i];
    }
    free(m->cells);
    m->cells = nc;
    m->mask = ncap - 1;
    m->grow_at = grow_at(ncap);
}

uint64_t hl_slotmap_put(struct hl_slotmap *m, uint64_t addr, uint64_t slot)
{
    return hl_slotmap_put_(m, addr, slot);
}

uint64_t hl_slotmap_take(struct hl_slotmap *m, uint64_t addr)
{
    return hl_slotmap_take_(m, addr);
}

void hl_slotmap_prefetch(const struct hl_slotmap *m, uint64_t addr)
{
    hl_slotmap_prefetch_(m, addr);
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
