/*
 * large.c: blocks at or above the mmap threshold, one anonymous mapping each, unmapped
 * on free (so their memory always goes back), grown and shrunk with mremap.  No lock:
 * the kernel serialises mappings.  Fresh mappings are zero, which calloc relies on.
 *
 * Layout (see hlm.h): [.. offset][mapsize | HLM_MMAPPED] user data, the header ending
 * at the user pointer, the user pointer at mapping start + offset.
 */
#include "hlm.h"

static size_t *large_offp(const void *p) { return (size_t *)((char *)p - 2 * sizeof(size_t)); }
static size_t large_mapsize(const void *p) { return hlm_head(p) & ~(size_t)15; }

static void large_account(ptrdiff_t count, ptrdiff_t bytes)
{
    hlm_stat_add(large_count, (size_t)count);
    size_t now = hlm_stat_add(large_bytes, (size_t)bytes);
    if (bytes > 0)
        hlm_stat_peak(&hlm_stats.large_peak, now);
}

void *hlm_large_malloc(size_t n, size_t align)
{
    if (align < HLM_ALIGN)
        align = HLM_ALIGN;
    size_t off = HLM_HDR, extra = align > hlm_page_size ? align : 0;
    if (align > HLM_HDR && align <= hlm_page_size)
        off = align;   /* the header sits in the page before the aligned user pointer */
    size_t need = off + n;
    if (need < n || need + extra < need || need + extra + hlm_page_size < need) {
        errno = ENOMEM;
        return NULL;
    }
    size_t mapsize = hlm_align_up(need + extra, hlm_page_size);
    char *m = hlm_os_map(mapsize);
    if (!m) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = m + off;
    if (extra) {
        /* Align inside the over-sized mapping and give the slack at both ends back. */
        p = (char *)hlm_align_up((uintptr_t)m + HLM_HDR, align);
        char *start = (char *)((uintptr_t)(p - HLM_HDR) & ~(uintptr_t)(hlm_page_size - 1));
        char *end = (char *)hlm_align_up((uintptr_t)p + n, hlm_page_size);
        if (start > m)
            hlm_os_unmap(m, (size_t)(start - m));
        if (m + mapsize > end)
            hlm_os_unmap(end, (size_t)(m + mapsize - end));
        m = start;
        mapsize = (size_t)(end - start);
    }
    *large_offp(p) = (size_t)(p - m);
    *hlm_headp(p) = mapsize | HLM_MMAPPED;
    hlm_assert(((uintptr_t)p & (align - 1)) == 0);
    large_account(1, (ptrdiff_t)mapsize);
    hlm_stat_add(large_total, 1);
    return p;
}

void hlm_large_free(void *p)
{
    size_t mapsize = large_mapsize(p), off = *large_offp(p);
    hlm_check(off >= HLM_HDR && off < mapsize && ((uintptr_t)p - off) % hlm_page_size == 0,
              "free(): corrupted large block", p);
    large_account(-1, -(ptrdiff_t)mapsize);
    hlm_os_unmap((char *)p - off, mapsize);
    /* Adapt: a block this size was freed, so the program reuses such sizes; serve them
     * from the heap from now on (glibc does the same). */
    if (!hlm_options[HLM_OPT_MMAP_THRESHOLD].set && mapsize <= HLM_MMAP_THRESHOLD_MAX &&
        mapsize > __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED)) {
        __atomic_store_n(&hlm_mmap_threshold, mapsize, __ATOMIC_RELAXED);
        if (!hlm_options[HLM_OPT_TRIM_THRESHOLD].set)
            __atomic_store_n(&hlm_trim_threshold, 2 * mapsize, __ATOMIC_RELAXED);
    }
}

size_t hlm_large_usable(const void *p) { return large_mapsize(p) - *large_offp(p); }

void *hlm_large_realloc(void *p, size_t n)
{
    size_t mapsize = large_mapsize(p), off = *large_offp(p);
    if (n <= mapsize - off && n >= (mapsize - off) / 2)
        return p;
    if (off != HLM_HDR || n + off < n || n + off + hlm_page_size < n)
        return NULL;   /* aligned blocks move the slow way */
    size_t newsize = hlm_align_up(n + off, hlm_page_size);
    char *m = hlm_os_remap((char *)p - off, mapsize, newsize);
    if (!m)
        return NULL;
    p = m + off;
    *hlm_headp(p) = newsize | HLM_MMAPPED;
    large_account(0, (ptrdiff_t)newsize - (ptrdiff_t)mapsize);
    return p;
}
