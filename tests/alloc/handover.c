/*
 * handover.c: memory a thread leaves behind is used again.  A first thread allocates
 * 32 MiB in 64-byte blocks, writes them, frees every other one (its spans are then half
 * used, their holes resident) and exits, leaving the other half alive.  A second thread,
 * which the default allocator puts on another shard of its central lists, then allocates
 * 12 MiB of 64-byte blocks: they must go into those holes, so the resident set may grow
 * by at most a quarter of that.  (Before spans of exited threads were adopted across
 * shards, it grew by the whole 12 MiB.)  Then everything is freed.
 * Usage: handover LIBRARY.so
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define BLOCK 64
#define FIRST ((size_t)32 << 20)
#define SECOND ((size_t)12 << 20)

static char **first, **second;
static size_t nfirst = FIRST / BLOCK, nsecond = SECOND / BLOCK;
static int failed;

static void *run_first(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nfirst; i++) {
        if (!(first[i] = malloc(BLOCK))) {
            failed = 1;
            return NULL;
        }
        memset(first[i], 1, BLOCK);
    }
    for (size_t i = 0; i < nfirst; i += 2) {
        free(first[i]);
        first[i] = NULL;
    }
    return NULL;
}

static void *run_second(void *arg)
{
    (void)arg;
    for (size_t i = 0; i < nsecond; i++) {
        if (!(second[i] = malloc(BLOCK))) {
            failed = 1;
            return NULL;
        }
        memset(second[i], 2, BLOCK);
    }
    return NULL;
}

static void *table(size_t n)
{
    void *p = mmap(NULL, n * sizeof(char *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0, n * sizeof(char *));   /* resident before the measurements */
    return p;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    tap_diag("allocator library: %s", lib);
    first = table(nfirst);
    second = table(nsecond);
    pthread_t t;
    if (pthread_create(&t, NULL, run_first, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    TAP_CHECK(!failed, "a thread allocates %zu MiB in %d-byte blocks, frees every other one and exits",
       FIRST >> 20, BLOCK);
    size_t before = hlm_test_rss();
    if (pthread_create(&t, NULL, run_second, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    size_t after = hlm_test_rss(), grew = after > before ? after - before : 0;
    TAP_CHECK(!failed && grew <= SECOND / 4,
       "the next thread's %zu MiB go into the holes it left: RSS grew by %zu KiB (at most %zu)",
       SECOND >> 20, grew >> 10, (SECOND / 4) >> 10);
    int intact = 1;
    for (size_t i = 1; i < nfirst; i += 2)
        intact &= first[i][0] == 1 && first[i][BLOCK - 1] == 1;
    for (size_t i = 0; i < nsecond; i++)
        intact &= second[i][0] == 2 && second[i][BLOCK - 1] == 2;
    TAP_CHECK(intact, "both threads' blocks kept their contents");
    for (size_t i = 0; i < nfirst; i++)
        free(first[i]);
    for (size_t i = 0; i < nsecond; i++)
        free(second[i]);
    return tap_done();
}
