/*
 * owned.c: thread-owned spans.
 *
 * A thread cache refills from spans it owns: a span's whole free list moves into the
 * cache at once (no walk), never-used objects are carved in batches, and a free by the
 * owner goes straight back onto the span's free list (alloc.c's hlm_free), so a thread
 * that allocates and frees its own blocks takes no lock and makes no second pass over
 * them (the central lists cost a walk to flush, one to give back, one to take: threadtest
 * 2x mimalloc's time).  The owner keeps two lists per class: spans with free or
 * never-used objects (own, the first is used) and spans it found with none (full).  A
 * span whose last object the owner frees goes back to the pages unless it is the only
 * one on the own list.  Objects other threads free reach an owned span through the
 * central lists (central.c): they wait on its xfree list until the owner runs dry and
 * collects them.  At thread exit every owned span goes back to its central list.
 *
 * Data model and invariants: a span taken by a thread cache belongs to it (owner,
 * page_owner[]) until the thread exits; owner is written under the class's central lock
 * of the span's shard, and only ever set to a cache by that cache's thread.  While owned,
 * free, bump and used are the owner's alone (no lock).  An owned span is on exactly one
 * of its owner's lists: own[cls] (free or never-used objects; the first is current),
 * full[cls] (full == 1: none, as the owner last saw) or stash[cls] (stash.c).  xfree
 * objects (freed by other threads, under the central lock) count in used until
 * collected; a span with xfree objects is on its owner's xready[cls] (xlisted == 1).
 */
#include "small.h"

static void own_unlink(struct hlm_span **list, struct hlm_span *sp)
{
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        *list = sp->next;
    if (sp->next)
        sp->next->prev = sp->prev;
}

/* sp (on no list) into a list just behind at. */
static void own_insert_after(struct hlm_span *at, struct hlm_span *sp)
{
    sp->prev = at;
    sp->next = at->next;
    if (at->next)
        at->next->prev = sp;
    at->next = sp;
}

static void own_push(struct hlm_span **list, struct hlm_span *sp)
{
    sp->prev = NULL;
    sp->next = *list;
    if (*list)
        (*list)->prev = sp;
    *list = sp;
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
            own_insert_after(cur, sp);
        } else {
            own_push(&tc->own[cls], sp);
        }
    }
    /* (the current span, first on own, stays while empty if its class churns: a program
     * that frees what it just allocated, a round at a time, allocates the next round
     * from its free list instead of giving the span back and carving it again; the
     * scavenge gives it back once its class is idle.  Kept for every class, empty
     * current spans took the python trace's peak from 16.0 to 19.3 MiB.) */
    if (sp->used == 0 && (sp->prev || (sp->next && tc->churn[cls] != 2))) {
        hlm_assert(!sp->xlisted && !sp->xfree);
        own_unlink(&tc->own[cls], sp);
        if (hlm_stash_put(tc, sp))
            return;
        hlm_span_set_owner(sp, NULL);
        hlm_lock(&hlm_pages_lock);
        hlm_pages_free(sp);
        hlm_unlock(&hlm_pages_lock);
    }
}


/* Scavenge (alloc.c's tcache_gc): a class's current span, kept while empty so that a class
 * in use does not make and unmake a span at every block, goes back to the pages once it
 * is still empty at a scavenge while another class is busy.  A program whose sizes move
 * on (the fragmenter's rounds) kept one empty span of 64 KiB per class it had passed
 * through: 37 of them, 2.3 MiB, at its peak.  Not a class whose objects other threads
 * gave back since the last scavenge (tc->active, set by own_collect): a producer's rare
 * class is empty at most scavenges, its one block back from the consumer, and went back
 * and was made and carved again each time (tests/alloc/rare.c).  Not for the thread's
 * own refills: the empty spans of a single-threaded program, kept one interval longer,
 * raised the minimiser's faults (HISTORY.md). */
void hlm_own_release_idle(struct hlm_tcache *tc, unsigned busy)
{
    for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
        if (tc->stash[cls])
            hlm_stash_release(tc, cls, cls != busy);
        if (cls != busy)
            tc->churn[cls] = 0;
        struct hlm_span *sp = tc->own[cls];
        bool active = tc->active[cls];
        tc->active[cls] = 0;
        if (cls == busy || active || !sp || sp->used)
            continue;
        hlm_assert(!sp->xlisted && !sp->xfree && !sp->prev);
        own_unlink(&tc->own[cls], sp);
        hlm_span_set_owner(sp, NULL);
        hlm_lock(&hlm_pages_lock);
        hlm_pages_free(sp);
        hlm_unlock(&hlm_pages_lock);
    }
}

/* Take the objects other threads freed into the owner's spans of class cls. */
static bool own_collect(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_central *c = &hlm_central[tc->shard][cls];
    hlm_lock(&c->lock);
    struct hlm_span *sp = tc->xready[cls];
    __atomic_store_n(&tc->xready[cls], NULL, __ATOMIC_RELAXED);
    struct hlm_span *got = sp;
    if (sp)
        tc->active[cls] = 1;
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

/* Before carving or taking a span: objects other threads gave back to other shards'
 * spans of the class, which their owners did not need yet (larson: they piled up to
 * 400 KiB on the remote stacks while every thread carved more).  Returns how many. */
static unsigned steal(struct hlm_tcache *tc, unsigned cls, void **chain)
{
    for (unsigned k = 1; k < HLM_SHARDS; k++) {
        struct hlm_central *o = &hlm_central[(tc->shard + k) % HLM_SHARDS][cls];
        unsigned got;
        if (__atomic_load_n(&o->remote, __ATOMIC_RELAXED) && (got = hlm_remote_take(o, cls, chain)) != 0)
            return got;
    }
    return 0;
}

/* A span for the owner: one from its shard's partial list, else one another shard's
 * thread left at exit (adopted: it moves to this thread's shard, under its old shard's
 * lock; python-threads 4.73 -> 4.51 MiB: spans of finished threads sat on their shard's
 * list while the others took fresh pages), else fresh pages.  One central lock at a
 * time. */
static struct hlm_span *own_acquire(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_central *c = &hlm_central[tc->shard][cls];
    hlm_lock(&c->lock);
    struct hlm_span *sp = c->partial;
    if (sp) {
        hlm_partial_remove(c, sp);
        hlm_span_set_owner(sp, tc);
    }
    hlm_unlock(&c->lock);
    for (unsigned k = 1; k < HLM_SHARDS && !sp; k++) {
        struct hlm_central *o = &hlm_central[(tc->shard + k) % HLM_SHARDS][cls];
        if (!__atomic_load_n(&o->partial, __ATOMIC_RELAXED))
            continue;
        hlm_lock(&o->lock);
        if ((sp = o->partial) != NULL) {
            hlm_partial_remove(o, sp);
            hlm_span_set_owner(sp, tc);
            /* (release: whoever sees the new shard sees the new owner too) */
            __atomic_store_n(&sp->shard, (uint8_t)tc->shard, __ATOMIC_RELEASE);
        }
        hlm_unlock(&o->lock);
    }
    if (!sp) {   /* fresh pages: no other thread can reach the span yet */
        hlm_lock(&hlm_pages_lock);
        sp = hlm_pages_alloc(cls, tc->shard);
        hlm_unlock(&hlm_pages_lock);
        if (sp)
            hlm_span_set_owner(sp, tc);
    }
    return sp;
}


/* The owner's current span of cls has neither free nor never-used objects left: onto
 * the full list, where a free by the owner finds it (hlm_own_free_slow). */
static void own_to_full(struct hlm_tcache *tc, unsigned cls, struct hlm_span *sp)
{
    own_unlink(&tc->own[cls], sp);
    sp->full = 1;
    own_push(&tc->full[cls], sp);
}

/* malloc found the current span's free list and the class's bin empty.  When a thread
 * churns its own blocks that is nearly always the same case: the current span has no
 * never-used objects left, and the span behind it has free objects (frees into a full
 * span put it there, hlm_own_free_slow).  Make that one current (the used-up one goes to
 * full) and take an object: what hlm_own_refill's loop comes to when no blocks other
 * threads gave back wait (xready, the remote stacks: those go first, they keep larson's
 * footprint down), without its calls and without malloc's general slow path (HISTORY.md:
 * churn's refills).  NULL if it is not that case. */
void *hlm_own_next(struct hlm_tcache *tc, unsigned cls)
{
    struct hlm_span *sp = tc->own[cls], *nx;
    if (!sp || sp->free || (size_t)(sp->end - sp->bump) >= hlm_class_size[cls] ||
        !(nx = sp->next) || !nx->free)
        return NULL;
    if (__atomic_load_n(&tc->xready[cls], __ATOMIC_RELAXED))
        return NULL;
    for (unsigned k = 0; k < HLM_SHARDS; k++)
        if (__atomic_load_n(&hlm_central[k][cls].remote, __ATOMIC_RELAXED))
            return NULL;
    hlm_assert(sp->owner == tc && nx->owner == tc && !sp->prev && !sp->full && !nx->full);
    own_to_full(tc, cls, sp);
    void *o = nx->free;
    nx->free = *(void **)o;
    nx->used++;
    return o;
}

/* The current span sp still has never-used objects, but the next one on the owner's list
 * holds HLM_CARVE_BYTES or more of given-back ones: that one becomes current, sp second
 * (HLM_REUSE_FIRST_MIN, HLM_REUSE_FIRST_MAX).  Returns whether it did. */
static bool own_reuse_next(struct hlm_tcache *tc, unsigned cls, struct hlm_span *sp)
{
    struct hlm_span *nx = sp->next;
    if (!nx || !nx->free)
        return false;
    size_t carved = (size_t)(nx->bump - hlm_span_start(nx));
    if (carved - (size_t)nx->used * hlm_class_size[cls] < HLM_CARVE_BYTES)
        return false;
    hlm_assert(!sp->prev && nx->prev == sp && nx->owner == tc);
    own_unlink(&tc->own[cls], sp);
    own_insert_after(nx, sp);
    return true;
}

unsigned hlm_own_refill(struct hlm_tcache *tc, unsigned cls, void **chain, unsigned want)
{
    struct hlm_central *c = &hlm_central[tc->shard][cls];
    if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED)) {
        unsigned got = hlm_remote_take(c, cls, chain);
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
            if (left && size >= HLM_REUSE_FIRST_MIN && size < HLM_REUSE_FIRST_MAX &&
                own_reuse_next(tc, cls, sp))
                continue;
            if (left) {
                /* Never-used objects in address order: one now, and the next
                 * HLM_CARVE_BYTES (at least want objects) linked onto the span's free
                 * list, where malloc's fast path takes them; it comes back here when
                 * they are gone, to look for given-back objects first.  (Carving a batch
                 * into the cache touched it early; carving up to the span's end never
                 * looked: larson 2.70 -> 2.38 MiB with the stealing above; windows of 16
                 * KiB: 2.33, of 64 KiB: 3.39.  Carving the window one object per malloc
                 * in the fast path cost a third more instructions per carved block.) */
                uint32_t n = (uint32_t)(HLM_CARVE_BYTES / size);
                n = n > want ? n : want;
                n = n < left ? n : left;
                char *o = sp->bump, *last = o + (size_t)(n - 1) * size;
                *(void **)o = NULL;
                *chain = o;
                sp->used++;
                sp->bump = last + size;
                if (n > 1) {
                    for (char *q = o + size; q < last; q += size)
                        *(void **)q = q + size;
                    *(void **)last = NULL;
                    sp->free = o + size;
                }
                return 1;
            }
            own_to_full(tc, cls, sp);
            continue;
        }
        if (__atomic_load_n(&tc->xready[cls], __ATOMIC_ACQUIRE) && own_collect(tc, cls) && tc->own[cls])
            continue;
        unsigned got;
        if ((got = steal(tc, cls, chain)) != 0)
            return got;
        if ((sp = hlm_stash_take(tc, cls)) == NULL) {
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
        hlm_central_give(cls, rest, tail, nrest, hlm_tc_consumer(tc) ? -1 : (int)tc->shard);
}

/* Thread exit: every owned span back to its central list (after the cache was flushed). */
void hlm_own_abandon(struct hlm_tcache *tc)
{
    hlm_own_stash_release(tc);
    for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
        if (!tc->own[cls] && !tc->full[cls])
            continue;
        struct hlm_central *c = &hlm_central[tc->shard][cls];
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
                hlm_span_set_owner(sp, NULL);
                sp->full = 0;
                sp->listed = 0;
                if (sp->used == 0) {
                    hlm_lock(&hlm_pages_lock);
                    hlm_pages_free(sp);
                    hlm_unlock(&hlm_pages_lock);
                } else if (sp->free || sp->bump < sp->end) {
                    hlm_partial_push(c, sp);
                }
                sp = next;
            }
        }
        tc->own[cls] = tc->full[cls] = NULL;
        hlm_unlock(&c->lock);
    }
}
