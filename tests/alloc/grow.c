/*
 * grow.c: a buffer grown by doubling costs the pages the program writes, not the copies.
 * Each round grows a buffer from 8 KiB to 4 MiB by realloc, writing only the new half at
 * each step (as sqlite's group_concat or a string builder does), with a small block
 * allocated after it at every step so that it cannot simply take the heap's top; then it
 * frees it all.  The minor faults of the rounds are counted (getrusage) and compared with
 * the pages written: an allocator that copies a large buffer into fresh pages at every
 * step faults about twice the pages written (the copies), one that grows large buffers
 * in their own mappings (mremap: no copy) about once.  Counts, not time.
 * Usage: grow LIBRARY.so [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    int rounds = argc > 2 ? atoi(argv[2]) : 8;
    const size_t first = 8 << 10, last = 4 << 20;
    const long page = sysconf(_SC_PAGESIZE);
    void *small[64];
    int ok = 1;
    long written = 0, before = hlm_test_minflt();
    for (int r = 0; r < rounds && ok; r++) {
        size_t n = first;
        char *buf = malloc(n);
        const char c = (char)('a' + r % 26);
        unsigned k = 0;
        ok = buf != NULL;
        if (ok)
            memset(buf, c, n);
        written += (long)(n / (size_t)page);
        while (ok && n < last) {
            char *q = realloc(buf, 2 * n);
            if (!q) {
                ok = 0;
                break;
            }
            buf = q;
            if (buf[n - 1] != c || buf[0] != c)
                ok = 0;
            memset(buf + n, c, n);
            written += (long)(n / (size_t)page);
            n *= 2;
            small[k++] = malloc(100); /* after the buffer: it cannot grow into the top */
        }
        free(buf);
        while (k)
            free(small[--k]);
    }
    long faults = hlm_test_minflt() - before;
    TAP_CHECK(ok, "%d buffers grown from 8 KiB to 4 MiB by doubling, contents kept (%s)", rounds, lib);
    tap_diag("pages written %ld, minor faults %ld (%.2f per page written)", written, faults,
             (double)faults / (double)written);
    TAP_CHECK(faults * 4 < written * 5,
              "growth faults at most 1.25 per page the program wrote: the copies do not fault "
              "(%ld faults, %ld pages written)", faults, written);
    return tap_done();
}
