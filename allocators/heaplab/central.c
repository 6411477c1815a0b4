/*
 * central.c: the central lists, one per shard and size class (struct hlm_central in
 * small.h): the spans nobody owns that still have free or never-used objects, and the
 * locked path by which objects freed by a thread that does not own their span go back.
 *
 * Data model and invariants:
 *  - a span not owned by a thread is on its shard's partial list of its class exactly
 *    when listed == 1, and then it has free or never-used objects;
 *  - a span's shard changes only under its old shard's lock (owned.c adopting it);
 *  - an object freed into an owned span waits on the span's xfree list (counted in used)
 *    and the span on its owner's xready list, until the owner collects it (owned.c);
 *  - an empty unowned span goes back to the pages unless it is its class's only one.
 * Objects move between here and the thread caches in batches, so each lock is taken
 * once per batch, not per call.  Locks: a class's central lock, then hlm_pages_lock.
 */
#include "small.h"

struct hlm_central hlm_central[HLM_SHARDS][HLM_NCLASSES];

unsigned hlm_central_take(unsigned shard, unsigned cls, void **chain, unsigned want)
{
    struct hlm_central *c = &hlm_central[shard][cls];
    size_t size = hlm_class_size[cls];
    void *head = NULL, **tail = &head;
    unsigned got = 0;
    if (__atomic_load_n(&c->remote, __ATOMIC_RELAXED)) {
        got = hlm_remote_take(c, cls, chain);
        if (got)
            return got;
    }
    hlm_lock(&c->lock);
    while (got < want) {
        struct hlm_span *sp = c->partial;
        if (!sp) {
            hlm_lock(&hlm_pages_lock);
            sp = hlm_pages_alloc(cls, shard);
            hlm_unlock(&hlm_pages_lock);
            if (!sp)
                break;
            hlm_partial_push(c, sp);
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
                hlm_partial_remove(c, sp);
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
            hlm_partial_remove(c, sp);
    }
    *tail = NULL;
    hlm_unlock(&c->lock);
    *chain = head;
    return got;
}

void hlm_central_give_locked(unsigned cls, void *chain)
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
        while ((want = &hlm_central[__atomic_load_n(&sp->shard, __ATOMIC_ACQUIRE) % HLM_SHARDS][cls]) != c) {
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
            hlm_partial_push(c, sp);
        /* An empty span goes back to the pages unless it is the class's only one. */
        if (sp->used == 0 && (sp->prev || sp->next)) {
            hlm_partial_remove(c, sp);
            hlm_lock(&hlm_pages_lock);
            hlm_pages_free(sp);
            hlm_unlock(&hlm_pages_lock);
        }
    }
    if (c)
        hlm_unlock(&c->lock);
}

void hlm_central_fork_prepare(void)
{
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_lock(&hlm_central[s][i].lock);
    hlm_lock(&hlm_pages_lock);
}

void hlm_central_fork_parent(void)
{
    hlm_unlock(&hlm_pages_lock);
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_unlock(&hlm_central[s][i].lock);
}

void hlm_central_fork_child(struct hlm_tcache *tc)
{
    hlm_stash_fork_child(tc);
    hlm_lock_reinit(&hlm_pages_lock);
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned i = 1; i < HLM_NCLASSES; i++)
            hlm_lock_reinit(&hlm_central[s][i].lock);
}
