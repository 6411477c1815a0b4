/*
 * cache_scratch.c: passive false sharing after Hoard's cache-scratch (Berger et al.,
 * ASPLOS 2000).
 *
 * The main thread allocates one small object per worker and hands them out; each worker
 * frees the object it was given, then repeatedly allocates an object of the same size,
 * writes it and frees it.  An allocator that gives the freed object back to the worker
 * that freed it lets workers keep writing objects that sit on the same cache line as
 * other workers' objects (passive false sharing).  The writes are not in the trace; the
 * allocation pattern that causes them is.
 */
#include "gen.h"

#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"threads", 4, 1, 1024, "worker threads (plus the main thread, 0)"},
    {"iterations", 125000, 1, 100000000, "malloc+free pairs per worker"},
    {"size", 8, 0, 1u << 20, "object size, bytes (smaller than a cache line)"},
    {"work", 50, 0, 1000000, "ns each worker spends writing its object per iteration"},
    {NULL, 0, 0, 0, NULL},
};

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint32_t nw = (uint32_t)v[0];
    uint64_t iters = v[1], size = v[2], work = v[3];
    uint32_t *given = malloc(nw * sizeof *given);
    uint64_t *done = calloc(nw, sizeof *done);
    if (!given || !done)
        abort();
    /* The main thread (0) allocates the workers' first objects back to back: they share
     * cache lines. */
    for (uint32_t w = 0; w < nw; w++)
        given[w] = hl_gen_malloc(g, 0, size);
    uint32_t active = nw;
    hl_gen_running(g, nw);
    /* Workers are threads 1..nw; each first frees what main gave it. */
    for (uint32_t w = 0; w < nw; w++)
        hl_gen_free(g, w + 1, given[w]);
    while (active && !hl_gen_failed(g)) {
        uint32_t w = (uint32_t)hl_gen_range(g, 0, nw - 1);
        if (done[w] >= iters)
            continue;
        for (uint64_t q = hl_gen_range(g, 1, 64); q && done[w] < iters; q--) {
            uint64_t s = hl_gen_malloc(g, w + 1, size);
            hl_gen_work(g, work / active);
            hl_gen_free(g, w + 1, s);
            done[w]++;
        }
        if (done[w] >= iters)
            hl_gen_running(g, --active ? active : 1);
    }
    free(given);
    free(done);
}

const struct hl_workload hl_wl_cache_scratch = {
    "cache-scratch",
    "passive false sharing: workers free objects main gave them, then churn that size",
    "Thread 0 allocates one `size`-byte object per worker; worker i (thread i) frees it,\n"
    "then `iterations` times allocates a same-size object, writes it for `work` ns and\n"
    "frees it.",
    params,
    run,
};
