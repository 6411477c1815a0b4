/*
 * remote.c: remote frees.  A thread flushing objects that belong to another shard's spans
 * pushes the batch onto that shard's lock-free stack (one CAS) instead of taking the lock
 * the owner needs to refill; the owner's next refill takes the whole stack with one
 * exchange, and a thread about to carve or take a span steals from the other shards'.
 *
 * Data model: hlm_central[shard][cls].remote is a stack of batches; a batch is a
 * NULL-terminated chain of objects (link in each object's first word) whose first
 * object's second word links the next batch, and, in classes of 32 bytes or more
 * (hlm_remote_headed), whose third and fourth words hold the batch's length and its last
 * object: taking a stack touches two objects per batch instead of walking every one,
 * each a cache miss (the freeing thread wrote it on another core).  remote_n counts the
 * objects on the stack (approximate while it changes).  Invariant: every object on a
 * stack is allocated from the allocator's point of view (its span counts it in used)
 * until it is taken.  Bounded by HLM_REMOTE_BYTES per class and shard; beyond it, the
 * locked path (central.c).
 */
#include "small.h"

/* Take every batch on c's remote stack as one NULL-terminated chain; returns its length. */
unsigned hlm_remote_take(struct hlm_central *c, unsigned cls, void **chain)
{
    void *b = __atomic_exchange_n(&c->remote, NULL, __ATOMIC_ACQUIRE);
    const bool headed = hlm_remote_headed(cls);
    unsigned n = 0;
    *chain = b;
    while (b) {
        void *next_batch = ((void **)b)[1], *o = b;
        if (headed) {
            n += (unsigned)(uintptr_t)((void **)b)[2];
            o = ((void **)b)[3];
        } else {
            for (n++; *(void **)o; o = *(void **)o)
                n++;
        }
        *(void **)o = next_batch;   /* the batch's tail continues with the next batch */
        b = next_batch;
    }
    __atomic_sub_fetch(&c->remote_n, n, __ATOMIC_RELAXED);
    return n;
}

void hlm_central_give(unsigned cls, void *chain, void *last, unsigned count, int from_shard)
{
    struct hlm_central *r = &hlm_central[hlm_span_of(chain)->shard % HLM_SHARDS][cls];
    if (from_shard >= 0 && r != &hlm_central[from_shard][cls] &&
        __atomic_load_n(&r->remote_n, __ATOMIC_RELAXED) * hlm_class_size[cls] < HLM_REMOTE_BYTES) {
        __atomic_add_fetch(&r->remote_n, count, __ATOMIC_RELAXED);
        if (hlm_remote_headed(cls)) {
            hlm_assert(last && *(void **)last == NULL);
            ((void **)chain)[2] = (void *)(uintptr_t)count;
            ((void **)chain)[3] = last;
        }
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
                hlm_remote_take(&hlm_central[s][cls], cls, &chain))
                hlm_central_give_locked(cls, chain);
        }
}
