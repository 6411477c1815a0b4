/*
 * small.h: the internal interfaces of the small-block heap behind the thread caches,
 * shared by the files that make it up (hlm.h has what the rest of the allocator sees):
 *
 *   classes.c   size classes and the size -> class tables
 *   segments.c  4 MiB segments cut into 64 KiB pages; spans made from free pages
 *   purge.c     when and how free dirty pages go back to the kernel
 *   central.c   per shard and class, the spans nobody owns (partial lists)
 *   remote.c    lock-free stacks of objects freed into another shard's spans
 *   owned.c     spans owned by a thread: refill, free, collect, give back at exit
 *   stash.c     a churning thread's empty spans, kept owned for its next refill
 *
 * Locks: a class's central lock (per shard), then hlm_pages_lock, never the other way
 * round.  A span's owner and page_owner[] change under its shard's central lock.
 */
#ifndef HLM_SMALL_H
#define HLM_SMALL_H

#include "hlm.h"
#include "tunables.h"

/* ---- central lists (central.c) -------------------------------------------------------- */

/* One per shard and class.  partial: the spans of the class that nobody owns and that
 * have free or never-used objects (listed == 1 exactly for those), under lock.  remote,
 * remote_n: remote.c's stack of batches, lock-free. */
struct hlm_central {
    hlm_lock_t lock;
    struct hlm_span *partial;   /* spans of this class with free or never-used objects */
    void *remote;               /* stack of batches freed by other shards' threads */
    size_t remote_n;            /* objects on it (approximate while it changes) */
} __attribute__((aligned(64)));

extern struct hlm_central hlm_central[HLM_SHARDS][HLM_NCLASSES];

static inline void hlm_partial_push(struct hlm_central *c, struct hlm_span *sp)
{
    sp->prev = NULL;
    sp->next = c->partial;
    if (c->partial)
        c->partial->prev = sp;
    c->partial = sp;
    sp->listed = 1;
}

static inline void hlm_partial_remove(struct hlm_central *c, struct hlm_span *sp)
{
    if (sp->prev)
        sp->prev->next = sp->next;
    else
        c->partial = sp->next;
    if (sp->next)
        sp->next->prev = sp->prev;
    sp->listed = 0;
}

/* Give a chain back to the spans it came from, under their shards' central locks. */
void hlm_central_give_locked(unsigned cls, void *chain);

/* ---- segments and pages (segments.c, purge.c), under hlm_pages_lock ---------------------- */

/* The page heap: every segment on one list; counts of segments, of segments without a
 * span, of free pages that may be resident (dirty) and of pages freed since the last
 * purge pass. */
struct hlm_page_heap {
    struct hlm_segment *segments;
    size_t nsegments, empty_segments, dirty_pages, freed_pages;
    size_t retaken;     /* purged pages spans took again since the last pass */
    size_t keep_more;   /* pages a pass keeps beyond its base: twice the most retaken */
};
extern struct hlm_page_heap hlm_pg;

/* A span's owner, in the span and in its pages' page_owner (which free() reads). */
static inline void hlm_span_set_owner(struct hlm_span *sp, struct hlm_tcache *tc)
{
    struct hlm_segment *s = hlm_segment_of(sp);
    __atomic_store_n(&sp->owner, tc, __ATOMIC_RELAXED);
    for (unsigned i = sp->first; i < (unsigned)sp->first + sp->npages; i++)
        __atomic_store_n(&s->page_owner[i], tc, __ATOMIC_RELAXED);
}

struct hlm_span *hlm_pages_alloc(unsigned cls, unsigned shard);   /* NULL: out of memory */
void hlm_pages_free(struct hlm_span *sp);
void hlm_pages_purge(size_t keep);
void hlm_pages_purge_maybe(void);   /* after pages were freed: a pass if enough were */

/* ---- remote frees (remote.c) ---------------------------------------------------------- */

unsigned hlm_remote_take(struct hlm_central *c, unsigned cls, void **chain);
/* A batch of class cls carries its length and last object (remote.c). */
static inline bool hlm_remote_headed(unsigned cls)
{
    return hlm_class_size[cls] >= 4 * sizeof(void *);
}

/* ---- stash (stash.c) ------------------------------------------------------------------ */

bool hlm_stash_put(struct hlm_tcache *tc, struct hlm_span *sp);
struct hlm_span *hlm_stash_take(struct hlm_tcache *tc, unsigned cls);
void hlm_stash_release(struct hlm_tcache *tc, unsigned cls, bool all);
void hlm_stash_fork_child(struct hlm_tcache *tc);

#endif
