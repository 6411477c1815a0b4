/*
 * growth.c: buffers that grow by realloc (strings, vectors) and medium to large blocks
 * (32 KiB..4 MiB) allocated, touched and freed.  Usage: hlm-bench-growth [rounds].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 300;
    unsigned long seed = 7, sum = 0;
    char *keep[64] = {0};
    for (int r = 0; r < rounds; r++) {
        char *v = NULL;
        size_t cap = 0;
        for (size_t len = 0; len < 200000; len += 97) {
            if (len + 97 > cap) {
                while (len + 97 > cap)
                    cap = cap ? cap * 3 / 2 : 64;
                v = realloc(v, cap);
            }
            memset(v + len, 'x', 97);
        }
        sum += cap;
        free(v);
        for (int i = 0; i < 64; i++) {
            unsigned long x = rnd(&seed);
            size_t n = x % 8 ? 32768 + x % 200000 : 262144 + x % (4 << 20);
            free(keep[i]);
            keep[i] = malloc(n);
            for (size_t o = 0; o < n; o += 4096)
                keep[i][o] = 1;
            sum += n;
        }
    }
    for (int i = 0; i < 64; i++)
        free(keep[i]);
    printf("growth: %lu bytes\n", sum);
    return 0;
}
