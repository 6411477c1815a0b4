/*
 * gen.h: synthetic workload generators (`heaplab gen`).
 *
 * A workload is a table entry: name, description, parameters with defaults and bounds,
 * and a run function that drives an emitter (struct hl_gen).  The emitter owns
 * everything the trace format asks for: the next slot id (slot rule), the global event
 * order (each generator simulates its threads by interleaving them in one order, so a
 * cross-thread free is always emitted after its allocation), timestamps (a clock that
 * advances by a plausible per-call cost, shared among the simulated threads that are
 * running), and writing through hl_writer.
 *
 * Determinism: the only source of randomness is the emitter's PRNG (xoshiro256**, seeded
 * with splitmix64 from --seed), and the process header holds nothing that depends on
 * the machine or the clock, so the same workload, parameters and seed give the same
 * bytes.
 */
#ifndef HEAPLAB_GEN_H
#define HEAPLAB_GEN_H

#include <stdint.h>

#include "trace.h"

struct hl_gen;

struct hl_gen_param {
    const char *name;
    uint64_t def, min, max;
    const char *help;
};

#define HL_GEN_MAX_PARAMS 12

struct hl_workload {
    const char *name;
    const char *summary;  /* one line */
    const char *details;  /* a short paragraph for --list */
    const struct hl_gen_param *params; /* terminated by a NULL name */
    /* v[i] is the value of params[i].  Emits the events; errors are collected by the
     * emitter and reported by hl_gen_run(). */
    void (*run)(struct hl_gen *g, const uint64_t *v);
};

/* NULL-terminated table of the workloads. */
extern const struct hl_workload *const hl_workloads[];
const struct hl_workload *hl_workload_find(const char *name);

struct hl_gen_result {
    uint64_t events, threads, bytes;
};

/* Run a workload into the trace file out.  cmdline goes into the process header.
 * Returns 0, or -1 with err set (nothing is left under out on failure). */
int hl_gen_run(const struct hl_workload *w, const uint64_t *v, uint64_t seed, const char *out,
               const char *cmdline, struct hl_gen_result *res, struct hl_err *err);

/* ---- for the generators ---- */

uint64_t hl_gen_rand(struct hl_gen *g);
/* Uniform in [lo, hi]. */
uint64_t hl_gen_range(struct hl_gen *g, uint64_t lo, uint64_t hi);
/* Log-uniform in [lo, hi]: small sizes common, large ones rare, as in real programs. */
uint64_t hl_gen_logsize(struct hl_gen *g, uint64_t lo, uint64_t hi);
/* True with probability pct/100. */
int hl_gen_chance(struct hl_gen *g, uint64_t pct);

/* Emit calls.  Allocations return the new block's slot. */
uint64_t hl_gen_malloc(struct hl_gen *g, uint32_t thread, uint64_t size);
uint64_t hl_gen_calloc(struct hl_gen *g, uint32_t thread, uint64_t nmemb, uint64_t size);
uint64_t hl_gen_realloc(struct hl_gen *g, uint32_t thread, uint64_t slot, uint64_t size);
void hl_gen_free(struct hl_gen *g, uint32_t thread, uint64_t slot);

/* Time: each call costs tens of nanoseconds, divided among the threads running at once
 * (hl_gen_running); hl_gen_work adds time spent outside the allocator. */
void hl_gen_running(struct hl_gen *g, uint32_t nthreads);
void hl_gen_work(struct hl_gen *g, uint64_t ns);

/* A run function may stop early once this is true (a write failed). */
int hl_gen_failed(const struct hl_gen *g);

#endif
