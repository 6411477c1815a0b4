/*
 * bump.c: a no-op malloc replacement for measuring the replay harness itself.
 *
 * malloc hands out the next bytes of one huge reserved mapping and free does nothing,
 * so replaying against it costs about as little as an allocator can; what remains is
 * heaplab's own overhead per event (scripts/bench-replay).  With -DHL_BROKEN it becomes
 * a deliberately broken allocator instead: misaligned blocks, usable sizes smaller than
 * asked, calloc memory that is not zeroed, so that replay's contract checks have
 * something to catch.  Test code only: not thread-safe beyond an atomic bump, never
 * returns memory.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA (64ull << 30) /* reserved, not committed */
#define HDR 16              /* the block's size lives just before it */

static char *base;
static _Atomic uint64_t next;

static char *arena(void)
{
    if (!base) {
        void *p = mmap(NULL, ARENA, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        char *expect = NULL;
        if (!__atomic_compare_exchange_n(&base, &expect, (char *)p, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            munmap(p, ARENA);
    }
    return base;
}

static void *bump(size_t size, size_t align)
{
    char *a = arena();
    if (!a || size > ARENA / 2) {
        errno = ENOMEM;
        return NULL;
    }
    if (align < 16)
        align = 16;
    uint64_t need = HDR + size + align;
    uint64_t at = atomic_fetch_add_explicit(&next, (need + 15) & ~15ull, memory_order_relaxed);
    if (at + need > ARENA) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t p = ((uintptr_t)a + at + HDR + align - 1) & ~(uintptr_t)(align - 1);
#ifdef HL_BROKEN
    p += 8; /* misaligned for anything that needs 16 */
    ((uint64_t *)p)[-1] = size / 2;
    if (size)
        memset((void *)p, 0xab, size < 64 ? size : 64);
#else
    ((uint64_t *)p)[-1] = size;
#endif
    return (void *)p;
}

void *malloc(size_t size) { return bump(size, 16); }
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return bump(n * size, 16); /* fresh pages are zero (the broken build dirties them) */
}
size_t malloc_usable_size(void *p) { return p ? ((uint64_t *)p)[-1] : 0; }
void *realloc(void *old, size_t size)
{
    void *p = bump(size, 16);
    if (p && old) {
        size_t o = malloc_usable_size(old);
        memcpy(p, old, o < size ? o : size);
    }
    return p;
}
int posix_memalign(void **out, size_t align, size_t size)
{
    void *p = bump(size, align);
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}
void *aligned_alloc(size_t align, size_t size) { return bump(size, align); }
void *memalign(size_t align, size_t size) { return bump(size, align); }
void *valloc(size_t size) { return bump(size, 4096); }
void *pvalloc(size_t size) { return bump((size + 4095) & ~(size_t)4095, 4096); }
