/*
 * xstress.c: a threaded stress in the style of larson and xmalloc.  Every round starts
 * THREADS new threads (the threads of the round before have exited).  Thread t frees the
 * blocks that thread t-1 allocated in the round before (frees from another, now dead,
 * thread), churns short-lived blocks of its own, and leaves BLOCKS new blocks of 8..2048
 * bytes for thread t+1 of the next round.  Allocators see thread caches abandoned every
 * round and most frees remote.
 * Usage: wl-xstress [THREADS [ROUNDS [BLOCKS]]]   (default 32, 20, 2000)
 */
#include <pthread.h>
#include <string.h>

#include "wl.h"

static int threads, blocks;
static char **slots[2];   /* [round % 2][thread * blocks + i] */

typedef struct {
    int t, round;
    unsigned long sum;
} job;

static size_t block_size(unsigned long r)
{
    return r % 8 ? 8 + (r >> 16) % 248 : 8 + (r >> 16) % 2040;
}

static void *worker(void *arg)
{
    job *j = arg;
    unsigned long seed = 0x2545f4914f6cdd1dul ^ ((unsigned long)j->round << 20 | (unsigned long)j->t);
    unsigned long sum = 0;
    char **mine = slots[(j->round + 1) % 2] + (size_t)j->t * blocks;
    for (int i = 0; i < blocks; i++)
        if (mine[i]) {
            sum += (unsigned char)mine[i][0];
            free(mine[i]);
            mine[i] = NULL;
        }
    char *tmp[64] = { 0 };
    for (int i = 0; i < blocks * 4; i++) {   /* local churn */
        unsigned long r = wl_rnd(&seed);
        int k = (int)(r % 64);
        free(tmp[k]);
        tmp[k] = wl_xmalloc(block_size(r >> 6));
        tmp[k][0] = (char)r;
        sum += (unsigned char)tmp[k][0];
    }
    for (int k = 0; k < 64; k++)
        free(tmp[k]);
    char **next = slots[j->round % 2] + (size_t)((j->t + 1) % threads) * blocks;
    for (int i = 0; i < blocks; i++) {
        unsigned long r = wl_rnd(&seed);
        size_t n = block_size(r);
        next[i] = wl_xmalloc(n);
        memset(next[i], (int)(r >> 40 & 0xff), n < 64 ? n : 64);
    }
    j->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *usage = "wl-xstress [THREADS [ROUNDS [BLOCKS]]]";
    threads = (int)wl_arg(argc, argv, 1, 32, 1024, usage);
    int rounds = (int)wl_arg(argc, argv, 2, 20, 100000, usage);
    blocks = (int)wl_arg(argc, argv, 3, 2000, 10000000, usage);
    for (int s = 0; s < 2; s++)
        slots[s] = calloc((size_t)threads * blocks, sizeof(char *));
    pthread_t *tid = wl_xmalloc((size_t)threads * sizeof *tid);
    job *jobs = wl_xmalloc((size_t)threads * sizeof *jobs);
    unsigned long sum = 0;
    for (int r = 0; r < rounds; r++) {
        for (int t = 0; t < threads; t++) {
            jobs[t] = (job){ t, r, 0 };
            if (pthread_create(&tid[t], NULL, worker, &jobs[t])) {
                fprintf(stderr, "wl-xstress: cannot create threads\n");
                return 1;
            }
        }
        for (int t = 0; t < threads; t++) {
            pthread_join(tid[t], NULL);
            sum += jobs[t].sum;
        }
    }
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < (size_t)threads * blocks; i++)
            free(slots[s][i]);
        free(slots[s]);
    }
    printf("xstress %d threads, %d rounds, %d blocks: checksum %lu\n", threads, rounds, blocks, sum);
    free(tid);
    free(jobs);
    return 0;
}
