/*
 * consumer.c: a thread that only frees (the consumer of a producer/consumer pair) gives
 * the blocks back for their producer to use again, while it stays alive.  The main
 * thread allocates a round of ROUND_BYTES in blocks of 16..1024 bytes, writes each with
 * its round's pattern and hands the round over; the consumer checks every block and
 * frees it, then waits for the next round.  Over ROUNDS rounds the resident set may
 * grow by at most a quarter of one round after the first two: the consumer holds a
 * batch of each class at most, the rest went back to the producer's spans.  (Without
 * reuse it would grow by a whole round each time.)
 * Usage: consumer LIBRARY.so
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define ROUNDS 40
#define ROUND_BYTES ((size_t)8 << 20)
#define MAX_BLOCKS (ROUND_BYTES / 16)

static char *blocks[MAX_BLOCKS];
static size_t sizes[MAX_BLOCKS], nblocks;
static int round_no, bad;
static pthread_barrier_t handed, freed;

static void *consumer(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        pthread_barrier_wait(&handed);
        for (size_t i = 0; i < nblocks; i++) {
            char *p = blocks[i];
            if (p[0] != (char)round_no || p[sizes[i] - 1] != (char)round_no)
                bad = 1;
            free(p);
        }
        pthread_barrier_wait(&freed);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    tap_diag("allocator library: %s", lib);
    if (pthread_barrier_init(&handed, NULL, 2) != 0 || pthread_barrier_init(&freed, NULL, 2) != 0)
        return 1;
    pthread_t t;
    if (pthread_create(&t, NULL, consumer, NULL) != 0)
        return 1;
    uint64_t seed = 12345;
    size_t base = 0, rss = 0;
    int oom = 0;
    for (int r = 0; r < ROUNDS; r++) {
        round_no = r;
        size_t bytes = 0;
        nblocks = 0;
        while (bytes < ROUND_BYTES && nblocks < MAX_BLOCKS) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            size_t n = 16 + (seed >> 33) % 1009;
            char *p = malloc(n);
            if (!p) {
                oom = 1;
                break;
            }
            memset(p, (char)r, n);
            blocks[nblocks] = p;
            sizes[nblocks++] = n;
            bytes += n;
        }
        pthread_barrier_wait(&handed);
        pthread_barrier_wait(&freed);
        if (r == 1)
            base = hlm_test_rss();
    }
    rss = hlm_test_rss();
    pthread_join(t, NULL);
    TAP_CHECK(!oom && !bad, "%d rounds of %zu MiB in blocks of 16..1024 bytes, each freed by the "
              "consumer thread with its contents intact", ROUNDS, ROUND_BYTES >> 20);
    size_t grew = rss > base ? rss - base : 0;
    TAP_CHECK(grew <= ROUND_BYTES / 4,
              "the producer used the consumer's frees again: RSS grew by %zu KiB over rounds 2..%d "
              "(at most %zu KiB; %zu MiB without reuse)", grew >> 10, ROUNDS, (ROUND_BYTES / 4) >> 10,
              (ROUND_BYTES * (ROUNDS - 2)) >> 20);
    return tap_done();
}
