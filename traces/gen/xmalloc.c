/*
 * xmalloc.c: producer/consumer threads after xmalloc-test (Lever and Boreham, "malloc()
 * performance in a multithreaded Linux environment", USENIX 2000).
 *
 * Producer threads allocate blocks and pass them through a bounded queue to consumer
 * threads, which free them: every free is a cross-thread free, and memory flows in one
 * direction between threads, the pattern that strands memory in per-thread caches.
 */
#include "gen.h"

#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"producers", 2, 1, 512, "threads that allocate"},
    {"consumers", 2, 1, 512, "threads that free"},
    {"blocks", 500000, 0, 100000000, "blocks produced in total"},
    {"queue", 4096, 1, 10000000, "capacity of the queue between them"},
    {"min", 8, 0, 1u << 30, "smallest block, bytes"},
    {"max", 256, 0, 1u << 30, "largest block, bytes (uniform in [min, max])"},
    {NULL, 0, 0, 0, NULL},
};

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint32_t np = (uint32_t)v[0], nc = (uint32_t)v[1], nt = np + nc;
    uint64_t total = v[2], cap = v[3], lo = v[4], hi = v[5] < v[4] ? v[4] : v[5];
    uint64_t *q = malloc(cap * sizeof *q); /* ring buffer of slots */
    if (!q)
        abort();
    uint64_t head = 0, tail = 0, made = 0, freed = 0;
    hl_gen_running(g, nt);
    while (freed < total && !hl_gen_failed(g)) {
        /* Threads 0..np-1 produce, np..nt-1 consume; one that cannot proceed (queue
         * full or empty) waits, and another runs. */
        uint32_t t = (uint32_t)hl_gen_range(g, 0, nt - 1);
        for (uint64_t n = hl_gen_range(g, 1, 64); n; n--) {
            if (t < np) {
                if (made == total || tail - head == cap)
                    break;
                q[tail++ % cap] = hl_gen_malloc(g, t, hl_gen_range(g, lo, hi));
                made++;
            } else {
                if (tail == head)
                    break;
                hl_gen_free(g, t, q[head++ % cap]);
                freed++;
            }
        }
    }
    free(q);
}

const struct hl_workload hl_wl_xmalloc = {
    "xmalloc",
    "producer/consumer: producers allocate, consumers free through a queue",
    "`producers` threads allocate blocks of random size into a bounded FIFO queue;\n"
    "`consumers` threads take them out and free them, so every free is cross-thread.",
    params,
    run,
};
