/*
 * override.c: the C allocation API every heaplab allocator library exports, on top of the
 * back end's hlm_* functions (alloc.c or variant.c).  Argument checks live here, once:
 * overflow in calloc and reallocarray, alignment rules (EINVAL), realloc's special cases,
 * errno.  Also the calls programs reach for besides malloc (malloc_trim, mallinfo2,
 * mallopt, malloc_stats, malloc_info, __libc_* aliases), so that nothing is left for
 * glibc's allocator, and the constructor, destructor and fork handlers.
 */
#include "hlm.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Out of memory (or of address space, under RLIMIT_AS): give back what the heap keeps
 * (thread cache, free top of the heap, free pages) and try once more.  realloc and the
 * aligned calls; hlm_malloc (under malloc and calloc) does this itself (hlm.h). */
static HLM_NOINLINE void *oom_retry(int op, void *p, size_t align, size_t n)
{
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    hlm_trim(0);
    errno = 0;
    void *q = op == 2 ? hlm_realloc(p, n) : hlm_memalign(align, n);
    if (!q)
        errno = ENOMEM;
    return q;
}

/* hlm_malloc retries itself (hlm.h): malloc is one jump, no frame around the fast path.
 * A back end that defines HLM_EXPORTS_MALLOC exports malloc and free as other names of
 * hlm_malloc and hlm_free themselves (alloc.c): not even the jump. */
#ifndef HLM_EXPORTS_MALLOC
HLM_API void *malloc(size_t n) { return hlm_malloc(n); }
HLM_API void free(void *p) { hlm_free(p); }
#endif
HLM_API void cfree(void *p) { hlm_free(p); }

HLM_API void *calloc(size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n) || n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    return hlm_calloc(n);   /* hlm_malloc under it retries (hlm.h): a jump, no frame */
}

HLM_API void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {   /* as glibc does: free and return NULL */
        hlm_free(p);
        return NULL;
    }
    if (n > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    void *q = hlm_realloc(p, n);
    return hlm_likely(q != NULL) ? q : oom_retry(2, p, 0, n);
}

HLM_API void *reallocarray(void *p, size_t count, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(count, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return realloc(p, n);
}

static void *aligned(size_t align, size_t n)
{
    if (align <= HLM_ALIGN)
        return malloc(n);
    if (n > PTRDIFF_MAX || align > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    void *p = hlm_memalign(align, n);
    return p ? p : oom_retry(3, NULL, align, n);
}

HLM_API int posix_memalign(void **out, size_t align, size_t n)
{
    if (!hlm_is_pow2(align) || align % sizeof(void *))
        return EINVAL;
    int saved = errno;
    void *p = aligned(align, n);
    errno = saved;
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

HLM_API void *aligned_alloc(size_t align, size_t n)
{
    if (!hlm_is_pow2(align)) {
        errno = EINVAL;
        return NULL;
    }
    return aligned(align, n);
}

HLM_API void *memalign(size_t align, size_t n)
{
    if (align > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!hlm_is_pow2(align) && align > HLM_ALIGN)   /* glibc rounds up to a power of two */
        align = (size_t)1 << (64 - __builtin_clzl(align));
    return aligned(align, n);
}

HLM_API void *valloc(size_t n)
{
    hlm_init();
    return aligned(hlm_page_size, n);
}

HLM_API void *pvalloc(size_t n)
{
    hlm_init();
    size_t rounded = hlm_align_up(n ? n : 1, hlm_page_size);
    if (rounded < n) {
        errno = ENOMEM;
        return NULL;
    }
    return aligned(hlm_page_size, rounded);
}

HLM_API size_t malloc_usable_size(void *p) { return p ? hlm_usable_size(p) : 0; }

/* glibc's internal names, for programs that call them to bypass hooks. */
HLM_API void *__libc_malloc(size_t n) { return malloc(n); }
HLM_API void __libc_free(void *p) { free(p); }
HLM_API void *__libc_calloc(size_t c, size_t n) { return calloc(c, n); }
HLM_API void *__libc_realloc(void *p, size_t n) { return realloc(p, n); }
HLM_API void *__libc_memalign(size_t a, size_t n) { return memalign(a, n); }
HLM_API void *__libc_valloc(size_t n) { return valloc(n); }
HLM_API void *__libc_pvalloc(size_t n) { return pvalloc(n); }

/* ---- glibc's malloc extensions, answered by this allocator ----------------------------- */

HLM_API int malloc_trim(size_t pad)
{
    int saved = errno;
    int r = hlm_trim(pad);
    errno = saved;
    return r;
}

static int clamp_int(size_t v) { return v > 0x7fffffff ? 0x7fffffff : (int)v; }

HLM_API struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 mi;
    size_t arena = 0, in_use = 0, free_bytes = 0, chunks = 0;
    hlm_init();
    hlm_info(&arena, &in_use, &free_bytes, &chunks);
    memset(&mi, 0, sizeof mi);
    mi.arena = arena;
    mi.ordblks = chunks;
    mi.hblks = hlm_stats.large_count;
    mi.hblkhd = hlm_stats.large_bytes;
    mi.usmblks = hlm_stats.os_mapped_peak;
    mi.uordblks = in_use + hlm_stats.large_bytes;
    mi.fordblks = free_bytes;
    mi.keepcost = 0;
    return mi;
}

HLM_API struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = clamp_int(m.arena);
    mi.ordblks = clamp_int(m.ordblks);
    mi.hblks = clamp_int(m.hblks);
    mi.hblkhd = clamp_int(m.hblkhd);
    mi.usmblks = clamp_int(m.usmblks);
    mi.uordblks = clamp_int(m.uordblks);
    mi.fordblks = clamp_int(m.fordblks);
    return mi;
}

HLM_API int mallopt(int param, int value)
{
    hlm_init();
    if (value < 0)
        return 0;
    switch (param) {
    case M_MMAP_THRESHOLD:
        hlm_options[HLM_OPT_MMAP_THRESHOLD].set = true;
        __atomic_store_n(&hlm_mmap_threshold,
                         (size_t)value < HLM_SMALL_MAX + HLM_KIB ? HLM_SMALL_MAX + HLM_KIB : (size_t)value,
                         __ATOMIC_RELAXED);
        return 1;
    case M_TRIM_THRESHOLD:
        hlm_options[HLM_OPT_TRIM_THRESHOLD].set = true;
        __atomic_store_n(&hlm_trim_threshold, (size_t)value, __ATOMIC_RELAXED);
        return 1;
    default:
        return 1;   /* accepted and ignored: the other knobs are glibc's internals */
    }
}

HLM_API void malloc_stats(void)
{
    hlm_init();
    hlm_stats_print(2);
    if (hlm_opt(HLM_OPT_STATS) > 1 && hlm_small_dump)   /* HEAPLAB_STATS=2: every span too */
        hlm_small_dump(2);
}

HLM_API int malloc_info(int options, FILE *fp)
{
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    struct mallinfo2 m = mallinfo2();
    fprintf(fp, "<malloc version=\"%s\">\n<total type=\"arena\" size=\"%zu\"/>\n"
                "<total type=\"free\" count=\"%zu\" size=\"%zu\"/>\n"
                "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n</malloc>\n",
            hlm_name, m.arena, m.ordblks, m.fordblks, m.hblks, m.hblkhd);
    return 0;
}

/* ---- process life ---------------------------------------------------------------------- */

__attribute__((constructor(101))) static void hlm_constructor(void)
{
    hlm_init();
    hlm_options_read();   /* environ exists now, if it did not at the first malloc */
    pthread_atfork(hlm_fork_prepare, hlm_fork_parent, hlm_fork_child);
}

__attribute__((destructor)) static void hlm_destructor(void)
{
    if (hlm_opt(HLM_OPT_STATS))
        hlm_stats_print(2);
    if (hlm_opt(HLM_OPT_STATS) > 1 && hlm_small_dump)
        hlm_small_dump(2);
}
