/*
 * bump.c: a no-op malloc replacement for measuring the replay harness itself.
 *
 * malloc hands out the next bytes of one huge reserved mapping and free does nothing.
 * It writes nothing into the blocks either (no header: realloc does not copy, and
 * there is no malloc_usable_size), so with --touch=none no page is ever faulted in and
 * replaying against it costs about as little as an allocator can; what remains is
 * heaplab's own overhead per event (scripts/bench-replay).
 *
 * With -DHL_BROKEN it becomes a deliberately broken allocator instead: a size header,
 * blocks 8 bytes off their alignment, malloc_usable_size reporting half the size, and
 * calloc memory that is not zeroed, so that replay's contract checks have something to
 * catch.  With -DHL_CRASH, malloc(4242) kills the process, so that a crashing
 * allocator can be replayed.  With -DHL_COUNT_USABLE, malloc_usable_size counts its
 * calls in the file $HL_USABLE_LOG.PID (a binary uint64_t), so that a test can see in
 * which worker runs the contract checks called it.  With -DHL_STARTUP, a constructor
 * maps and writes HL_STARTUP_MIB MiB before main, as an allocator that sets up its
 * caches at start does (tcmalloc), so that a test can see where replay counts that
 * start-up memory.  Test code only:
 * never returns memory.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA (16ull << 30) /* reserved, not committed */
#ifdef HL_BROKEN
#define HDR 32 /* the block's size lives just before it; room for the 8-byte skew */
#else
#define HDR 0
#endif

static char *base;
static _Atomic uint64_t next;

#ifdef HL_STARTUP
#define HL_STARTUP_MIB 8
__attribute__((constructor)) static void startup_reserve(void)
{
    size_t n = (size_t)HL_STARTUP_MIB << 20;
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p != MAP_FAILED)
        memset(p, 1, n);
}
#endif

/* Each thread bumps through its own chunk, so the fast path has no atomic. */
#define CHUNK (1u << 20)
static __thread uint64_t cur __attribute__((tls_model("initial-exec")));
static __thread uint64_t lim __attribute__((tls_model("initial-exec")));

static int arena(void)
{
    if (!base) {
        void *p = mmap(NULL, ARENA, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return -1;
        char *expect = NULL;
        if (!__atomic_compare_exchange_n(&base, &expect, (char *)p, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            munmap(p, ARENA);
    }
    return 0;
}

__attribute__((noinline)) static int refill(uint64_t need)
{
    if (arena() != 0 || need > ARENA / 4)
        return -1;
    uint64_t take = need > CHUNK ? need : CHUNK;
    uint64_t at = atomic_fetch_add_explicit(&next, take, memory_order_relaxed);
    if (at + take > ARENA)
        return -1;
    cur = at;
    lim = at + take;
    return 0;
}

static inline void *bump(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    uint64_t need = (HDR + (uint64_t)size + (align > 16 ? align : 0) + 15) & ~15ull;
    if (__builtin_expect(size > ARENA / 4 || (cur + need > lim && refill(need) != 0), 0)) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t p = ((uintptr_t)base + cur + HDR + align - 1) & ~(uintptr_t)(align - 1);
    cur += need;
#ifdef HL_BROKEN
    p += 8; /* misaligned for anything that needs 16 */
    ((uint64_t *)p)[-1] = size / 2;
    if (size)
        memset((void *)p, 0xab, size < 64 ? size : 64);
#endif
    return (void *)p;
}

void *malloc(size_t size)
{
#ifdef HL_CRASH
    if (size == 4242) /* a trace can make this allocator crash on purpose */
        __builtin_trap();
    if (size == 4343) /* ... or hang, for replay --timeout */
        for (;;)
            sleep(3600);
#endif
#if HDR == 0
    /* The fast path the harness benchmark measures: a few instructions. */
    uint64_t need = ((uint64_t)size + 15) & ~15ull;
    if (__builtin_expect(cur + need <= lim && size < (1ull << 40), 1)) {
        void *p = base + cur;
        cur += need;
        return p;
    }
#endif
    return bump(size, 16);
}
void free(void *p) { (void)p; }
void *calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size) {
        errno = ENOMEM;
        return NULL;
    }
    return bump(n * size, 16); /* fresh pages are zero (the broken build dirties them) */
}
#ifdef HL_COUNT_USABLE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
/* The count lives in a shared file mapping, $HL_USABLE_LOG.PID, made when the library
 * loads: it survives the worker's _exit. */
static _Atomic uint64_t *usable_calls, usable_none;
__attribute__((constructor)) static void usable_open(void)
{
    usable_calls = &usable_none;
    const char *dir = getenv("HL_USABLE_LOG");
    if (!dir)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", dir, (int)getpid());
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        return;
    void *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m != MAP_FAILED)
        usable_calls = m;
}
size_t malloc_usable_size(void *p)
{
    atomic_fetch_add_explicit(usable_calls, 1, memory_order_relaxed);
    return p ? SIZE_MAX / 2 : 0; /* every block is large enough: no violation */
}
#endif
#ifdef HL_BROKEN
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
#else
void *realloc(void *old, size_t size)
{
    (void)old; /* a no-op: the contents are not kept (see the top) */
    return bump(size, 16);
}
#endif
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
