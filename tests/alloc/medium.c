/*
 * medium.c: holes among medium blocks are reused.  Many blocks of similar sizes above
 * 48 KiB (the boundary-tag heap's: above the slab classes, below the mmap threshold) are
 * allocated, every other one is freed, and as many blocks of the same size distribution
 * are allocated again: most must go into the holes (the resident set ends well under its
 * first peak plus what they take; an allocator may purge the holes meanwhile), however
 * the allocator bounds its search of a bin of near sizes, and every block keeps its
 * contents.  Usage: medium LIBRARY.so
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define N 1500

/* 52 KiB to 53 KiB in 16-byte steps, in a scrambled order: free chunks of nearly the
 * same size, many a little too small for the next request. */
static size_t size_of(size_t i) { return 52 * 1024 + (i * 2654435761u % 64) * 16; }

static char *p[N];
static size_t sz[N];

static int intact(size_t i)
{
    for (size_t k = 0; k < sz[i]; k += 512)
        if (p[i][k] != (char)i)
            return 0;
    return p[i][sz[i] - 1] == (char)i;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    int ok = 1;
    for (size_t i = 0; i < N; i++) {
        sz[i] = size_of(i);
        p[i] = malloc(sz[i]);
        if (!p[i]) {
            ok = 0;
            break;
        }
        memset(p[i], (char)i, sz[i]);
    }
    TAP_CHECK(ok, "%d medium blocks of 52-53 KiB (%s)", N, lib);
    if (!ok)
        return tap_done();
    size_t before = hlm_test_rss(), holes = 0;
    for (size_t i = 0; i < N; i += 2) {
        holes += sz[i];
        free(p[i]);
    }
    size_t again = 0;
    for (size_t i = 0; i < N; i += 2) {
        sz[i] = size_of(i * 7 + 3);   /* the same sizes, in another order */
        p[i] = malloc(sz[i]);
        if (!p[i]) {
            ok = 0;
            break;
        }
        memset(p[i], (char)i, sz[i]);
        again += sz[i];
    }
    size_t after = hlm_test_rss(), grown = after > before ? after - before : 0;
    TAP_CHECK(ok, "as many again into the %zu KiB of holes", holes >> 10);
    tap_diag("RSS %zu KiB -> %zu KiB for %zu KiB of new blocks", before >> 10, after >> 10, again >> 10);
    TAP_CHECK(grown * 4 < again, "the holes were reused: RSS grew by %zu KiB, under a quarter of %zu KiB",
              grown >> 10, again >> 10);
    size_t bad = 0;
    for (size_t i = 0; i < N; i++)
        bad += p[i] && !intact(i);
    TAP_CHECK(bad == 0, "every block kept its contents (%zu changed)", bad);
    for (size_t i = 0; i < N; i++)
        free(p[i]);
    void *q = malloc(100000);
    TAP_CHECK(q != NULL, "the allocator still works");
    free(q);
    return tap_done();
}
