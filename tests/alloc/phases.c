/*
 * phases.c: a program whose rounds alternate the sizes they allocate does not fault its
 * memory in again round after round.  Each round replaces two thirds of 200,000 slots
 * with blocks of 16-528 bytes (even rounds) or 16-80 bytes (odd rounds), one in 50 of
 * them 4-49 KiB with only its first 256 bytes written (a header, as real programs write
 * big buffers), then frees every other slot: the small classes' spans empty and fill
 * again, and the big blocks' spans are made again where others were.  From the fourth
 * round on, the resident set stays about the same, so new minor faults there are pages
 * given back and taken again, or pages a big block's new place faulted in while the
 * old place's stayed resident.  Counts, not time: the faults of rounds 4..ROUNDS are
 * compared with the process's peak resident pages.  Usage: phases LIBRARY.so [ROUNDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define SLOTS 200000

static unsigned long next(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    int rounds = argc > 2 ? atoi(argv[2]) : 6;
    static unsigned char *b[SLOTS];
    static size_t len[SLOTS];
    unsigned long seed = 42;
    long later = 0;
    int ok = 1;
    for (int r = 0; r < rounds && ok; r++) {
        const size_t scale = r % 2 ? 64 : 512;
        const long before = hlm_test_minflt();
        for (int i = 0; i < SLOTS && ok; i++) {
            if (b[i] && next(&seed) % 3 == 0)
                continue;   /* survivors pin their spans */
            if (b[i] && (b[i][0] != (unsigned char)len[i] || b[i][len[i] < 256 ? len[i] - 1 : 255] != (unsigned char)len[i]))
                ok = 0;
            free(b[i]);
            const unsigned long x = next(&seed);
            len[i] = x % 50 == 0 ? 4096 + x % 45000 : 16 + x % scale;
            b[i] = malloc(len[i]);
            if (!b[i]) {
                ok = 0;
                break;
            }
            memset(b[i], (int)(unsigned char)len[i], len[i] < 256 ? len[i] : 256);
        }
        for (int i = r % 2; i < SLOTS; i += 2) {
            free(b[i]);
            b[i] = NULL;
        }
        if (r >= 3)
            later += hlm_test_minflt() - before;
    }
    for (int i = 0; i < SLOTS; i++)
        free(b[i]);
    TAP_CHECK(ok, "%d rounds of blocks of alternating sizes, contents kept (%s)", rounds, lib);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    const long peak = ru.ru_maxrss / (sysconf(_SC_PAGESIZE) / 1024);
    tap_diag("peak resident %ld pages, minor faults in rounds 4..%d: %ld", peak, rounds, later);
    TAP_CHECK(later * 10 < peak,
              "rounds 4..%d fault in less than a tenth of the peak resident pages (%ld faults, %ld pages)",
              rounds, later, peak);
    return tap_done();
}
