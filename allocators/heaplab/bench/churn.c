/*
 * churn.c: small-object churn, the common case of real programs: each thread keeps a
 * window of live blocks (8..512 bytes, skewed small) and replaces a random one per step,
 * touching each new block.  Usage: hlm-bench-churn [threads] [steps per thread].
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 20000

static long steps = 4000000;

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg)
{
    unsigned long seed = (unsigned long)arg * 7919 + 1, sum = 0;
    char **slot = calloc(SLOTS, sizeof *slot);
    for (long i = 0; i < steps; i++) {
        unsigned long r = rnd(&seed);
        size_t k = r % SLOTS;
        size_t n = (r >> 20) % 8 ? 8 + (r >> 32) % 120 : 8 + (r >> 32) % 504;
        free(slot[k]);
        slot[k] = malloc(n);
        slot[k][0] = (char)n;
        sum += (unsigned char)slot[k][0];
    }
    for (size_t k = 0; k < SLOTS; k++)
        free(slot[k]);
    free(slot);
    return (void *)sum;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (argc > 2)
        steps = atol(argv[2]);
    pthread_t t[64];
    if (threads < 1 || threads > 64)
        return 2;
    unsigned long total = 0;
    for (int i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)(long)i);
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (unsigned long)r;
    }
    printf("churn %d threads: checksum %lu\n", threads, total);
    return 0;
}
