/*
 * threads.c: a multi-threaded test program for `heaplab record`.  Four workers each
 * allocate 1000 blocks of sizes 1000..1099 (a range nothing else in the process uses)
 * and free every other one themselves; the other half goes to a shared queue that the
 * main thread drains and frees while the workers are still running, so those frees
 * cross threads and race with allocations.  record.sh checks the counts and that no
 * free comes before its allocation in the merged order.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#define WORKERS 4
#define PER_WORKER 1000

static void *queue[WORKERS * PER_WORKER];
static size_t qhead, qtail;
static int done_workers;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void *worker(void *arg)
{
    unsigned id = (unsigned)(size_t)arg;
    for (unsigned i = 0; i < PER_WORKER; i++) {
        char *p = malloc(1000 + (i + id) % 100);
        if (!p)
            abort();
        p[0] = (char)i;
        if (i % 2 == 0) {
            free(p);
        } else {
            pthread_mutex_lock(&lock);
            queue[qtail++] = p;
            pthread_mutex_unlock(&lock);
        }
    }
    pthread_mutex_lock(&lock);
    done_workers++;
    pthread_mutex_unlock(&lock);
    return NULL;
}

int main(void)
{
    pthread_t th[WORKERS];
    for (size_t i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)i) != 0)
            return 1;
    /* Drain the queue while the workers run. */
    for (;;) {
        pthread_mutex_lock(&lock);
        void *p = qhead < qtail ? queue[qhead++] : NULL;
        int finished = done_workers == WORKERS && qhead == qtail;
        pthread_mutex_unlock(&lock);
        if (p)
            free(p);
        else if (finished)
            break;
        else
            usleep(100);
    }
    for (size_t i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    return write(1, "done\n", 5) == 5 ? 0 : 1;
}
