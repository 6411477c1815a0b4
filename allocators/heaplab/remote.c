/*
 * remote.c: remote frees.  A thread flushing objects that belong to another shard's spans
 * pushes the batch onto that shard's lock-free stack (one CAS) instead of taking the lock
 * the owner needs to refill; the owner's next refill takes the whole stack with one
 * exchange, and a thread about to carve or take a span steals from the other shards'.
 *
 * Data model: hlm_central[shard][cls].remote is a stack of batches; a batch is a
 * NULL-terminated chain of objects (link in each object's first word) whose first
 * object's second word links the next batch.  remote_n counts the objects on the stack
 * (approximate while it changes).  Invariant: every object on a stack is allocated from
 * the allocator's point of view (its span counts it in used) until it is taken.  Bounded
 * by HLM_REMOTE_BYTES per class and shard; beyond it, the locked path (central.c).
 */
#include "small.h"

/* Take every batch on c's remote stack as one NULL-terminated chain; returns its length. */
unsigned hlm_remote_take(struct hlm_central *c, void **chain)
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

void hlm_central_give(unsigned cls, void *chain, unsigned count, int from_shard)
{
    struct hlm_central *r = &hlm_central[hlm_span_of(chain)->shard % HLM_SHARDS][cls];
    if (from_shard >= 0 && r != &hlm_central[from_shard][cls] &&
        __atomic_load_n(&r->remote_n, __ATOMIC_RELAXED) * hlm_class_size[cls] < HLM_REMOTE_BYTES) {
        __atomic_add_fetch(&r->remote_n, count, __ATOMIC_RELAXED);
        void *top = __atomic_load_n(&r->remote, __ATOMIC_RELAXED);
        do
            ((void **)chain)[1] = top;
        while (!__atomic_compare_exchange_n(&r->remote, &top, chain, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
        return;
    }
    hlm_central_give_locked(cls, chain);
}

/* Give the remote stacks back to their spans, so that empty spans can go (malloc_trim). */
void hlm_central_drain(void)
{
    for (unsigned s = 0; s < HLM_SHARDS; s++)
        for (unsigned cls = 1; cls < HLM_NCLASSES; cls++) {
            void *chain;
            if (__atomic_load_n(&hlm_central[s][cls].remote, __ATOMIC_RELAXED) &&
                hlm_remote_take(&hlm_central[s][cls], &chain))
                hlm_central_give_locked(cls, chain);
        }
}
