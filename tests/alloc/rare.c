/*
 * rare.c: a size class a thread allocates from only now and then keeps its span while
 * the thread goes on allocating it.  The main thread (the producer) allocates a round of
 * COMMON 64-byte blocks, every RARE_EVERY rounds one block of a rare size too, writes
 * them and hands the round to a consumer thread, which checks and frees them.  Between scavenges the rare class's
 * span is often empty (its one block is back), but it is in use: giving it back to the
 * pages at each scavenge made it again, and carved its first window again, a few
 * hundred times in prodcons (2 producers: 1,170 spans made for some 70 in use).  The
 * count of spans made (HEAPLAB_STATS' "slab spans made", read through malloc_stats) stays
 * under a fixed bound.  Counts, not time.
 * Usage: rare LIBRARY.so [ROUNDS]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define COMMON 64
#define RARE_SIZE 176
/* Rounds between two rare blocks: more than the consumer keeps one in its cache (its
 * scavenge every 8 rounds or so gives it back), so that the rare class's span is often
 * empty when the producer's cache scavenges (every 64 rounds or so).  The build before
 * the fix made 229 spans over the default rounds, this one 4. */
#define RARE_EVERY 40
#define SPANS_MAX 32   /* the classes this program and libc use, with room */

static char *blocks[COMMON + 1];
static int nblocks;   /* COMMON, or COMMON + 1 in a round with the rare block */
static int round_no, rounds, bad;
static pthread_barrier_t handed, freed;

static void *consumer(void *arg)
{
    (void)arg;
    for (int r = 0; r < rounds; r++) {
        pthread_barrier_wait(&handed);
        for (int i = 0; i < nblocks; i++) {
            size_t n = i == COMMON ? RARE_SIZE : 64;
            if (blocks[i][0] != (char)round_no || blocks[i][n - 1] != (char)round_no)
                bad = 1;
            free(blocks[i]);
        }
        pthread_barrier_wait(&freed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    rounds = argc > 2 ? atoi(argv[2]) : 20000;
    pthread_t t;
    pthread_barrier_init(&handed, NULL, 2);
    pthread_barrier_init(&freed, NULL, 2);
    if (pthread_create(&t, NULL, consumer, NULL) != 0) {
        perror("pthread_create");
        return 2;
    }
    int ok = 1;
    for (int r = 0; r < rounds && ok; r++) {
        round_no = r;
        nblocks = r % RARE_EVERY ? COMMON : COMMON + 1;
        for (int i = 0; i < nblocks; i++) {
            size_t n = i == COMMON ? RARE_SIZE : 64;
            if (!(blocks[i] = malloc(n))) {
                ok = 0;
                break;
            }
            memset(blocks[i], r, n);
        }
        if (!ok)
            abort();   /* (the consumer waits at the barrier: no way to tell it) */
        pthread_barrier_wait(&handed);
        pthread_barrier_wait(&freed);
    }
    pthread_join(t, NULL);
    TAP_CHECK(ok && !bad, "%d rounds handed over and freed, contents kept (%s)", rounds, lib);
    long spans = hlm_test_stat("slab spans made");
    tap_diag("slab spans made: %ld", spans);
    TAP_CHECK(spans >= 0, "malloc_stats reports the spans made");
    TAP_CHECK(spans >= 0 && spans <= SPANS_MAX,
              "the rare class keeps its span: %ld spans made over %d rounds (at most %d)",
              spans, rounds, SPANS_MAX);
    return tap_done();
}
