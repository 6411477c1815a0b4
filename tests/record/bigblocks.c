/* rec-bigblocks: large blocks of which the program writes a few pages, for the
 * recorder's page counts (raw.h, HL_RAW_PAGES) and the replay that honours them.
 *   #0 malloc 32 MiB, 100 pages written       (a fresh mapping)
 *   #1 calloc 8 MiB, 20 pages written
 *   #2 malloc 12 MiB, then freed: glibc raises its mmap threshold past it
 *   #3 calloc 4 MiB from glibc's heap (zeroed there by glibc), 5 pages written
 *   #4 malloc 1 MiB, 3 pages written, live at exit
 * All of #0, #1, #3, #4 are live together: 45 MiB, of which the program writes 128
 * pages (512 KiB).
 * rec-bigblocks N: instead, N blocks of 64 KiB live at once, one page of each written,
 * then freed (more than the recorder's table holds: HL_RAW_PAGES_TRACKED). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_pages(char *p, int n)
{
    for (int i = 0; i < n; i++)
        p[(size_t)i * 4096 + 64] = (char)(i + 1);
}

/* Through volatile pointers: the compiler may not drop a malloc it sees freed. */
static void *(*volatile alloc)(size_t) = malloc;
static void *(*volatile zalloc)(size_t, size_t) = calloc;
static void (*volatile release)(void *) = free;

/* N blocks of 64 KiB live together. */
static int many(long n)
{
    char **v = alloc((size_t)n * sizeof *v);
    if (!v)
        return 1;
    for (long i = 0; i < n; i++) {
        v[i] = alloc(64 << 10);
        if (!v[i])
            return 1;
        write_pages(v[i], 1);
    }
    for (long i = 0; i < n; i++)
        release(v[i]);
    release(v);
    printf("%ld\n", n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        return many(atol(argv[1]));
    char *a = alloc(32 << 20);
    write_pages(a, 100);
    char *b = zalloc(8 << 20, 1);
    write_pages(b, 20);
    char *c = alloc(12 << 20);
    write_pages(c, 1);
    release(c);
    char *d = zalloc(4 << 20, 1);
    write_pages(d, 5);
    char *e = alloc(1 << 20);
    write_pages(e, 3);
    int sum = a[64] + b[64] + d[64] + e[64];
    release(a);
    release(b);
    release(d);
    printf("%d\n", sum);
    return 0;
}
