/*
 * alloc.c: libheaplab-malloc.so's back end: the thread caches and the fast paths of
 * malloc and free, then the slow paths (named *_slow) that refill and flush the caches
 * through the small-block heap (small.h), and the medium (tag.c) and large (large.c) blocks.
 *
 * A thread's cache is created on its first allocation, found through an initial-exec TLS
 * pointer (no call, no lock, safe inside the dynamic loader and pthread_create), and
 * flushed back by a pthread key destructor when the thread exits; afterwards the thread
 * (still running other destructors) allocates straight from the central lists.  Spans
 * have owners (owned.c): a thread frees its own blocks onto their
 * span's free list, which malloc reads after the cache; a block freed by another thread
 * goes into that thread's cache, and back to its owner's span when the cache overflows.
 */
#include "hlm.h"
#include "tunables.h"

#include <pthread.h>

const char *hlm_name = "heaplab";

static HLM_TLS struct hlm_tcache *tc_self;
/* The fast paths' view of tc_self: never NULL, so that they test nothing before using
 * it.  A thread without a cache sees tc_none, which owns no span and holds nothing (its
 * bins' max is 0), so that every call of such a thread goes the slow way. */
static struct hlm_tcache tc_none;
static HLM_TLS struct hlm_tcache *tc_fast = &tc_none;
static HLM_TLS bool tc_dead;   /* this thread's cache was flushed at thread exit */

static hlm_lock_t tc_lock = HLM_LOCK_INIT;   /* tc_list, tc_spare, meta, exited counts */
static struct hlm_tcache *tc_list, *tc_spare;
static char *meta_next, *meta_end;
static size_t exited_nmalloc, exited_nfree;
static pthread_key_t tc_key;
static bool tc_key_ok;
static uint32_t tbin_max[HLM_NCLASSES];   /* a bin's cap; it starts at HLM_TBIN_START */
/* Caps of a cache: what exceeds them goes back to the spans (foreign objects to their
 * owners).  They hold mostly blocks other threads allocated (a thread's own frees go
 * to its spans), and every byte held is one its owner may carve again: 16 KiB per class
 * and 256 KiB per thread cost larson 2.16 MiB of RSS, 4 and 64 KiB 1.79 (glibc 1.90),
 * with 40% more time; 8 and 128 KiB, in one run: 1.79 MiB at 12.0 ms instead of 1.76 at
 * 15.7 (16 and 256: 2.04 at 11.0; glibc 1.71, mimalloc 15.5 ms), and the direct 4-thread
 * larson program 0.06 s instead of 0.08 (mimalloc 0.05). */
static bool inited;
static hlm_lock_t init_lock = HLM_LOCK_INIT;

/* Cold start.  A slab class costs at least a page of its own and a cache of objects, and
 * a span stays as long as one of its objects lives: a small program that keeps a few
 * blocks in each of many classes (awk's growing strings, sqlite's statements, a compiler
 * pass) touched two to three times glibc's memory that way.  So a process starts cold:
 * small blocks are chunks of the boundary-tag heap, packed with every other size and
 * coalesced when freed, still cached per thread like slab objects (taken and given back
 * in batches).  Once more than HEAPLAB_COLD bytes of such chunks are out (live or cached),
 * or a second thread starts (the tag heap has one lock), the process turns warm for good:
 * caches refill from slabs, and the chunks go back to the tag heap as they are freed.
 * A per-class budget (256 KiB each) cost big programs 15-25% of their time (perl, phases:
 * tens of thousands of tag-heap operations before every class warmed up); one budget for
 * the process bounds that work. */
/* While cold, a block above HLM_COLD_EXACT bytes is a chunk of exactly its size that goes
 * straight back to the tag heap when freed (classes there are 25% apart, and a program
 * rarely churns them: sqlite 160 -> 148 KiB), and a cold bin holds at most HLM_COLD_BIN_BYTES
 * (awk 536 -> 500 KiB).  Exact below 4 KiB cost awk and sqlite 30-80% more time in
 * tag-heap calls. */
/* usable bytes of tag chunks serving small classes; under hlm_tag_lock, so that a
 * single-threaded program pays no locked instruction for it (a lock add per cold miss
 * and per flush, as much as the rest of the miss) */
static ptrdiff_t cold_bytes;
/* A cold bin's cap in chunks: HLM_COLD_BIN_BYTES / class size, at least 2, at most the bin's
 * own max (HLM_TBIN_START while cold), worked out once: the 32-bit division at every
 * free of a cold chunk was 43% of free_slow's samples on sqlite. */
static uint8_t cold_cap[HLM_NCLASSES];
/* The cold class a freed tag chunk of csize bytes serves from the cache, indexed by
 * csize / 16 (0: none, the chunk goes back to the tag heap): cold_class of its usable
 * size when that class is at most HLM_COLD_EXACT and still cold (class_turns_warm clears
 * a class's entries).  One load instead of a chain of four
 * (usable -> hlm_class16 -> hlm_class_size -> compare) on every free of a cold chunk. */
#define COLD_OF_MAX 8192   /* chunks this big or bigger serve classes above HLM_COLD_EXACT */
static uint8_t cold_of[COLD_OF_MAX / 16];
static bool cold_ok = true;
/* Churn ends the cold start too: a program that keeps little but frees and allocates
 * more blocks of a class than its cold bin holds sends each of them through the tag heap
 * (threadtest's rounds of 2500 64-byte blocks replayed in one thread, 640 KiB live: 19.7
 * ms, glibc 8.5).  After HLM_COLD_FLUSH_MAX overflowing bins the process turns warm: 5.8 ms,
 * but the chunks the tag heap got back stay resident next to the slabs (1.23 MiB, glibc
 * 0.72).  Letting the cold bins grow instead (doubling at each overflow, up to 64 or
 * 256 KiB per class) gave 10.8 or 8.0 ms at 0.72 MiB, but the python trace 15.9 -> 19.1
 * MiB and sqlite 124 -> 152 KiB.  1024 or 4096: awk, sqlite, gcc, perl, python as
 * before; 256: awk 480 -> 964 KiB.  A class that churns on its own turns warm sooner, alone
 * (HLM_COLD_CLASS_FLUSH_MAX): its blocks come from a slab, its cached tag chunks go back
 * to the tag heap as they are freed, and the process's other classes stay cold, until
 * HLM_COLD_WARM_CLASSES classes have (HISTORY.md). */
static size_t cold_flushes;   /* under hlm_tag_lock, as the two below */
static uint32_t cold_class_flushes[HLM_NCLASSES];
static unsigned warm_classes;          /* classes turned warm by their own churn */
/* A class turned warm by its own churn (its count stops there: class_turns_warm). */
static inline bool class_warm(unsigned cls)
{
    return __atomic_load_n(&cold_class_flushes[cls], __ATOMIC_RELAXED) > HLM_COLD_CLASS_FLUSH_MAX;
}
/* Tag chunks of (HLM_COLD_MAX, HLM_SMALL_MAX] usable bytes live now (approximate: counted
 * where malloc makes them and where free gives them back; under hlm_tag_lock), and whether
 * their slab classes are in use (HLM_BIG_SLAB_LIVE; set once, never cleared). */
static size_t big_tag_live;
static bool big_slab;
static inline bool big_range(size_t usable)
{
    return usable > HLM_COLD_MAX && usable <= HLM_SMALL_MAX;
}

static void tcache_exit(void *arg);
static unsigned cold_class(size_t usable);

/* hlm_tag_usable without the call (the header layout is hlm.h's: size - 8). */
static inline size_t tag_usable(const void *p)
{
    size_t u = (hlm_head(p) & ~(size_t)15) - (HLM_HDR - sizeof(size_t));
    hlm_assert(u == hlm_tag_usable(p));
    return u;
}

void hlm_init(void)
{
    if (__atomic_load_n(&inited, __ATOMIC_ACQUIRE))
        return;
    hlm_lock(&init_lock);
    if (!inited) {
        hlm_os_init();
        hlm_options_read();
        hlm_small_init();
        /* A cache holds up to HLM_TBIN_BYTES per class (2..HLM_TBIN_OBJS objects); it flushes half. */
        for (unsigned c = 1; c < HLM_NCLASSES; c++) {
            uint32_t m = HLM_TBIN_BYTES / hlm_class_size[c];
            tbin_max[c] = m < 2 ? 2 : m > HLM_TBIN_OBJS ? HLM_TBIN_OBJS : m;
            uint32_t k = HLM_COLD_BIN_BYTES / hlm_class_size[c];
            /* (not the warm bin's max: that follows HLM_TBIN_BYTES, which is smaller; 4 KiB
             * there cost sqlite 12% more time in tag-heap calls) */
            cold_cap[c] = (uint8_t)(k < 2 ? 2 : k > HLM_TBIN_START ? HLM_TBIN_START : k);
        }
        for (size_t i = HLM_TAG_MIN / 16; i < COLD_OF_MAX / 16; i++) {
            unsigned c = cold_class(i * 16 - (HLM_HDR - sizeof(size_t)));
            cold_of[i] = (uint8_t)(hlm_class_size[c] <= HLM_COLD_EXACT ? c : 0);
        }
        /* glibc's pthread_key_create takes a slot in a static table: no allocation. */
        tc_key_ok = pthread_key_create(&tc_key, tcache_exit) == 0;
        __atomic_store_n(&inited, true, __ATOMIC_RELEASE);
    }
    hlm_unlock(&init_lock);
}

/* ---- fast paths ------------------------------------------------------------------------ */

static void *malloc_slow(size_t n);
static void free_small_slow(void *p, unsigned cls);
static void free_slow(void *p);

/* Out of line so that the fast path saves no registers for it (errno: pages may be purged). */
static HLM_NOINLINE void own_free_slow(struct hlm_tcache *tc, struct hlm_span *sp)
{
    int saved = errno;
    hlm_own_free_slow(tc, sp);
    errno = saved;
}

void *hlm_malloc(size_t n)
{
    struct hlm_tcache *tc = tc_fast;
    unsigned cls;
    if (hlm_likely(n <= 2048))
        cls = hlm_class16[(n + 15) >> 4];
    else if (n <= HLM_SMALL_MAX)
        cls = hlm_classup[(n + HLM_UPPER_GRAIN - 1) >> HLM_UPPER_SHIFT];
    else
        return malloc_slow(n);
    /* First the free list of the thread's current span for the class, where its own
     * frees went (owned.c): no refill for a malloc/free churn.  Before the cache, which
     * holds mostly blocks of other threads' spans: taken first, they left the thread's
     * own freed blocks idle while it carved more (larson: 2.03 -> 1.79 MiB with the caps
     * below, glibc 1.90). */
    struct hlm_span *sp = tc->own[cls];
    void *p;
    if (sp && (p = sp->free) != NULL) {
        sp->free = *(void **)p;
        sp->used++;
        tc->nmalloc++;
        return p;
    }
    struct hlm_tbin *b = &tc->bins[cls];
    if (hlm_likely((p = b->head) != NULL)) {
        b->head = *(void **)p;
        b->count--;
        tc->nmalloc++;
        return p;
    }
    return malloc_slow(n);
}

void hlm_free(void *p)
{
    if (hlm_likely(hlm_is_small(p))) {
        struct hlm_segment *s = hlm_segment_of(p);
        unsigned pg = hlm_page_of(s, p);
        struct hlm_tcache *tc = tc_fast;
        /* Our own span: straight onto its free list, no lock (owned.c). */
        if (hlm_likely(__atomic_load_n(&s->page_owner[pg], __ATOMIC_RELAXED) == tc)) {
            struct hlm_span *sp = s->page_span[pg];
            hlm_assert(sp->used > 0 && sp == hlm_span_of(p) && sp->owner == tc);
            *(void **)p = sp->free;
            sp->free = p;
            tc->nfree++;
            if (hlm_unlikely(--sp->used == 0 || sp->full))
                own_free_slow(tc, sp);
            return;
        }
        unsigned cls = s->page_cls[pg];
        hlm_assert(cls > 0 && cls < HLM_NCLASSES);
        struct hlm_tbin *b = &tc->bins[cls];
        if (hlm_likely(b->count < b->max)) {   /* (never for tc_none) */
            *(void **)p = b->head;
            b->head = p;
            b->count++;
            tc->nfree++;
            return;
        }
        free_small_slow(p, cls);
        return;
    }
    free_slow(p);
}

/* malloc and free are these functions under their exported names (override.c). */
#ifdef HLM_EXPORTS_MALLOC
HLM_API void *malloc(size_t n) __attribute__((alias("hlm_malloc")));
HLM_API void free(void *p) __attribute__((alias("hlm_free")));
#endif

/* ---- thread caches (slow path) ------------------------------------------------------- */

static struct hlm_tcache *tcache_create(void)
{
    if (tc_dead || !hlm_opt(HLM_OPT_TCACHE))
        return NULL;
    hlm_lock(&tc_lock);
    struct hlm_tcache *tc = tc_spare;
    if (tc) {
        tc_spare = tc->next;
    } else {
        size_t sz = hlm_align_up(sizeof *tc, 64);
        if (meta_next + sz > meta_end) {
            meta_next = hlm_os_map(256 * HLM_KIB);
            meta_end = meta_next ? meta_next + 256 * HLM_KIB : NULL;
        }
        if (meta_next) {
            tc = (struct hlm_tcache *)meta_next;
            meta_next += sz;
        }
    }
    if (tc) {
        memset(tc, 0, sizeof *tc);
        for (unsigned c = 1; c < HLM_NCLASSES; c++)
            tc->bins[c].max = tbin_max[c] < HLM_TBIN_START ? tbin_max[c] : HLM_TBIN_START;
        tc->next = tc_list;
        if (tc_list)
            tc_list->prev = tc;
        tc_list = tc;
        tc->shard = (unsigned)(hlm_stats.threads++ % HLM_SHARDS);
        if (tc_list->next) {
            __atomic_store_n(&cold_ok, false, __ATOMIC_RELAXED);
            hlm_classes_coarsen();   /* once: the second cache (classes.c) */
        }
    }
    hlm_unlock(&tc_lock);
    if (!tc)
        return NULL;
    tc_self = tc;   /* before setspecific, which may allocate and come back here */
    tc_fast = tc;
    if (tc_key_ok)
        pthread_setspecific(tc_key, tc);
    return tc;
}

/* Slow start: a bin's limit begins small and doubles each time it runs dry or over, up
 * to the class's cap, so that a class a program barely uses costs a few objects, not a
 * batch of 64 KiB carved and touched. */
static inline void tbin_grow(unsigned cls, struct hlm_tbin *b)
{
    if (b->max < tbin_max[cls])
        b->max = b->max * 2 < tbin_max[cls] ? b->max * 2 : tbin_max[cls];
}

/* The size class a tag chunk can serve: the biggest one not above its usable size. */
static unsigned cold_class(size_t usable)
{
    unsigned c = hlm_class_fine_of(usable);
    return hlm_class_size[c] > usable ? c - 1 : c;
}

/* Take up to want chunks of size bytes from the tag heap under one lock, as a chain. */
static unsigned cold_take(size_t size, void **chain, unsigned want)
{
    size_t bytes = 0;
    void *head = NULL;
    unsigned got = 0;
    hlm_lock(&hlm_tag_lock);
    for (; got < want; got++) {
        void *p = hlm_tag_malloc(size);
        if (!p)
            break;
        bytes += tag_usable(p);
        *(void **)p = head;
        head = p;
    }
    cold_bytes += (ptrdiff_t)bytes;
    bool over = cold_bytes > (ptrdiff_t)hlm_opt(HLM_OPT_COLD);
    hlm_unlock(&hlm_tag_lock);
    if (over)
        __atomic_store_n(&cold_ok, false, __ATOMIC_RELAXED);
    *chain = head;
    return got;
}

/* Free the tag chunks of a chain back to the tag heap (one lock); return the slab objects
 * left, relinked, and their number in *count. */
static void *cold_return(void *chain, uint32_t *count)
{
    void *keep = NULL, **tail = &keep;
    uint32_t n = 0;
    size_t bytes = 0;
    hlm_lock(&hlm_tag_lock);
    while (chain) {
        void *o = chain;
        chain = *(void **)o;
        if (hlm_is_small(o)) {
            *tail = o;
            tail = (void **)o;
            n++;
        } else {
            bytes += tag_usable(o);
            hlm_tag_free(o);
        }
    }
    cold_bytes -= (ptrdiff_t)bytes;
    hlm_unlock(&hlm_tag_lock);
    *tail = NULL;
    *count = n;
    return keep;
}

static void tbin_flush(struct hlm_tcache *tc, unsigned cls, struct hlm_tbin *b, uint32_t keep)
{
    if (b->count <= keep || !b->head)
        return;
    /* Give the most recently freed objects: their lines are still in the cache, so
     * walking them back to their spans costs no misses; the older ones stay. */
    uint32_t give = b->count - keep;
    void *chain = b->head, *last = chain;
    bool mixed = !hlm_is_small(chain);
    for (uint32_t i = 1; i < give && *(void **)last; i++) {
        last = *(void **)last;
        mixed |= !hlm_is_small(last);
    }
    b->head = *(void **)last;
    *(void **)last = NULL;
    b->count = keep;
    if (hlm_unlikely(mixed))
        chain = cold_return(chain, &give);
    if (chain)
        hlm_own_give(tc, cls, chain, give);
    hlm_stat_add(flushes, 1);
}

/* Scavenge: every HLM_TC_GC_EVERY refills and flushes, or when the cache holds more than
 * HLM_TCACHE_BYTES, every other bin gives half its
 * objects back and halves its limit.  A class the program stopped using drains away
 * instead of pinning a span per cached object; a class in use refills in a few batches. */
static void tcache_gc(struct hlm_tcache *tc, unsigned busy)
{
    tc->gc_tick = 0;
    /* (a cold process owns spans only of the classes its churn turned warm; the tag
     * heap's idle purge is for a process that moved away from it, which a cold one has
     * not: HISTORY.md) */
    bool warm = !__atomic_load_n(&cold_ok, __ATOMIC_RELAXED);
    if (warm || __atomic_load_n(&warm_classes, __ATOMIC_RELAXED)) {
        hlm_own_collect_all(tc);
        hlm_own_release_idle(tc, busy);
    }
    if (warm) {
        hlm_lock(&hlm_tag_lock);
        hlm_tag_purge_idle();
        hlm_unlock(&hlm_tag_lock);
    }
    for (unsigned c = 1; c < HLM_NCLASSES; c++) {
        struct hlm_tbin *b = &tc->bins[c];
        if (c == busy || !b->head)
            continue;
        tbin_flush(tc, c, b, b->count / 2);
        b->max = b->max / 2 > HLM_TBIN_START ? b->max / 2 : (tbin_max[c] < HLM_TBIN_START ? tbin_max[c] : HLM_TBIN_START);
    }
}

/* What a cache holds, summed on slow paths only (a few dozen multiply-adds per batch). */
static size_t tcache_bytes(const struct hlm_tcache *tc)
{
    size_t n = 0;
    for (unsigned c = 1; c < HLM_NCLASSES; c++)
        n += (size_t)tc->bins[c].count * hlm_class_size[c];
    return n;
}

static void tcache_flush_all(struct hlm_tcache *tc)
{
    for (unsigned c = 1; c < HLM_NCLASSES; c++)
        if (tc->bins[c].head)
            tbin_flush(tc, c, &tc->bins[c], 0);
}

static void tcache_exit(void *arg)
{
    struct hlm_tcache *tc = arg;
    tcache_flush_all(tc);
    hlm_own_abandon(tc);
    tc_self = NULL;
    tc_fast = &tc_none;
    tc_dead = true;
    hlm_lock(&tc_lock);
    exited_nmalloc += tc->nmalloc;
    exited_nfree += tc->nfree;
    if (tc->prev)
        tc->prev->next = tc->next;
    else
        tc_list = tc->next;
    if (tc->next)
        tc->next->prev = tc->prev;
    tc->next = tc_spare;
    tc_spare = tc;
    hlm_unlock(&tc_lock);
}

/* Count a call for HEAPLAB_STATS.  A thread without a cache (caches off, a thread past
 * its cache's destructor, no memory for one) counts into one shared word, and only when
 * the statistics are on: threads adding to it at every call fight over its line. */
static void count_call(bool is_free)
{
    struct hlm_tcache *tc = tc_self;
    if (tc)
        *(is_free ? &tc->nfree : &tc->nmalloc) += 1;
    else if (hlm_opt(HLM_OPT_STATS))
        __atomic_add_fetch(is_free ? &exited_nfree : &exited_nmalloc, 1, __ATOMIC_RELAXED);
}

static void *malloc_slow_try(size_t n);
static HLM_NOINLINE void *malloc_slow_retry(size_t n);

/* A cold miss (the cache's bin was empty, the process is single-threaded and cold, and
 * no scavenge is due): one chunk straight from the tag heap, before anything else
 * malloc_slow_try checks (hlm_init, a cache to create, the slab limits, the scavenge's
 * tick and sums) and without its frame; no lock either, as hlm_lock would take none
 * with one thread.  Anything else, and a failed take, goes the general way. */
static HLM_NOINLINE void *malloc_slow(size_t n)
{
    struct hlm_tcache *tc = tc_self;
    unsigned cls;
    if (hlm_likely(tc != NULL && n <= HLM_COLD_MAX && __libc_single_threaded &&
                   __atomic_load_n(&cold_ok, __ATOMIC_RELAXED) &&
                   tc->gc_tick < HLM_TC_GC_EVERY - 1 &&
                   !class_warm(cls = hlm_class_of(n)))) {
        /* (hlm_malloc found the class's bin empty: no recursion refilled it since) */
        hlm_assert(tc->bins[cls].head == NULL);
        tc->gc_tick++;
        void *p = hlm_tag_malloc(n > HLM_COLD_EXACT ? n : hlm_class_size[cls]);
        if (hlm_likely(p != NULL)) {
            cold_bytes += (ptrdiff_t)tag_usable(p);
            if (cold_bytes > (ptrdiff_t)hlm_opt(HLM_OPT_COLD))
                __atomic_store_n(&cold_ok, false, __ATOMIC_RELAXED);
            tc_self->nmalloc++;
            return p;
        }
    }
    /* The current span used up, the next one has free objects (owned.c): a slow-path
     * event for the scavenge's tick, which goes the general way when it is due (this
     * adds nothing to the cache, whose sum the general way looks at). */
    if (hlm_likely(tc != NULL && n <= HLM_SMALL_MAX && tc->gc_tick + 1 < HLM_TC_GC_EVERY &&
                   (n <= HLM_SLAB_MAX || __libc_single_threaded))) {
        void *p = hlm_own_next(tc, hlm_class_of(n));
        if (p != NULL) {
            tc->gc_tick++;
            tc->nmalloc++;
            return p;
        }
    }
    return malloc_slow_retry(n);
}

/* The general slow path, retried once after a trim when memory runs out (hlm.h). */
static HLM_NOINLINE void *malloc_slow_retry(size_t n)
{
    return hlm_malloc_retry(malloc_slow_try(n), malloc_slow_try, n);
}

static void *malloc_slow_try(size_t n)
{
    hlm_init();
    /* Warm for good once a second thread exists, even if it has not allocated yet:
     * chunks the first thread took meanwhile went back to the tag heap as it freed them
     * and stayed resident there (larson 2.75 -> 2.57 MiB).  Warm too with HEAPLAB_COLD=0:
     * tested here, which runs before any cold miss and every HLM_TC_GC_EVERY of them,
     * since the constructor reads the options again after the first allocations. */
    if (__atomic_load_n(&cold_ok, __ATOMIC_RELAXED) &&
        (!__libc_single_threaded || !hlm_opt(HLM_OPT_COLD)))
        __atomic_store_n(&cold_ok, false, __ATOMIC_RELAXED);
    /* (HLM_SLAB_MAX applies only while other threads run: a single-threaded program has
     * no per-thread spans to multiply, and its 4-32 KiB blocks in the tag heap, out of
     * the slabs' reach, cost the python trace 15.9 -> 18.4 MiB) */
    bool cold = __atomic_load_n(&cold_ok, __ATOMIC_RELAXED);
    /* (blocks above HLM_COLD_MAX while cold, or before their classes are in use: a tag
     * chunk of their own, below) */
    bool big_tag = n > HLM_COLD_MAX && (cold || !__atomic_load_n(&big_slab, __ATOMIC_RELAXED));
    if (n <= HLM_SLAB_MAX ||
        (n <= HLM_SMALL_MAX && !big_tag &&
         (__libc_single_threaded || cold))) {
        unsigned cls = hlm_class_of(n);
        cold = cold && !class_warm(cls);
        struct hlm_tcache *tc = tc_self ? tc_self : tcache_create();
        void *p;
        if (tc) {
            struct hlm_tbin *b = &tc->bins[cls];
            if (b->head)   /* the cache was just created, or refilled by a recursion */
                return hlm_malloc(n);
            /* (cold bins never grow past HLM_TBIN_START: no need to sum the cache) */
            /* (the cache's size summed at every 8th slow path only: a span carved in
             * windows of HLM_CARVE_BYTES comes here every 64 objects of 64 bytes) */
            if (++tc->gc_tick >= HLM_TC_GC_EVERY ||
                (!cold && (tc->gc_tick & 7) == 0 && tcache_bytes(tc) > HLM_TCACHE_BYTES))
                tcache_gc(tc, cls);
            if (cold) {
                /* One chunk of the class's size (so that, freed, it serves its class from
                 * the cache), straight to the caller: not a batch, so a class used once
                 * costs its block and no more (a batch of four 2 KiB chunks touched two
                 * pages for one block). */
                if (!cold_take(n > HLM_COLD_EXACT ? n : hlm_class_size[cls], &p, 1))
                    goto nomem;
                tc->nmalloc++;
                return p;
            }
#ifdef HLM_TAG_FROM
            if (n > HLM_TAG_FROM && __libc_single_threaded) {
                hlm_lock(&hlm_tag_lock);
                p = hlm_tag_malloc(n);
                hlm_unlock(&hlm_tag_lock);
                if (!p)
                    goto nomem;
                tc->nmalloc++;
                return p;
            }
#endif
            unsigned want = b->max / 2 ? b->max / 2 : 1, got;
            got = hlm_own_refill(tc, cls, &p, want);
            tbin_grow(cls, b);
            if (!got)
                goto nomem;
            b->head = *(void **)p;
            b->count = got - 1;   /* a remote stack may exceed max: the next free flushes */
            tc->nmalloc++;
            hlm_stat_add(refills, 1);
            return p;
        }
        unsigned got = hlm_central_take(0, cls, &p, 1);
        if (!got)
            goto nomem;
        if (got > 1)   /* a whole remote stack came: keep one */
            hlm_central_give(cls, *(void **)p, NULL, got - 1, -1);
        count_call(false);
        return p;
    }
    count_call(false);
    if (n >= __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED))
        return hlm_large_malloc(n, HLM_ALIGN);
    hlm_lock(&hlm_tag_lock);
    void *p = hlm_tag_malloc(n);
    if (p && big_range(tag_usable(p)) && ++big_tag_live > HLM_BIG_SLAB_LIVE)
        __atomic_store_n(&big_slab, true, __ATOMIC_RELAXED);
    hlm_unlock(&hlm_tag_lock);
    return p ? p : hlm_large_malloc(n, HLM_ALIGN);
nomem:
    errno = ENOMEM;
    return NULL;
}

static HLM_NOINLINE void free_small_slow(void *p, unsigned cls)
{
    int saved = errno;
    /* A thread's first free makes its cache if it has none: a consumer, which only frees
     * (hlm_tc_consumer), took the central lock for each object without one. */
    struct hlm_tcache *tc = tc_self ? tc_self : tcache_create();
    if (tc) {
        struct hlm_tbin *b = &tc->bins[cls];
        /* (a consumer's bins do not grow, so its cache's bytes need no sum over every
         * class at each batch) */
        bool consumer = hlm_tc_consumer(tc);
        /* (the cache's size summed at every 8th flush only, as for malloc's refills: the
         * sum runs over every class; HISTORY.md) */
        if (++tc->gc_tick >= HLM_TC_GC_EVERY ||
            (!consumer && (tc->gc_tick & 7) == 0 && tcache_bytes(tc) > HLM_TCACHE_BYTES))
            tcache_gc(tc, cls);
        if (consumer) {
            tbin_flush(tc, cls, b, 0);
        } else {
            tbin_flush(tc, cls, b, b->max / 2);
            tbin_grow(cls, b);
        }
        *(void **)p = b->head;
        b->head = p;
        b->count++;
        tc->nfree++;
    } else {
        *(void **)p = NULL;
        hlm_central_give(cls, p, p, 1, -1);
        count_call(true);
    }
    errno = saved;
}

/* A class's churn turned it warm (the process is still cold, so it has one thread): its
 * blocks come from slabs now (class_warm), and its tag chunks, no longer kept in cold_of,
 * go back to the tag heap as they are freed (free_slow tests no flag for it), so that
 * cold_flush never counts the class again. */
static HLM_NOINLINE void class_turns_warm(unsigned cls)
{
    for (size_t i = 0; i < COLD_OF_MAX / 16; i++)
        if (cold_of[i] == cls)
            cold_of[i] = 0;
}

/* A full cold bin gives its most recently freed chunks back to the tag heap, down to
 * keep, then takes p: what tbin_flush and cold_return do, in one walk (while cold, a
 * cache holds tag chunks only; a slab object, which cannot be there, would stop the
 * walk).  p pushed here too, so that free_slow ends in a jump to this, with no frame. */
static HLM_NOINLINE void cold_flush(struct hlm_tcache *tc, struct hlm_tbin *b, uint32_t keep, void *p)
{
    int saved = errno;
    uint32_t give = b->count - keep, n = 0;
    void *o = b->head;
    size_t bytes = 0;
    hlm_lock(&hlm_tag_lock);
    for (; n < give && o && hlm_likely(!hlm_is_small(o)); n++) {
        void *next = *(void **)o;
        bytes += tag_usable(o);
        hlm_tag_free(o);
        o = next;
    }
    cold_bytes -= (ptrdiff_t)bytes;
    unsigned cls = (unsigned)(b - tc->bins);
    bool churn = ++cold_flushes > HLM_COLD_FLUSH_MAX;
    bool class_churn = ++cold_class_flushes[cls] > HLM_COLD_CLASS_FLUSH_MAX;
    if (class_churn && ++warm_classes >= HLM_COLD_WARM_CLASSES)
        churn = true;
    hlm_unlock(&hlm_tag_lock);
    if (hlm_unlikely(churn))
        __atomic_store_n(&cold_ok, false, __ATOMIC_RELAXED);
    if (hlm_unlikely(class_churn))
        class_turns_warm(cls);
    hlm_assert(n == give);
    *(void **)p = o;
    b->head = p;
    b->count -= n - 1;
    tc->nfree++;
    if (__libc_single_threaded)   /* (no locked add for a statistic with one thread) */
        __atomic_store_n(&hlm_stats.flushes, hlm_stats.flushes + 1, __ATOMIC_RELAXED);
    else
        hlm_stat_add(flushes, 1);
    errno = saved;
}

static HLM_NOINLINE void free_slow_other(void *p);

static HLM_NOINLINE void free_slow(void *p)
{
    /* A tag chunk that can serve a cold class waits in the cache like a slab object:
     * the header gives its class through cold_of, and nothing here touches errno or
     * needs a frame (the flush and the other blocks are calls of their own). */
    if (hlm_likely(p != NULL)) {
        size_t head = hlm_head(p);
        struct hlm_tcache *tc = tc_self;
        if (hlm_likely(!(head & (HLM_MMAPPED | HLM_OFFSET)) && (head & ~(size_t)15) < COLD_OF_MAX &&
                       tc && __atomic_load_n(&cold_ok, __ATOMIC_RELAXED))) {
            unsigned cls = cold_of[(head & ~(size_t)15) >> 4];
            if (hlm_likely(cls)) {
                hlm_assert(cls == cold_class(hlm_tag_usable(p)));
                struct hlm_tbin *b = &tc->bins[cls];
                uint32_t cap = cold_cap[cls];
                if (hlm_unlikely(b->count >= cap)) {
                    cold_flush(tc, b, cap / 2, p);
                    return;
                }
                *(void **)p = b->head;
                b->head = p;
                b->count++;
                tc->nfree++;
                return;
            }
        }
        free_slow_other(p);
    }
}

/* free of a large block, or a tag chunk that does not wait in a cache. */
static HLM_NOINLINE void free_slow_other(void *p)
{
    int saved = errno;
    if (hlm_large_is(p)) {
        count_call(true);
        hlm_large_free(p);
    } else {
        hlm_check(!(hlm_head(p) & HLM_OFFSET), "free(): invalid pointer", p);
        size_t usable = tag_usable(p);
        count_call(true);
        hlm_lock(&hlm_tag_lock);
        if (usable <= HLM_COLD_MAX)   /* (the cold ones that stay cached: above) */
            cold_bytes -= (ptrdiff_t)usable;
        else if (big_range(usable) && big_tag_live)
            big_tag_live--;
        hlm_tag_free(p);
        hlm_unlock(&hlm_tag_lock);
    }
    errno = saved;
}

/* ---- the rest of the API ----------------------------------------------------------------- */

size_t hlm_usable_size(const void *p)
{
    if (hlm_is_small(p))
        return hlm_class_size[hlm_small_class(p)];
    if (hlm_large_is(p))
        return hlm_large_usable(p);
    return tag_usable(p);
}

void *hlm_calloc(size_t n)
{
    void *p;
    if (hlm_unlikely(n >= HLM_CALLOC_MAP_MIN) && (p = hlm_large_calloc(n)) != NULL)
        return p;
    p = hlm_malloc(n);
    if (p && (hlm_is_small(p) || !hlm_large_is(p)))   /* fresh mmaps are zero already */
        memset(p, 0, n);
    return p;
}

void *hlm_realloc(void *p, size_t n)
{
    if (hlm_is_small(p)) {
        size_t old = hlm_class_size[hlm_small_class(p)];
        if (n <= old && (n >= old / 2 || old <= 64))
            return p;
        return hlm_realloc_move(p, old, n, 0);
    }
    if (hlm_large_is(p)) {
        if (n >= HLM_SMALL_MAX) {
            void *q = hlm_large_realloc(p, n);
            if (q)
                return q;
        }
        return hlm_realloc_move(p, hlm_large_usable(p), n, 0);
    }
    size_t old = tag_usable(p);
    if (old <= HLM_COLD_MAX && n <= old && (n >= old / 2 || old <= 64))
        return p;   /* a cold class's chunk: the same rule as a slab object */
    /* Growing, a chunk takes the free chunk or top of the heap after it when it can, as
     * in glibc: no copy, no hole left behind (gcc's as grows a 1 KiB block to 2 KiB at
     * the top: the copy read 15 lines never touched since).  A cold chunk's bytes move
     * with it in cold_bytes (those above HLM_COLD_MAX serve no class). */
    if (n > HLM_COLD_MAX / 2 || n > old) {
        hlm_lock(&hlm_tag_lock);
        bool ok = hlm_tag_resize(p, n);
        if (ok && old <= HLM_COLD_MAX) {
            size_t now = tag_usable(p);
            cold_bytes += (ptrdiff_t)(now <= HLM_COLD_MAX ? now : 0) - (ptrdiff_t)old;
        }
        hlm_unlock(&hlm_tag_lock);
        if (ok)
            return p;
    }
    /* A buffer grown by doubling (sqlite's group_concat: 32 KiB to 2 MiB) left a resident
     * hole at each step, as large as the live buffer at the end: the old chunk is purged.
     * From HLM_REALLOC_MAP_MIN it moves to a mapping of its own, whatever the mmap
     * threshold, where it grows further by mremap: no copy, and only the pages the
     * program writes are faulted in (in the tag heap each step faulted fresh pages at
     * the top for the whole copy). */
    void *q = n > old && n >= HLM_REALLOC_MAP_MIN ? hlm_large_grown(n) : NULL;
    if (q)
        return hlm_realloc_into(q, p, old, n, HLM_TAG_DEAD_PURGE);
    return hlm_realloc_move(p, old, n, HLM_TAG_DEAD_PURGE);
}

void *hlm_memalign(size_t align, size_t n)
{
    hlm_init();
    size_t s = n > align ? n : align;
    if (s <= HLM_SMALL_MAX) {
        /* Spans start on 64 KiB boundaries, so an object whose size is a multiple of
         * align is aligned to it. */
        for (unsigned c = hlm_class_of(s); c < HLM_NCLASSES; c++)
            if (hlm_class_size[c] % align == 0) {
                void *p = hlm_malloc(hlm_class_size[c]);
                /* A cold class's block is a tag chunk, aligned to 16 only. */
                if (!p || ((uintptr_t)p & (align - 1)) == 0)
                    return p;
                hlm_free(p);
                break;
            }
    }
    if (n + align < __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED)) {
        count_call(false);
        hlm_lock(&hlm_tag_lock);
        void *p = hlm_tag_memalign(align, n);
        hlm_unlock(&hlm_tag_lock);
        if (p)
            return p;
    }
    return hlm_large_malloc(n, align);
}

int hlm_trim(size_t pad)
{
    hlm_init();
    struct hlm_tcache *tc = tc_self;
    if (tc) {
        tcache_flush_all(tc);
        hlm_own_stash_release(tc);
    }
    hlm_central_drain();
    hlm_lock(&hlm_tag_lock);
    int r = hlm_tag_trim(pad);
    hlm_unlock(&hlm_tag_lock);
    hlm_large_pass(0);
    return hlm_pages_trim() | r;
}

void hlm_info(size_t *arena, size_t *in_use, size_t *free_bytes, size_t *free_chunks)
{
    size_t ta = 0, tf = 0, tc = 0, sm = 0, sf = 0;
    hlm_lock(&hlm_tag_lock);
    hlm_tag_info(&ta, &tf, &tc);
    hlm_unlock(&hlm_tag_lock);
    hlm_small_info(&sm, &sf);
    *arena = ta + sm;
    *free_bytes = tf + sf;
    *in_use = *arena - *free_bytes;
    *free_chunks = tc;
}

void hlm_stats_calls(size_t *nmalloc, size_t *nfree)
{
    hlm_lock(&tc_lock);
    size_t m = exited_nmalloc, f = exited_nfree;
    for (struct hlm_tcache *tc = tc_list; tc; tc = tc->next) {
        m += tc->nmalloc;
        f += tc->nfree;
    }
    hlm_unlock(&tc_lock);
    *nmalloc = m;
    *nfree = f;
}

/* fork: every lock is taken before, so the child inherits a consistent heap; in the child
 * only the forking thread exists, the other threads' caches are lost (leaked). */
void hlm_fork_prepare(void)
{
    hlm_lock(&tc_lock);
    hlm_central_fork_prepare();
    hlm_lock(&hlm_tag_lock);
}

void hlm_fork_parent(void)
{
    hlm_unlock(&hlm_tag_lock);
    hlm_central_fork_parent();
    hlm_unlock(&tc_lock);
}

void hlm_fork_child(void)
{
    hlm_lock_reinit(&hlm_tag_lock);
    hlm_central_fork_child(tc_self);
    hlm_lock_reinit(&tc_lock);
    tc_list = tc_self;
    if (tc_self)
        tc_self->prev = tc_self->next = NULL;
}
