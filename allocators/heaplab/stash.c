/*
 * stash.c: a churning thread's empty spans, kept owned for its next refill.
 *
 * Data model: tc->stash[cls] lists the stashed spans of a class (linked by next; owned by
 * tc, used == 0, free list and carved objects intact; stashed is 1, or 2 once the span
 * stayed stashed through a scavenge); tc->stash_bytes is their pages' size and
 * stash_total the sum over all threads.  Invariants: tc->stash_bytes <= HLM_STASH_BYTES
 * and stash_total <= HLM_STASH_TOTAL; a class is stashed only while it churns
 * (tc->churn[cls] == 2) and only while other threads run.
 */
#include "small.h"

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

bool hlm_stash_put(struct hlm_tcache *tc, struct hlm_span *sp)
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

struct hlm_span *hlm_stash_take(struct hlm_tcache *tc, unsigned cls)
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
void hlm_stash_release(struct hlm_tcache *tc, unsigned cls, bool all)
{
    struct hlm_span **pp = &tc->stash[cls], *sp, *gone = NULL;
    while ((sp = *pp) != NULL) {
        if (all || sp->stashed > 1) {
            *pp = sp->next;
            tc->stash_bytes -= (size_t)sp->npages << HLM_PAGE_SHIFT;
            __atomic_sub_fetch(&stash_total, (size_t)sp->npages << HLM_PAGE_SHIFT, __ATOMIC_RELAXED);
            sp->stashed = 0;
            hlm_span_set_owner(sp, NULL);
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
        hlm_pages_free(sp);
    }
    hlm_unlock(&hlm_pages_lock);
}

void hlm_own_stash_release(struct hlm_tcache *tc)
{
    for (unsigned cls = 1; cls < HLM_NCLASSES && tc->stash_bytes; cls++)
        if (tc->stash[cls])
            hlm_stash_release(tc, cls, true);
}

/* After fork: the other threads' stashes are lost with them; the budget is this thread's. */
void hlm_stash_fork_child(struct hlm_tcache *tc)
{
    __atomic_store_n(&stash_total, tc ? tc->stash_bytes : 0, __ATOMIC_RELAXED);
}
