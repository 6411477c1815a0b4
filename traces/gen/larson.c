/*
 * larson.c: a server-like workload after Larson and Krishnan's benchmark ("Memory
 * allocation for long-running server applications", ISMM 1998).
 *
 * Each thread owns an array of blocks and, step after step, frees a random one and puts
 * a new block of random size in its place.  Every `round` steps a thread hands its array
 * to the next thread (as a server hands a connection's state to another worker), so the
 * new owner frees blocks that another thread allocated: the cross-thread frees that
 * defeat allocators with purely thread-local free lists.  The threads' steps are
 * interleaved in random quanta.
 */
#include "gen.h"

#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"threads", 4, 1, 1024, "worker threads"},
    {"blocks", 1000, 1, 1000000, "blocks held by each thread's array"},
    {"steps", 125000, 0, 100000000, "free+malloc steps per thread"},
    {"round", 5000, 1, 100000000, "steps between hand-overs of the arrays to the next thread"},
    {"min", 16, 0, 1u << 30, "smallest block, bytes"},
    {"max", 512, 0, 1u << 30, "largest block, bytes (uniform in [min, max])"},
    {NULL, 0, 0, 0, NULL},
};

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint32_t nt = (uint32_t)v[0];
    uint64_t nb = v[1], steps = v[2], round = v[3], lo = v[4], hi = v[5] < v[4] ? v[4] : v[5];
    uint64_t *slots = malloc(nt * nb * sizeof *slots); /* array a: slots[a*nb .. ] */
    uint32_t *array_of = malloc(nt * sizeof *array_of); /* thread -> array it holds */
    uint64_t *done = calloc(nt, sizeof *done);
    if (!slots || !array_of || !done)
        abort();

    hl_gen_running(g, nt);
    for (uint32_t t = 0; t < nt; t++) {
        array_of[t] = t;
        for (uint64_t i = 0; i < nb; i++)
            slots[t * nb + i] = hl_gen_malloc(g, t, hl_gen_range(g, lo, hi));
    }
    uint32_t active = steps ? nt : 0;
    while (active && !hl_gen_failed(g)) {
        uint32_t t = (uint32_t)hl_gen_range(g, 0, nt - 1);
        if (done[t] >= steps)
            continue;
        uint64_t q = hl_gen_range(g, 1, 64);
        for (; q && done[t] < steps; q--) {
            uint64_t *a = &slots[array_of[t] * nb];
            uint64_t i = hl_gen_range(g, 0, nb - 1);
            hl_gen_free(g, t, a[i]);
            a[i] = hl_gen_malloc(g, t, hl_gen_range(g, lo, hi));
            if (++done[t] % round == 0 && nt > 1) {
                /* hand over: swap arrays with the next thread */
                uint32_t u = (t + 1) % nt, tmp = array_of[t];
                array_of[t] = array_of[u];
                array_of[u] = tmp;
            }
        }
        if (done[t] >= steps)
            hl_gen_running(g, --active ? active : 1);
    }
    /* Shut down: each array is freed by the thread holding it. */
    hl_gen_running(g, 1);
    for (uint32_t t = 0; t < nt; t++)
        for (uint64_t i = 0; i < nb; i++)
            hl_gen_free(g, t, slots[array_of[t] * nb + i]);
    free(slots);
    free(array_of);
    free(done);
}

const struct hl_workload hl_wl_larson = {
    "larson",
    "server-like: threads replace random blocks, arrays handed between threads",
    "Each thread frees a random block of its array and allocates a new one of random\n"
    "size in its place; every `round` steps it hands the array to the next thread, whose\n"
    "frees are then cross-thread frees.  Memory in use stays flat.",
    params,
    run,
};
