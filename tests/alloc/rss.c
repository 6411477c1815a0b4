/*
 * rss.c: memory goes back.  Allocate a lot of memory in small blocks (1 GiB by default,
 * argv[2] MiB otherwise), touch it, free it all, and check that the resident set drops
 * by most of what was allocated, first without help and then after malloc_trim(0).
 * The pointer table lives in its own mmap, touched before the first measurement, so the
 * figures are the allocator's alone.  Blocks are freed every other one first (the worst
 * order for giving pages back), or in allocation order with "sequential".
 * Usage: rss LIBRARY.so [MiB] [sequential]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    size_t mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 1024;
    int sequential = argc > 3 && strcmp(argv[3], "sequential") == 0;
    size_t total = mib << 20, n = total / 100;
    char **p = mmap(NULL, n * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return 1;
    memset(p, 0, n * sizeof *p);
    size_t before = hlm_test_rss(), got = 0, i = 0;
    while (got < total && i < n) {
        size_t sz = 16 + (i * 2654435761u) % 368;   /* 16..383 bytes, 200 on average */
        p[i] = malloc(sz);
        if (!p[i])
            break;
        memset(p[i], 1, sz);
        got += sz;
        i++;
    }
    size_t peak = hlm_test_rss();
    TAP_CHECK(got >= total, "allocated %zu MiB in %zu small blocks (%s)", got >> 20, i, lib);
    for (size_t k = 0; k < i; k++)
        if (sequential || k % 2 == 0)
            free(p[k]);
    for (size_t k = 0; !sequential && k < i; k++)
        if (k % 2)
            free(p[k]);
    size_t after = hlm_test_rss();
    size_t grown = peak > before ? peak - before : 0, kept = after > before ? after - before : 0;
    tap_diag("RSS before %zu MiB, peak %zu MiB, after free %zu MiB", before >> 20, peak >> 20, after >> 20);
    TAP_CHECK(grown >= total / 2, "the blocks were resident (%zu MiB)", grown >> 20);
    TAP_CHECK(kept * 2 < grown, "freeing them gives most back without malloc_trim (%zu MiB kept)", kept >> 20);
    malloc_trim(0);
    size_t trimmed = hlm_test_rss();
    kept = trimmed > before ? trimmed - before : 0;
    TAP_CHECK(kept * 20 < grown, "after malloc_trim(0) under 5%% is kept (%zu MiB)", kept >> 20);
    void *again = malloc(1000);
    TAP_CHECK(again != NULL, "the allocator still works after giving memory back");
    free(again);
    return tap_done();
}
