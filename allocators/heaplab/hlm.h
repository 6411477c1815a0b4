/*
 * hlm.h: the heap layout of heaplab's allocators, its invariants, and the interfaces
 * between their parts.  Reading this header tells you where every block lives.
 *
 * libheaplab-malloc.so (the default) has three kinds of block:
 *
 *   small   (<= HLM_SMALL_MAX bytes) objects of one size class packed without headers in
 *           a span: a run of 64 KiB pages inside a 4 MiB-aligned segment got with mmap.
 *           The segment's header (struct hlm_segment, in its page 0) maps every page to
 *           its span and size class; a byte map over the address space (hlm_segmap) says
 *           which 4 MiB ranges are segments, so free() classifies a pointer with two loads.
 *           Threads own spans (they allocate from them and free their own blocks onto
 *           them without a lock) and keep per-class free lists (struct hlm_tcache) for
 *           batches and other threads' blocks; per-class central lists (lock) hold the
 *           spans nobody owns and pass blocks freed by other threads back.
 *           Exception, the cold start (alloc.c): while the process has one thread and
 *           fewer than HEAPLAB_COLD bytes of them out, small blocks are tag-heap chunks;
 *           thread caches then hold both kinds, a flush sends each back where it belongs.
 *   medium  (up to the mmap threshold) chunks with boundary tags in the sbrk heap (tag.c):
 *           split, coalesced immediately, top of the heap trimmed, free interiors purged.
 *   large   (>= the mmap threshold) one mmap each (large.c), unmapped on free.
 *
 * Every block that is not small has a 16-byte header just before the user pointer; the
 * word at p - 8 (hlm_head) carries flags whose meaning is shared by all back ends:
 *   HLM_MMAPPED  the block is a large mmap'd block (large.c)
 *   HLM_OFFSET   the block is an aligned view into a larger block: head >> 4 = distance
 *                back to the real user pointer (variant.c's memalign)
 * Chunks of the tag heap and buddy blocks never set these two bits.
 *
 * The variants (libheaplab-firstfit.so, -bestfit.so, -buddy.so) put everything below
 * the mmap threshold in arenas (variant.c): each a heap of one policy (tag.c with
 * another fit, or buddy.c) behind its own lock, one per thread while there are few.  override.c exports the C API on top of the hlm_* functions declared
 * below, identical for every library.
 */
#ifndef HLM_H
#define HLM_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/single_threaded.h>
#include "options.h"

#define HLM_API __attribute__((visibility("default")))
#define hlm_likely(x) __builtin_expect(!!(x), 1)
#define hlm_unlikely(x) __builtin_expect(!!(x), 0)
#define HLM_NOINLINE __attribute__((noinline))
#define HLM_TLS __thread __attribute__((tls_model("initial-exec")))

/* Invariants are written as hlm_assert.  They are checked in the debug build of the
 * library (-DHLM_DEBUG, libheaplab-malloc-debug.so used by the stress tests) and cost
 * nothing otherwise.  hlm_check is always on: it guards against heap corruption on slow
 * paths where the cost is negligible. */
void hlm_fatal(const char *what, const void *p) __attribute__((noreturn));
#ifdef HLM_DEBUG
#define hlm_assert(c) ((c) ? (void)0 : hlm_fatal("assertion failed: " #c, NULL))
#else
#define hlm_assert(c) ((void)0)
#endif
#define hlm_check(c, what, p) (hlm_likely(c) ? (void)0 : hlm_fatal(what, p))

/* ---- sizes and alignment ---------------------------------------------------------- */

#define HLM_ALIGN 16u            /* every block is aligned to this */
#define HLM_HDR 16u              /* header of non-small blocks */
#define HLM_MMAPPED ((size_t)2)  /* head flag: large mmap'd block */
#define HLM_OFFSET ((size_t)4)   /* head flag: aligned view, head >> 4 = offset back */
#define HLM_KIB ((size_t)1024)
#define HLM_MIB (1024 * HLM_KIB)

static inline size_t hlm_align_up(size_t n, size_t a) { return (n + a - 1) & ~(a - 1); }
static inline bool hlm_is_pow2(size_t a) { return a && !(a & (a - 1)); }

static inline size_t *hlm_headp(const void *p) { return (size_t *)((char *)p - sizeof(size_t)); }
static inline size_t hlm_head(const void *p) { return *hlm_headp(p); }

/* ---- platform (os.c): the only file that talks to the kernel ------------------------- */

typedef struct { int v; } hlm_lock_t;   /* 0 free, 1 locked, 2 locked with waiters */
#define HLM_LOCK_INIT { 0 }
void hlm_lock_slow(hlm_lock_t *l);
void hlm_lock_wake(hlm_lock_t *l);
/* While the process has one thread (glibc's __libc_single_threaded, cleared by the first
 * pthread_create) nobody can contend: hlm_lock takes nothing, and hlm_unlock, seeing the
 * lock word still 0, does nothing, so a pair stays matched whichever way the flag went
 * between them (a single-threaded program's slow paths, glibc's trick: two locked
 * instructions less per cold-start batch and per tag-heap call). */
static inline void hlm_lock(hlm_lock_t *l)
{
    if (__libc_single_threaded)
        return;
    int z = 0;
    if (hlm_likely(__atomic_compare_exchange_n(&l->v, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)))
        return;
    hlm_lock_slow(l);
}
static inline void hlm_unlock(hlm_lock_t *l)
{
    if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0)
        return;
    if (hlm_unlikely(__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2))
        hlm_lock_wake(l);
}
/* true if the lock was taken (always while the process has one thread, as hlm_lock). */
static inline bool hlm_trylock(hlm_lock_t *l)
{
    if (__libc_single_threaded)
        return true;
    int z = 0;
    return __atomic_compare_exchange_n(&l->v, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
/* After fork the child is single-threaded: locks held by vanished threads are reset. */
static inline void hlm_lock_reinit(hlm_lock_t *l) { l->v = 0; }

extern size_t hlm_page_size;
void hlm_os_init(void);
void *hlm_os_map(size_t n);                        /* zeroed pages or NULL */
void *hlm_os_map_aligned(size_t n, size_t align);  /* n and align multiples of pages */
void hlm_os_unmap(void *p, size_t n);
void *hlm_os_remap(void *p, size_t old_n, size_t new_n); /* may move; NULL on failure */
void hlm_os_purge(void *p, size_t n);              /* give the pages back, keep the range */
void *hlm_os_sbrk(intptr_t inc);                   /* old break, or NULL */
void *hlm_os_brk_now(void);                        /* current break */
void hlm_os_write(int fd, const char *s, size_t n);

/* ---- options (options.c): one table, read once from HEAPLAB_* variables ---------------- */

/* The table itself, names and defaults, is in options.h. */
enum hlm_opt {
#define HLM_OPT_ID(id, env, def, help) HLM_OPT_##id,
    HLM_OPTIONS(HLM_OPT_ID)
#undef HLM_OPT_ID
    HLM_OPT_COUNT
};
struct hlm_option {
    const char *name;   /* environment variable */
    size_t value;       /* default, replaced by the environment */
    bool set;           /* given in the environment */
    const char *help;
};
extern struct hlm_option hlm_options[HLM_OPT_COUNT];
static inline size_t hlm_opt(enum hlm_opt o) { return hlm_options[o].value; }
void hlm_options_read(void);  /* idempotent; defaults until the environment exists */

/* The mmap threshold adapts (like glibc's) unless HEAPLAB_MMAP_THRESHOLD is set: freeing
 * an mmap'd block raises it to HLM_MMAP_THRESHOLD_RAISE times that block's size, up to
 * HLM_MMAP_THRESHOLD_MAX, so that a program reusing blocks of large sizes stops paying
 * mmap+munmap+faults each time.  It starts at 4 MiB (options.h): below that the tag heap
 * serves blocks, its top trimmed and its holes purged, which returns their memory too. */
#define HLM_MMAP_THRESHOLD_MAX (32 * HLM_MIB)
extern size_t hlm_mmap_threshold;
extern size_t hlm_trim_threshold;

/* ---- statistics (stats.c): kept by the allocator itself --------------------------------- */

struct hlm_stats {
    size_t os_mapped, os_mapped_peak;   /* bytes got from mmap and sbrk, now and at most */
    size_t sbrk_bytes, sbrk_peak;
    size_t large_count, large_bytes, large_peak, large_total;
    size_t segments, segments_peak;
    size_t purged_bytes, purge_calls, trims, trimmed_bytes;
    size_t refills, flushes;            /* thread cache <-> central batches */
    size_t spans;                       /* spans made from the pages (segments.c) */
    size_t nmalloc, nfree;              /* calls, summed from exited thread caches */
    size_t threads;
};
extern struct hlm_stats hlm_stats;
#define hlm_stat_add(field, n) __atomic_add_fetch(&hlm_stats.field, (n), __ATOMIC_RELAXED)
#define hlm_stat_sub(field, n) __atomic_sub_fetch(&hlm_stats.field, (n), __ATOMIC_RELAXED)
static inline void hlm_stat_peak(size_t *peak, size_t now)
{
    size_t old = __atomic_load_n(peak, __ATOMIC_RELAXED);
    while (now > old && !__atomic_compare_exchange_n(peak, &old, now, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}
void hlm_stats_print(int fd);
void hlm_stats_calls(size_t *nmalloc, size_t *nfree);  /* back end: live + exited threads */
extern const char *hlm_name;                           /* "heaplab", "heaplab-buddy", ... */

/* ---- large blocks (large.c) --------------------------------------------------------- */
/* Layout: mapping start ... [size_t offset][size_t mapsize|HLM_MMAPPED] user data ... end.
 * offset = user pointer - mapping start (>= HLM_HDR); used for alignments above a page. */

static inline bool hlm_large_is(const void *p) { return hlm_head(p) & HLM_MMAPPED; }
void *hlm_large_malloc(size_t n, size_t align);
void hlm_large_free(void *p);
size_t hlm_large_usable(const void *p);
void *hlm_large_realloc(void *p, size_t n);
/* A large block for a realloc that grows a smaller block to n: the kept mapping when it
 * fits, else a fresh one. */
void *hlm_large_grown(size_t n);
/* calloc(n)'s fresh mapping while the mmap threshold has not adapted (HLM_CALLOC_MAP_MIN,
 * tunables.h), else NULL: the caller serves it as any calloc. */
void *hlm_large_calloc(size_t n);
/* A purge pass of the tag heap, purging what waited through `age` passes (0: all): the
 * kept mapping ages, or goes back. */
void hlm_large_pass(unsigned age);

/* ---- boundary-tag heap (tag.c) -------------------------------------------------------- */
/* A chunk: [prev_size][head] user data ... ; head = size | HLM_TAG_INUSE | HLM_TAG_PINUSE.
 * size counts the header and is a multiple of 16, at least HLM_TAG_MIN.  A free chunk
 * keeps fd/bk links in its first user words and its size in the next chunk's prev_size
 * (the footer), whose bit 0 says the chunk's interior pages were purged (clean).  An
 * in-use chunk's data runs over that word (usable = size - 8), as in glibc.  Each
 * region of the heap ends with a fencepost: a 16-byte in-use chunk of size 0.  Two free
 * chunks live outside the bins: the top (the one before the newest region's fence) and,
 * in the default policy, the designated victim (off unless built with HLM_TAG_DV_MAX); misses
 * are carved off their front.
 * Callers hold the lock that protects the heap. */

#define HLM_TAG_INUSE ((size_t)1)
#define HLM_TAG_PINUSE ((size_t)8)
#define HLM_TAG_MIN ((size_t)32)
#define HLM_TAG_FIRSTFIT 1   /* one list in address order, lowest fit wins (K&R) */
#define HLM_TAG_BESTFIT 2    /* size bins, the smallest fitting chunk wins */
#define HLM_TAG_SEGFIT 3     /* size bins, first chunk of the first fitting bin */

/* The heap that alloc.c uses, under hlm_tag_lock (it grows with sbrk): */
extern hlm_lock_t hlm_tag_lock;
void *hlm_tag_malloc(size_t n);
void hlm_tag_free(void *p);
size_t hlm_tag_usable(const void *p);
void *hlm_tag_memalign(size_t align, size_t n);
bool hlm_tag_resize(void *p, size_t n);
int hlm_tag_trim(size_t pad);
void hlm_tag_purge(void);
void hlm_tag_purge_idle(void);   /* purge now if three quarters of the heap are free */
void hlm_tag_slab_grew(size_t fresh);   /* the slab took fresh pages (no lock held on it) */
void hlm_tag_info(size_t *arena, size_t *free_bytes, size_t *free_chunks);
/* The same on a given heap, for the variants' arenas (variant.c): hlm_tag_heap0 is the
 * heap above; hlm_tag_new makes another, which maps its regions aligned to grain (a
 * power of two, multiple of the page) in multiples of it, never sbrk, and reports each
 * to mapped(base, len, arg) before carving it.  Callers hold the heap's lock. */
struct hlm_tag_heap;
struct hlm_tag_heap *hlm_tag_heap0(void);
struct hlm_tag_heap *hlm_tag_new(size_t grain, bool (*mapped)(void *, size_t, void *), void *arg);
void *hlm_tag_malloc_in(struct hlm_tag_heap *h, size_t n);
void hlm_tag_free_in(struct hlm_tag_heap *h, void *p);
void *hlm_tag_memalign_in(struct hlm_tag_heap *h, size_t align, size_t n);
bool hlm_tag_resize_in(struct hlm_tag_heap *h, void *p, size_t n);
int hlm_tag_trim_in(struct hlm_tag_heap *h, size_t pad);
void hlm_tag_info_in(struct hlm_tag_heap *h, size_t *arena, size_t *free_bytes, size_t *free_chunks);
void hlm_tag_release_in(struct hlm_tag_heap *h);   /* its thread left: purge pass */

/* ---- buddy core (buddy.c), same contract as the tag heap's *_in calls ---------------- */
/* Superblocks are 4 MiB, aligned to it; a heap reports each it maps (hlm_buddy_report). */

struct hlm_buddy_heap;
struct hlm_buddy_heap *hlm_buddy_heap0(void);
struct hlm_buddy_heap *hlm_buddy_new(void);
void hlm_buddy_report(struct hlm_buddy_heap *h, bool (*mapped)(void *, size_t, void *), void *arg);
void *hlm_buddy_malloc(struct hlm_buddy_heap *h, size_t n);
void hlm_buddy_free(struct hlm_buddy_heap *h, void *p);
size_t hlm_buddy_usable(const void *p);
bool hlm_buddy_resize(void *p, size_t n);
int hlm_buddy_trim(struct hlm_buddy_heap *h, size_t pad);
void hlm_buddy_release(struct hlm_buddy_heap *h);   /* its thread left: purge */
void hlm_buddy_info(struct hlm_buddy_heap *h, size_t *arena, size_t *free_bytes, size_t *free_chunks);
#define HLM_BUDDY_MAX_REQUEST (2 * HLM_MIB)

/* ---- small blocks: size classes, segments, spans, thread caches (alloc.c, small.h) ---- */

/* Slab classes go to 48 KiB: blocks of 32-48 KiB whose first page alone is written (the
 * fragmenter's) take a different page each time as best-fit tag chunks, where fixed
 * slots repeat theirs (HISTORY.md).  Those above HLM_COLD_MAX take blocks only
 * once a program keeps many of them live (HLM_BIG_SLAB_LIVE, alloc.c); until then, and
 * in the cold start, such blocks are tag chunks. */
#define HLM_SMALL_MAX 49152u
/* Once warm, while the process has more than one thread, blocks above HLM_SLAB_MAX are
 * tag-heap chunks of their own size, not slab objects: a class of 5-32 KiB blocks pinned a span per thread for one or two blocks
 * (python-threads: 250 KiB of such spans, free, at its peak). */
#ifndef HLM_SLAB_MAX
#define HLM_SLAB_MAX 4096u
#endif
#ifndef HLM_FINE_FROM
#define HLM_FINE_FROM 1024       /* classes 16 per doubling from here to 2048 */
#endif
#ifndef HLM_UPPER_STEPS
#define HLM_UPPER_STEPS 8        /* classes per doubling from 2048 to HLM_SMALL_MAX */
#endif
/* Classes above 32 KiB: HLM_UPPER_STEPS per doubling, up to HLM_SMALL_MAX (at most 64 KiB,
 * a multiple of the step). */
#define HLM_TOP_CLASSES ((HLM_SMALL_MAX - 32768u) / (32768u / HLM_UPPER_STEPS))
_Static_assert(HLM_SMALL_MAX >= 32768u && HLM_SMALL_MAX <= 65536u &&
               (HLM_SMALL_MAX - 32768u) % (32768u / HLM_UPPER_STEPS) == 0,
               "HLM_SMALL_MAX: 32 to 64 KiB, on a class step");
#define HLM_NCLASSES (41 + 4 * HLM_UPPER_STEPS + HLM_TOP_CLASSES + 8 * ((HLM_FINE_FROM <= 256) + (HLM_FINE_FROM <= 512) + (HLM_FINE_FROM <= 1024)))
                                 /* classes 1..NCLASSES-1; 0 means "not a slab page" */
#define HLM_SEG_SHIFT 22         /* 4 MiB segments ... */
#define HLM_SEG_SIZE ((size_t)1 << HLM_SEG_SHIFT)
#define HLM_PAGE_SHIFT 16        /* ... of 64 pages of 64 KiB; page 0 holds the header */
#define HLM_PAGE ((size_t)1 << HLM_PAGE_SHIFT)
#define HLM_SEG_PAGES 64
#define HLM_SPAN_MAX_PAGES 8
#define HLM_ADDR_BITS 47         /* user address space; mmap never returns more */
#define HLM_SEGMAP_BYTES ((size_t)1 << (HLM_ADDR_BITS - HLM_SEG_SHIFT))

/* Size classes: 16-byte steps to 256, 8 per doubling to HLM_FINE_FROM (1024), 16 per doubling
 * to 2048, HLM_UPPER_STEPS (8) per doubling to HLM_SMALL_MAX (48 KiB).  Once the process
 * has a second thread, malloc maps 128 bytes to HLM_FINE_FROM onto HLM_COARSE_STEPS of them
 * per doubling only (tunables.h, classes.c).  Sizes up to 2048 map through
 * hlm_class16[(n + 15) >> 4] (hlm_class16_fine: always every class), larger ones through
 * hlm_classup[(n + grain - 1) / grain] (every class above 2048 is a multiple of the grain,
 * 256).  8 instead of 4 per doubling above 2 KiB: phases 54.6 -> 53.8 MiB, fragmenter
 * 41.4 -> 40.1 MiB; 16 gained nothing more on either. */
extern uint32_t hlm_class_size[HLM_NCLASSES];
extern uint8_t hlm_class_pages[HLM_NCLASSES];   /* span length in pages */
extern uint8_t hlm_class16[2048 / 16 + 1];      /* what malloc maps by (classes.c) */
extern uint8_t hlm_class16_fine[2048 / 16 + 1]; /* every class: the smallest that fits */
void hlm_classes_coarsen(void);
#define HLM_UPPER_GRAIN (2048 / HLM_UPPER_STEPS)   /* every class above 2048 is a multiple */
#define HLM_UPPER_SHIFT (__builtin_ctz(HLM_UPPER_GRAIN))
extern uint8_t hlm_classup[HLM_SMALL_MAX / HLM_UPPER_GRAIN + 1];
static inline unsigned hlm_class_of(size_t n)   /* the class malloc takes for n */
{
    hlm_assert(n <= HLM_SMALL_MAX);
    return n <= 2048 ? hlm_class16[(n + 15) >> 4]
                     : hlm_classup[(n + HLM_UPPER_GRAIN - 1) >> HLM_UPPER_SHIFT];
}
static inline unsigned hlm_class_fine_of(size_t n)   /* the smallest class of n bytes */
{
    return n <= 2048 ? hlm_class16_fine[(n + 15) >> 4] : hlm_class_of(n);
}

/* A span: objects of one class, handed out from its free list, then from the never-used
 * tail [bump, end) so that a fresh span costs no resident memory until used.  Invariant:
 * used + (objects on free) + (end - bump) / size == cap.  Protected by its class's
 * central lock, or owned (owned.c); an owner carves the tail a window at a time onto the
 * free list, where malloc's fast path takes it. */
struct hlm_tcache;
struct hlm_span {
    void *free;
    char *bump, *end;
    uint32_t used, cap;
    uint8_t cls, npages, first, listed;   /* listed: on its class's partial list */
    uint8_t shard;                        /* whose central list it is on; changes only
                                           * under that shard's lock (a span adopted) */
    uint8_t full;                         /* owned: on the owner's full list */
    uint8_t xlisted;                      /* owned: on the owner's xready list */
    uint8_t stashed;                      /* owned, empty, on the owner's stash: 1, 2 when
                                           * it stayed there through a scavenge */
    struct hlm_span *prev, *next;         /* central partial list, or the owner's lists */
    /* Ownership (owned.c): a span taken by a thread cache belongs
     * to it until the thread exits.  owner is written under the class's central lock of
     * the span's shard (which is the owner's shard) and only ever set to the thread's own
     * cache by that thread, so a thread can test owner == itself without a lock.  While
     * owned, free, bump and used are the owner's alone (no lock); objects freed by other
     * threads go onto xfree (xtail: its last object, xcount: its length; still counted
     * in used) under the central lock, and the span onto the owner's xready list. */
    struct hlm_tcache *owner;
    void *xfree, *xtail;
    uint32_t xcount;
    struct hlm_span *xnext;
} __attribute__((aligned(64)));   /* owners write their spans at every call: no sharing */

/* A segment: 4 MiB aligned, page 0 is this header.  free_pages/dirty_pages: bit i set when
 * page i belongs to no span / when such a free page may still be resident.  page_cls and
 * page_first are written when a span is made and read without a lock by free(): a live
 * object's span cannot change under it.  Pages, lists and masks: hlm_pages_lock. */
struct hlm_segment {
    uint64_t free_pages, dirty_pages;
    uint64_t purged_pages;   /* given back by a purge pass and not taken since */
    struct hlm_segment *prev, *next;
    uint8_t kind;   /* 1: multi-page spans, 0: one-page spans (segments.c) */
    uint8_t page_cls[HLM_SEG_PAGES];
    uint8_t page_was[HLM_SEG_PAGES];   /* free page -> class of the span that began there */
    uint8_t page_first[HLM_SEG_PAGES];
    /* page -> its span's owner (a copy of spans[].owner kept apart: free() reads it for
     * every block, and spans[] lines are written by their owners at every call). */
    struct hlm_tcache *page_owner[HLM_SEG_PAGES];
    /* page -> its span (&spans[page_first[page]], written with it): free()'s owner path
     * finds its span with one load. */
    struct hlm_span *page_span[HLM_SEG_PAGES];
    struct hlm_span spans[HLM_SEG_PAGES];   /* indexed by the span's first page */
};
#define HLM_SEG_ALL_FREE (~(uint64_t)1)     /* every page but the header's */

/* A byte per 4 MiB, 1 for a segment (32 MiB of bss, of which only the pages covering the
 * address ranges in use are ever touched, each 16 GiB of them): free() tests a byte, with
 * no word index, shift and bit test as a bitmap needs. */
extern uint8_t hlm_segmap[HLM_SEGMAP_BYTES];
static inline bool hlm_is_small(const void *p)
{
    uintptr_t i = (uintptr_t)p >> HLM_SEG_SHIFT;
    if (hlm_unlikely(i >= HLM_SEGMAP_BYTES))
        return false;
    return __atomic_load_n(&hlm_segmap[i], __ATOMIC_RELAXED) != 0;
}
static inline struct hlm_segment *hlm_segment_of(const void *p)
{
    return (struct hlm_segment *)((uintptr_t)p & ~(HLM_SEG_SIZE - 1));
}
static inline unsigned hlm_page_of(const struct hlm_segment *s, const void *p)
{
    unsigned i = (unsigned)(((uintptr_t)p - (uintptr_t)s) >> HLM_PAGE_SHIFT);
    hlm_assert(i > 0 && i < HLM_SEG_PAGES);
    return i;
}
static inline unsigned hlm_small_class(const void *p)
{
    struct hlm_segment *s = hlm_segment_of(p);
    unsigned c = s->page_cls[hlm_page_of(s, p)];
    hlm_assert(c > 0 && c < HLM_NCLASSES);
    return c;
}
static inline struct hlm_span *hlm_span_of(const void *p)
{
    struct hlm_segment *s = hlm_segment_of(p);
    struct hlm_span *sp = &s->spans[s->page_first[hlm_page_of(s, p)]];
    hlm_assert(sp->cls && sp->cls == s->page_cls[hlm_page_of(s, p)]);
    hlm_assert(((uintptr_t)p - ((uintptr_t)s + ((uintptr_t)sp->first << HLM_PAGE_SHIFT))) %
               hlm_class_size[sp->cls] == 0);
    return sp;
}
static inline char *hlm_span_start(const struct hlm_span *sp)
{
    return (char *)hlm_segment_of(sp) + ((size_t)sp->first << HLM_PAGE_SHIFT);
}

/* Thread cache: per class a singly linked list of free objects (link in the first word),
 * at most max long; half of it moves to the central list when it overflows. */
struct hlm_tbin {
    void *head;
    uint32_t count, max;
};
struct hlm_tcache {
    struct hlm_tbin bins[HLM_NCLASSES];
    struct hlm_span *own[HLM_NCLASSES];    /* owned spans with free or never-used objects */
    struct hlm_span *full[HLM_NCLASSES];   /* owned spans with none (as the owner last saw) */
    struct hlm_span *stash[HLM_NCLASSES];  /* owned empty spans, free lists intact (stash.c) */
    size_t stash_bytes;                    /* their pages, at most HLM_STASH_BYTES */
    uint8_t churn[HLM_NCLASSES];           /* 1: an empty span went back to the pages since
                                            * the last scavenge, 2: and one came again */
    uint8_t active[HLM_NCLASSES];          /* objects other threads freed collected
                                            * since the last scavenge (owned.c) */
    size_t nmalloc, nfree;
    uint32_t gc_tick;                 /* slow-path events since the last scavenge */
    unsigned shard;                   /* central lists this thread refills from */
    struct hlm_tcache *prev, *next;   /* all live caches, for stats and fork */
    /* owned spans with xfree objects; written by other threads (central lock), so on
     * lines of its own */
    struct hlm_span *xready[HLM_NCLASSES] __attribute__((aligned(64)));
};

/* A thread that frees far more than it allocates consumes other threads' blocks (a
 * consumer of a producer/consumer pair).  Its cache only batches its frees: its bins no
 * longer grow, and each gives its batch back whole, onto the blocks' spans itself
 * (hlm_central_give's locked path), so that the owners do not walk the objects off
 * remote stacks, and one lock covers a batch instead of one object (HISTORY.md). */
static inline bool hlm_tc_consumer(const struct hlm_tcache *tc)
{
    return tc->nfree > 4 * tc->nmalloc;
}

/* Central lists (central.c, remote.c): per class the spans with free objects; the page
 * heap (segments.c).  They are sharded: threads are spread over HLM_SHARDS sets of central lists (the first
 * thread on shard 0), so independent threads do not fight over one lock per class; a
 * freed object goes back to the shard of its span, whoever frees it.  Before carving
 * fresh objects or taking fresh pages a thread looks at the other shards too: their
 * remote stacks (objects given back that their owners did not need yet) and their
 * partial lists (spans left by threads that exited), which it adopts. */
#define HLM_SHARDS 4
extern hlm_lock_t hlm_pages_lock;
void hlm_small_init(void);
unsigned hlm_central_take(unsigned shard, unsigned cls, void **chain, unsigned want); /* 0: OOM */
/* chain: NULL-terminated, count objects, the last one last (NULL if unknown: then
 * from_shard must be -1); from_shard: the giving thread's shard, or -1 to put them onto
 * their spans under the central lock (never onto a remote stack). */
void hlm_central_give(unsigned cls, void *chain, void *last, unsigned count, int from_shard);
void hlm_central_drain(void);
/* Thread-owned spans (owned.c): refill a cache from the thread's own spans (taking new
 * ones when they run dry); give a chain back (objects of owned spans go onto their free
 * lists without a lock, the others to hlm_central_give); after a local free left a span
 * empty or made a full span non-full; collect objects other threads freed; give every
 * owned span back at thread exit. */
unsigned hlm_own_refill(struct hlm_tcache *tc, unsigned cls, void **chain, unsigned want);
void *hlm_own_next(struct hlm_tcache *tc, unsigned cls);   /* NULL: refill */
void hlm_own_give(struct hlm_tcache *tc, unsigned cls, void *chain, unsigned count);
void hlm_own_free_slow(struct hlm_tcache *tc, struct hlm_span *sp);
void hlm_own_collect_all(struct hlm_tcache *tc);
void hlm_own_release_idle(struct hlm_tcache *tc, unsigned busy);
void hlm_own_stash_release(struct hlm_tcache *tc);
void hlm_own_abandon(struct hlm_tcache *tc);
int hlm_pages_trim(void);
void hlm_small_info(size_t *mapped, size_t *free_bytes);
void hlm_small_dump(int fd) __attribute__((weak));   /* absent from the variants */
void hlm_central_fork_prepare(void);
void hlm_central_fork_parent(void);
void hlm_central_fork_child(struct hlm_tcache *tc);

/* ---- back end entry points (alloc.c for the default, variant.c for the others) --------
 * n has been checked against PTRDIFF_MAX by override.c (but for hlm_malloc, which is
 * malloc itself); align is a power of two > 16.  hlm_malloc returns NULL (errno ENOMEM)
 * only after giving back what the heap keeps (hlm_trim) and trying once more, so that
 * malloc needs no frame of its own; override.c does that for the other calls. */

void hlm_init(void);
void *hlm_malloc(size_t n);
void hlm_free(void *p);
void *hlm_calloc(size_t n);            /* n already multiplied and checked; hlm_malloc's retry */
void *hlm_realloc(void *p, size_t n);  /* p != NULL, n > 0 */
void *hlm_memalign(size_t align, size_t n);
size_t hlm_usable_size(const void *p);
int hlm_trim(size_t pad);
void hlm_info(size_t *arena, size_t *in_use, size_t *free_bytes, size_t *free_chunks);
void hlm_fork_prepare(void);
void hlm_fork_parent(void);
void hlm_fork_child(void);

/* Shared by the back ends' hlm_malloc: out of memory (or of address space, under
 * RLIMIT_AS), give back what the heap keeps (thread caches, free top of the heap, free
 * pages) and try once more.  In the back end, not in override.c, so that malloc is a
 * jump to hlm_malloc: a call and frame around the fast path cost sqlite's replay 5%. */
static inline void *hlm_malloc_retry(void *p, void *(*again)(size_t), size_t n)
{
    if (hlm_likely(p != NULL))
        return p;
    if (n <= PTRDIFF_MAX) {
        hlm_trim(0);
        errno = 0;
        p = again(n);
    }
    if (!p)
        errno = ENOMEM;
    return p;
}

/* Shared by the back ends: copy a block into q (new, of size n) and free it.  From
 * dead_purge bytes (0: never) the old block's whole pages are purged before it is freed:
 * once copied they hold nothing anyone will read. */
static inline void *hlm_realloc_into(void *q, void *p, size_t old_usable, size_t n,
                                     size_t dead_purge)
{
    if (q) {
        memcpy(q, p, old_usable < n ? old_usable : n);
        if (dead_purge && old_usable >= dead_purge) {
            uintptr_t from = hlm_align_up((uintptr_t)p, hlm_page_size);
            uintptr_t to = ((uintptr_t)p + old_usable) & ~(uintptr_t)(hlm_page_size - 1);
            if (to > from)
                hlm_os_purge((void *)from, to - from);
        }
        hlm_free(p);
    }
    return q;
}

/* Move a block to a fresh one of size n (realloc's last resort). */
static inline void *hlm_realloc_move(void *p, size_t old_usable, size_t n, size_t dead_purge)
{
    return hlm_realloc_into(hlm_malloc(n), p, old_usable, n, dead_purge);
}

#endif
