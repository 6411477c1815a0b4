/*
 * liveset.h: the set of live slots of a section, in memory bounded by the live set.
 *
 * The writer and the reader check the slot rule (trace.h) on every event: a free or
 * realloc must name a slot that is allocated and not given back.  Slots are handed
 * out in increasing order and most are given back soon after, so the set is kept as
 *   - a window: a circular bitmap covering the newest slots [base, next); the common
 *     add, test and remove are a bit operation there.  It starts at
 *     HL_LIVESET_MIN_WINDOW bits and doubles while next - base outgrows it, up to
 *     HL_LIVESET_WINDOW, so that a short section (an import, a fuzz input, a small
 *     program) costs a few hundred bytes to set up and clear, not the whole window;
 *   - the old: slots below base still live, in a hash set (hl_slotmap keyed by slot).
 * When an add would take the window past its largest size, its oldest eighth is
 * swept: the live slots there move to the old set and base moves up.  Memory is the window
 * (constant) plus the old set (proportional to the long-lived blocks), whatever the
 * section's length.
 *
 * Invariants: base <= next; slots added are exactly next, next + 1, ... (the slot
 * rule), or larger (a producer that skips); every live slot >= base has its window
 * bit set and every live slot < base is in the old set.
 */
#ifndef HEAPLAB_LIVESET_H
#define HEAPLAB_LIVESET_H

#include "trace.h"

#include <stdint.h>

#define HL_LIVESET_WINDOW_BITS 22 /* 4M slots: a 512 KiB bitmap */
#define HL_LIVESET_WINDOW (1ull << HL_LIVESET_WINDOW_BITS)
#define HL_LIVESET_MIN_WINDOW 4096ull /* bits of a new set's window */

struct hl_liveset {
    uint64_t *bits;           /* window / 64 words, slot s at bit s % window */
    uint64_t window;          /* bits in the window: a power of two, at most
                                 HL_LIVESET_WINDOW */
    uint64_t base, next;      /* the window covers [base, next) */
    struct hl_slotmap *old;   /* live slots below base */
    uint64_t count;           /* live slots in all */
};

/* 0, or -1 when out of memory. */
int hl_liveset_init(struct hl_liveset *s);
void hl_liveset_destroy(struct hl_liveset *s);
/* Empty the set, for a new section (it keeps its window's size). */
void hl_liveset_clear(struct hl_liveset *s);

int hl_liveset_add_slow(struct hl_liveset *s, uint64_t slot);
int hl_liveset_take_old(struct hl_liveset *s, uint64_t slot, int keep);

static inline uint64_t *hl_liveset_word_(const struct hl_liveset *s, uint64_t slot)
{
    return &s->bits[(slot & (s->window - 1)) >> 6];
}

/* Add slot, which must not be below any slot added before.  0, or -1 (out of memory). */
static inline int hl_liveset_add(struct hl_liveset *s, uint64_t slot)
{
    if (__builtin_expect(slot != s->next || slot - s->base >= s->window, 0))
        return hl_liveset_add_slow(s, slot);
    *hl_liveset_word_(s, slot) |= 1ull << (slot & 63);
    s->next = slot + 1;
    s->count++;
    return 0;
}

/* Is slot live?  If so and !keep, it is given back.  Returns 1 if it was live. */
static inline int hl_liveset_take(struct hl_liveset *s, uint64_t slot, int keep)
{
    if (slot >= s->next)
        return 0;
    if (__builtin_expect(slot < s->base, 0))
        return hl_liveset_take_old(s, slot, keep);
    uint64_t *w = hl_liveset_word_(s, slot), bit = 1ull << (slot & 63);
    if (!(*w & bit))
        return 0;
    if (!keep) {
        *w &= ~bit;
        s->count--;
    }
    return 1;
}

#endif
