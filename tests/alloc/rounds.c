/*
 * rounds.c: threads that allocate a round of blocks and free them all, round after round
 * (threadtest's pattern).  The default allocator keeps a thread's emptied spans, free
 * lists intact, for its next round (allocators/heaplab/stash.c): the blocks of a
 * round must come back whole and distinct whatever span they come from, also when the
 * size moves on (the stash of the class left behind goes back at a scavenge), when some
 * blocks are freed by another thread, after malloc_trim (which gives the stash back) and
 * after threads exit (theirs goes back to the pages, reused by the next threads).
 * Usage: rounds LIBRARY.so
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define NTHREADS 4
#define NBLOCKS 2500
#define ROUNDS 40

static const size_t sizes[] = {64, 64, 48, 512, 64};   /* per phase of ROUNDS / 5 rounds */

/* Blocks handed to the next thread, freed there (a cross-thread free into stashed spans). */
static pthread_mutex_t hand_lock = PTHREAD_MUTEX_INITIALIZER;
static void *hand[NTHREADS][8];

static void *worker(void *arg)
{
    uintptr_t id = (uintptr_t)arg, bad = 0;
    static __thread void *blk[NBLOCKS];
    for (int r = 0; r < ROUNDS; r++) {
        size_t size = sizes[r * 5 / ROUNDS];
        for (int i = 0; i < NBLOCKS; i++) {
            blk[i] = malloc(size);
            if (!blk[i])
                return (void *)1;
            memset(blk[i], (int)(id * 31 + (uintptr_t)i) & 0xff, size);
            ((uint32_t *)blk[i])[0] = (uint32_t)(id << 24 | (uintptr_t)i);
        }
        for (int i = 0; i < NBLOCKS; i++) {
            const unsigned char *p = blk[i];
            bad |= ((const uint32_t *)blk[i])[0] != (uint32_t)(id << 24 | (uintptr_t)i);
            bad |= p[size - 1] != ((id * 31 + (uintptr_t)i) & 0xff);
        }
        pthread_mutex_lock(&hand_lock);
        for (int k = 0; k < 8; k++) {
            free(hand[id][k]);   /* the previous thread's blocks */
            hand[id][k] = NULL;
            void **next = &hand[(id + 1) % NTHREADS][k];
            free(*next);         /* ours, if the next thread has not taken them yet */
            *next = blk[k * 300];
            blk[k * 300] = NULL;
        }
        pthread_mutex_unlock(&hand_lock);
        for (int i = NBLOCKS - 1; i >= 0; i--)
            free(blk[i]);
        if (r % 10 == 9)
            malloc_trim(0);
    }
    return (void *)bad;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    for (int gen = 0; gen < 2; gen++) {
        pthread_t t[NTHREADS];
        uintptr_t bad = 0;
        int started = 0;
        for (uintptr_t i = 0; i < NTHREADS; i++)
            started += pthread_create(&t[i], NULL, worker, (void *)i) == 0;
        for (int i = 0; i < started; i++) {
            void *ret;
            pthread_join(t[i], &ret);
            bad |= (uintptr_t)ret;
        }
        TAP_CHECK(started == NTHREADS && !bad,
                  "%d threads x %d rounds of %d blocks, freed whole, came back intact (threads' set %d, %s)",
                  NTHREADS, ROUNDS, NBLOCKS, gen + 1, lib);
    }
    for (int i = 0; i < NTHREADS; i++)
        for (int k = 0; k < 8; k++)
            free(hand[i][k]);
    return tap_done();
}
