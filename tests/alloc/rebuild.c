/*
 * rebuild.c: a program that frees a structure of small blocks and builds another of the
 * same size, round after round (the binary-trees benchmark's pattern), does not fault the
 * structure's pages in again every round.  Each round allocates BLOCKS 16-byte blocks (6
 * MiB: more than a purge pass waits for), writes them, and frees them all.  The faults of
 * rounds 4..ROUNDS are compared with the pages those rounds' blocks fill.  Counts, not
 * time.  Usage: rebuild LIBRARY.so [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define BLOCKS (6 * 1024 * 1024 / 16)

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    int rounds = argc > 2 ? atoi(argv[2]) : 12;
    static unsigned char *b[BLOCKS];
    long later = 0;
    int ok = 1;
    for (int r = 0; r < rounds && ok; r++) {
        const long before = hlm_test_minflt();
        for (int i = 0; i < BLOCKS && ok; i++) {
            if (!(b[i] = malloc(16)))
                ok = 0;
            else
                memset(b[i], r, 16);
        }
        for (int i = 0; i < BLOCKS; i++) {
            if (b[i] && (b[i][0] != (unsigned char)r || b[i][15] != (unsigned char)r))
                ok = 0;
            free(b[i]);
            b[i] = NULL;
        }
        if (r >= 3)
            later += hlm_test_minflt() - before;
    }
    TAP_CHECK(ok, "%d rounds of %d blocks built and freed, contents kept (%s)", rounds,
              BLOCKS, lib);
    const long built = (long)(rounds - 3) * BLOCKS * 16 / sysconf(_SC_PAGESIZE);
    tap_diag("minor faults in rounds 4..%d: %ld, pages their blocks filled: %ld", rounds,
             later, built);
    TAP_CHECK(later * 4 < built,
              "rounds 4..%d fault in less than a quarter of the pages they fill "
              "(%ld faults, %ld pages)", rounds, later, built);
    return tap_done();
}
