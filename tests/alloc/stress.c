/*
 * stress.c: several threads allocate and free random sizes under one allocator library
 * (argv[1], preloaded), passing blocks to each other through a shared table so that most
 * blocks are freed by another thread than the one that allocated them.  Every block
 * carries its size and a pattern, checked before it is freed.  In the middle the process
 * forks while the threads run; the child checks and frees every block it inherited and
 * allocates again.  Threads exit and new ones start, so caches are flushed and reused.
 * Usage: stress LIBRARY.so [steps per thread]
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define THREADS 4
#define SLOTS 8192

struct block {
    size_t size;
    uint64_t tag;
};

static struct block *table[SLOTS];
static long steps = 60000;
static int bad;   /* blocks found damaged */

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static struct block *make(unsigned long r)
{
    size_t n;
    switch (r % 100) {
    case 0: n = 40000 + (r >> 8) % 600000; break;           /* medium and large */
    case 1: case 2: case 3: n = 2048 + (r >> 8) % 30000; break;
    default: n = sizeof(struct block) + (r >> 8) % 600; break;
    }
    struct block *b = (r >> 40) % 4 == 0 ? calloc(1, n) : malloc(n);
    if (!b)
        return NULL;
    b->size = n;
    b->tag = r;
    memset(b + 1, (int)(r & 0xff), n - sizeof *b);
    return b;
}

static int check(const struct block *b)
{
    const unsigned char *p = (const unsigned char *)(b + 1);
    size_t n = b->size - sizeof *b, step = n > 4096 ? 61 : 1;
    for (size_t i = 0; i < n; i += step)
        if (p[i] != (b->tag & 0xff))
            return 0;
    return n == 0 || p[n - 1] == (b->tag & 0xff);
}

static void consume(struct block *b)
{
    if (!b)
        return;
    if (!check(b))
        __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
    if (b->size > 100 && (b->tag >> 50) % 3 == 0) {   /* some go through realloc first */
        size_t n = b->size / 2;
        struct block *c = realloc(b, n);
        if (!c)
            return;
        c->size = n;
        if (!check(c))
            __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
        b = c;
    }
    free(b);
}

static void *worker(void *arg)
{
    unsigned long seed = (unsigned long)(uintptr_t)arg * 2654435761u + 1;
    for (long i = 0; i < steps; i++) {
        unsigned long r = rnd(&seed);
        struct block *b = make(r);
        struct block *old = __atomic_exchange_n(&table[(r >> 13) % SLOTS], b, __ATOMIC_ACQ_REL);
        consume(old);
    }
    return NULL;
}

static int child_work(void)
{
    int damaged = 0;
    for (int i = 0; i < SLOTS; i++) {
        struct block *b = table[i];
        if (b && !check(b))
            damaged++;
        free(b);
        table[i] = NULL;
    }
    unsigned long seed = 5;
    for (int i = 0; i < 20000; i++) {
        struct block *b = make(rnd(&seed));
        if (!b || !check(b))
            damaged++;
        free(b);
    }
    return damaged ? 1 : 0;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    if (argc > 2)
        steps = atol(argv[2]);
    tap_diag("allocator library: %s, %d threads x %ld steps", lib, THREADS, steps);

    int created = 1;
    for (int round = 0; round < 3; round++) {
        pthread_t t[THREADS];
        for (int i = 0; i < THREADS; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(round * THREADS + i + 1)))
                created = 0;
        if (round == 1) {
            usleep(20000);
            pid_t pid = fork();
            if (pid == 0)
                _exit(child_work());
            int st = -1;
            waitpid(pid, &st, 0);
            TAP_CHECK(pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "a child forked while threads allocate checks, frees and allocates blocks");
        }
        for (int i = 0; i < THREADS; i++)
            pthread_join(t[i], NULL);
    }
    TAP_CHECK(created, "threads start (their stacks and TLS come from the allocator)");
    int left = 0;
    for (int i = 0; i < SLOTS; i++) {
        if (table[i] && !check(table[i]))
            left++;
        free(table[i]);
    }
    TAP_CHECK(bad == 0 && left == 0, "no block damaged among %ld passed between %d threads (3 generations)",
              3 * THREADS * steps, THREADS);
    return tap_done();
}
