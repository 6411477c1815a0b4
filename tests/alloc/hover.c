/*
 * hover.c: a size whose live blocks number a little more than one slab span holds.  A
 * thread keeps 200 blocks of 384 bytes (a 64 KiB span holds 170) and replaces a random one
 * at each step, writing the new block whole; the resident set must grow by less than the
 * live bytes plus 32 KiB.  An allocator that carves its current span to the end before it
 * reuses the holes the frees leave in the other ends up with two spans carved whole and
 * half used (128 KiB for 75 KiB live).  The work runs in a second thread so that the
 * process is past the default allocator's cold start.
 * Usage: hover LIBRARY.so
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define BLOCKS 200
#define SIZE 384
#define STEPS 200000

struct result {
    int ok;
    size_t grown;
};

static void *worker(void *arg)
{
    struct result *r = arg;
    static char *slot[BLOCKS];
    unsigned long x = 88172645463325252ull;
    size_t before = hlm_test_rss();
    r->ok = 1;
    for (int i = 0; i < BLOCKS; i++) {
        r->ok &= (slot[i] = malloc(SIZE)) != NULL;
        if (slot[i])
            memset(slot[i], 1, SIZE);
    }
    for (long s = 0; s < STEPS && r->ok; s++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t k = x % BLOCKS;
        free(slot[k]);
        r->ok &= (slot[k] = malloc(SIZE)) != NULL;
        if (slot[k])
            memset(slot[k], 2, SIZE);
    }
    size_t after = hlm_test_rss();
    r->grown = after > before ? after - before : 0;
    for (int i = 0; i < BLOCKS; i++)
        free(slot[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    hlm_test_rss();   /* stdio's own buffers are allocated before the first measurement */
    struct result r = {0, 0};
    pthread_t t;
    int started = pthread_create(&t, NULL, worker, &r) == 0;
    if (started)
        pthread_join(t, NULL);
    TAP_CHECK(started && r.ok, "%d blocks of %d bytes replaced %d times (%s)", BLOCKS, SIZE,
              STEPS, lib);
    size_t live = (size_t)BLOCKS * SIZE;
    tap_diag("resident set grew by %zu KiB for %zu KiB live", r.grown >> 10, live >> 10);
    TAP_CHECK(r.grown < live + 32 * 1024,
              "the holes are reused before a second span is carved whole (%zu KiB resident "
              "for %zu KiB live)", r.grown >> 10, live >> 10);
    return tap_done();
}
