/*
 * variant.c: the back end of the policy variants.  Everything below the mmap threshold
 * comes from one core behind one lock: the boundary-tag heap with first fit or best fit
 * (tag.c built with HLM_TAG_POLICY), or the binary buddy heap (buddy.c, HLM_CORE_BUDDY).
 * Large blocks are large.c's, as in the default allocator.  Speed is not the point of
 * these libraries; their fragmentation is.
 *
 * Alignments the core cannot give directly are views: a block of n + align bytes and,
 * inside it, the aligned pointer whose head word says how far back the block starts
 * (HLM_OFFSET, see hlm.h).
 */
#include "hlm.h"

#ifdef HLM_CORE_BUDDY
const char *hlm_name = "heaplab-buddy";
static hlm_lock_t core_lock = HLM_LOCK_INIT;
#define CORE_LOCK (&core_lock)
#define core_malloc hlm_buddy_malloc
#define core_free hlm_buddy_free
#define core_usable hlm_buddy_usable
#define core_resize hlm_buddy_resize
#define core_trim hlm_buddy_trim
#define core_info hlm_buddy_info
#define CORE_MAX HLM_BUDDY_MAX_REQUEST
#else
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
const char *hlm_name = "heaplab-firstfit";
#else
const char *hlm_name = "heaplab-bestfit";
#endif
#define CORE_LOCK (&hlm_tag_lock)
#define core_malloc hlm_tag_malloc
#define core_free hlm_tag_free
#define core_usable hlm_tag_usable
#define core_resize hlm_tag_resize
#define core_trim hlm_tag_trim
#define core_info hlm_tag_info
#define CORE_MAX ((size_t)PTRDIFF_MAX)
#endif

static size_t nmalloc, nfree;   /* under CORE_LOCK, or atomically for large blocks */
static bool inited;

void hlm_init(void)
{
    if (__atomic_load_n(&inited, __ATOMIC_ACQUIRE))
        return;
    hlm_os_init();
    hlm_options_read();
    __atomic_store_n(&inited, true, __ATOMIC_RELEASE);
}

static void *large(size_t n, size_t align)
{
    __atomic_add_fetch(&nmalloc, 1, __ATOMIC_RELAXED);
    return hlm_large_malloc(n, align);
}

static void *malloc_try(size_t n);

/* Out of memory: give back what the heap keeps and try once more (see hlm.h). */
void *hlm_malloc(size_t n)
{
    return hlm_malloc_retry(malloc_try(n), malloc_try, n);
}

static void *malloc_try(size_t n)
{
    hlm_init();
    if (n >= __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED) || n > CORE_MAX)
        return large(n, HLM_ALIGN);
    hlm_lock(CORE_LOCK);
    void *p = core_malloc(n);
    nmalloc++;
    hlm_unlock(CORE_LOCK);
    return p ? p : hlm_large_malloc(n, HLM_ALIGN);
}

static inline void *view_base(const void *p, size_t *off)
{
    *off = hlm_head(p) >> 4;
    return (char *)p - *off;
}

void hlm_free(void *p)
{
    if (!p)
        return;
    int saved = errno;
    size_t off;
    if (hlm_head(p) & HLM_OFFSET)
        p = view_base(p, &off);
    if (hlm_large_is(p)) {
        __atomic_add_fetch(&nfree, 1, __ATOMIC_RELAXED);
        hlm_large_free(p);
    } else {
        hlm_lock(CORE_LOCK);
        nfree++;
        core_free(p);
        hlm_unlock(CORE_LOCK);
    }
    errno = saved;
}

size_t hlm_usable_size(const void *p)
{
    size_t off = 0;
    if (hlm_head(p) & HLM_OFFSET)
        p = view_base(p, &off);
    return (hlm_large_is(p) ? hlm_large_usable(p) : core_usable(p)) - off;
}

void *hlm_calloc(size_t n)
{
    void *p = hlm_malloc(n);
    if (p && !hlm_large_is(p))
        memset(p, 0, n);
    return p;
}

void *hlm_realloc(void *p, size_t n)
{
    size_t old = hlm_usable_size(p);
    if (hlm_head(p) & HLM_OFFSET)
        return hlm_realloc_move(p, old, n);
    if (hlm_large_is(p)) {
        void *q = hlm_large_realloc(p, n);
        return q ? q : hlm_realloc_move(p, old, n);
    }
    if (n <= CORE_MAX) {
        hlm_lock(CORE_LOCK);
        bool ok = core_resize(p, n);
        hlm_unlock(CORE_LOCK);
        if (ok)
            return p;
    }
    return hlm_realloc_move(p, old, n);
}

void *hlm_memalign(size_t align, size_t n)
{
    hlm_init();
    if (n + align >= __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED) || n + align > CORE_MAX)
        return large(n, align);
#ifndef HLM_CORE_BUDDY
    hlm_lock(CORE_LOCK);
    void *p = hlm_tag_memalign(align, n);
    nmalloc++;
    hlm_unlock(CORE_LOCK);
    if (p)
        return p;
    return large(n, align);
#else
    char *b = hlm_malloc(n + align);
    if (!b || ((uintptr_t)b & (align - 1)) == 0)
        return b;
    char *q = (char *)hlm_align_up((uintptr_t)b, align);
    *hlm_headp(q) = ((size_t)(q - b) << 4) | HLM_OFFSET;
    return q;
#endif
}

int hlm_trim(size_t pad)
{
    hlm_init();
    hlm_lock(CORE_LOCK);
    int r = core_trim(pad);
    hlm_unlock(CORE_LOCK);
    return r;
}

void hlm_info(size_t *arena, size_t *in_use, size_t *free_bytes, size_t *free_chunks)
{
    hlm_lock(CORE_LOCK);
    core_info(arena, free_bytes, free_chunks);
    hlm_unlock(CORE_LOCK);
    *in_use = *arena - *free_bytes;
}

void hlm_stats_calls(size_t *m, size_t *f)
{
    *m = __atomic_load_n(&nmalloc, __ATOMIC_RELAXED);
    *f = __atomic_load_n(&nfree, __ATOMIC_RELAXED);
}

void hlm_fork_prepare(void) { hlm_lock(CORE_LOCK); }
void hlm_fork_parent(void) { hlm_unlock(CORE_LOCK); }
void hlm_fork_child(void) { hlm_lock_reinit(CORE_LOCK); }
