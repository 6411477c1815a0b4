/*
 * synth.h: a deterministic synthetic event stream for the trace tests, the fuzz
 * driver's seeds and scripts/bench-trace.
 *
 * It imitates what a recorded program looks like to the trace format: a size mix
 * dominated by small blocks, mostly LIFO frees (the newest block first, sometimes one
 * a few blocks down, rarely any), some realloc and calloc, time deltas of tens of
 * nanoseconds with jitter and occasional long gaps, and optionally several threads.
 * Every choice is drawn independently, so it has none of the repetition of a real
 * program's loops that zstd would find: sizes here cost more than in real traces.
 */
#ifndef HEAPLAB_TEST_SYNTH_H
#define HEAPLAB_TEST_SYNTH_H

#include "trace.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct synth {
    uint64_t rng;
    uint64_t time;
    uint64_t next_slot;
    uint64_t *live; /* live slots, newest last */
    size_t nlive, cap;
    uint32_t nthreads, thread;
};

static inline uint64_t synth_rand(struct synth *s)
{
    /* xorshift64*: fast, deterministic, good enough for test data */
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 0x2545f4914f6cdd1dull;
}

static inline void synth_init(struct synth *s, uint64_t seed, uint32_t nthreads)
{
    s->rng = seed * 0x9e3779b97f4a7c15ull + 1;
    s->time = 0;
    s->next_slot = 0;
    s->cap = 1024;
    s->live = malloc(s->cap * sizeof *s->live);
    s->nlive = 0;
    s->nthreads = nthreads ? nthreads : 1;
    s->thread = 0;
}

static inline void synth_done(struct synth *s)
{
    free(s->live);
}

static inline uint64_t synth_size(struct synth *s)
{
    uint64_t r = synth_rand(s) % 1000;
    if (r < 600)
        return 8 + 8 * (synth_rand(s) % 8);       /* 8..64 */
    if (r < 850)
        return 64 + 16 * (synth_rand(s) % 29);    /* up to 512 */
    if (r < 950)
        return 512 + synth_rand(s) % 3584;        /* up to 4 KiB */
    if (r < 990)
        return 4096 + synth_rand(s) % 61440;      /* up to 64 KiB */
    return 65536 + synth_rand(s) % (1 << 20);     /* large */
}

/* Produce the next event into *e. */
static inline void synth_next(struct synth *s, struct hl_event *e)
{
    uint64_t r = synth_rand(s);
    /* Time: the program's work between calls costs a typical amount with some jitter
     * (here 40-70 ns, peaked), and now and then it does something else for up to 20 us. */
    uint64_t j = synth_rand(s);
    uint64_t dt = 40 + (j & 15) + ((j >> 4) & 15);
    if ((j >> 8) % 64 == 0)
        dt += (j >> 16) % 20000;
    e->time_ns = s->time += dt;
    if (s->nthreads > 1 && (r >> 24) % 16 == 0)
        s->thread = (uint32_t)((r >> 28) % s->nthreads);
    e->thread = s->thread;
    e->flags = 0;
    e->aux = 0;
    e->old_slot = HL_NO_SLOT;
    uint64_t k = (r >> 32) % 100;
    /* Keep the live set bounded, so frees catch up with allocations. */
    int do_free = s->nlive > 0 && (k < 45 || s->nlive > 4096);
    if (do_free) {
        size_t idx;
        uint64_t w = (r >> 40) % 100;
        if (w < 80)
            idx = s->nlive - 1;
        else if (w < 95)
            idx = s->nlive - 1 - (size_t)((r >> 48) % (s->nlive < 8 ? s->nlive : 8));
        else
            idx = (size_t)((r >> 48) % s->nlive);
        uint64_t slot = s->live[idx];
        memmove(&s->live[idx], &s->live[idx + 1], (s->nlive - idx - 1) * sizeof *s->live);
        s->nlive--;
        if (k % 10 == 3 && !(s->nlive > 4096)) { /* some reallocs */
            e->op = HL_OP_REALLOC;
            e->old_slot = slot;
            e->size = synth_size(s);
            e->slot = s->next_slot++;
        } else {
            e->op = HL_OP_FREE;
            e->size = 0;
            e->slot = slot;
            return;
        }
    } else {
        e->op = k % 33 == 0 ? HL_OP_CALLOC : HL_OP_MALLOC;
        e->size = synth_size(s);
        if (e->op == HL_OP_CALLOC) {
            e->aux = 1 + e->size / 64;
            e->size = 8;
        }
        e->slot = s->next_slot++;
    }
    if (s->nlive == s->cap) {
        s->cap *= 2;
        s->live = realloc(s->live, s->cap * sizeof *s->live);
    }
    s->live[s->nlive++] = e->slot;
}

#endif
