/*
 * scratch.c: a scratch buffer per request, the pattern of servers and compilers: one
 * large block allocated, written and freed, again and again, with nothing else live
 * above it.  Usage: hl-scratch KIB ROUNDS (prints a checksum).  tests/suite/faults.sh
 * counts its page faults: an allocator that gives the buffer back at every free faults
 * all of it in again at every round.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    size_t n = strtoul(argv[1], NULL, 10) << 10;
    int rounds = atoi(argv[2]);
    unsigned long sum = 0;
    void *small = malloc(100); /* live below the buffer, as a program's other data */
    for (int r = 0; r < rounds; r++) {
        unsigned char *volatile p = malloc(n);
        if (!p)
            return 1;
        memset(p, r, n);
        sum += p[n / 2];
        free(p);
    }
    free(small);
    printf("scratch: %lu\n", sum);
    return 0;
}
