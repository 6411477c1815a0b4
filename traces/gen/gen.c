/*
 * gen.c: the emitter behind every synthetic workload (see gen.h): PRNG, slot ids, the
 * simulated clock, and writing through hl_writer.
 */
#include "gen.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

extern const struct hl_workload hl_wl_larson, hl_wl_threadtest, hl_wl_xmalloc,
    hl_wl_cache_scratch, hl_wl_fragmenter, hl_wl_phases;

const struct hl_workload *const hl_workloads[] = {
    &hl_wl_larson,     &hl_wl_threadtest, &hl_wl_xmalloc, &hl_wl_cache_scratch,
    &hl_wl_fragmenter, &hl_wl_phases,     NULL,
};

const struct hl_workload *hl_workload_find(const char *name)
{
    for (int i = 0; hl_workloads[i]; i++)
        if (strcmp(hl_workloads[i]->name, name) == 0)
            return hl_workloads[i];
    return NULL;
}

struct hl_gen {
    struct hl_writer *w;
    struct hl_err *err;
    int failed;
    uint64_t s[4];      /* xoshiro256** state */
    uint64_t now;       /* simulated clock, ns */
    uint32_t running;   /* threads running at once, shares the per-call cost */
    uint64_t next_slot; /* the slot rule: allocations get 0, 1, 2, ... */
    uint32_t nthreads;
    uint64_t events, bytes;
};

/* ---- PRNG: splitmix64 seeds xoshiro256** (Blackman & Vigna) ---- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t hl_gen_rand(struct hl_gen *g)
{
    uint64_t *s = g->s;
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

uint64_t hl_gen_range(struct hl_gen *g, uint64_t lo, uint64_t hi)
{
    if (hi <= lo)
        return lo;
    uint64_t span = hi - lo + 1;
    if (span == 0) /* the whole 64-bit range */
        return hl_gen_rand(g);
    /* Lemire's multiply-shift; the tiny bias is irrelevant for workloads and keeps the
     * number of PRNG draws per call fixed, which keeps traces easy to reason about. */
    return lo + (uint64_t)(((unsigned __int128)hl_gen_rand(g) * span) >> 64);
}

uint64_t hl_gen_logsize(struct hl_gen *g, uint64_t lo, uint64_t hi)
{
    if (lo < 1)
        lo = 1;
    if (hi <= lo)
        return lo;
    double u = (double)(hl_gen_rand(g) >> 11) * 0x1.0p-53;
    double v = exp(log((double)lo) + u * (log((double)hi + 1.0) - log((double)lo)));
    uint64_t s = (uint64_t)v;
    return s < lo ? lo : s > hi ? hi : s;
}

int hl_gen_chance(struct hl_gen *g, uint64_t pct)
{
    return hl_gen_range(g, 0, 99) < pct;
}

/* ---- emitting ---- */

int hl_gen_failed(const struct hl_gen *g)
{
    return g->failed;
}

void hl_gen_running(struct hl_gen *g, uint32_t n)
{
    g->running = n ? n : 1;
}

void hl_gen_work(struct hl_gen *g, uint64_t ns)
{
    g->now += ns;
}

static void emit(struct hl_gen *g, struct hl_event *e)
{
    if (g->failed)
        return;
    /* A call and the program's bookkeeping around it cost 50-250 ns of one thread's
     * time; with several threads running the global clock moves correspondingly less
     * between two events. */
    g->now += hl_gen_range(g, 50, 250) / g->running;
    e->time_ns = g->now;
    if (e->thread + 1 > g->nthreads)
        g->nthreads = e->thread + 1;
    if (hl_writer_event(g->w, e, g->err) < 0)
        g->failed = 1;
    g->events++;
}

static uint64_t emit_alloc(struct hl_gen *g, uint32_t thread, int op, uint64_t size, uint64_t aux,
                           uint64_t old)
{
    struct hl_event e = {.size = size, .aux = aux, .slot = g->next_slot, .old_slot = old,
                         .thread = thread, .op = (uint8_t)op};
    emit(g, &e);
    g->bytes += hl_event_bytes(&e);
    return g->next_slot++;
}

uint64_t hl_gen_malloc(struct hl_gen *g, uint32_t thread, uint64_t size)
{
    return emit_alloc(g, thread, HL_OP_MALLOC, size, 0, HL_NO_SLOT);
}

uint64_t hl_gen_calloc(struct hl_gen *g, uint32_t thread, uint64_t nmemb, uint64_t size)
{
    return emit_alloc(g, thread, HL_OP_CALLOC, size, nmemb, HL_NO_SLOT);
}

uint64_t hl_gen_realloc(struct hl_gen *g, uint32_t thread, uint64_t slot, uint64_t size)
{
    return emit_alloc(g, thread, HL_OP_REALLOC, size, 0, slot);
}

void hl_gen_free(struct hl_gen *g, uint32_t thread, uint64_t slot)
{
    struct hl_event e = {.slot = slot, .old_slot = HL_NO_SLOT, .thread = thread,
                         .op = HL_OP_FREE};
    emit(g, &e);
}

int hl_gen_run(const struct hl_workload *wl, const uint64_t *v, uint64_t seed, const char *out,
               const char *cmdline, struct hl_gen_result *res, struct hl_err *err)
{
    struct hl_gen g;
    memset(&g, 0, sizeof g);
    g.err = err;
    g.running = 1;
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        g.s[i] = splitmix64(&x);

    g.w = hl_writer_open(out, err);
    if (!g.w)
        return -1;
    /* Nothing machine- or time-dependent goes in the header: same seed, same bytes. */
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = 1;
    p.ppid = 0;
    p.page_size = 4096;
    snprintf(p.cmdline, sizeof p.cmdline, "%s", cmdline);
    if (hl_writer_begin_process(g.w, &p, err) < 0) {
        hl_writer_abort(g.w);
        return -1;
    }
    wl->run(&g, v);
    if (g.failed || hl_writer_end_process(g.w, err) < 0) {
        hl_writer_abort(g.w);
        return -1;
    }
    if (hl_writer_close(g.w, err) < 0)
        return -1;
    if (res) {
        res->events = g.events;
        res->threads = g.nthreads;
        res->bytes = g.bytes;
    }
    return 0;
}
