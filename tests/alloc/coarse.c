/*
 * coarse.c: threads that each allocate blocks of every size from 129 bytes to 1 KiB own a
 * span in half as many size classes as a thread alone would take.  Each thread owns a span
 * per class it allocates from, so the classes per doubling multiply by the threads: with
 * 8 per doubling from 128 bytes to 1 KiB, 32 producers of such sizes (prodcons at 64
 * threads) each carved and half used 24 spans.  Once the process has a second thread the
 * default allocator maps those sizes onto 4 classes per doubling (classes.c): 12 spans a
 * thread here.  The count of spans made (HEAPLAB_STATS' "slab spans made", through
 * malloc_stats) stays under that.  Counts, not time.
 * Usage: coarse LIBRARY.so
 */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define THREADS 16
#define PER_SIZE 4        /* blocks of each size: every class gets a span of its own */
#define FIRST 129
#define LAST 1024
#define STEP 16
#define COARSE_CLASSES 12 /* 160..256, 320..512, 640..1024: 4 per doubling */
#define NBLOCKS (((LAST - FIRST) / STEP + 1) * PER_SIZE)

static pthread_barrier_t all_live;
static int bad;

static void *worker(void *arg)
{
    unsigned char mark = (unsigned char)(uintptr_t)arg;
    char *blocks[NBLOCKS];
    size_t sizes[NBLOCKS];
    int n = 0;
    for (size_t s = FIRST; s <= LAST; s += STEP)
        for (int k = 0; k < PER_SIZE; k++) {
            if (!(blocks[n] = malloc(s)) || malloc_usable_size(blocks[n]) < s)
                __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
            else
                memset(blocks[n], mark, s);
            sizes[n++] = s;
        }
    pthread_barrier_wait(&all_live);   /* every thread's blocks live at once */
    for (int i = 0; i < n; i++) {
        if (blocks[i] && (blocks[i][0] != (char)mark || blocks[i][sizes[i] - 1] != (char)mark))
            __atomic_store_n(&bad, 1, __ATOMIC_RELAXED);
        free(blocks[i]);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    pthread_t t[THREADS];
    pthread_barrier_init(&all_live, NULL, THREADS);
    for (int i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) {
            perror("pthread_create");
            return 2;
        }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    TAP_CHECK(!bad, "%d threads allocated %d blocks of %d..%d bytes each, contents kept (%s)",
              THREADS, NBLOCKS, FIRST, LAST, lib);
    long spans = hlm_test_stat("slab spans made");
    tap_diag("slab spans made: %ld", spans);
    TAP_CHECK(spans >= 0, "malloc_stats reports the spans made");
    /* Each thread's classes, and room for the main thread's and libc's own. */
    long bound = THREADS * COARSE_CLASSES + 32;
    TAP_CHECK(spans >= 0 && spans <= bound,
              "threads share coarse classes: %ld spans made for %d threads (at most %ld)",
              spans, THREADS, bound);
    return tap_done();
}
