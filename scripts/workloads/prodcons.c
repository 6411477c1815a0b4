/*
 * prodcons.c: producer/consumer across threads.  THREADS threads form pairs (one
 * thread alone still makes one pair, so there are always two); a producer allocates
 * messages of 16..1024 bytes, fills them and passes them in batches through its pair's
 * bounded queue; the consumer reads and frees them.  Every block is freed by another
 * thread than the one that allocated it.  The total number of messages is the same for
 * every thread count, so times compare across counts.
 * Usage: wl-prodcons [THREADS [MESSAGES]]   (default 4, 3000000)
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "wl.h"

#define BATCH 64
#define QUEUE 16   /* batches in flight per pair */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t nonempty, nonfull;
    char **batch[QUEUE];
    int head, count, done;
    long messages;
    unsigned long seed, sum;
} pair;

static void *producer(void *arg)
{
    pair *q = arg;
    long left = q->messages;
    unsigned long seed = q->seed;
    while (left > 0) {
        int n = left < BATCH ? (int)left : BATCH;
        char **b = wl_xmalloc((size_t)(BATCH + 1) * sizeof *b);
        for (int i = 0; i < n; i++) {
            unsigned long r = wl_rnd(&seed);
            size_t len = 16 + (r % 4 ? r >> 8 & 127 : r >> 8 & 1007);
            b[i] = wl_xmalloc(len);
            memset(b[i], (int)(r >> 32 & 0xff), len);
            b[i][0] = (char)(len & 0x7f);
            b[i][1] = (char)(len >> 7);
        }
        b[n] = NULL;
        left -= n;
        pthread_mutex_lock(&q->lock);
        while (q->count == QUEUE)
            pthread_cond_wait(&q->nonfull, &q->lock);
        q->batch[(q->head + q->count++) % QUEUE] = b;
        pthread_cond_signal(&q->nonempty);
        pthread_mutex_unlock(&q->lock);
    }
    pthread_mutex_lock(&q->lock);
    q->done = 1;
    pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static void *consumer(void *arg)
{
    pair *q = arg;
    unsigned long sum = 0;
    for (;;) {
        pthread_mutex_lock(&q->lock);
        while (q->count == 0 && !q->done)
            pthread_cond_wait(&q->nonempty, &q->lock);
        if (q->count == 0) {
            pthread_mutex_unlock(&q->lock);
            break;
        }
        char **b = q->batch[q->head];
        q->head = (q->head + 1) % QUEUE;
        q->count--;
        pthread_cond_signal(&q->nonfull);
        pthread_mutex_unlock(&q->lock);
        for (int i = 0; b[i]; i++) {
            size_t len = (size_t)b[i][0] | (size_t)b[i][1] << 7;
            sum += len + (unsigned char)b[i][len - 1];
            free(b[i]);
        }
        free(b);
    }
    q->sum = sum;
    return NULL;
}

int main(int argc, char **argv)
{
    const char *usage = "wl-prodcons [THREADS [MESSAGES]]";
    int threads = (int)wl_arg(argc, argv, 1, 4, 1024, usage);
    long messages = wl_arg(argc, argv, 2, 3000000, 1000000000, usage);
    int pairs = threads > 1 ? threads / 2 : 1;
    pair *q = calloc((size_t)pairs, sizeof *q);
    pthread_t *t = wl_xmalloc((size_t)pairs * 2 * sizeof *t);
    for (int i = 0; i < pairs; i++) {
        pthread_mutex_init(&q[i].lock, NULL);
        pthread_cond_init(&q[i].nonempty, NULL);
        pthread_cond_init(&q[i].nonfull, NULL);
        q[i].messages = messages / pairs + (i < messages % pairs);
        q[i].seed = 0x9e3779b97f4a7c15ul * (unsigned long)(i + 1);
        if (pthread_create(&t[2 * i], NULL, producer, &q[i]) ||
            pthread_create(&t[2 * i + 1], NULL, consumer, &q[i])) {
            fprintf(stderr, "wl-prodcons: cannot create threads\n");
            return 1;
        }
    }
    unsigned long sum = 0;
    for (int i = 0; i < pairs; i++) {
        pthread_join(t[2 * i], NULL);
        pthread_join(t[2 * i + 1], NULL);
        sum += q[i].sum;
    }
    printf("prodcons %d pairs, %ld messages: checksum %lu\n", pairs, messages, sum);
    free(t);
    free(q);
    return 0;
}
