/*
 * api.c: the C allocation API of one heaplab allocator library (argv[1], preloaded):
 * every function, its edge cases and its error returns, checked from a program that
 * does not know it is not running on glibc.
 */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

static const char *lib;

/* Sizes the compiler cannot see, so that it neither warns about nor folds the calls. */
static size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

/* Writes a pattern derived from the address and size; check_pattern verifies it. */
static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(seed + i * 31 + (i >> 8));
}

static int intact(const void *p, size_t n, unsigned seed)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)(seed + i * 31 + (i >> 8)))
            return 0;
    return 1;
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int from_lib(const char *sym)
{
    void *f = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    return f && dladdr(f, &info) && info.dli_fname && strstr(info.dli_fname, lib);
}

static const size_t sizes[] = {0, 1, 8, 15, 16, 17, 24, 100, 255, 256, 257, 1000, 2048, 2049,
                               4000, 4096, 10000, 32767, 32768, 32769, 65536, 100000, 250000,
                               262144, 300000, 1 << 20, (1 << 20) + 1, 5 << 20};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static void test_symbols(void)
{
    static const char *names[] = {"malloc", "free", "calloc", "realloc", "reallocarray",
                                  "posix_memalign", "aligned_alloc", "memalign", "valloc",
                                  "pvalloc", "malloc_usable_size", "cfree", "malloc_trim",
                                  "mallinfo", "mallinfo2", "mallopt", "malloc_stats",
                                  "malloc_info", "__libc_malloc", "__libc_free",
                                  "__libc_calloc", "__libc_realloc", "__libc_memalign"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        TAP_CHECK(from_lib(names[i]), "%s resolves to %s, not glibc", names[i], lib);
}

static void test_malloc(void)
{
    void *a = malloc(0), *b = malloc(0);
    TAP_CHECK(a && b && a != b, "malloc(0) returns distinct non-NULL pointers");
    free(a);
    free(b);

    int aligned = 1, usable = 1, kept = 1;
    void *p[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        p[i] = malloc(sizes[i]);
        if (!p[i] || ((uintptr_t)p[i] & 15))
            aligned = 0;
        if (p[i] && malloc_usable_size(p[i]) < sizes[i])
            usable = 0;
        if (p[i])
            fill(p[i], sizes[i], (unsigned)i);
    }
    for (size_t i = 0; i < NSIZES; i++) {
        if (p[i] && !intact(p[i], sizes[i], (unsigned)i))
            kept = 0;
        free(p[i]);
    }
    TAP_CHECK(aligned, "malloc returns 16-byte aligned blocks, 0 bytes to 5 MiB");
    TAP_CHECK(usable, "malloc_usable_size >= the requested size, every size class");
    TAP_CHECK(kept, "blocks of every size keep their contents while others are written");

    errno = 0;
    TAP_CHECK(malloc(opaque(SIZE_MAX)) == NULL && errno == ENOMEM, "malloc(SIZE_MAX) fails with ENOMEM");
    errno = 0;
    TAP_CHECK(malloc(opaque((size_t)PTRDIFF_MAX + 1)) == NULL && errno == ENOMEM,
              "malloc(PTRDIFF_MAX + 1) fails with ENOMEM");
    errno = 0;
    TAP_CHECK(malloc(opaque((size_t)1 << 50)) == NULL && errno == ENOMEM,
              "malloc(1 PiB) fails with ENOMEM");
    TAP_CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL) is 0");
}

static void test_free(void)
{
    errno = 1234;
    free(NULL);
    TAP_CHECK(errno == 1234, "free(NULL) is a no-op that keeps errno");
    int kept = 1;
    for (size_t i = 0; i < NSIZES; i++) {
        void *q = malloc(sizes[i]);
        errno = 4321;
        free(q);
        if (errno != 4321)
            kept = 0;
    }
    /* Enough frees of one size to push blocks out of any cache, where syscalls happen. */
    void *many[4096];
    for (int i = 0; i < 4096; i++)
        many[i] = malloc(1000);
    for (int i = 0; i < 4096; i++) {
        errno = 4321;
        free(many[i]);
        if (errno != 4321)
            kept = 0;
    }
    /* cfree is free under its old name; glibc no longer links it, so look it up. */
    void (*cfree_fn)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    for (int i = 0; cfree_fn && i < 100; i++) {
        errno = 4321;
        cfree_fn(malloc((size_t)i * 100));
        if (errno != 4321)
            kept = 0;
    }
    TAP_CHECK(kept, "free and cfree preserve errno for blocks of every size");
}

static void test_calloc(void)
{
    int zero = 1;
    for (int round = 0; round < 3; round++) {
        void *p[NSIZES];
        for (size_t i = 0; i < NSIZES; i++) {
            p[i] = malloc(sizes[i]);
            if (p[i])
                memset(p[i], 0xab, sizes[i]);
        }
        for (size_t i = 0; i < NSIZES; i++)
            free(p[i]);
        for (size_t i = 0; i < NSIZES; i++) {
            p[i] = calloc(1, sizes[i]);
            if (!p[i] || !all_zero(p[i], sizes[i]))
                zero = 0;
        }
        for (size_t i = 0; i < NSIZES; i++)
            free(p[i]);
    }
    TAP_CHECK(zero, "calloc returns zeroed memory even where dirty blocks were freed");
    void *c = calloc(1000, 24);
    TAP_CHECK(c && all_zero(c, 24000), "calloc(count, size) multiplies");
    free(c);
    c = calloc(0, 100);
    TAP_CHECK(c != NULL, "calloc(0, n) returns a freeable block");
    free(c);
    errno = 0;
    TAP_CHECK(calloc(opaque(SIZE_MAX / 2), 3) == NULL && errno == ENOMEM,
              "calloc detects count * size overflow (ENOMEM)");
    errno = 0;
    TAP_CHECK(calloc(opaque((size_t)1 << 32), (size_t)1 << 32) == NULL && errno == ENOMEM,
              "calloc(2^32, 2^32) overflows to ENOMEM, not a small block");
}

static void test_realloc(void)
{
    char *p = realloc(NULL, 100);
    TAP_CHECK(p != NULL, "realloc(NULL, n) allocates");
    fill(p, 100, 7);
    /* Through every kind of block and back: small, medium, large, small. */
    static const size_t steps[] = {200, 3000, 40000, 200000, 600000, 3 << 20, 500000, 50000, 5000, 60};
    size_t have = 100;
    int kept = 1;
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        char *q = realloc(p, steps[i]);
        if (!q) {
            kept = 0;
            break;
        }
        size_t n = have < steps[i] ? have : steps[i];
        if (!intact(q, n, 7))
            kept = 0;
        fill(q, steps[i], 7);
        p = q;
        have = steps[i];
    }
    TAP_CHECK(kept, "realloc keeps the contents growing and shrinking through every size");
    TAP_CHECK(malloc_usable_size(p) >= have, "realloc'd block's usable size >= new size");
    free(p);

    int in_place = 1;
    static const size_t shrink[][2] = {{100, 90}, {20000, 19000}, {100000, 90000}, {1 << 20, 900000}};
    for (size_t i = 0; i < 4; i++) {
        char *a = malloc(shrink[i][0]);
        fill(a, shrink[i][0], 3);
        char *b = realloc(a, shrink[i][1]);
        if (b != a || !intact(b, shrink[i][1], 3))
            in_place = 0;
        free(b);
    }
    TAP_CHECK(in_place, "realloc shrinking a little stays in place and keeps the data");

    /* Grow a block whose neighbour is taken, so that it has to move. */
    int moved_ok = 1;
    for (size_t n = 24; n < 400000; n = n * 3 + 5) {
        char *a = malloc(n), *guard = malloc(n);
        fill(a, n, 11);
        char *b = realloc(a, n * 4);
        if (!b || !intact(b, n, 11))
            moved_ok = 0;
        free(guard);
        free(b);
    }
    TAP_CHECK(moved_ok, "realloc that must move copies the old contents");

    /* Grow repeatedly, as a string builder does: growth in place where possible. */
    char *s = NULL;
    size_t len = 0;
    int grow_ok = 1;
    for (int i = 0; i < 2000; i++) {
        char *t = realloc(s, len + 517);
        if (!t) {
            grow_ok = 0;
            break;
        }
        s = t;
        memset(s + len, 'a' + i % 26, 517);
        len += 517;
    }
    for (size_t i = 0; grow_ok && i < len; i++)
        if (s[i] != 'a' + (int)(i / 517) % 26)
            grow_ok = 0;
    free(s);
    TAP_CHECK(grow_ok, "realloc growing a buffer 2000 times keeps every byte");

    p = malloc(64);
    fill(p, 64, 5);
    errno = 0;
    TAP_CHECK(realloc(p, opaque(SIZE_MAX - 4096)) == NULL && errno == ENOMEM && intact(p, 64, 5),
              "realloc to an impossible size fails with ENOMEM and keeps the block");
    errno = 0;
    TAP_CHECK(realloc(p, opaque((size_t)1 << 50)) == NULL && errno == ENOMEM && intact(p, 64, 5),
              "realloc to 1 PiB fails with ENOMEM and keeps the block");
    TAP_CHECK(realloc(p, 0) == NULL, "realloc(p, 0) frees the block and returns NULL, as glibc");

    p = reallocarray(NULL, 10, 10);
    TAP_CHECK(p && malloc_usable_size(p) >= 100, "reallocarray(NULL, 10, 10) allocates 100 bytes");
    fill(p, 100, 9);
    errno = 0;
    TAP_CHECK(reallocarray(p, opaque(SIZE_MAX / 4), 8) == NULL && errno == ENOMEM && intact(p, 100, 9),
              "reallocarray detects overflow (ENOMEM) and keeps the block");
    char *q = reallocarray(p, 100, 10);
    TAP_CHECK(q && intact(q, 100, 9), "reallocarray grows and keeps the contents");
    free(q);
}

static void test_aligned(void)
{
    int ok_pm = 1, ok_aa = 1, ok_ma = 1;
    for (size_t al = 8; al <= (1 << 20); al *= 2) {
        static const size_t ns[] = {1, 16, 100, 4096, 40000, 300000};
        for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
            size_t n = ns[j];
            void *p = NULL;
            if (posix_memalign(&p, al, n) != 0 || ((uintptr_t)p & (al - 1)) ||
                malloc_usable_size(p) < n)
                ok_pm = 0;
            if (p) {
                fill(p, n, 1);
                ok_pm &= intact(p, n, 1);
            }
            void *q = aligned_alloc(al, n);
            if (!q || ((uintptr_t)q & (al - 1)) || malloc_usable_size(q) < n)
                ok_aa = 0;
            void *r = memalign(al, n);
            if (!r || ((uintptr_t)r & (al - 1)) || malloc_usable_size(r) < n)
                ok_ma = 0;
            if (q)
                memset(q, 1, n);
            if (r)
                memset(r, 2, n);
            free(p);
            free(q);
            free(r);
        }
    }
    TAP_CHECK(ok_pm, "posix_memalign aligns to 8..1 MiB with usable size >= n");
    TAP_CHECK(ok_aa, "aligned_alloc aligns to 8..1 MiB with usable size >= n");
    TAP_CHECK(ok_ma, "memalign aligns to 8..1 MiB with usable size >= n");

    void *p = (void *)1;
    TAP_CHECK(posix_memalign(&p, 0, 10) == EINVAL && p == (void *)1, "posix_memalign(align 0) is EINVAL");
    TAP_CHECK(posix_memalign(&p, 24, 10) == EINVAL, "posix_memalign(align 24, not a power of two) is EINVAL");
    TAP_CHECK(posix_memalign(&p, 4, 10) == EINVAL, "posix_memalign(align 4 < sizeof(void *)) is EINVAL");
    errno = 77;
    TAP_CHECK(posix_memalign(&p, 64, opaque(SIZE_MAX - 100)) == ENOMEM && errno == 77,
              "posix_memalign of an impossible size returns ENOMEM, errno untouched");
    errno = 0;
    TAP_CHECK(aligned_alloc(opaque(3), 10) == NULL && errno == EINVAL, "aligned_alloc(align 3) is EINVAL");
    errno = 0;
    TAP_CHECK(aligned_alloc(4096, opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM,
              "aligned_alloc of an impossible size is ENOMEM");
    void *m = memalign(opaque(48), 100);
    TAP_CHECK(m && ((uintptr_t)m & 63) == 0, "memalign(48) rounds the alignment up to 64, as glibc");
    free(m);
    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(100);
    TAP_CHECK(v && ((uintptr_t)v & (uintptr_t)(page - 1)) == 0, "valloc is page-aligned");
    free(v);
    v = pvalloc(100);
    TAP_CHECK(v && ((uintptr_t)v & (uintptr_t)(page - 1)) == 0 && malloc_usable_size(v) >= (size_t)page,
              "pvalloc is page-aligned and rounds the size up to a page");
    free(v);
    errno = 0;
    TAP_CHECK(pvalloc(opaque(SIZE_MAX - 10)) == NULL && errno == ENOMEM, "pvalloc detects rounding overflow");
}

static unsigned long rnd(unsigned long *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_random(void)
{
    enum { N = 3000 };
    static char *b[N];
    static size_t n[N];
    unsigned long seed = 99;
    int ok = 1;
    for (int step = 0; step < 30000; step++) {
        unsigned long r = rnd(&seed);
        int k = (int)(r % N);
        if (b[k]) {
            if (!intact(b[k], n[k], (unsigned)k))
                ok = 0;
            if (r & 0x100000) {
                free(b[k]);
                b[k] = NULL;
                continue;
            }
            size_t m = (r >> 24) % 3 ? (r >> 32) % 2000 : (r >> 32) % 400000;
            char *q = realloc(b[k], m ? m : 1);
            if (!q) {
                ok = 0;
                continue;
            }
            b[k] = q;
            n[k] = m ? m : 1;
        } else {
            size_t m = (r >> 24) % 5 ? (r >> 32) % 700 : (r >> 32) % 300000;
            switch ((r >> 40) % 3) {
            case 0: b[k] = malloc(m); break;
            case 1: b[k] = calloc(1, m); if (b[k] && !all_zero(b[k], m)) ok = 0; break;
            default: b[k] = aligned_alloc(64, m); if ((uintptr_t)b[k] & 63) ok = 0; break;
            }
            if (!b[k]) {
                ok = 0;
                continue;
            }
            n[k] = m;
        }
        fill(b[k], n[k], (unsigned)k);
    }
    for (int k = 0; k < N; k++) {
        if (b[k] && !intact(b[k], n[k], (unsigned)k))
            ok = 0;
        free(b[k]);
    }
    TAP_CHECK(ok, "30000 random malloc/calloc/aligned_alloc/realloc/free keep every block intact");
}

static void test_extensions(void)
{
    void *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = malloc(1000 * (size_t)i + 1);
    void *big = malloc(4 << 20);
    struct mallinfo2 mi = mallinfo2();
    TAP_CHECK(mi.arena + mi.hblkhd > 0 && mi.arena < ((size_t)1 << 40) && mi.uordblks < ((size_t)1 << 40),
              "mallinfo2 reports this allocator's heap (arena %zu, mmap %zu)", mi.arena, mi.hblkhd);
    TAP_CHECK(mi.hblkhd >= (4 << 20) || mi.arena >= (4 << 20), "mallinfo2 counts a 4 MiB block");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo m1 = mallinfo();   /* old programs still call it */
#pragma GCC diagnostic pop
    TAP_CHECK(m1.arena >= 0 && m1.hblkhd >= 0, "mallinfo returns non-negative figures");
    free(big);
    for (int i = 0; i < 100; i++)
        free(keep[i]);
    int t = malloc_trim(0);
    TAP_CHECK(t == 0 || t == 1, "malloc_trim returns 0 or 1");
    TAP_CHECK(mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1, "mallopt(M_MMAP_THRESHOLD) is accepted");
    TAP_CHECK(mallopt(M_ARENA_MAX, 2) == 1, "mallopt of a glibc-only knob is harmless");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r = malloc_info(0, f);
    fclose(f);
    TAP_CHECK(r == 0 && buf && strstr(buf, "<malloc"), "malloc_info writes an XML document");
    free(buf);
}

/* Every byte up to malloc_usable_size is the caller's: blocks of mixed sizes (small, in
 * the heap's medium range, odd sizes whose last word is the next chunk's boundary tag)
 * filled to their usable size keep their contents while their neighbours are freed,
 * coalesced and allocated again, and the heap stays consistent. */
static void test_usable_writable(void)
{
    enum { N = 300 };
    static const size_t szs[] = {1, 24, 40, 56, 120, 1000, 1032, 3000, 40000, 70000, 100008};
    void *p[N];
    size_t u[N];
    int ok = 1;
    for (int i = 0; i < N; i++) {
        p[i] = malloc(szs[(size_t)i % (sizeof szs / sizeof szs[0])] + (size_t)i % 9);
        u[i] = p[i] ? malloc_usable_size(p[i]) : 0;
        if (p[i])
            fill(p[i], u[i], (unsigned)i);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = round % 2; i < N; i += 2) {
            free(p[i]);
            p[i] = malloc(szs[(size_t)(i + round) % (sizeof szs / sizeof szs[0])] + (size_t)round);
            u[i] = p[i] ? malloc_usable_size(p[i]) : 0;
            if (p[i])
                fill(p[i], u[i], (unsigned)(i + 7 * round));
        }
    }
    /* Block i was last written in the last round of its parity, or never rewritten. */
    for (int i = 0; i < N; i++) {
        int r = -1;
        for (int round = 0; round < 3; round++)
            if ((i % 2) == (round % 2))
                r = round;
        unsigned seed = r < 0 ? (unsigned)i : (unsigned)(i + 7 * r);
        if (!p[i] || !intact(p[i], u[i], seed))
            ok = 0;
        free(p[i]);
    }
    TAP_CHECK(ok, "every byte up to malloc_usable_size is writable without harming neighbours");
}

int main(int argc, char **argv)
{
    lib = hlm_test_preload(argc, argv);
    tap_diag("allocator library: %s", lib);
    test_symbols();
    test_malloc();
    test_usable_writable();
    test_free();
    test_calloc();
    test_realloc();
    test_aligned();
    test_random();
    test_extensions();
    return tap_done();
}
