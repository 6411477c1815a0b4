/*
 * barrier.c: a test program whose live peak depends on its threads' interleaving.
 *
 * THREADS threads each allocate BLOCKS blocks, wait on a barrier, then free their
 * neighbour's blocks: every block is live at the barrier, so the program's live peak is
 * all of them at once.  A replay that lets a thread run ahead (freeing before the others
 * have allocated) holds less; one that keeps the recorded order holds the same.
 * Usage: barrier [THREADS [BLOCKS]]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int nthreads = 8, nblocks = 2000;
static void ***blocks;
static pthread_barrier_t bar;

static void *work(void *arg)
{
    const int me = (int)(long)arg;
    for (int i = 0; i < nblocks; i++) {
        blocks[me][i] = malloc(64 + (size_t)((i * 37 + me * 11) % 960));
        memset(blocks[me][i], me, 16);
    }
    pthread_barrier_wait(&bar);
    const int next = (me + 1) % nthreads;
    for (int i = 0; i < nblocks; i++)
        free(blocks[next][i]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = atoi(argv[1]);
    if (argc > 2)
        nblocks = atoi(argv[2]);
    if (nthreads < 1 || nthreads > 1024 || nblocks < 1)
        return 2;
    blocks = calloc((size_t)nthreads, sizeof *blocks);
    pthread_t *t = calloc((size_t)nthreads, sizeof *t);
    if (!blocks || !t)
        return 1;
    for (int i = 0; i < nthreads; i++)
        if (!(blocks[i] = calloc((size_t)nblocks, sizeof **blocks)))
            return 1;
    pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
    for (long i = 0; i < nthreads; i++)
        pthread_create(&t[i], NULL, work, (void *)i);
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    printf("%d threads x %d blocks\n", nthreads, nblocks);
    return 0;
}
