/*
 * liveset.c: the slow paths of the live-slot set (liveset.h): sweeping the window's
 * oldest part into the hash set of old slots, and lookups there.
 */
#include "liveset.h"

#include <stdlib.h>
#include <string.h>

#define SWEEP (HL_LIVESET_WINDOW / 8) /* slots swept at a time; base is a multiple of 64 */

/* Old slots live in an hl_slotmap, keyed like a 16-byte aligned address so that its
 * locality-preserving hash keeps neighbouring slots in neighbouring cells. */
static inline uint64_t old_key(uint64_t slot)
{
    return (slot + 1) << 4;
}

int hl_liveset_init(struct hl_liveset *s)
{
    memset(s, 0, sizeof *s);
    s->window = HL_LIVESET_MIN_WINDOW;
    s->bits = calloc(s->window / 64, sizeof *s->bits);
    s->old = hl_slotmap_new();
    if (!s->bits || !s->old) {
        hl_liveset_destroy(s);
        return -1;
    }
    return 0;
}

void hl_liveset_destroy(struct hl_liveset *s)
{
    free(s->bits);
    hl_slotmap_free(s->old);
    memset(s, 0, sizeof *s);
}

void hl_liveset_clear(struct hl_liveset *s)
{
    memset(s->bits, 0, s->window / 8);
    hl_slotmap_free(s->old);
    s->old = hl_slotmap_new();
    s->base = s->next = s->count = 0;
}

/* Move the live slots of [base, base + SWEEP) to the old set. */
static void sweep(struct hl_liveset *s)
{
    for (uint64_t i = 0; i < SWEEP / 64; i++) {
        uint64_t *w = hl_liveset_word_(s, s->base + i * 64);
        uint64_t bits = *w;
        while (bits) {
            uint64_t slot = s->base + i * 64 + (uint64_t)__builtin_ctzll(bits);
            hl_slotmap_put(s->old, old_key(slot), slot);
            bits &= bits - 1;
        }
        *w = 0;
    }
    s->base += SWEEP;
}

/* Double the window: the live slots of [base, next) (at most the old window) move to
 * their places in the new one, word by word (base is a multiple of 64).  0 or -1. */
static int grow(struct hl_liveset *s)
{
    uint64_t w2 = s->window * 2;
    uint64_t *b2 = calloc(w2 / 64, sizeof *b2);
    if (!b2)
        return -1;
    for (uint64_t k = s->base; k < s->next; k += 64)
        b2[(k & (w2 - 1)) >> 6] = *hl_liveset_word_(s, k);
    free(s->bits);
    s->bits = b2;
    s->window = w2;
    return 0;
}

int hl_liveset_add_slow(struct hl_liveset *s, uint64_t slot)
{
    if (slot < s->next || slot == UINT64_MAX || !s->old)
        return -1;
    while (slot - s->base >= s->window) {
        if (s->count == hl_slotmap_count(s->old))
            s->base = slot & ~(uint64_t)63; /* nothing live in the window: start at slot */
        else if (s->window < HL_LIVESET_WINDOW) {
            if (grow(s) < 0)
                return -1;
        } else
            sweep(s);
    }
    *hl_liveset_word_(s, slot) |= 1ull << (slot & 63);
    s->next = slot + 1;
    s->count++;
    return 0;
}

int hl_liveset_take_old(struct hl_liveset *s, uint64_t slot, int keep)
{
    uint64_t got = hl_slotmap_take(s->old, old_key(slot));
    if (got == HL_NO_SLOT)
        return 0;
    if (keep)
        hl_slotmap_put(s->old, old_key(slot), slot);
    else
        s->count--;
    return 1;
}
