/*
 * fragmenter.c: interleaved long- and short-lived blocks of growing sizes, the pattern
 * that defeats simple allocators (Wilson et al., "Dynamic storage allocation: a survey
 * and critical review", 1995, on phase behaviour and fragmentation).
 *
 * Each round allocates blocks alternately short-lived and long-lived, so the two kinds
 * sit side by side in memory.  The short-lived ones die at the end of the round and
 * leave holes between the long-lived survivors; block sizes grow from round to round,
 * so the holes are always a little too small for what comes next.  Long-lived blocks die
 * `keep` rounds later.
 */
#include "gen.h"

#include <math.h>
#include <stdlib.h>

static const struct hl_gen_param params[] = {
    {"rounds", 200, 1, 10000000, "rounds"},
    {"blocks", 2500, 2, 10000000, "blocks allocated per round (half short-, half long-lived)"},
    {"min", 16, 1, 1u << 30, "block size in the first round, bytes"},
    {"max", 2048, 1, 1u << 30, "block size in the last round, bytes (geometric growth)"},
    {"keep", 10, 1, 1000000, "rounds a long-lived block survives"},
    {NULL, 0, 0, 0, NULL},
};

static void run(struct hl_gen *g, const uint64_t *v)
{
    uint64_t rounds = v[0], nb = v[1], lo = v[2], hi = v[3] < v[2] ? v[2] : v[3], keep = v[4];
    uint64_t nlong = nb / 2, nshort = nb - nlong;
    /* long-lived blocks of the last `keep` rounds, a ring of rounds */
    uint64_t *longs = malloc((keep + 1) * nlong * sizeof *longs);
    uint32_t *shorts = malloc(nshort * sizeof *shorts);
    if (!longs || !shorts)
        abort();
    for (uint64_t r = 0; r < rounds && !hl_gen_failed(g); r++) {
        double f = rounds > 1 ? (double)r / (double)(rounds - 1) : 0.0;
        uint64_t base = (uint64_t)((double)lo * pow((double)hi / (double)lo, f));
        uint64_t *lr = &longs[(r % (keep + 1)) * nlong];
        uint64_t il = 0, is = 0;
        for (uint64_t i = 0; i < nb; i++) {
            /* sizes vary by up to 1/8 around the round's base size */
            uint64_t size = base + hl_gen_range(g, 0, base / 8);
            if (i % 2 == 0 && is < nshort)
                shorts[is++] = hl_gen_malloc(g, 0, size);
            else
                lr[il++] = hl_gen_malloc(g, 0, size);
        }
        for (uint64_t i = 0; i < is; i++)
            hl_gen_free(g, 0, shorts[i]);
        if (r >= keep) { /* the long-lived blocks of round r - keep die now */
            uint64_t *old = &longs[((r - keep) % (keep + 1)) * nlong];
            for (uint64_t i = 0; i < nlong; i++)
                hl_gen_free(g, 0, old[i]);
        }
        hl_gen_work(g, 10000); /* the program does something else between rounds */
    }
    /* teardown: the survivors of the last rounds */
    uint64_t first = rounds > keep ? rounds - keep : 0;
    for (uint64_t r = first; r < rounds; r++)
        for (uint64_t i = 0; i < nlong; i++)
            hl_gen_free(g, 0, longs[(r % (keep + 1)) * nlong + i]);
    free(longs);
    free(shorts);
}

const struct hl_workload hl_wl_fragmenter = {
    "fragmenter",
    "interleaved long- and short-lived blocks of growing sizes (single thread)",
    "Each round allocates `blocks` blocks alternately short- and long-lived, frees the\n"
    "short-lived ones at its end and the long-lived ones `keep` rounds later; the size\n"
    "grows geometrically from `min` to `max` over the rounds, so freed holes never fit.",
    params,
    run,
};
