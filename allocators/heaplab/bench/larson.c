/*
 * larson.c: a larson-like server workload: threads replace random blocks (16..1024 bytes)
 * in their own windows, and every epoch pass their whole window to the next thread, so
 * most blocks are freed by another thread than the one that allocated them.
 * Usage: hlm-bench-larson [threads] [epochs] [steps per epoch].
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SLOTS 4000
#define MAXT 64

static int threads = 2;
static long epochs = 50, steps = 40000;
static char **windows[MAXT];
static pthread_barrier_t barrier;

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    unsigned long seed = (unsigned long)id * 104729 + 3, sum = 0;
    for (long e = 0; e < epochs; e++) {
        char **w = windows[(id + e) % threads];   /* someone else's window from epoch 1 on */
        for (long i = 0; i < steps; i++) {
            unsigned long r = rnd(&seed);
            size_t k = r % SLOTS, n = 16 + (r >> 24) % 1009;
            free(w[k]);
            w[k] = malloc(n);
            w[k][n - 1] = 1;
            sum += n;
        }
        pthread_barrier_wait(&barrier);
    }
    return (void *)sum;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        threads = atoi(argv[1]);
    if (argc > 2)
        epochs = atol(argv[2]);
    if (argc > 3)
        steps = atol(argv[3]);
    if (threads < 1 || threads > MAXT)
        return 2;
    for (int i = 0; i < threads; i++)
        windows[i] = calloc(SLOTS, sizeof(char *));
    pthread_barrier_init(&barrier, NULL, (unsigned)threads);
    pthread_t t[MAXT];
    for (long i = 0; i < threads; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    unsigned long total = 0;
    for (int i = 0; i < threads; i++) {
        void *r;
        pthread_join(t[i], &r);
        total += (unsigned long)r;
    }
    for (int i = 0; i < threads; i++) {
        for (int k = 0; k < SLOTS; k++)
            free(windows[i][k]);
        free(windows[i]);
    }
    printf("larson %d threads: %lu bytes allocated\n", threads, total);
    return 0;
}
