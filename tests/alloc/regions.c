/*
 * regions.c: the sbrk heap when the break is not the allocator's alone.  Medium blocks
 * are allocated while the heap grows contiguously, after someone else's sbrk (a new
 * region), while a mapping just above the break makes sbrk fail (regions of their own,
 * got with mmap), and again once the break can grow (the first region grows again while
 * the newest is a mapped one); then every other block is freed, blocks of other sizes
 * come and go, and the rest is freed.  Every block keeps its contents; the debug library
 * checks the heap's invariants.  Usage: regions LIBRARY.so
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define N 2000

static char *p[N];
static size_t sz[N];
static size_t n;

static void grow(size_t count)
{
    for (size_t i = 0; i < count && n < N; i++, n++) {
        sz[n] = 40000 + (n % 97) * 16;
        p[n] = malloc(sz[n]);
        if (p[n])
            memset(p[n], (char)n, sz[n]);
    }
}

static size_t damaged(void)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] && (p[i][0] != (char)i || p[i][sz[i] - 1] != (char)i))
            bad++;
    return bad;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    grow(500);
    TAP_CHECK(damaged() == 0, "500 medium blocks on the break (%s)", lib);
    TAP_CHECK(sbrk(3 * 4096 + 8) != (void *)-1, "someone else moves the break");
    grow(500);
    TAP_CHECK(damaged() == 0, "500 more in a region after it");
    long page = sysconf(_SC_PAGESIZE);
    char *end = (char *)(((uintptr_t)sbrk(0) + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1));
    void *wall = mmap(end, 1 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    TAP_CHECK(wall == end, "a mapping just above the break stops sbrk");
    size_t before = n;
    grow(500);
    size_t got = 0;
    for (size_t i = before; i < n; i++)
        got += p[i] != NULL;
    TAP_CHECK(got == 500 && damaged() == 0, "500 more while sbrk fails (%zu got)", got);
    if (wall == end)
        munmap(wall, 1 << 20);
    grow(500);
    TAP_CHECK(damaged() == 0, "500 more once the break can grow again");
    for (size_t i = 0; i < n; i += 2) {
        free(p[i]);
        p[i] = NULL;
    }
    for (size_t i = 0; i < 1000; i++) {
        size_t s = 30000 + i * 48;
        char *q = malloc(s);
        if (q)
            memset(q, 0x5a, s);
        free(q);
    }
    TAP_CHECK(damaged() == 0, "every other block freed, others come and go: the rest intact");
    for (size_t i = 1; i < n; i += 2)
        free(p[i]);
    malloc_trim(0);
    void *q = malloc(50000);
    TAP_CHECK(q != NULL, "everything freed and trimmed, the allocator still works");
    free(q);
    return tap_done();
}
