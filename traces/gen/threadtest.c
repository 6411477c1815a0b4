/*
 * threadtest.c: per-thread churn after Hoard's threadtest (Berger et al., ASPLOS 2000).
 *
 * Every thread, independently, allocates a batch of equal-size objects and then frees
 * them all, over and over.  No block crosses threads: the test is how well an
 * allocator scales when threads only compete for its internal locks.
 */
#include "gen.h"

#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"threads", 4, 1, 1024, "threads"},
    {"iterations", 50, 1, 100000000, "alloc-all/free-all rounds per thread"},
    {"objects", 2500, 1, 10000000, "objects allocated per round by each thread"},
    {"size", 64, 0, 1u << 30, "object size, bytes"},
    {"work", 0, 0, 1000000, "ns of work between calls (simulated, advances the clock)"},
    {"resize", 0, 0, 1000, "reallocs of each object before it is freed (each makes a new block)"},
    {NULL, 0, 0, 0, NULL},
};

struct thr {
    uint64_t iter, i;
    int freeing;
};

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint32_t nt = (uint32_t)v[0];
    uint64_t iters = v[1], nobj = v[2], size = v[3], work = v[4], resize = v[5];
    uint64_t *slots = malloc(nt * nobj * sizeof *slots);
    struct thr *th = calloc(nt, sizeof *th);
    if (!slots || !th)
        abort();
    uint32_t active = nt;
    hl_gen_running(g, nt);
    while (active && !hl_gen_failed(g)) {
        uint32_t t = (uint32_t)hl_gen_range(g, 0, nt - 1);
        struct thr *s = &th[t];
        if (s->iter >= iters)
            continue;
        for (uint64_t q = hl_gen_range(g, 1, 64); q && s->iter < iters; q--) {
            uint64_t *slot = &slots[t * nobj + s->i];
            if (!s->freeing) {
                *slot = hl_gen_malloc(g, t, size);
                /* Alternately twice as large and back, so that each one moves. */
                for (uint64_t k = 1; k <= resize; k++)
                    *slot = hl_gen_realloc(g, t, *slot, k % 2 ? 2 * size : size);
            } else {
                hl_gen_free(g, t, *slot);
            }
            if (work)
                hl_gen_work(g, work / active);
            if (++s->i == nobj) {
                s->i = 0;
                if (s->freeing)
                    s->iter++;
                s->freeing = !s->freeing;
            }
        }
        if (s->iter >= iters)
            hl_gen_running(g, --active ? active : 1);
    }
    free(slots);
    free(th);
}

const struct hl_workload hl_wl_threadtest = {
    "threadtest",
    "per-thread churn: each thread allocates a batch of objects, then frees them all",
    "Threads run independently (no block crosses threads), each repeating `iterations`\n"
    "times: allocate `objects` blocks of `size` bytes, then free them in the same order.\n"
    "With `resize` R, each object is reallocated R times as it is allocated (to twice\n"
    "its size and back): R + 1 blocks created per object, in R + 2 events.",
    params,
    run,
};
