/*
 * calloc.c: a large calloc costs the pages the program touches, and is zero however its
 * memory came.  A fresh process callocs 3 MiB (below the default allocator's adaptive
 * mmap threshold, which starts at 4 MiB): the block reads as zero and the resident set
 * grows by far less than its size.  Then, once mapped blocks were freed (the threshold
 * adapts and such sizes come from the heap), memory written with 0xff and freed is
 * callocked again and must read as zero.
 * Usage: calloc LIBRARY.so
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preload.h"
#include "tap.h"

#define MIB ((size_t)1 << 20)

static int all_zero(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    size_t before = hlm_test_rss();
    unsigned char *a = calloc(1, 3 * MIB);
    TAP_CHECK(a != NULL, "calloc(1, 3 MiB) in a fresh process (%s)", lib);
    if (!a)
        return tap_done();
    for (size_t i = 0; i < 16 * 4096; i += 4096)
        a[i] = 1; /* the program touches 16 pages */
    size_t grown = hlm_test_rss() - before;
    tap_diag("RSS grew by %zu KiB", grown >> 10);
    TAP_CHECK(grown < MIB, "its untouched pages are not resident (RSS grew by %zu KiB)", grown >> 10);
    for (size_t i = 0; i < 16 * 4096; i += 4096)
        a[i] = 0;
    TAP_CHECK(all_zero(a, 3 * MIB), "it reads as zero");
    free(a);

    /* Blocks of these sizes were mapped and freed: the threshold adapts, and memory the
     * program wrote comes back from calloc. */
    for (int round = 0; round < 4; round++) {
        unsigned char *b[4];
        for (int k = 0; k < 4; k++) {
            b[k] = malloc((size_t)(k + 2) * MIB);
            if (b[k])
                memset(b[k], 0xff, (size_t)(k + 2) * MIB);
        }
        for (int k = 0; k < 4; k++)
            free(b[k]);
        int zero = 1;
        for (int k = 0; k < 4; k++) {
            b[k] = calloc((size_t)(k + 2), MIB);
            zero = zero && b[k] && all_zero(b[k], (size_t)(k + 2) * MIB);
        }
        TAP_CHECK(zero, "round %d: calloc of 2..5 MiB after blocks of those sizes were written and freed reads as zero", round);
        for (int k = 0; k < 4; k++)
            free(b[k]);
    }
    return tap_done();
}
