/*
 * large.c: blocks at or above the mmap threshold, one anonymous mapping each, unmapped
 * on free (so their memory goes back), grown and shrunk with mremap.  No lock: the
 * kernel serialises mappings, and the kept mapping (below) is one atomic pointer.
 * Fresh mappings are zero, which calloc relies on.
 *
 * Layout (see hlm.h): [.. offset][mapsize | HLM_MMAPPED | LARGE_GROWN] user data, the
 * header ending at the user pointer, the user pointer at mapping start + offset.
 *
 * The kept mapping: the last freed mapping (up to HLM_MMAP_THRESHOLD_MAX) of a block
 * that realloc grew (a buffer built by growth: sqlite's group_concat, hlm-bench-growth's
 * strings) stays mapped and resident for the next growth it fits (at most twice the
 * size asked), so that a program building such buffers again and again takes its pages
 * back instead of faulting fresh ones at every step.  Only growth takes it (hlm_large_grown,
 * hlm_large_realloc), so the mappings calloc gets stay fresh and zero.  It goes back
 * by malloc_trim, and from the tag heap's purge passes (hlm_large_pass): at once on a
 * pass that purges everything free (the slab's growth, a shrunk heap), else once it has
 * waited through HLM_TAG_PURGE_AGE passes, as a free tag chunk does.  While kept, its
 * first word holds its size and its second the passes it waited through.
 */
#include "hlm.h"
#include "tunables.h"

/* Head flag: realloc grew the block (its mapping is kept when it is freed). */
#define LARGE_GROWN ((size_t)8)

static size_t *large_offp(const void *p) { return (size_t *)((char *)p - 2 * sizeof(size_t)); }
static size_t large_mapsize(const void *p) { return hlm_head(p) & ~(size_t)15; }

static void large_account(ptrdiff_t count, ptrdiff_t bytes)
{
    hlm_stat_add(large_count, (size_t)count);
    size_t now = hlm_stat_add(large_bytes, (size_t)bytes);
    if (bytes > 0)
        hlm_stat_peak(&hlm_stats.large_peak, now);
}

/* The block at m + off of a mapping of mapsize bytes. */
static void *large_at(char *m, size_t mapsize, size_t off, size_t flags)
{
    char *p = m + off;
    *large_offp(p) = off;
    *hlm_headp(p) = mapsize | HLM_MMAPPED | flags;
    large_account(1, (ptrdiff_t)mapsize);
    return p;
}

static void *kept;

/* Make m (size bytes, resident) the kept mapping, having waited through `passes`; the
 * one it replaces goes back. */
static void kept_put(void *m, size_t size, size_t passes)
{
    ((size_t *)m)[0] = size;
    ((size_t *)m)[1] = passes;
    void *old = __atomic_exchange_n(&kept, m, __ATOMIC_ACQ_REL);
    if (old)
        hlm_os_unmap(old, ((size_t *)old)[0]);
}

/* The kept mapping, taken, if it holds need bytes and at most twice as many (its size
 * into *size); else NULL. */
static char *kept_take(size_t need, size_t *size)
{
    if (!__atomic_load_n(&kept, __ATOMIC_RELAXED))
        return NULL;
    size_t *m = __atomic_exchange_n(&kept, NULL, __ATOMIC_ACQ_REL);
    if (!m)
        return NULL;
    if (m[0] >= need && m[0] / 2 <= need) {
        *size = m[0];
        return (char *)m;
    }
    kept_put(m, m[0], m[1]);
    return NULL;
}

void hlm_large_pass(unsigned age)
{
    size_t *m = __atomic_exchange_n(&kept, NULL, __ATOMIC_ACQ_REL);
    if (!m)
        return;
    if (age && m[1] + 1 < age)
        kept_put(m, m[0], m[1] + 1);
    else
        hlm_os_unmap(m, m[0]);
}

void *hlm_large_grown(size_t n)
{
    size_t size;
    char *m = n + HLM_HDR > n ? kept_take(hlm_align_up(n + HLM_HDR, hlm_page_size), &size) : NULL;
    if (m)
        return large_at(m, size, HLM_HDR, LARGE_GROWN);
    void *p = hlm_large_malloc(n, 0);
    if (p)
        *hlm_headp(p) |= LARGE_GROWN;
    return p;
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
    p = large_at(m, mapsize, (size_t)(p - m), 0);
    hlm_assert(((uintptr_t)p & (align - 1)) == 0);
    hlm_stat_add(large_total, 1);
    return p;
}

void hlm_large_free(void *p)
{
    size_t mapsize = large_mapsize(p), off = *large_offp(p);
    hlm_check(off >= HLM_HDR && off < mapsize && ((uintptr_t)p - off) % hlm_page_size == 0,
              "free(): corrupted large block", p);
    large_account(-1, -(ptrdiff_t)mapsize);
    if ((hlm_head(p) & LARGE_GROWN) && mapsize <= HLM_MMAP_THRESHOLD_MAX)
        kept_put((char *)p - off, mapsize, 0);
    else
        hlm_os_unmap((char *)p - off, mapsize);
    /* Adapt: a block this size was freed, so the program reuses such sizes; serve them
     * from the heap from now on (glibc does the same), and sizes up to twice this: a
     * program's large sizes spread (hlm-bench-growth's 256 KiB..4 MiB), and raising the
     * threshold only to each freed size met the next larger one as a mapping again. */
    size_t raised = mapsize * HLM_MMAP_THRESHOLD_RAISE;
    if (raised > HLM_MMAP_THRESHOLD_MAX)
        raised = HLM_MMAP_THRESHOLD_MAX;
    if (!hlm_options[HLM_OPT_MMAP_THRESHOLD].set && mapsize <= HLM_MMAP_THRESHOLD_MAX &&
        raised > __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED)) {
        __atomic_store_n(&hlm_mmap_threshold, raised, __ATOMIC_RELAXED);
        if (!hlm_options[HLM_OPT_TRIM_THRESHOLD].set)
            __atomic_store_n(&hlm_trim_threshold, 2 * raised, __ATOMIC_RELAXED);
    }
}

void *hlm_large_calloc(size_t n)
{
    hlm_init();   /* the options, and the page size hlm_large_malloc needs */
    if (n < HLM_CALLOC_MAP_MIN || hlm_options[HLM_OPT_MMAP_THRESHOLD].set ||
        __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED) != hlm_opt(HLM_OPT_MMAP_THRESHOLD))
        return NULL;
    return hlm_large_malloc(n, HLM_ALIGN);
}

size_t hlm_large_usable(const void *p) { return large_mapsize(p) - *large_offp(p); }

void *hlm_large_realloc(void *p, size_t n)
{
    size_t mapsize = large_mapsize(p), off = *large_offp(p);
    if (n <= mapsize - off && n >= (mapsize - off) / 2)
        return p;
    if (off != HLM_HDR || n + off < n || n + off + hlm_page_size < n)
        return NULL;   /* aligned blocks move the slow way */
    size_t newsize = hlm_align_up(n + off, hlm_page_size), size;
    const bool growing = newsize > mapsize;
    /* Growing into the kept mapping: a copy of resident pages, and this one is kept. */
    char *k = growing ? kept_take(newsize, &size) : NULL;
    if (k) {
        memcpy(k + off, p, mapsize - off);
        large_account(-1, -(ptrdiff_t)mapsize);
        kept_put((char *)p - off, mapsize, 0); /* (k holds at most 32 MiB: so does this) */
        return large_at(k, size, off, LARGE_GROWN);
    }
    char *m = hlm_os_remap((char *)p - off, mapsize, newsize);
    if (!m)
        return NULL;
    p = m + off;
    *hlm_headp(p) = newsize | HLM_MMAPPED | (growing ? LARGE_GROWN : hlm_head(p) & LARGE_GROWN);
    large_account(0, (ptrdiff_t)newsize - (ptrdiff_t)mapsize);
    return p;
}
