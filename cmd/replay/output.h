/*
 * output.h: replay results (one cell per trace row x allocator, aggregated over runs)
 * and their three forms: the terminal table, CSV and JSON (RESULTS SCHEMA: the CSV
 * columns and JSON keys are a contract with `heaplab plot`; never rename them).
 */
#ifndef HEAPLAB_REPLAY_OUTPUT_H
#define HEAPLAB_REPLAY_OUTPUT_H

#include "allocators/registry.h"
#include "replay.h"

#include <stdio.h>

struct hl_rp_cell {
    const struct hl_rp_row *row;
    const struct hl_alloc *alloc;
    int runs;
    struct hl_rp_result med;          /* the run with the median time */
    int med_run;                      /* its number, from 1 */
    uint64_t time_min, time_max;
    uint64_t rss_med, rss_min, rss_max;
    uint64_t startup_med;             /* the runs' median startup_ns (replay.h) */
    int rss_ok;
    uint64_t violations;              /* the most any run saw */
    struct hl_rp_tlsample *tl;        /* the median run's timeline */
    uint64_t ntl;
    char na[96];                      /* "n/a: why" when nothing was measured (a run
                                         timed out): every measured field is then
                                         unmeasured, time_ns holds this reason */
};

struct hl_rp_meta {
    const char *threads_mode, *touch, *check;
    char tunables[1024];
    char cpu[256], kernel[256], date[64];
    /* The machine, so that results of several machines can be told apart when merged
     * (cmd/plot/merge.c): host name, online cores, the C library. */
    char host[256], libc[64];
    long cores;
};

/* Fill m's host, cores and libc from this machine. */
void hl_rp_machine(struct hl_rp_meta *m);

void hl_rp_write_csv(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m);
void hl_rp_write_json(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m);
void hl_rp_write_table(FILE *f, const struct hl_rp_cell *c, int n, const struct hl_rp_meta *m);
void hl_rp_write_timeline(FILE *f, const struct hl_rp_cell *c, int n);

#endif
