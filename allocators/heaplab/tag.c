/*
 * tag.c: a heap of chunks with boundary tags over sbrk (mmap when sbrk fails): splitting,
 * immediate coalescing with both neighbours, the top of the heap trimmed, and the pages
 * inside large free chunks purged once enough dirty free memory piled up.
 *
 * The fit policy is chosen at compile time by HLM_TAG_POLICY (see hlm.h):
 *   HLM_TAG_SEGFIT    the default allocator's medium blocks: size bins, a chunk of the
 *                     request's bin (the smallest fitting among a bounded number) or the
 *                     first of the next non-empty bin (good fit, O(1)), a designated
 *                     victim for small requests;
 *   HLM_TAG_BESTFIT   libheaplab-bestfit.so: same bins, the smallest fitting chunk;
 *   HLM_TAG_FIRSTFIT  libheaplab-firstfit.so: the lowest-addressed chunk that fits
 *                     (Knuth/K&R address-ordered first fit), found in O(log n) in a treap
 *                     by address instead of walking a list (same placements).
 * Every policy keeps the top of the heap out of its bins or tree (see struct hlm_tag_heap's top).
 * Chunk layout and invariants: hlm.h.  Every function expects the heap's lock held
 * (hlm_tag_lock for the default allocator's heap, the arena's in variant.c).
 */
#include "hlm.h"
#include "tunables.h"

struct chunk {
    size_t prev_size;   /* footer of the previous chunk while it is free; its data while in use */
    size_t head;        /* size | HLM_TAG_INUSE | HLM_TAG_PINUSE */
    struct chunk *fd, *bk;   /* list links; first fit: the tree's left and right */
    size_t max;         /* first fit only: largest chunk in this subtree */
};

/* First fit keeps its free chunks in a tree (below), whose nodes need one more word. */
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
#define TAG_MIN ((size_t)48)
#else
#define TAG_MIN HLM_TAG_MIN
#endif

/* Bins: exact below 1 KiB (16-byte steps), HLM_TAG_STEPS per doubling from 1 KiB to 1 MiB,
 * 4 per doubling above.  4 per doubling from 1 KiB (bins 25% wide, 256 in all) made
 * first fit within a bin a linear scan past chunks a little too small: */
#define TAG_STEPS_LOG (__builtin_ctz(HLM_TAG_STEPS))
#define NBINS ((64 + 10 * HLM_TAG_STEPS + 4 * (48 - 20) + 63) / 64 * 64)
#define CLEAN ((size_t)1)   /* footer bit: the chunk's interior pages were purged */
#define AGE_ONE ((size_t)2)   /* footer bits 1-3: purge passes the chunk stayed free through */
#define AGE_MASK ((size_t)14)
#define FOOT_BITS (CLEAN | AGE_MASK)

hlm_lock_t hlm_tag_lock = HLM_LOCK_INIT;
/* A heap's state, in one page-aligned block with its globals first: a small program
 * touches one page for all of it.  512 separate bins straddled a page boundary where the
 * linker put them, and a small program touched a page more.  The
 * default allocator and a single-threaded variant use one heap, tag_main, which grows
 * with sbrk; the variants' other arenas each have one made by hlm_tag_new, which maps
 * its regions aligned to a grain and reports them (variant.c finds a chunk's arena by
 * its address that way). */
struct hlm_tag_heap {
    char *brk_end;               /* end of the current sbrk region, NULL before the first */
    /* The top: the free chunk that ends at the fence of the newest region (cur_fence),
     * kept out of the bins and used only when no binned chunk fits (dlmalloc's top).  A
     * miss the bins cannot serve, as most of a small program's cold start, is carved off
     * its front: a new head and the footer in the fence, no unlink and insert of the
     * remainder, no bin scan past the requested size.  NULL when the region ends with
     * an in-use chunk.  Its footer, flags and counting (free_bytes, free_chunks) are
     * those of any free chunk. */
    struct chunk *top;
    struct chunk *cur_fence;     /* the fence of the newest region, NULL before the first */
    /* The designated victim (dlmalloc's dv; segregated fit only): the rest of the last
     * chunk split for a request that its own bin could not serve, kept out of the bins
     * and carved like the top by the next such requests, which then take neighbouring
     * memory with no unlink and insert each.  A chunk freed next to it joins it. */
    struct chunk *dv;
    size_t arena_bytes, free_bytes, free_chunks, dirty_bytes;
    bool growing;                /* heap_grow is filing new memory: do not trim it away */
    /* The top's trims since the heap last grew (bytes), and the times the heap grew
     * back after trims of HLM_TRIM_ADAPT_MIN or more: from two on, a program frees a
     * large block at the top and takes it again and again (a scratch buffer per
     * request), and keeps the top, up to the trim threshold that regrowth raised
     * (top_regrowth, purge_pass). */
    size_t trimmed_since_grow;
    unsigned regrowths;
    /* A heap made by hlm_tag_new maps its regions (never sbrk) in multiples of grain,
     * aligned to it, and reports each to mapped(base, len, arg) before use; tag_main
     * has no grain.  Regions are never unmapped. */
    size_t grain;
    bool (*mapped)(void *base, size_t len, void *arg);
    void *mapped_arg;
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
    struct chunk *root;          /* the free tree (below) */
#else
    unsigned binsum;             /* bit w: binmap[w] != 0 */
    uint64_t binmap[NBINS / 64];
    struct chunk *bins[NBINS];   /* the used ones (up to 8 MiB chunks) in the first page */
#endif
};
#if HLM_TAG_POLICY != HLM_TAG_FIRSTFIT
static struct hlm_tag_heap tag_main __attribute__((aligned(4096)));
#else
static struct hlm_tag_heap tag_main;   /* (a few words: aligned, it took a page of its own) */
#endif
#define brk_end h->brk_end
#define top h->top
#define cur_fence h->cur_fence
#define dv h->dv
#define arena_bytes h->arena_bytes
#define free_bytes h->free_bytes
#define free_chunks h->free_chunks
#define dirty_bytes h->dirty_bytes
#define growing h->growing
#define binsum h->binsum
#define binmap h->binmap
#define bins h->bins
#define root h->root

static inline size_t csize(const struct chunk *c) { return c->head & ~(size_t)15; }
static inline bool cinuse(const struct chunk *c) { return c->head & HLM_TAG_INUSE; }
static inline struct chunk *cnext(const struct chunk *c) { return (struct chunk *)((char *)c + csize(c)); }
static inline struct chunk *cprev(const struct chunk *c)
{
    hlm_assert(!(c->head & HLM_TAG_PINUSE));
    return (struct chunk *)((char *)c - (c->prev_size & ~(size_t)15));
}
static inline void *c2m(struct chunk *c) { return (char *)c + HLM_HDR; }
static inline struct chunk *m2c(const void *p) { return (struct chunk *)((char *)p - HLM_HDR); }
static inline bool is_fence(const struct chunk *c) { return csize(c) == 0; }
/* An in-use chunk's data runs over the next chunk's prev_size word, which only means
 * something while this chunk is free (it is the footer then): a chunk costs 8 bytes of
 * header, not 16, as in glibc (a 24-byte block takes 32 bytes, not 48). */
#define TAG_OVERHEAD (HLM_HDR - sizeof(size_t))
static inline size_t req_size(size_t n)
{
    size_t s = hlm_align_up(n + TAG_OVERHEAD, HLM_ALIGN);
    return s < TAG_MIN ? TAG_MIN : s;
}

/* A free chunk's invariants: not in use, footer equal to its size, neighbours in use
 * (coalescing is immediate), previous flagged in use in its own header. */
static inline void check_free(const struct chunk *c)
{
    hlm_assert(!cinuse(c) && csize(c) >= TAG_MIN && csize(c) % HLM_ALIGN == 0);
    hlm_assert((cnext(c)->prev_size & ~(size_t)15) == csize(c));
    hlm_assert(!(cnext(c)->head & HLM_TAG_PINUSE) && cinuse(cnext(c)));
    hlm_assert(c->head & HLM_TAG_PINUSE);
    (void)c;
}

static inline void set_free(struct chunk *c, size_t size, size_t clean)
{
    c->head = size | HLM_TAG_PINUSE;
    struct chunk *n = cnext(c);
    n->prev_size = size | clean;
    n->head &= ~HLM_TAG_PINUSE;
}

/* ---- bins --------------------------------------------------------------------------- */

static inline unsigned bin_of(size_t s)
{
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
    (void)s;
    return 0;
#else
    if (s < 1024)
        return (unsigned)(s >> 4);   /* exact bins: every chunk in one has the same size */
    unsigned b = 63u - (unsigned)__builtin_clzl(s);
    if (b < 20)
        return 64 + (b - 10) * HLM_TAG_STEPS + (unsigned)((s >> (b - TAG_STEPS_LOG)) & (HLM_TAG_STEPS - 1));
    unsigned i = 64 + 10 * HLM_TAG_STEPS + (b - 20) * 4 + (unsigned)((s >> (b - 2)) & 3);
    return i < NBINS ? i : NBINS - 1;
#endif
}

/* The smallest free chunk a purge pass looks at: two pages (one whole page inside), or
 * more in the slab's passes (hlm_tag_slab_grew). */
static size_t pass_min;
static inline bool purgeable(size_t size)
{
    return size >= 2 * hlm_page_size + sizeof(struct chunk) && size >= pass_min;
}

#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
/* Address-ordered first fit in O(log n): the free chunks form a treap ordered by address
 * (priority: a hash of the address, so no field is needed), each node knowing the
 * largest chunk below it.  The lowest-addressed chunk that fits is found by going left
 * whenever the left subtree has one; K&R walk a list for the same answer. */
#define LEFT(c) ((c)->fd)
#define RIGHT(c) ((c)->bk)

static inline uint64_t prio(const struct chunk *c) { return ((uintptr_t)c >> 4) * 0x9E3779B97F4A7C15ull; }
static inline size_t tmax(const struct chunk *c) { return c ? c->max : 0; }
static inline void fix(struct chunk *c)
{
    size_t m = csize(c), l = tmax(LEFT(c)), r = tmax(RIGHT(c));
    c->max = m > l ? (m > r ? m : r) : (l > r ? l : r);
}

static struct chunk *t_insert(struct chunk *t, struct chunk *c)
{
    if (!t) {
        LEFT(c) = RIGHT(c) = NULL;
        fix(c);
        return c;
    }
    if (c < t) {
        LEFT(t) = t_insert(LEFT(t), c);
        if (prio(LEFT(t)) > prio(t)) {   /* rotate right */
            struct chunk *l = LEFT(t);
            LEFT(t) = RIGHT(l);
            RIGHT(l) = t;
            fix(t);
            t = l;
        }
    } else {
        RIGHT(t) = t_insert(RIGHT(t), c);
        if (prio(RIGHT(t)) > prio(t)) {   /* rotate left */
            struct chunk *r = RIGHT(t);
            RIGHT(t) = LEFT(r);
            LEFT(r) = t;
            fix(t);
            t = r;
        }
    }
    fix(t);
    return t;
}

static struct chunk *t_join(struct chunk *a, struct chunk *b)   /* all of a below b */
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (prio(a) > prio(b)) {
        RIGHT(a) = t_join(RIGHT(a), b);
        fix(a);
        return a;
    }
    LEFT(b) = t_join(a, LEFT(b));
    fix(b);
    return b;
}

static struct chunk *t_delete(struct chunk *t, struct chunk *c)
{
    hlm_check(t != NULL, "corrupted free tree", c2m(c));
    if (t == c)
        return t_join(LEFT(t), RIGHT(t));
    if (c < t)
        LEFT(t) = t_delete(LEFT(t), c);
    else
        RIGHT(t) = t_delete(RIGHT(t), c);
    fix(t);
    return t;
}

static void t_refresh(struct chunk *t, struct chunk *c)   /* c's size changed */
{
    if (t != c)
        t_refresh(c < t ? LEFT(t) : RIGHT(t), c);
    fix(t);
}

static void bin_insert(struct hlm_tag_heap *h, struct chunk *c)
{
    check_free(c);
    free_bytes += csize(c);
    free_chunks++;
    root = t_insert(root, c);
}

static void bin_unlink(struct hlm_tag_heap *h, struct chunk *c)
{
    free_bytes -= csize(c);
    free_chunks--;
    root = t_delete(root, c);
}

static void bin_replace(struct hlm_tag_heap *h, struct chunk *c, struct chunk *n, size_t newsize, size_t clean)
{
    if (n == c) {   /* same place in the order, new size */
        free_bytes += newsize - csize(c);
        set_free(c, newsize, clean);
        t_refresh(root, c);
        return;
    }
    bin_unlink(h, c);
    set_free(n, newsize, clean);
    bin_insert(h, n);
}

static struct chunk *bin_find(struct hlm_tag_heap *h, size_t s)
{
    struct chunk *t = root;
    while (t && t->max >= s) {
        if (tmax(LEFT(t)) >= s)
            t = LEFT(t);
        else if (csize(t) >= s)
            return t;
        else
            t = RIGHT(t);
    }
    return NULL;
}

static void purge_chunk(struct chunk *c, unsigned age);
static void purge_tree(struct chunk *t, unsigned age)
{
    for (; t; t = RIGHT(t)) {
        purge_tree(LEFT(t), age);
        if (purgeable(csize(t)))
            purge_chunk(t, age);
    }
}
#else
static void bin_insert(struct hlm_tag_heap *h, struct chunk *c)
{
    check_free(c);
    unsigned i = bin_of(csize(c));
    free_bytes += csize(c);
    free_chunks++;
    c->bk = NULL;
    c->fd = bins[i];
    if (bins[i])
        bins[i]->bk = c;
    bins[i] = c;
    binmap[i / 64] |= (uint64_t)1 << (i % 64);
    binsum |= 1u << (i / 64);
}

static void bin_unlink(struct hlm_tag_heap *h, struct chunk *c)
{
    unsigned i = bin_of(csize(c));
    free_bytes -= csize(c);
    free_chunks--;
    if (c->fd)
        c->fd->bk = c->bk;
    if (c->bk)
        c->bk->fd = c->fd;
    else {
        hlm_check(bins[i] == c, "corrupted free list", c2m(c));
        bins[i] = c->fd;
        if (!bins[i] && !(binmap[i / 64] &= ~((uint64_t)1 << (i % 64))))
            binsum &= ~(1u << (i / 64));
    }
}

static void bin_replace(struct hlm_tag_heap *h, struct chunk *c, struct chunk *n, size_t newsize, size_t clean)
{
    bin_unlink(h, c);
    set_free(n, newsize, clean);
    bin_insert(h, n);
}

static unsigned next_bin(struct hlm_tag_heap *h, unsigned i)   /* first non-empty bin >= i, NBINS if none */
{
    if (i >= NBINS)
        return NBINS;
    unsigned w = i / 64;
    uint64_t m = binmap[w] & (~(uint64_t)0 << (i % 64));
    if (m)
        return w * 64 + (unsigned)__builtin_ctzll(m);
    unsigned up = binsum & (~1u << w);
    if (!up)
        return NBINS;
    w = (unsigned)__builtin_ctz(up);
    return w * 64 + (unsigned)__builtin_ctzll(binmap[w]);
}

/* Is any bin >= i non-empty?  (The miss path tests this before anything else.) */
static inline bool bins_from(struct hlm_tag_heap *h, unsigned i)
{
    unsigned w = i / 64;
    return (binmap[w] >> (i % 64)) || (binsum & (~1u << w));
}

/* Segregated fit (the default) is bounded: see tag_malloc_slow.  Scanning the whole
 * ranged bin for the first chunk that fits made many free chunks of similar sizes a
 * linear search per call; the first fit among a few chunks grew the heap where blocks of
 * one bin were put back into their holes (tests/alloc/medium.c): the smallest fitting
 * chunk among HLM_TAG_SCAN keeps the big ones for big requests. */
#if HLM_TAG_POLICY != HLM_TAG_SEGFIT
static struct chunk *bin_find(struct hlm_tag_heap *h, size_t s)
{
    for (unsigned i = next_bin(h, bin_of(s)); i < NBINS; i = next_bin(h, i + 1)) {
        struct chunk *best = NULL;
        for (struct chunk *c = bins[i]; c; c = c->fd) {
            if (csize(c) < s || (best && csize(c) >= csize(best)))
                continue;
            best = c;
#if HLM_TAG_POLICY == HLM_TAG_SEGFIT
            break;
#endif
            if (csize(c) == s)
                break;
        }
        if (best)
            return best;
    }
    return NULL;
}
#endif

#endif

/* ---- freeing, growing, trimming, purging ---------------------------------------------- */

static void purge_all(struct hlm_tag_heap *h);
static void trim_top(struct hlm_tag_heap *h, struct chunk *c, size_t pad);

static inline void top_file(struct hlm_tag_heap *h, struct chunk *c)
{
    check_free(c);
    hlm_assert(!top && cnext(c) == cur_fence);
    top = c;
    free_bytes += csize(c);
    free_chunks++;
}

static inline void top_unfile(struct hlm_tag_heap *h)
{
    free_bytes -= csize(top);
    free_chunks--;
    top = NULL;
}

static inline void dv_file(struct hlm_tag_heap *h, struct chunk *c)
{
    check_free(c);
    hlm_assert(!dv);
    dv = c;
    free_bytes += csize(c);
    free_chunks++;
}

static inline void dv_unfile(struct hlm_tag_heap *h)
{
    free_bytes -= csize(dv);
    free_chunks--;
    dv = NULL;
}

/* File a free chunk (set_free done): the top if it ends at the newest region's fence,
 * else the victim if victim (it holds what was the victim), else a bin. */
static inline void file(struct hlm_tag_heap *h, struct chunk *c, bool victim)
{
    if (cnext(c) == cur_fence)
        top_file(h, c);
    else if (victim)
        dv_file(h, c);
    else
        bin_insert(h, c);
}

/* Take a free chunk out of where it is filed; true if it was the victim. */
static inline bool unfile(struct hlm_tag_heap *h, struct chunk *c)
{
    if (c == top) {
        top_unfile(h);
        return false;
    }
    if (c == dv) {
        dv_unfile(h);
        return true;
    }
    bin_unlink(h, c);
    return false;
}

/* Give an in-use chunk back: coalesce with free neighbours, file it, maybe trim. */
static void chunk_release(struct hlm_tag_heap *h, struct chunk *c)
{
    hlm_check(cinuse(c), "free(): double free or corrupted chunk", c2m(c));
    size_t size = csize(c);
    struct chunk *next = cnext(c);
    hlm_check(cinuse(next) || (cnext(next)->prev_size & ~(size_t)15) == csize(next),
              "free(): corrupted next chunk", c2m(c));
    bool next_free = !cinuse(next);
    if (!(c->head & HLM_TAG_PINUSE)) {
        struct chunk *prev = cprev(c);
        hlm_check(!cinuse(prev) && csize(prev) == (c->prev_size & ~(size_t)15),
                  "free(): corrupted previous chunk", c2m(c));
        size += csize(prev);
        bool victim = false;
        if (next_free) {
            size += csize(next);
            victim = unfile(h, next);
        }
        if (victim || prev == top || prev == dv || (char *)prev + size == (char *)cur_fence) {
            victim |= unfile(h, prev);
            set_free(prev, size, 0);
            file(h, prev, victim);
        } else {
            bin_replace(h, prev, prev, size, 0);   /* prev keeps its place, with the new size */
        }
        c = prev;
    } else if (next_free && (next == top || next == dv)) {
        bool victim = unfile(h, next);
        set_free(c, size + csize(next), 0);
        file(h, c, victim);
    } else if (next_free) {
        bin_replace(h, next, c, size + csize(next), 0);
    } else {
        set_free(c, size, 0);
        file(h, c, false);
    }
    check_free(c);
    if (!growing)
        purge_all(h);
}

static void write_fence(struct chunk *f, bool pinuse)
{
    f->head = HLM_TAG_INUSE | (pinuse ? HLM_TAG_PINUSE : 0);
}

/* Another region becomes the newest: the old one's free end goes into the bins. */
static void top_demote(struct hlm_tag_heap *h)
{
    if (top) {
        struct chunk *t = top;
        top_unfile(h);
        bin_insert(h, t);
    }
}

static void region_add(struct hlm_tag_heap *h, char *base, size_t len)
{
    struct chunk *c = (struct chunk *)base;
    size_t size = len - HLM_HDR;
    c->head = size | HLM_TAG_INUSE | HLM_TAG_PINUSE;
    write_fence(cnext(c), true);
    top_demote(h);
    cur_fence = cnext(c);
    arena_bytes += size;
    growing = true;
    chunk_release(h, c);
    growing = false;
}

/* The heap grows again after its top was trimmed of HLM_TRIM_ADAPT_MIN or more: the
 * program takes back what the trim gave away, and would fault it in at every round.
 * From the second time on, the trim threshold rises to twice what was trimmed (as
 * glibc's does after an mmap'd block's free; unless set), and the top is kept from
 * then on (purge_pass).  Smaller tops are left to the purge as before: keeping them
 * cost small programs more RSS than their faults cost time. */
static void top_regrowth(struct hlm_tag_heap *h)
{
    size_t want = 2 * h->trimmed_since_grow;
    h->trimmed_since_grow = 0;
    if (want < 2 * HLM_TRIM_ADAPT_MIN || ++h->regrowths < 2)
        return;
    if (want > HLM_TRIM_THRESHOLD_MAX)
        want = HLM_TRIM_THRESHOLD_MAX;
    if (!hlm_options[HLM_OPT_TRIM_THRESHOLD].set &&
        want > __atomic_load_n(&hlm_trim_threshold, __ATOMIC_RELAXED))
        __atomic_store_n(&hlm_trim_threshold, want, __ATOMIC_RELAXED);
}

/* Add at least s bytes of free chunk at the top of the heap. */
static bool heap_grow(struct hlm_tag_heap *h, size_t s)
{
    size_t incr = hlm_align_up(s + HLM_HDR + 128 * HLM_KIB, hlm_page_size);
    if (incr < s)
        return false;
    if (h->grain) {   /* an arena's heap of its own: aligned regions, reported */
        size_t len = hlm_align_up(incr, h->grain);
        char *base = len < incr ? NULL : hlm_os_map_aligned(len, h->grain);
        if (!base)
            return false;
        if (!h->mapped(base, len, h->mapped_arg)) {
            hlm_os_unmap(base, len);
            return false;
        }
        region_add(h, base, len);
        return true;
    }
    top_regrowth(h);
    char *cur = hlm_os_brk_now();
    if (brk_end && cur == brk_end && hlm_os_sbrk((intptr_t)incr)) {
        /* Contiguous: the old fencepost becomes the head of the new chunk. */
        struct chunk *c = (struct chunk *)(brk_end - HLM_HDR);
        if (cur_fence != c)   /* the newest region was mapped apart: its top is done */
            top_demote(h);
        brk_end += incr;
        c->head = incr | HLM_TAG_INUSE | (c->head & HLM_TAG_PINUSE);
        write_fence(cnext(c), true);
        cur_fence = cnext(c);
        arena_bytes += incr;
        growing = true;
        chunk_release(h, c);
        growing = false;
        return true;
    }
    /* A new region, after someone else's sbrk (aligned to 16 first), or an mmap when
     * sbrk fails.  The region's fence ends exactly at the break, so that the next
     * growth is contiguous. */
    size_t pad = cur == (char *)-1 ? 0 : hlm_align_up((uintptr_t)cur, HLM_ALIGN) - (uintptr_t)cur;
    if (cur != (char *)-1 && hlm_os_sbrk((intptr_t)(pad + incr)) == cur) {
        brk_end = cur + pad + incr;
        region_add(h, cur + pad, incr);
        return true;
    }
    size_t len = incr < HLM_MIB ? HLM_MIB : incr;
    char *base = hlm_os_map(len);
    if (!base)
        return false;
    region_add(h, base, len);
    return true;
}

/* Hand the top of the sbrk heap back, keeping pad bytes free. */
static void trim_top(struct hlm_tag_heap *h, struct chunk *c, size_t pad)
{
    char *keep_end = (char *)c + TAG_MIN + hlm_align_up(pad, HLM_ALIGN) + HLM_HDR;
    char *new_end = (char *)hlm_align_up((uintptr_t)keep_end, hlm_page_size);
    if (new_end >= brk_end || hlm_os_brk_now() != brk_end)
        return;
    size_t cut = (size_t)(brk_end - new_end);
    size_t clean = cnext(c)->prev_size & FOOT_BITS;   /* read before the memory goes */
    if (!hlm_os_sbrk(-(intptr_t)cut))
        return;
    size_t size = (size_t)(new_end - HLM_HDR - (char *)c);
    hlm_assert(c == top && cur_fence == (struct chunk *)(brk_end - HLM_HDR));
    top_unfile(h);
    brk_end = new_end;
    cur_fence = (struct chunk *)(new_end - HLM_HDR);
    write_fence(cur_fence, false);
    set_free(c, size, clean);
    top_file(h, c);
    arena_bytes -= cut;
    if (dirty_bytes > cut)
        dirty_bytes -= cut;
    else
        dirty_bytes = 0;
    h->trimmed_since_grow += cut;
    hlm_stat_add(trims, 1);
    hlm_stat_add(trimmed_bytes, cut);
}

/* Purging is aged, so that memory a program frees and soon takes again is not given back
 * and faulted in over and over: a pass counts in each free chunk's footer the passes it
 * stayed free through, and purges those that stayed free through age passes already
 * (age 0: everything). */
static void purge_chunk(struct chunk *c, unsigned age)
{
    struct chunk *n = cnext(c);
    if (n->prev_size & CLEAN)
        return;
    if ((n->prev_size & AGE_MASK) < age * AGE_ONE) {
        n->prev_size += AGE_ONE;
        return;
    }
    uintptr_t from = hlm_align_up((uintptr_t)c + sizeof(struct chunk), hlm_page_size);
    uintptr_t to = (uintptr_t)n & ~(uintptr_t)(hlm_page_size - 1);
    if (to > from)
        hlm_os_purge((void *)from, to - from);
    n->prev_size |= CLEAN;
}

/* Fresh slab bytes since tag_main's last pass (hlm_tag_slab_grew): added to under
 * hlm_pages_lock, cleared under hlm_tag_lock, so atomic. */
static size_t slab_fresh;

static void purge_pass(struct hlm_tag_heap *h, unsigned age)
{
    if (h == &tag_main) {
        __atomic_store_n(&slab_fresh, 0, __ATOMIC_RELAXED);
        hlm_large_pass(age);
    }
    /* The top of the sbrk heap goes back like any free chunk: once it stayed free for
     * age passes (trimming at every free made programs that reuse the top fault it in
     * again and again), keeping half the trim threshold. */
    const size_t thr = __atomic_load_n(&hlm_trim_threshold, __ATOMIC_RELAXED);
    const bool keep_top = h->regrowths >= 2;   /* (top_regrowth) */
    if (top && cnext(top) == (struct chunk *)(brk_end - HLM_HDR)) {
        struct chunk *fence = cnext(top);
        if ((fence->prev_size & AGE_MASK) >= age * AGE_ONE && csize(top) > thr)
            trim_top(h, top, age || keep_top ? thr / 2 : 0);
    }
    /* Once the heap grew back after trims, a top within the trim threshold stays, as
     * glibc keeps it (the trim above takes what is beyond). */
    if (top && purgeable(csize(top)) && !(keep_top && csize(top) <= thr))
        purge_chunk(top, age);
    if (dv && purgeable(csize(dv)))
        purge_chunk(dv, age);
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
    purge_tree(root, age);
#else
    for (unsigned i = next_bin(h, 0); i < NBINS; i = next_bin(h, i + 1))
        for (struct chunk *c = bins[i]; c; c = c->fd)
            if (purgeable(csize(c)))
                purge_chunk(c, age);
#endif
    dirty_bytes = 0;
}

/* A pass after every HEAPLAB_RETAIN bytes freed, or half the heap if larger, purges what
 * stayed free through HLM_TAG_PURGE_AGE passes (an arena's heap, hlm_tag_new: one pass,
 * as its purging was measured).  When all but 1/HLM_TAG_SHRUNK_DIV of the heap is free
 * the program has shrunk: purge all of it (and pass after every HEAPLAB_RETAIN bytes
 * freed from then on).  Not in an arena's heap: a thread that hands its blocks to others
 * keeps its heap three quarters free as its steady state, and purging it all at every
 * pass made it fault the same pages in again round after round; the aged passes and
 * hlm_tag_release_in give its free memory back. */
static void purge_all(struct hlm_tag_heap *h)
{
    size_t half = arena_bytes / 2, retain = hlm_opt(HLM_OPT_RETAIN);
    bool shrunk = !h->grain && free_bytes > arena_bytes - arena_bytes / HLM_TAG_SHRUNK_DIV;
    if (dirty_bytes > (half > retain ? half : retain) || (shrunk && dirty_bytes > retain))
        purge_pass(h, shrunk ? 0 : h->grain ? 1 : HLM_TAG_PURGE_AGE);
}

/* ---- the entry points ------------------------------------------------------------------ */

/* Take free chunk c for s bytes; split off and file the rest if it is big enough. */
static void *chunk_take(struct hlm_tag_heap *h, struct chunk *c, size_t s)
{
    size_t size = csize(c), clean = cnext(c)->prev_size & FOOT_BITS;
    if (size - s >= TAG_MIN) {
        struct chunk *r = (struct chunk *)((char *)c + s);
        bin_replace(h, c, r, size - s, clean);
        c->head = s | HLM_TAG_INUSE | HLM_TAG_PINUSE;
    } else {
        bin_unlink(h, c);
        c->head |= HLM_TAG_INUSE;
        cnext(c)->head |= HLM_TAG_PINUSE;
    }
    return c2m(c);
}

/* Carve s bytes off the front of the top or the victim (*v, at least s bytes): a new
 * head for the rest and its size in the footer, nothing to unlink or insert. */
static inline void *carve(struct hlm_tag_heap *h, struct chunk **v, size_t s)
{
    struct chunk *c = *v, *f = cnext(c);
    size_t size = csize(c);
    hlm_assert(size >= s && (c->head & HLM_TAG_PINUSE) && (v == &dv || f == cur_fence));
    if (size - s >= TAG_MIN) {
        struct chunk *r = (struct chunk *)((char *)c + s);
        r->head = (size - s) | HLM_TAG_PINUSE;
        f->prev_size = (size - s) | (f->prev_size & FOOT_BITS);
        c->head = s | HLM_TAG_INUSE | HLM_TAG_PINUSE;
        *v = r;
        free_bytes -= s;
    } else {
        free_bytes -= size;
        free_chunks--;
        *v = NULL;
        c->head |= HLM_TAG_INUSE;
        f->head |= HLM_TAG_PINUSE;
    }
    return c2m(c);
}

#if HLM_TAG_POLICY == HLM_TAG_SEGFIT
/* Split binned chunk c for s bytes; for a request below HLM_TAG_DV_MAX the rest becomes
 * the victim (the old one is binned).  Off by default (0): it saved instructions but no
 * measurable time, and cost RSS (medium blocks carved from a victim rather than their
 * own bins' chunks).  -DHLM_TAG_DV_MAX=512 turns it on. */
static void *victim_split(struct hlm_tag_heap *h, struct chunk *c, size_t s)
{
    size_t size = csize(c), clean = cnext(c)->prev_size & FOOT_BITS;
    if (HLM_TAG_DV_MAX == 0 || size - s < TAG_MIN || s + 1 > HLM_TAG_DV_MAX)
        return chunk_take(h, c, s);
    bin_unlink(h, c);
    if (dv) {
        struct chunk *old = dv;
        dv_unfile(h);
        bin_insert(h, old);
    }
    struct chunk *r = (struct chunk *)((char *)c + s);
    set_free(r, size - s, clean);
    dv_file(h, r);
    c->head = s | HLM_TAG_INUSE | HLM_TAG_PINUSE;
    return c2m(c);
}
#endif

/* The slow half of hlm_tag_malloc.  Segregated fit: the request's own bin (an exact
 * bin's first chunk, or the smallest fitting among the first HLM_TAG_SCAN of a ranged one),
 * then the victim, then the first chunk of the next non-empty bin (every chunk there
 * fits; the rest of a small request's becomes the victim), then the top; the victim and
 * the top only before a chunk of a higher bin than theirs. */
static HLM_NOINLINE void *tag_malloc_slow(struct hlm_tag_heap *h, size_t s)
{
#if HLM_TAG_POLICY == HLM_TAG_SEGFIT
    unsigned i = bin_of(s);
    struct chunk *c = bins[i];
    if (c) {
        if (i < 64)
            return chunk_take(h, c, s);
        struct chunk *best = NULL;
        for (unsigned k = 0; c && k < HLM_TAG_SCAN; k++, c = c->fd)
            if (csize(c) >= s && (!best || csize(c) < csize(best))) {
                best = c;
                if (csize(c) == s)
                    break;
            }
        if (best)
            return chunk_take(h, best, s);
    }
    i = next_bin(h, i + 1);
    c = i < NBINS ? bins[i] : NULL;
    if (dv && csize(dv) >= s && (!c || bin_of(csize(dv)) <= i))
        return carve(h, &dv, s);
#else
    struct chunk *c = bin_find(h, s);
#endif
    /* The top is taken before a chunk of a higher bin than its own only when that chunk
     * is a poor fit (over 1.5 times the request).  Always last, as dlmalloc does, cost
     * RSS; before any chunk of a higher bin, a growing program took its blocks off the
     * top, trimmed and faulted in again, rather than from its holes.
     * Best fit: when it is the smaller.  First fit: last (the highest address, unless
     * the heap had to map a region apart from the sbrk one). */
#if HLM_TAG_POLICY == HLM_TAG_SEGFIT
    if (c && top && csize(top) >= s && bin_of(csize(top)) <= bin_of(csize(c)) &&
        csize(c) - s > s / 2)
        c = NULL;
#elif HLM_TAG_POLICY == HLM_TAG_BESTFIT
    if (c && top && csize(top) >= s && csize(top) < csize(c))
        c = NULL;
#endif
    if (c) {
#if HLM_TAG_POLICY == HLM_TAG_SEGFIT
        return victim_split(h, c, s);
#else
        return chunk_take(h, c, s);
#endif
    }
    if (!top || csize(top) < s) {
        if (!heap_grow(h, s))
            return NULL;
        hlm_assert(top && csize(top) >= s);
    }
    return carve(h, &top, s);
}

void *hlm_tag_malloc_in(struct hlm_tag_heap *h, size_t n)
{
    if (hlm_unlikely(n > PTRDIFF_MAX - 2 * HLM_MIB))
        return NULL;
    size_t s = req_size(n);
    /* No free chunk in the bins of s and up, and a top with room: carve it here,
     * without a frame (a small program's cold start is mostly this). */
#if HLM_TAG_POLICY != HLM_TAG_FIRSTFIT
    if (hlm_likely(!bins_from(h, bin_of(s)))) {
        struct chunk **v = dv && csize(dv) >= s ? &dv : &top, *c = *v;
        if (hlm_likely(c && csize(c) >= s + TAG_MIN)) {
            struct chunk *r = (struct chunk *)((char *)c + s), *f = cnext(c);
            size_t rest = csize(c) - s;
            r->head = rest | HLM_TAG_PINUSE;
            f->prev_size = rest | (f->prev_size & FOOT_BITS);
            c->head = s | HLM_TAG_INUSE | HLM_TAG_PINUSE;
            *v = r;
            free_bytes -= s;
            return c2m(c);
        }
    }
#endif
    return tag_malloc_slow(h, s);
}

void hlm_tag_free_in(struct hlm_tag_heap *h, void *p)
{
    struct chunk *c = m2c(p);
    dirty_bytes += csize(c);
    chunk_release(h, c);
}

size_t hlm_tag_usable(const void *p) { return csize(m2c(p)) - TAG_OVERHEAD; }

void *hlm_tag_memalign_in(struct hlm_tag_heap *h, size_t align, size_t n)
{
    if (n > PTRDIFF_MAX - 2 * HLM_MIB - align)
        return NULL;
    size_t s = req_size(n);
    char *p = hlm_tag_malloc_in(h, s + align + TAG_MIN);
    if (!p)
        return NULL;
    struct chunk *c = m2c(p);
    if ((uintptr_t)p & (align - 1)) {
        char *q = (char *)hlm_align_up((uintptr_t)p, align);
        if ((size_t)(q - p) < TAG_MIN)
            q += align;
        struct chunk *a = m2c(q);
        size_t lead = (size_t)(q - p);
        a->head = (csize(c) - lead) | HLM_TAG_INUSE | HLM_TAG_PINUSE;
        c->head = lead | HLM_TAG_INUSE | (c->head & HLM_TAG_PINUSE);
        chunk_release(h, c);
        c = a;
    }
    if (csize(c) - s >= TAG_MIN) {
        struct chunk *r = (struct chunk *)((char *)c + s);
        r->head = (csize(c) - s) | HLM_TAG_INUSE | HLM_TAG_PINUSE;
        c->head = s | (c->head & 15);
        chunk_release(h, r);
    }
    return c2m(c);
}

bool hlm_tag_resize_in(struct hlm_tag_heap *h, void *p, size_t n)
{
    if (n > PTRDIFF_MAX - 2 * HLM_MIB)
        return false;
    struct chunk *c = m2c(p);
    size_t s = req_size(n), size = csize(c);
    if (s > size) {
        struct chunk *next = cnext(c);
        if (is_fence(next) && (char *)next + HLM_HDR == brk_end && hlm_os_brk_now() == brk_end) {
            if (!heap_grow(h, s - size))
                return false;
            next = cnext(c);   /* the grown top now follows c */
        }
        if (cinuse(next) || size + csize(next) < s)
            return false;
        size_t clean = cnext(next)->prev_size & FOOT_BITS, total = size + csize(next);
        if (total - s >= TAG_MIN) {
            struct chunk *r = (struct chunk *)((char *)c + s);
            if (next == top || next == dv) {
                bool victim = unfile(h, next);
                set_free(r, total - s, clean);
                file(h, r, victim);
            } else {
                bin_replace(h, next, r, total - s, clean);
            }
            c->head = s | (c->head & 15);
        } else {
            unfile(h, next);
            c->head = total | (c->head & 15);
            cnext(c)->head |= HLM_TAG_PINUSE;
        }
        return true;
    }
    if (size - s >= 4 * TAG_MIN) {   /* shrinking by little is not worth a split */
        struct chunk *r = (struct chunk *)((char *)c + s);
        r->head = (size - s) | HLM_TAG_INUSE | HLM_TAG_PINUSE;
        c->head = s | (c->head & 15);
        dirty_bytes += size - s;
        chunk_release(h, r);
    }
    return true;
}

int hlm_tag_trim_in(struct hlm_tag_heap *h, size_t pad)
{
    size_t before = hlm_stats.trimmed_bytes;
    if (top && cnext(top) == (struct chunk *)(brk_end - HLM_HDR))
        trim_top(h, top, pad);
    size_t purged = hlm_stats.purged_bytes;
    purge_pass(h, 0);
    return hlm_stats.trimmed_bytes != before || hlm_stats.purged_bytes != purged;
}

void hlm_tag_purge(void) { purge_pass(&tag_main, 0); }

/* The heap's thread left (variant.c): a purge pass, which gives back the chunks that were
 * already free at the pass before (the next thread would not have needed them either);
 * everything if more than HEAPLAB_RETAIN bytes were freed since that pass. */
void hlm_tag_release_in(struct hlm_tag_heap *h)
{
    purge_pass(h, dirty_bytes > hlm_opt(HLM_OPT_RETAIN) ? 0 : 1);
}

/* The scavenge's look (alloc.c): a heap three quarters free whose dirty bytes will not
 * reach HEAPLAB_RETAIN soon (a small heap the program moved away from: the chunks of a
 * cold start that churn ended) goes back now. */
void hlm_tag_purge_idle(void)
{
    struct hlm_tag_heap *h = &tag_main;
    if (free_bytes > arena_bytes / 4 * 3 && dirty_bytes >= 16 * hlm_page_size)
        purge_pass(h, 0);
}

/* The slab took fresh bytes (segments.c, under hlm_pages_lock, which no tag-heap path
 * takes).  Once it has taken HLM_TAG_SLAB_PURGE_MIN since the tag heap's last pass, and
 * the tag heap freed as much, a pass purges its free chunks of that size or more at
 * once: the program's memory moved to the slab, and only tag chunks could reuse those
 * holes.  A trylock: a thread in the tag heap now skips it, the next growth tries again. */
void hlm_tag_slab_grew(size_t fresh)
{
    struct hlm_tag_heap *h = &tag_main;
    size_t grown = __atomic_add_fetch(&slab_fresh, fresh, __ATOMIC_RELAXED);
    size_t dirty = __atomic_load_n(&dirty_bytes, __ATOMIC_RELAXED);
    if (dirty < HLM_TAG_SLAB_PURGE_MIN || grown < HLM_TAG_SLAB_PURGE_MIN ||
        !hlm_trylock(&hlm_tag_lock))
        return;
    if (dirty_bytes >= HLM_TAG_SLAB_PURGE_MIN) {
        pass_min = HLM_TAG_SLAB_PURGE_MIN;
        purge_pass(h, 0);
        pass_min = 0;
    }
    hlm_unlock(&hlm_tag_lock);
}

void hlm_tag_info_in(struct hlm_tag_heap *h, size_t *arena, size_t *fbytes, size_t *fchunks)
{
    *arena = arena_bytes;
    *fbytes = free_bytes;
    *fchunks = free_chunks;
}

/* ---- heaps ---------------------------------------------------------------------------- */

struct hlm_tag_heap *hlm_tag_heap0(void) { return &tag_main; }

struct hlm_tag_heap *hlm_tag_new(size_t grain, bool (*mapped)(void *, size_t, void *), void *arg)
{
    struct hlm_tag_heap *h = hlm_os_map(hlm_align_up(sizeof *h, hlm_page_size));
    if (h) {
        h->grain = grain;
        h->mapped = mapped;
        h->mapped_arg = arg;
    }
    return h;
}

/* The default allocator's heap (alloc.c), under hlm_tag_lock. */
void *hlm_tag_malloc(size_t n) { return hlm_tag_malloc_in(&tag_main, n); }
void hlm_tag_free(void *p) { hlm_tag_free_in(&tag_main, p); }
void *hlm_tag_memalign(size_t align, size_t n) { return hlm_tag_memalign_in(&tag_main, align, n); }
bool hlm_tag_resize(void *p, size_t n) { return hlm_tag_resize_in(&tag_main, p, n); }
int hlm_tag_trim(size_t pad) { return hlm_tag_trim_in(&tag_main, pad); }
void hlm_tag_info(size_t *arena, size_t *fbytes, size_t *fchunks)
{
    hlm_tag_info_in(&tag_main, arena, fbytes, fchunks);
}
