/*
 * threadexit.c: memory threads free is given back by the time they exit, and blocks they
 * leave alive stay usable.  THREADS threads at once each allocate PER_THREAD bytes in
 * blocks of 64 bytes to 16 KiB (the variants give each thread an arena of its own), write
 * them, free all but KEEP of them and exit; the resident set, measured before the threads
 * started and after they were joined, may grow by at most an eighth of what they had
 * allocated.  Then the main thread checks and frees the blocks they kept (frees into
 * arenas whose threads are gone) and a second generation of threads does the same again
 * (arenas taken over), without the resident set growing past the same bound.
 * Usage: threadexit LIBRARY.so
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define THREADS 4
#define PER_THREAD ((size_t)24 << 20)
#define KEEP 64
#define MAXBLOCKS (PER_THREAD / 64)

struct job {
    int id, failed;
    char *kept[KEEP];
    size_t kept_n[KEEP];
};

static char **tables[THREADS];

static void *run(void *arg)
{
    struct job *j = arg;
    char **b = tables[j->id];
    uint64_t seed = 0x9E3779B97F4A7C15ull * (uint64_t)(j->id + 1);
    size_t n = 0, bytes = 0;
    while (bytes < PER_THREAD && n < MAXBLOCKS) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t sz = 64 + (size_t)(seed >> 33) % (16 * 1024 - 64);
        if (!(b[n] = malloc(sz))) {
            j->failed = 1;
            break;
        }
        memset(b[n], j->id + 1, sz);
        bytes += sz;
        if (n % (MAXBLOCKS / KEEP + 1) == 0 && n / (MAXBLOCKS / KEEP + 1) < KEEP) {
            j->kept[n / (MAXBLOCKS / KEEP + 1)] = b[n];
            j->kept_n[n / (MAXBLOCKS / KEEP + 1)] = sz;
            b[n] = NULL;
        }
        n++;
    }
    for (size_t i = 0; i < n; i++)
        free(b[i]);
    return NULL;
}

static int generation(struct job *jobs)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].id = i;
        if (pthread_create(&t[i], NULL, run, &jobs[i]) != 0)
            return 0;
    }
    int ok = 1;
    for (int i = 0; i < THREADS; i++)
        ok &= pthread_join(t[i], NULL) == 0 && !jobs[i].failed;
    return ok;
}

static int check_and_free(struct job *jobs)
{
    int intact = 1;
    for (int i = 0; i < THREADS; i++)
        for (int k = 0; k < KEEP; k++) {
            char *p = jobs[i].kept[k];
            if (!p)
                continue;
            intact &= p[0] == i + 1 && p[jobs[i].kept_n[k] - 1] == i + 1;
            free(p);
        }
    return intact;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    tap_diag("allocator library: %s, %d threads x %zu MiB", lib, THREADS, PER_THREAD >> 20);
    for (int i = 0; i < THREADS; i++)
        tables[i] = calloc(MAXBLOCKS, sizeof(char *));
    static struct job jobs[THREADS];
    free(malloc(1));   /* the main thread's arena, before the baseline */
    size_t limit = THREADS * PER_THREAD / 8;
    for (int g = 1; g <= 2; g++) {
        size_t before = hlm_test_rss();
        int ok = generation(jobs);
        size_t after = hlm_test_rss(), grew = after > before ? after - before : 0;
        TAP_CHECK(ok, "generation %d: %d threads allocate %zu MiB each, free all but %d blocks "
                  "and exit", g, THREADS, PER_THREAD >> 20, KEEP);
        TAP_CHECK(grew <= limit, "generation %d: the resident set grew by %zu KiB once they "
                  "exited (at most %zu)", g, grew >> 10, limit >> 10);
        TAP_CHECK(check_and_free(jobs), "generation %d: the blocks they kept are intact and "
                  "freed by the main thread", g);
    }
    return tap_done();
}
