/*
 * page.c: the small-block heap behind the thread caches: size classes, 4 MiB segments cut
 * into 64 KiB pages, spans of pages holding objects of one class, and per class a central
 * list of the spans that still have free objects.  Objects move between here and the
 * thread caches in batches (hlm_central_take / hlm_central_give), so each lock here is
 * taken once per batch, not per call.
 *
 * Memory goes back to the kernel in two steps: a span whose objects are all free returns
 * its pages to the segment (dirty); once more than HEAPLAB_RETAIN bytes of free pages are
 * dirty they are purged with madvise; a segment with no span at all is unmapped (one
 * empty segment is kept, purged, to avoid mapping churn).
 *
 * Locks: a class's central lock, then hlm_pages_lock, never the other way round.
 */
#include "hlm.h"
#include "tunables.h"

#include <stdio.h>

uint32_t hlm_class_size[HLM_NCLASSES];
uint8_t hlm_class_pages[HLM_NCLASSES];
uint8_t hlm_class16[2048 / 16 + 1];
uint8_t hlm_classup[HLM_SMALL_MAX / HLM_UPPER_GRAIN + 1];
uint64_t hlm_segmap[HLM_SEGMAP_WORDS];

/* Remote frees: a thread flushing objects that belong to another shard's spans pushes
 * the batch onto that shard's lock-free stack (one CAS) instead of taking the lock the
 * owner needs to refill; the owner's next refill takes the whole stack with one exchange.
 * A batch on the stack: its first object's second word links the next batch.  Bounded by
 * HLM_REMOTE_BYTES per class and shard (beyond it, the locked path). */
struct hlm_central {
    hlm_lock_t lock;
    struct hlm_span *partial;   /* spans of this class with free or never-used objects */
    void *remote;               /* stack of batches freed by other shards' threads */
    size_t remote_n;            /* objects on it (approximate while it changes) */
} __attribute__((aligned(64)));

static struct hlm_central central[HLM_SHARDS][HLM_NCLASSES];
hlm_lock_t hlm_pages_lock = HLM_LOCK_INIT;
static struct hlm_segment *segments;
static size_t nsegments, empty_segments, dirty_pages, freed_pages;

/* ---- size classes ------------------------------------------------------------------- */

void hlm_small_init(void)
{
    unsigned n = 0;
    for (unsigned s = 16; s <= 256; s += 16)
        hlm_class_size[++n] = s;
    /* From HLM_FINE_FROM to 2048, 16 per doubling: a common size just above a power of
     * two (sqlite's 1032-byte blocks) wasted up to 1/8 of each block. */
    for (unsigned b = 256; b < 2048; b *= 2) {
        unsigned step = b >= HLM_FINE_FROM ? b / 16 : b / 8;
        for (unsigned s = b + step; s <= 2 * b; s += step)
            hlm_class_size[++n] = s;
    }
    for (unsigned b = 2048; b < HLM_SMALL_MAX; b *= 2)
        for (unsigned s = b + b / HLM_UPPER_STEPS; s <= 2 * b; s += b / HLM_UPPER_STEPS)
            hlm_class_size[++n] = s;
    hlm_check(n == HLM_NCLASSES - 1, "size class table does not match HLM_NCLASSES", NULL);
    for (unsigned c = 1; c < HLM_NCLASSES; c++) {
        /* The shortest span with room for 8 objects that wastes at most 1/8 of itself. */
        unsigned np = 1, size = hlm_class_size[c];
        for (; np < HLM_SPAN_MAX_PAGES; np++) {
            size_t bytes = (size_t)np * HLM_PAGE, cap = bytes / size;
            if (cap >= 8 && (bytes - cap * size) * 8 <= bytes)
                break;
        }
        hlm_class_pages[c] = (uint8_t)np;
    }
    unsigned c = 1;
    for (unsigned i = 0; i <= 2048 / 16; i++) {
        while (hlm_class_size[c] < i * 16)
            c++;
        hlm_class16[i] = (uint8_t)c;
    }
    c = 1;
    for (unsigned i = 0; i <= HLM_SMALL_MAX / HLM_UPPER_GRAIN; i++) {
        while (hlm_class_size[c] < i * HLM_UPPER_GRAIN)
            c++;
        hlm_classup[i] = (uint8_t)c;
    }
}

/* ---- segments and pages (hlm_pages_lock) ----------------------------------------------- */

static void segmap_set(struct hlm_segment *s, bool on)
{
    uintptr_t i = (uintptr_t)s >> HLM_SEG_SHIFT;
    uint64_t bit = (uint64_t)1 << (i % 64);
    if (on)
        __atomic_fetch_or(&hlm_segmap[i / 64], bit, __ATOMIC_RELEASE);
    else
        __atomic_fetch_and(&hlm_segmap[i / 64], ~bit, __ATOMIC_RELEASE);
}

static void span_set_owner(struct hlm_span *sp, struct hlm_tcache *tc)
{
    struct hlm_segment *s = hlm_segment_of(sp);
    __atomic_store_n(&sp->owner, tc, __ATOMIC_RELAXED);
    for (unsigned i = sp->first; i < (unsigned)sp->first + sp->npages; i++)
        __atomic_store_n(&s->page_owner[i], tc, __ATOMIC_RELAXED);
}

static struct hlm_segment *segment_new(void)
{
    struct hlm_segment *s = hlm_os_map_aligned(HLM_SEG_SIZE, HLM_SEG_SIZE);
    if (!s)
        return NULL;
    if (((uintptr_t)s >> HLM_SEG_SHIFT) >= HLM_SEGMAP_WORDS * 64) {
        hlm_os_unmap(s, HLM_SEG_SIZE);   /* beyond the map: cannot classify, do not use */
        return NULL;
    }
    s->free_pages = HLM_SEG_ALL_FREE;
    s->next = segments;
    if (segments)
        segments->prev = s;
    segments = s;
    nsegments++;
    empty_segments++;
    segmap_set(s, true);
    hlm_stat_add(segments, 1);
    hlm_stat_peak(&hlm_stats.segments_peak, hlm_stats.segments);
    return s;
}

static void segment_release(struct hlm_segment *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        segments = s->next;
    if (s->next)
        s->next->prev = s->prev;
    nsegments--;
    empty_segments--;
    dirty_pages -= (size_t)__builtin_popcountll(s->dirty_pages);
    segmap_set(s, false);
    hlm_stat_sub(segments, 1);
    hlm_os_unmap(s, HLM_SEG_SIZE);
}

/* Purge free pages: all of them (force), or only those already dirty at the previous
 * pass (aged, as the tag heap does).  Spans take dirty pages first (pages_alloc), so the
 * page heap purges all at each pass: measured, aging here only raised peak RSS
 * (python trace 16.3 -> 20.9 MiB). */
/* Purge the free dirty pages but the first keep that pages_alloc would take again. */
static void pages_purge(size_t keep)
{
    for (struct hlm_segment *s = segments; s; s = s->next) {
        uint64_t d = s->dirty_pages;
        while (d && keep) {
            d &= d - 1;
            keep--;
        }
        s->dirty_pages &= ~d;
        s->aged_pages = s->dirty_pages;
        dirty_pages -= (size_t)__builtin_popcountll(d);
        while (d) {
            unsigned i = (unsigned)__builtin_ctzll(d);
            unsigned len = (unsigned)__builtin_ctzll(~(d >> i));   /* d >> i has a 0 on top */
            hlm_os_purge((char *)s + ((size_t)i << HLM_PAGE_SHIFT), (size_t)len << HLM_PAGE_SHIFT);
            d &= ~((((uint64_t)1 << len) - 1) << i);
        }
    }
    freed_pages = 0;
}

static struct hlm_span *pages_alloc(unsigned cls, unsigned shard)
{
    unsigned np = hlm_class_pages[cls], first = 0;
    struct hlm_segment *s = NULL;
    /* Pages still resident first (they cost no new memory), then any free run. */
    for (int pass = dirty_pages >= np ? 0 : 1; pass < 2 && !s; pass++) {
        for (s = segments; s; s = s->next) {
            uint64_t avail = pass == 0 ? s->free_pages & s->dirty_pages : s->free_pages, m = avail;
            for (unsigned i = 1; i < np && m; i++)
                m &= avail >> i;
            if (m) {
                first = (unsigned)__builtin_ctzll(m);
                break;
            }
        }
    }
    if (!s) {
        s = segment_new();
        if (!s)
            return NULL;
        first = 1;
    }
    if (s->free_pages == HLM_SEG_ALL_FREE)
        empty_segments--;
    uint64_t mask = (((uint64_t)1 << np) - 1) << first;
    hlm_assert((s->free_pages & mask) == mask && first + np <= HLM_SEG_PAGES);
    s->free_pages &= ~mask;
    dirty_pages -= (size_t)__builtin_popcountll(s->dirty_pages & mask);
    s->dirty_pages &= ~mask;
    s->aged_pages &= ~mask;
    struct hlm_span *sp = &s->spans[first];
    uint32_t size = hlm_class_size[cls];
    sp->free = NULL;
    sp->cap = (uint32_t)(((size_t)np << HLM_PAGE_SHIFT) / size);
    sp->bump = (char *)s + ((size_t)first << HLM_PAGE_SHIFT);
    sp->end = sp->bump + (size_t)sp->cap * size;
    sp->lim = sp->bump;
    sp->used = 0;
    sp->cls = (uint8_t)cls;
    sp->npages = (uint8_t)np;
    sp->first = (uint8_t)first;
    sp->listed = 0;
    sp->shard = (uint8_t)shard;
    sp->full = sp->xlisted = sp->stashed = 0;
    span_set_owner(sp, NULL);
    sp->xfree = sp->xtail = NULL;
    sp->xcount = 0;
    for (unsigned i = first; i < first + np; i++) {
        s->page_first[i] = (uint8_t)first;
        __atomic_store_n(&s->page_cls[i], (uint8_t)cls, __ATOMIC_RELEASE);
    }
    return sp;
}

static void pages_free(struct hlm_span *sp)
{
    struct hlm_segment *s = hlm_segment_of(sp);
    uint64_t mask = (((uint64_t)1 << sp->npages) - 1) << sp->first;
    for (unsigned i = sp->first; i < (unsigned)sp->first + sp->npages; i++)
        s->page_cls[i] = 0;
    sp->cls = 0;
    s->free_pages |= mask;
    s->dirty_pages |= mask;
    dirty_pages += sp->npages;
    freed_pages += sp->npages;
    if (s->free_pages == HLM_SEG_ALL_FREE && ++empty_segments > 1) {
        segment_release(s);
        return;
    }
    /* A pass after every HEAPLAB_RETAIN bytes of pages freed, or a quarter of the
     * segments if that is more: spans freed and soon made again cost no syscalls. */
    size_t quarter = nsegments * HLM_SEG_SIZE / 4, retain = hlm_opt(HLM_OPT_RETAIN);
    if ((freed_pages << HLM_PAGE_SHIFT) > (quarter > retain ? quarter : retain)) {
        /* Spans given back and soon taken again (threads freeing and refilling a
         * round of blocks) count as freed but leave few free pages dirty: no pass for
         * those (madvise under the pages lock made threadtest's threads queue on it). */
        size_t keep = nsegments * (HLM_SEG_PAGES - 1) / HLM_PURGE_KEEP_DIV;
        keep = keep > HLM_PURGE_MIN_PAGES ? keep : HLM_PURGE_MIN_PAGES;
        if (dirty_pages > keep)
            pages_purge(keep);
        else
            freed_pages = 0;
    }
}

int hlm_pages_trim(void)
{
    hlm_lock(&hlm_pages_lock);
    int released = dirty_pages > 0;
    pages_purge(0);
    hlm_unlock(&hlm_pages_lock);
    return released;
}

void hlm_small_info(size_t *mapped, size_t *free_bytes)
{
    size_t f = 0;
    hlm_lock(&hlm_pages_lock);
    for (struct hlm_segment *s = segments; s; s = s->next)
        f += (size_t)__builtin_popcountll(s->free_pages) << HLM_PAGE_SHIFT;
    *mapped = nsegments * HLM_SEG_SIZE;
    hlm_unlock(&hlm_pages_lock);
    *free_bytes = f;
}

/* ---- central lists (one lock per class) -------------------------------------------- */

static void partial_push(struct hlm_central *c, struct hlm_span *sp)
{
    sp->prev = NULL;
    sp->next = c->partial;
    if (c->partial)
        c->partial->prev = sp;
    c->partial = sp;
    sp->listed = 1;
}

static void partial_remove(struct hlm_central *c, struct hlm_span *sp)
{
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        c->partial = sp->next;
    if (sp->next)
        sp->next->prev = sp->prev;
    sp->listed = 0;
}

/* Take every batch on c's remote stack as one NULL-terminated chain; returns its length. */
static unsigned remote_take(struct hlm_central *c, void **chain)
{
    void *b = __atomic_exchange_n(&c->remote, NULL, __ATOMIC_ACQUIRE);
    unsigned n = 0;
    *chain = b;
    while (b) {
        void *next_batch = ((void **)b)[1], *o = b;
        for (n++; *(void **)o; o = *(void **)o)
            n++;
        *(void **)o = next_batch;   /* the batch's tail continues with the next batch */
        b = next_batch;
    }
    __atomic_sub_fetch(&c->remote_n, n, __ATOMIC_RELAXED);
    return n;
}

unsigned hlm_central_take(unsigned shard, unsigned cls, void **chain, unsigned want)
{
    struct hlm_central *c = &central[shard][cls];
    size_t size = hlm_class_size[cls];
    void *head = NULL, **tail = &head;
    unsigned got = 0;
    if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED)) {
        got = remote_take(c, chain);
        if (got)
            return got;
    }
    hlm_lock(&c->lock);
    while (got < want) {
        struct hlm_span *sp = c->partial;
        if (!sp) {
            hlm_lock(&hlm_pages_lock);
            sp = pages_alloc(cls, shard);
            hlm_unlock(&hlm_pages_lock);
            if (!sp)
                break;
            partial_push(c, sp);
        }
        /* A span's whole free list, if it is about a batch, moves without walking it:
         * the objects are cold, and the thread will touch each one when it hands it out. */
        uint32_t nfree = sp->cap - sp->used - (uint32_t)((size_t)(sp->end - sp->bump) / size);
        if (got == 0 && nfree && nfree <= want && nfree >= want / 4) {
            head = sp->free;
            got = nfree;
            sp->free = NULL;
            sp->used += nfree;
            if (sp->used == sp->cap)
                partial_remove(c, sp);
            hlm_unlock(&c->lock);
            *chain = head;
            return got;
        }
        while (got < want && sp->free) {
            void *o = sp->free;
            sp->free = *(void **)o;
            *tail = o;
            tail = (void **)o;
            got++;
            sp->used++;
        }
        /* Never-used objects in address order: a fresh span is touched front to back. */
        while (got < want && sp->bump < sp->end) {
            void *o = sp->bump;
            sp->bump += size;
            *tail = o;
            tail = (void **)o;
            got++;
            sp->used++;
        }
        hlm_assert(sp->used <= sp->cap);
        if (sp->used == sp->cap)
            partial_remove(c, sp);
    }
    *tail = NULL;
    hlm_unlock(&c->lock);
    *chain = head;
    return got;
}

static void give_locked(unsigned cls, void *chain);

void hlm_central_give(unsigned cls, void *chain, unsigned count, int from_shard)
{
    struct hlm_central *r = &central[hlm_span_of(chain)->shard % HLM_SHARDS][cls];
    if (from_shard >= 0 && r != &central[from_shard][cls] &&
        __atomic_load_n(&r->remote_n, __ATOMIC_RELAXED) * hlm_class_size[cls] < HLM_REMOTE_BYTES) {
        __atomic_add_fetch(&r->remote_n, count, __ATOMIC_RELAXED);
        void *top = __atomic_load_n(&r->remote, __ATOMIC_RELAXED);
        do
            ((void **)chain)[1] = top;
        while (!__atomic_compare_exchange_n(&r->remote, &top, chain, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        return;
    }
    give_locked(cls, chain);
}

/* Give the remote stacks back to their spans, so that empty spans can go (malloc_trim). */
void hlm_central_drain(void)
{
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
            void *chain;
            if (__atomic_load_n(&central[s][cls].remote, __ATOMIC_RELAXED) &&
                remote_take(&central[s][cls], &chain))
                give_locked(cls, chain);
        }
}

static void give_locked(unsigned cls, void *chain)
{
    struct hlm_central *c = NULL;
    while (chain) {
        void *o = chain;
        chain = *(void **)o;
        struct hlm_span *sp = hlm_span_of(o);
        struct hlm_central *want;
        /* A chain is mostly from one shard: switch locks rarely.  The span's shard
         * changes only under its old shard's lock (own_acquire adopting it), so it is
         * read again once the lock is held. */
        while ((want = &central[__atomic_load_n(&sp->shard, __ATOMIC_ACQUIRE) % HLM_SHARDS][cls]) != c) {
            if (c)
                hlm_unlock(&c->lock);
            c = want;
            hlm_lock(&c->lock);
        }
        struct hlm_tcache *own = sp->owner;
        if (own) {   /* an owned span: its free list is the owner's; leave it a note */
            hlm_check(sp->cls == cls, "free(): invalid pointer", o);
            *(void **)o = sp->xfree;
            if (!sp->xfree)
                sp->xtail = o;
            sp->xfree = o;
            sp->xcount++;
            if (!sp->xlisted) {
                sp->xlisted = 1;
                sp->xnext = own->xready[cls];
                __atomic_store_n(&own->xready[cls], sp, __ATOMIC_RELEASE);
            }
            continue;
        }
        hlm_check(sp->cls == cls && sp->used > 0, "free(): invalid pointer or double free", o);
        *(void **)o = sp->free;
        sp->free = o;
        sp->used--;
        if (!sp->listed)
            partial_push(c, sp);
        /* An empty span goes back to the pages unless it is the class's only one. */
        if (sp->used == 0 && (sp->prev || sp->next)) {
            partial_remove(c, sp);
            hlm_lock(&hlm_pages_lock);
            pages_free(sp);
            hlm_unlock(&hlm_pages_lock);
        }
    }
    if (c)
        hlm_unlock(&c->lock);
}

/* ---- thread-owned spans -------------------------------------------------------------
 * A thread cache refills from spans it owns: a span's whole free list moves into the
 * cache at once (no walk), never-used objects are carved in batches, and a free by the
 * owner goes straight back onto the span's free list (alloc.c's hlm_free), so a thread
 * that allocates and frees its own blocks takes no lock and makes no second pass over
 * them (the central lists cost a walk to flush, one to give back, one to take: threadtest
 * 2x mimalloc's time).  The owner keeps two lists per class: spans with free or
 * never-used objects (own, the first is used) and spans it found with none (full).  A
 * span whose last object the owner frees goes back to the pages unless it is the only
 * one on the own list.  Objects other threads free reach an owned span through the
 * central lists (give_locked): they wait on its xfree list until the owner runs dry and
 * collects them.  At thread exit every owned span goes back to its central list. */

static void own_unlink(struct hlm_span **list, struct hlm_span *sp)
{
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        *list = sp->next;
    if (sp->next)
        sp->next->prev = sp->prev;
}

static void own_push(struct hlm_span **list, struct hlm_span *sp)
{
    sp->prev = NULL;
    sp->next = *list;
    if (*list)
        (*list)->prev = sp;
    *list = sp;
}

/* Stash: a thread's empty spans, still owned, with their free lists and carved objects
 * intact, at most HLM_STASH_BYTES per thread and HLM_STASH_TOTAL in all (threadtest's
 * peak RSS with 128 KiB per thread and no total: 540-600 -> 670-870 KiB, glibc's 730-930;
 * with 128 KiB in all: 600-740 KiB, and CPU summed over its threads 6.34 -> 5.80 ms
 * instead of 5.62, mimalloc 5.55).  A program that frees a round of blocks and
 * allocates the next (threadtest: 2500 blocks of 64 bytes, ~2.4 spans per round and
 * thread) gave every span but the class's last back to the pages at the end of a round
 * and took and carved them again in the next, under the pages lock; from the stash, the
 * refill takes one back and malloc's fast path pops its free list.  Only for a class
 * seen churning (tc->churn: since the last scavenge an empty span of it went back to the
 * pages and the class needed a span again; stashing every empty span cost python-threads
 * ~0.15 MiB), and only while other threads run (the single-threaded python trace: 16.3
 * -> 17.0 MiB with it).  The scavenge gives back the stashed spans of the classes not in use and
 * those that stayed stashed through a scavenge, and forgets the churn of idle classes;
 * thread exit and malloc_trim give back all of them. */
static size_t stash_total;   /* atomic */

static bool stash_put(struct hlm_tcache *tc, struct hlm_span *sp)
{
    size_t bytes = (size_t)sp->npages << HLM_PAGE_SHIFT;
    bool ok = tc->churn[sp->cls] == 2 && tc->stash_bytes + bytes <= HLM_STASH_BYTES && !__libc_single_threaded;
    if (ok && __atomic_add_fetch(&stash_total, bytes, __ATOMIC_RELAXED) > HLM_STASH_TOTAL) {
        __atomic_sub_fetch(&stash_total, bytes, __ATOMIC_RELAXED);
        ok = false;
    }
    if (!ok) {
        if (!tc->churn[sp->cls])
            tc->churn[sp->cls] = 1;
        return false;
    }
    tc->stash_bytes += bytes;
    sp->stashed = 1;
    sp->prev = NULL;
    sp->next = tc->stash[sp->cls];
    tc->stash[sp->cls] = sp;
    return true;
}

static struct hlm_span *stash_take(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_span *sp = tc->stash[cls];
    if (sp) {
        hlm_assert(sp->stashed && sp->used == 0 && sp->owner == tc);
        tc->stash[cls] = sp->next;
        tc->stash_bytes -= (size_t)sp->npages << HLM_PAGE_SHIFT;
        __atomic_sub_fetch(&stash_total, (size_t)sp->npages << HLM_PAGE_SHIFT, __ATOMIC_RELAXED);
        sp->stashed = 0;
    }
    return sp;
}

/* Give back the stashed spans of class cls (all, or only those aged through a scavenge),
 * under one pages lock. */
static void stash_release(struct hlm_tcache *tc, unsigned cls, bool all)
{
    struct hlm_span **pp = &tc->stash[cls], *sp, *gone = NULL;
    while ((sp = *pp) != NULL) {
        if (all || sp->stashed > 1) {
            *pp = sp->next;
            tc->stash_bytes -= (size_t)sp->npages << HLM_PAGE_SHIFT;
            __atomic_sub_fetch(&stash_total, (size_t)sp->npages << HLM_PAGE_SHIFT, __ATOMIC_RELAXED);
            sp->stashed = 0;
            span_set_owner(sp, NULL);
            sp->next = gone;
            gone = sp;
        } else {
            sp->stashed = 2;
            pp = &sp->next;
        }
    }
    if (!gone)
        return;
    hlm_lock(&hlm_pages_lock);
    while ((sp = gone) != NULL) {
        gone = sp->next;
        pages_free(sp);
    }
    hlm_unlock(&hlm_pages_lock);
}

void hlm_own_stash_release(struct hlm_tcache *tc)
{
    for (unsigned cls = 1; cls < HLM_NCLASSES && tc->stash_bytes; cls++)
        if (tc->stash[cls])
            stash_release(tc, cls, true);
}

/* The owner found sp with free objects again: from the full list to the front of own;
 * an empty span goes back to the pages if the class has another one to allocate from. */
void hlm_own_free_slow(struct hlm_tcache *tc, struct hlm_span *sp)
{
    unsigned cls = sp->cls;
    if (sp->full) {   /* behind the current span: one free object must not displace it */
        own_unlink(&tc->full[cls], sp);
        sp->full = 0;
        struct hlm_span *cur = tc->own[cls];
        if (cur) {
            sp->prev = cur;
            sp->next = cur->next;
            if (cur->next)
                cur->next->prev = sp;
            cur->next = sp;
        } else {
            own_push(&tc->own[cls], sp);
        }
    }
    if (sp->used == 0 && (sp->prev || sp->next)) {
        hlm_assert(!sp->xlisted && !sp->xfree);
        own_unlink(&tc->own[cls], sp);
        if (stash_put(tc, sp))
            return;
        span_set_owner(sp, NULL);
        hlm_lock(&hlm_pages_lock);
        pages_free(sp);
        hlm_unlock(&hlm_pages_lock);
    }
}

/* Scavenge (alloc.c's tcache_gc): a class's last span, kept while empty so that a class
 * in use does not make and unmake a span at every block, goes back to the pages once it
 * is still empty at a scavenge while another class is busy.  A program whose sizes move
 * on (the fragmenter's rounds) kept one empty span of 64 KiB per class it had passed
 * through: 37 of them, 2.3 MiB, at its peak. */
void hlm_own_release_idle(struct hlm_tcache *tc, unsigned busy)
{
    for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
        if (tc->stash[cls])
            stash_release(tc, cls, cls != busy);
        if (cls != busy)
            tc->churn[cls] = 0;
        struct hlm_span *sp = tc->own[cls];
        if (cls == busy || !sp || sp->used || sp->next)
            continue;
        hlm_assert(!sp->xlisted && !sp->xfree && !sp->prev);
        tc->own[cls] = NULL;
        span_set_owner(sp, NULL);
        hlm_lock(&hlm_pages_lock);
        pages_free(sp);
        hlm_unlock(&hlm_pages_lock);
    }
}

/* Take the objects other threads freed into the owner's spans of class cls. */
static bool own_collect(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_central *c = &central[tc->shard][cls];
    hlm_lock(&c->lock);
    struct hlm_span *sp = tc->xready[cls];
    __atomic_store_n(&tc->xready[cls], NULL, __ATOMIC_RELAXED);
    struct hlm_span *got = sp;
    while (sp) {
        struct hlm_span *next = sp->xnext;
        hlm_assert(sp->owner == tc && sp->xfree);
        sp->xlisted = 0;
        *(void **)sp->xtail = sp->free;
        sp->free = sp->xfree;
        sp->used -= sp->xcount;
        sp->xfree = sp->xtail = NULL;
        sp->xcount = 0;
        hlm_own_free_slow(tc, sp);   /* pages lock inside: central, then pages */
        sp = next;
    }
    hlm_unlock(&c->lock);
    return got != NULL;
}

void hlm_own_collect_all(struct hlm_tcache *tc)
{
    for (unsigned cls = 1; cls < HLM_NCLASSES; cls++)
        if (__atomic_load_n(&tc->xready[cls], __ATOMIC_RELAXED))
            own_collect(tc, cls);
}

/* A span for the owner: one from its shard's partial list, else one another shard's
 * thread left at exit (adopted: it moves to this thread's shard, under its old shard's
 * lock; python-threads 4.73 -> 4.51 MiB: spans of finished threads sat on their shard's
 * list while the others took fresh pages), else fresh pages.  One central lock at a
 * time. */
static struct hlm_span *own_acquire(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_central *c = &central[tc->shard][cls];
    hlm_lock(&c->lock);
    struct hlm_span *sp = c->partial;
    if (sp) {
        partial_remove(c, sp);
        span_set_owner(sp, tc);
    }
    hlm_unlock(&c->lock);
    for (unsigned k = 1; k < HLM_SHARDS && !sp; k++) {
        struct hlm_central *o = &central[(tc->shard + k) % HLM_SHARDS][cls];
        if (!__atomic_load_n(&o->partial, __ATOMIC_RELAXED))
            continue;
        hlm_lock(&o->lock);
        if ((sp = o->partial) != NULL) {
            partial_remove(o, sp);
            span_set_owner(sp, tc);
            /* (release: whoever sees the new shard sees the new owner too) */
            __atomic_store_n(&sp->shard, (uint8_t)tc->shard, __ATOMIC_RELEASE);
        }
        hlm_unlock(&o->lock);
    }
    if (!sp) {   /* fresh pages: no other thread can reach the span yet */
        hlm_lock(&hlm_pages_lock);
        sp = pages_alloc(cls, tc->shard);
        hlm_unlock(&hlm_pages_lock);
        if (sp)
            span_set_owner(sp, tc);
    }
    return sp;
}

/* Before carving or taking a span: objects other threads gave back to other shards'
 * spans of the class, which their owners did not need yet (larson: they piled up to
 * 400 KiB on the remote stacks while every thread carved more).  Returns how many. */
static unsigned steal(struct hlm_tcache *tc, unsigned cls, void **chain)
{
    for (unsigned k = 1; k < HLM_SHARDS; k++) {
        struct hlm_central *o = &central[(tc->shard + k) % HLM_SHARDS][cls];
        unsigned got;
        if (__atomic_load_n(&o->remote, __ATOMIC_RELAXED) && (got = remote_take(o, chain)) != 0)
            return got;
    }
    return 0;
}

/* How far malloc's fast path carves a span between two looks for given-back objects
 * (at least a refill's worth of objects). */

unsigned hlm_own_refill(struct hlm_tcache *tc, unsigned cls, void **chain, unsigned want)
{
    struct hlm_central *c = &central[tc->shard][cls];
    if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED)) {
        unsigned got = remote_take(c, chain);
        if (got)
            return got;
    }
    size_t size = hlm_class_size[cls];
    for (;;) {
        struct hlm_span *sp = tc->own[cls];
        if (sp) {
            uint32_t left = (uint32_t)((size_t)(sp->end - sp->bump) / size);
            if (sp->free) {
                /* (a span just collected or made current) one object: malloc's fast
                 * path takes the others from the span's list, before the cache */
                void *o = sp->free;
                sp->free = *(void **)o;
                *(void **)o = NULL;
                *chain = o;
                sp->used++;
                return 1;
            }
            /* Blocks other threads gave back before fresh ones: reuse keeps the
             * footprint and the cache small (larson RSS). */
            if (__atomic_load_n(&tc->xready[cls], __ATOMIC_ACQUIRE) && own_collect(tc, cls))
                continue;
            unsigned got;
            if ((got = steal(tc, cls, chain)) != 0)
                return got;
            if (left) {
                /* Never-used objects in address order: one now, and HLM_CARVE_BYTES
                 * (at least want objects) for malloc's fast path to carve before it
                 * comes back here to look for given-back objects first.  (Carving a
                 * batch into the cache touched it early; carving up to the span's end
                 * in the fast path never looked: larson 2.70 -> 2.38 MiB with the
                 * stealing above; windows of 16 KiB: 2.33, of 64 KiB: 3.39.) */
                uint32_t n = (uint32_t)(HLM_CARVE_BYTES / size);
                n = n > want ? n : want;
                n = n < left ? n : left;
                void *o = sp->bump;
                *(void **)o = NULL;
                *chain = o;
                sp->bump += size;
                sp->lim = sp->bump + (size_t)(n - 1) * size;
                sp->used++;
                return 1;
            }
            own_unlink(&tc->own[cls], sp);
            sp->full = 1;
            own_push(&tc->full[cls], sp);
            continue;
        }
        if (__atomic_load_n(&tc->xready[cls], __ATOMIC_ACQUIRE) && own_collect(tc, cls) && tc->own[cls])
            continue;
        unsigned got;
        if ((got = steal(tc, cls, chain)) != 0)
            return got;
        if ((sp = stash_take(tc, cls)) == NULL) {
            if (tc->churn[cls])   /* a span back to the pages, and the class needs one again */
                tc->churn[cls] = 2;
            if ((sp = own_acquire(tc, cls)) == NULL)
                return 0;
        }
        own_push(&tc->own[cls], sp);
    }
}

void hlm_own_give(struct hlm_tcache *tc, unsigned cls, void *chain, unsigned count)
{
    void *rest = NULL, **tail = &rest;
    unsigned nrest = 0;
    (void)count;
    while (chain) {
        void *o = chain;
        chain = *(void **)o;
        struct hlm_span *sp = hlm_span_of(o);
        if (sp->owner == tc) {
            hlm_assert(sp->used > 0);
            *(void **)o = sp->free;
            sp->free = o;
            if (--sp->used == 0 || sp->full)
                hlm_own_free_slow(tc, sp);
        } else {
            *tail = o;
            tail = (void **)o;
            nrest++;
        }
    }
    *tail = NULL;
    if (rest)
        hlm_central_give(cls, rest, nrest, (int)tc->shard);
}

/* Thread exit: every owned span back to its central list (after the cache was flushed). */
void hlm_own_abandon(struct hlm_tcache *tc)
{
    hlm_own_stash_release(tc);
    for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
        if (!tc->own[cls] && !tc->full[cls])
            continue;
        struct hlm_central *c = &central[tc->shard][cls];
        hlm_lock(&c->lock);
        for (struct hlm_span *sp = tc->xready[cls]; sp; sp = sp->xnext)
            sp->xlisted = 0;
        tc->xready[cls] = NULL;
        for (int l = 0; l < 2; l++) {
            struct hlm_span *sp = l ? tc->full[cls] : tc->own[cls];
            while (sp) {
                struct hlm_span *next = sp->next;
                if (sp->xfree) {
                    *(void **)sp->xtail = sp->free;
                    sp->free = sp->xfree;
                    sp->used -= sp->xcount;
                    sp->xfree = sp->xtail = NULL;
                    sp->xcount = 0;
                }
                span_set_owner(sp, NULL);
                sp->full = 0;
                sp->listed = 0;
                if (sp->used == 0) {
                    hlm_lock(&hlm_pages_lock);
                    pages_free(sp);
                    hlm_unlock(&hlm_pages_lock);
                } else if (sp->free || sp->bump < sp->end) {
                    partial_push(c, sp);
                }
                sp = next;
            }
        }
        tc->own[cls] = tc->full[cls] = NULL;
        hlm_unlock(&c->lock);
    }
}

void hlm_central_fork_prepare(void)
{
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_lock(&central[s][i].lock);
    hlm_lock(&hlm_pages_lock);
}

void hlm_central_fork_parent(void)
{
    hlm_unlock(&hlm_pages_lock);
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_unlock(&central[s][i].lock);
}

void hlm_central_fork_child(struct hlm_tcache *tc)
{
    /* the other threads' stashes are lost with them: the budget is this thread's */
    __atomic_store_n(&stash_total, tc ? tc->stash_bytes : 0, __ATOMIC_RELAXED);
    hlm_lock_reinit(&hlm_pages_lock);
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_lock_reinit(&central[s][i].lock);
}
/* HEAPLAB_STATS=2: one line per live span, to see where small-block memory sits. */
void hlm_small_dump(int fd)
{
    char line[160];
    hlm_lock(&hlm_pages_lock);
    for (struct hlm_segment *s = segments; s; s = s->next) {
        int m = snprintf(line, sizeof line, "  segment %p: %d free pages, %d of them dirty\n", (void *)s,
                         __builtin_popcountll(s->free_pages), __builtin_popcountll(s->free_pages & s->dirty_pages));
        hlm_os_write(fd, line, m > 0 && (size_t)m < sizeof line ? (size_t)m : 0);
        for (unsigned i = 1; i < HLM_SEG_PAGES; i++) {
            struct hlm_span *sp = &s->spans[i];
            if (!s->page_cls[i] || s->page_first[i] != i)
                continue;
            int n = snprintf(line, sizeof line, "  span %p: class %u (%u B), %u pages, %u of %u used, %zu carved\n",
                             (void *)hlm_span_start(sp), sp->cls, hlm_class_size[sp->cls], sp->npages,
                             sp->used, sp->cap,
                             (size_t)(sp->bump - hlm_span_start(sp)) / hlm_class_size[sp->cls]);
            hlm_os_write(fd, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
        }
    }
    hlm_unlock(&hlm_pages_lock);
}
