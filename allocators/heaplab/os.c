/*
 * os.c: the only file of heaplab's allocators that talks to the kernel: mmap, munmap,
 * mremap, madvise, brk, futex locks and raw writes.  Nothing here allocates, so it is
 * safe from the first allocation of a process on.  Memory got from the kernel is counted
 * here (os_mapped), so the statistics cannot miss a path.
 */
#include "hlm.h"

#include <linux/futex.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

size_t hlm_page_size = 4096;

void hlm_os_init(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0)
        hlm_page_size = (size_t)ps;
}

static void os_count(ptrdiff_t delta)
{
    size_t now = hlm_stat_add(os_mapped, (size_t)delta);
    if (delta > 0)
        hlm_stat_peak(&hlm_stats.os_mapped_peak, now);
}

void *hlm_os_map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    os_count((ptrdiff_t)n);
    return p;
}

/* Over-map by align and cut off both ends: the kernel gives no alignment guarantee
 * beyond the page.  First try, in one call, the aligned range just below the previous
 * one (the kernel hands out addresses downwards, so it is usually free), then the plain
 * size (sometimes aligned by chance). */
static uintptr_t aligned_hint;

void *hlm_os_map_aligned(size_t n, size_t align)
{
    uintptr_t hint = __atomic_load_n(&aligned_hint, __ATOMIC_RELAXED);
    if (hint > n && !(hint & (align - 1))) {
        void *h = mmap((void *)(hint - n), n, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (h == (void *)(hint - n)) {
            __atomic_store_n(&aligned_hint, (uintptr_t)h, __ATOMIC_RELAXED);
            os_count((ptrdiff_t)n);
            return h;
        }
        if (h != MAP_FAILED)   /* an old kernel ignored the flag and put it elsewhere */
            munmap(h, n);
    }
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) {
        __atomic_store_n(&aligned_hint, (uintptr_t)p, __ATOMIC_RELAXED);
        os_count((ptrdiff_t)n);
        return p;
    }
    munmap(p, n);
    if (n + align < n)
        return NULL;
    char *q = mmap(NULL, n + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (q == MAP_FAILED)
        return NULL;
    char *a = (char *)(((uintptr_t)q + align - 1) & ~(uintptr_t)(align - 1));
    if (a > q)
        munmap(q, (size_t)(a - q));
    size_t tail = (size_t)((q + n + align) - (a + n));
    if (tail)
        munmap(a + n, tail);
    __atomic_store_n(&aligned_hint, (uintptr_t)a, __ATOMIC_RELAXED);
    os_count((ptrdiff_t)n);
    return a;
}

void hlm_os_unmap(void *p, size_t n)
{
    munmap(p, n);
    os_count(-(ptrdiff_t)n);
}

void *hlm_os_remap(void *p, size_t old_n, size_t new_n)
{
    void *q = mremap(p, old_n, new_n, MREMAP_MAYMOVE);
    if (q == MAP_FAILED)
        return NULL;
    os_count((ptrdiff_t)new_n - (ptrdiff_t)old_n);
    return q;
}

void hlm_os_purge(void *p, size_t n)
{
    if (!n)
        return;
    madvise(p, n, MADV_DONTNEED);
    hlm_stat_add(purged_bytes, n);
    hlm_stat_add(purge_calls, 1);
}

/* Through glibc's sbrk, not the raw syscall, so that its idea of the break (__curbrk)
 * stays right for anyone else who calls sbrk.  Callers hold the tag heap's lock. */
void *hlm_os_brk_now(void) { return sbrk(0); }

void *hlm_os_sbrk(intptr_t inc)
{
    void *old = sbrk(inc);
    if (old == (void *)-1)
        return NULL;
    if (inc) {
        os_count(inc);
        size_t now = hlm_stat_add(sbrk_bytes, (size_t)inc);
        if (inc > 0)
            hlm_stat_peak(&hlm_stats.sbrk_peak, now);
    }
    return old;
}

void hlm_os_write(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* A three-state futex lock (Drepper, "Futexes are tricky"): spin briefly, then sleep. */
void hlm_lock_slow(hlm_lock_t *l)
{
    for (int i = 0; i < 100; i++) {
        int z = 0;
        if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 &&
            __atomic_compare_exchange_n(&l->v, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return;
        __builtin_ia32_pause();
    }
    while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
        syscall(SYS_futex, &l->v, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void hlm_lock_wake(hlm_lock_t *l)
{
    syscall(SYS_futex, &l->v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

void hlm_fatal(const char *what, const void *p)
{
    char buf[160];
    size_t n = 0;
    const char *pre = "heaplab-malloc: ";
    for (const char *s = pre; *s && n < sizeof buf - 40; s++)
        buf[n++] = *s;
    for (const char *s = what; *s && n < sizeof buf - 40; s++)
        buf[n++] = *s;
    if (p) {
        buf[n++] = ' ';
        buf[n++] = '0';
        buf[n++] = 'x';
        for (int sh = 44; sh >= 0; sh -= 4)
            buf[n++] = "0123456789abcdef"[((uintptr_t)p >> sh) & 15];
    }
    buf[n++] = '\n';
    hlm_os_write(2, buf, n);
    abort();
}
