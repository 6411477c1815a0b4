/*
 * feed.c: decoding a trace section on a thread of its own (see feed.h).
 *
 * The thread decodes each batch into one of NBUF buffers (hl_reader_events_to: no
 * copy); the caller takes them in order.  The caller holds the batch it was handed last
 * until it asks for the next one; the batches published and not taken yet wait; the
 * thread fills the next buffer only when neither is in it (filled - taken < NBUF - 1).
 * A mutex and a condition variable hand buffers over, once per batch (thousands of
 * events).
 */
#include "feed.h"

#include <pthread.h>
#include <stdlib.h>

#define NBUF 4

struct hl_feed {
    struct hl_reader *r;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hl_event *buf[NBUF]; /* HL_READER_BATCH events each */
    ssize_t n[NBUF];         /* what hl_reader_events returned for buffer i */
    uint64_t filled, taken;  /* batches published, and handed to the caller */
    int stop;                /* the caller is done: the thread ends */
    struct hl_err err;       /* when a batch is -1 */
};

static void *feed_main(void *arg)
{
    struct hl_feed *f = arg;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        while (f->filled - f->taken >= NBUF - 1 && !f->stop)
            pthread_cond_wait(&f->cv, &f->mu);
        int stop = f->stop;
        pthread_mutex_unlock(&f->mu);
        if (stop)
            break;
        const unsigned i = (unsigned)(f->filled % NBUF);
        ssize_t n = hl_reader_events_to(f->r, f->buf[i], &f->err);
        f->n[i] = n;
        pthread_mutex_lock(&f->mu);
        f->filled++;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        if (n <= 0)
            break;
    }
    return NULL;
}

struct hl_feed *hl_feed_start(struct hl_reader *r)
{
    struct hl_feed *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->r = r;
    for (int i = 0; i < NBUF; i++)
        if (!(f->buf[i] = malloc(HL_READER_BATCH * sizeof *f->buf[i]))) {
            while (i--)
                free(f->buf[i]);
            free(f);
            return NULL;
        }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->th, NULL, feed_main, f) != 0) {
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        for (int i = 0; i < NBUF; i++)
            free(f->buf[i]);
        free(f);
        return NULL;
    }
    return f;
}

ssize_t hl_feed_next(struct hl_feed *f, const struct hl_event **events, struct hl_err *err)
{
    pthread_mutex_lock(&f->mu);
    if (f->taken && f->n[(f->taken - 1) % NBUF] <= 0) {
        pthread_mutex_unlock(&f->mu);
        return 0; /* asked again after the end (or an error, already returned) */
    }
    while (f->filled == f->taken)
        pthread_cond_wait(&f->cv, &f->mu);
    const unsigned i = (unsigned)(f->taken % NBUF);
    f->taken++; /* and the batch handed out before is the thread's again */
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (f->n[i] < 0)
        *err = f->err;
    *events = f->buf[i];
    return f->n[i];
}

void hl_feed_end(struct hl_feed *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stop = 1;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->th, NULL);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    for (int i = 0; i < NBUF; i++)
        free(f->buf[i]);
    free(f);
}
