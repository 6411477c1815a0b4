/*
 * fragment.c: a fragmenter: phases that allocate many blocks of mixed sizes (16 B..48 KiB),
 * free a scattered subset and allocate different sizes into the holes, so that peak RSS
 * shows how well an allocator reuses and returns memory.  Usage: hlm-bench-fragment [rounds].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 200000

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 6;
    static char *b[N];
    unsigned long seed = 42, sum = 0;
    for (int r = 0; r < rounds; r++) {
        size_t scale = r % 2 ? 64 : 512;
        for (int i = 0; i < N; i++) {
            if (b[i] && rnd(&seed) % 3 == 0)
                continue;   /* survivors pin their pages */
            free(b[i]);
            unsigned long x = rnd(&seed);
            size_t n = x % 50 == 0 ? 4096 + x % 45000 : 16 + x % scale;
            b[i] = malloc(n);
            memset(b[i], (int)r, n < 256 ? n : 256);
            sum += n;
        }
        for (int i = r % 2; i < N; i += 2) {
            free(b[i]);
            b[i] = NULL;
        }
    }
    for (int i = 0; i < N; i++)
        free(b[i]);
    printf("fragment: %lu bytes allocated\n", sum);
    return 0;
}
