/*
 * phases.c: a program with phases: memory ramps up, holds a plateau with steady churn,
 * climbs to a peak and falls back, then is released.  Optionally leaks: a fraction of
 * the blocks the program means to free are forgotten instead, so live bytes creep up
 * and `heaplab stat` shows a positive trend.
 *
 * The generator follows a target curve of live bytes: at each step it allocates if the
 * live bytes are under the target and frees a random live block otherwise, with some
 * reallocs (growing or shrinking a random block) and callocs mixed in.
 */
#include "gen.h"

#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"events", 1000000, 10, 1000000000, "events in the trace (about)"},
    {"plateau", 16u << 20, 1, 1ull << 40, "live bytes during the plateau"},
    {"peak", 48u << 20, 1, 1ull << 40, "live bytes at the peak"},
    {"min", 16, 1, 1u << 30, "smallest block, bytes"},
    {"max", 4096, 1, 1u << 30, "largest block, bytes (log-uniform)"},
    {"realloc", 5, 0, 100, "percent of steps that realloc a live block"},
    {"leak", 0, 0, 1000, "per mille of frees forgotten (leaked) instead"},
    {"work", 500, 0, 100000000, "ns of program work between calls"},
    {NULL, 0, 0, 0, NULL},
};

struct blk {
    uint64_t slot;
    uint64_t size;
};

/* Target live bytes at step i of n: ramp 20%, plateau 40%, peak up 10% and down 10%,
 * plateau 10%, release 10%. */
static double target(uint64_t i, uint64_t n, double plateau, double peak)
{
    double x = (double)i / (double)n;
    if (x < 0.2)
        return plateau * x / 0.2;
    if (x < 0.6)
        return plateau;
    if (x < 0.7)
        return plateau + (peak - plateau) * (x - 0.6) / 0.1;
    if (x < 0.8)
        return peak - (peak - plateau) * (x - 0.7) / 0.1;
    if (x < 0.9)
        return plateau;
    return plateau * (1.0 - (x - 0.9) / 0.1);
}

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint64_t n = v[0], lo = v[3], hi = v[4] < v[3] ? v[3] : v[4];
    double plateau = (double)v[1], peak = (double)(v[2] < v[1] ? v[1] : v[2]);
    uint64_t pre = v[5], leak = v[6], work = v[7];
    size_t cap = 1024, nlive = 0;
    struct blk *live = malloc(cap * sizeof *live);
    if (!live)
        abort();
    double bytes = 0; /* live bytes the program believes it holds (leaks excluded) */
    for (uint64_t i = 0; i < n && !hl_gen_failed(g); i++) {
        hl_gen_work(g, work);
        double t = target(i, n, plateau, peak);
        if (nlive && hl_gen_chance(g, pre)) {
            struct blk *b = &live[hl_gen_range(g, 0, nlive - 1)];
            uint64_t size = bytes < t ? b->size + b->size / 2 + 1 : b->size / 2 + 1;
            bytes += (double)size - (double)b->size;
            b->slot = hl_gen_realloc(g, 0, b->slot, size);
            b->size = size;
        } else if (bytes < t || !nlive) {
            if (nlive == cap) {
                cap *= 2;
                live = realloc(live, cap * sizeof *live);
                if (!live)
                    abort();
            }
            uint64_t size = hl_gen_logsize(g, lo, hi);
            uint64_t s = hl_gen_chance(g, 10) ? hl_gen_calloc(g, 0, 1, size) : hl_gen_malloc(g, 0, size);
            live[nlive++] = (struct blk){s, size};
            bytes += (double)size;
        } else {
            size_t k = hl_gen_range(g, 0, nlive - 1);
            /* a leak: the program drops its pointer instead of freeing it */
            if (!(leak && hl_gen_range(g, 0, 999) < leak))
                hl_gen_free(g, 0, live[k].slot);
            else
                i--; /* forgetting is not an event */
            bytes -= (double)live[k].size;
            live[k] = live[--nlive];
        }
    }
    /* Exit: whatever the program still holds is freed (leaked blocks stay leaked). */
    while (nlive && !hl_gen_failed(g))
        hl_gen_free(g, 0, live[--nlive].slot);
    free(live);
}

const struct hl_workload hl_wl_phases = {
    "phases",
    "ramp, plateau with churn, peak, release; optional slow leak (single thread)",
    "Live bytes follow a curve: ramp to `plateau` (20% of the events), hold it with\n"
    "churn, climb to `peak` and back, hold, then release.  `realloc` percent of steps\n"
    "resize a block; `leak` per mille of frees are forgotten, so live bytes creep up\n"
    "(stat's trend gets steeper and fits better).",
    params,
    run,
};
