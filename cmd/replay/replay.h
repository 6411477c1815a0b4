/*
 * replay.h: the replay engine's internal contract, shared by the parent (cmd/replay.c)
 * and the worker process (worker.c).
 *
 * Data flow.  The parent reads each trace once and builds, per process section, a plan
 * (plan.c): flat arrays of compact events per replay thread, written into a memfd.  For
 * each run and allocator it starts a worker, `heaplab __worker run ...`, with the
 * allocator preloaded; the worker maps the plan read-only (so building it costs the
 * allocator under test nothing), replays it, and writes one struct hl_rp_result (plus
 * its timeline samples) back over a pipe.  `heaplab __worker probe` only checks that
 * the preloaded library really provides malloc and reports its version.
 */
#ifndef HEAPLAB_REPLAY_H
#define HEAPLAB_REPLAY_H

#include "trace.h"

#include <stdint.h>

/* ---- the plan, as laid out in the memfd ---- */

#define HL_PLAN_MAGIC 0x4e414c5042504c48ull /* "HLPBPLAN" */

/* Replay event flags (hl_rp_ev.flags). */
#define HL_RF_WAIT 0x01    /* frees/reallocs a block another thread allocated: wait for
                              that slot's ready flag first */
#define HL_RF_PUBLISH 0x02 /* allocates a block another thread will consume: set its
                              ready flag (release) once done */
#define HL_RF_SAMPLE 0x04  /* take a timeline sample after this event */

/* One replayed call, 16 bytes (the timed loop streams these: a third less memory
 * traffic than a plain 24-byte layout).  free: size = bytes of the block freed (for
 * --check=full); calloc: size = element size, aux = nmemb; aligned ops: aux =
 * alignment; realloc: size = new bytes, old_slot = the block passed in (reallocarray
 * is replayed as realloc of size*nmemb).  Sizes are below 2^46 (the plan skips larger
 * calls).  old_slot and aux share their word: only realloc has an old block, and
 * realloc has no aux. */
struct hl_rp_ev {
    uint64_t size : 48;
    uint64_t op : 8;    /* enum hl_op */
    uint64_t flags : 8; /* HL_RF_* */
    uint32_t slot;      /* new block's slot (allocating ops), the freed slot (free) */
    union {
        uint32_t old_slot; /* realloc only */
        uint32_t aux;
    };
};

/* The compact stream of a plan with one replay thread, which the plain loop (one
 * thread, no timeline, --check other than full) walks instead of the hl_rp_ev array:
 * 8 bytes per event, half the memory traffic.  Its slots are dense: renumbered so that
 * a new block reuses the slot of a block freed before it (plan.c cev_build), which
 * keeps the slot table the loop touches as small as the most blocks live at once;
 * dense slot 0 is "no block" (always NULL), the table has ndense entries.  Tag in the
 * low 2 bits:
 *   HL_CEV_MALLOC: malloc(w >> HL_CEV_SIZE_SHIFT) into dense slot (w >> 2) & 0xffffffff
 *                  (sizes below HL_CEV_MAX_SIZE; larger mallocs escape);
 *   HL_CEV_FREE:   free the block of dense slot w >> 2;
 *   HL_CEV_OTHER:  the next hl_rp_ev of the escape array (every other op), its slot
 *                  and old_slot dense.
 * Flags are not carried: the plain loop ignores them. */
#define HL_CEV_MALLOC 0u
#define HL_CEV_FREE 1u
#define HL_CEV_OTHER 2u
#define HL_CEV_SIZE_SHIFT 34
#define HL_CEV_MAX_SIZE (1ull << 30)
#define HL_CEV_TAG(w) ((unsigned)((w) & 3))
#define HL_CEV_SLOT(w) (((w) >> 2) & 0xffffffffu)

struct hl_rp_thread {
    uint64_t ev_off, nev; /* byte offset of this thread's hl_rp_ev array, count */
    uint64_t tl_off, ntl; /* byte offset of its hl_rp_tlpoint array, count */
};

/* A timeline point known from the trace: global op index and live bytes after it. */
struct hl_rp_tlpoint {
    uint64_t op_index, live_bytes;
};

struct hl_plan_hdr {
    uint64_t magic, total_bytes;
    uint32_t nthreads;      /* replay threads (1 in serial mode) */
    uint32_t serial;
    uint64_t nslots;        /* slots 0..nslots-1 are the trace's blocks; slot nslots is
                               "no block" (NULL): events never carry HL_NO_SLOT */
    uint64_t slot_bytes_off; /* uint64_t[nslots + 1]: bytes each slot asked for */
    uint64_t events;        /* trace events in the section */
    uint64_t ops;           /* events replayed */
    uint64_t skipped_unknown, skipped_failed;
    uint64_t peak_live;     /* bytes, from the trace's global order */
    uint64_t ntl;
    uint32_t recorded_threads;
    uint32_t cross_thread;  /* events that wait on another thread */
    /* With one replay thread: the compact stream (uint64_t[ncev], ncev = thr[0].nev)
     * and its escape array (struct hl_rp_ev[ncx]); offsets 0 with several threads. */
    uint64_t cev_off, ncev, cx_off, ncx;
    uint64_t ndense;        /* dense slots of the compact stream, "no block" included */
    struct hl_rp_thread thr[]; /* nthreads entries */
};

struct hl_plan_info {
    int fd;                 /* memfd holding the plan (not close-on-exec) */
    uint64_t events, ops, skipped_unknown, skipped_failed, peak_live, nslots;
    uint32_t threads, recorded_threads;
};

struct hl_plan_builder;
/* serial: one replay thread in global order.  timeline_every: mark every Nth op for a
 * timeline sample; 0 = adaptively, about 500 to 1000 points; UINT64_MAX = none. */
struct hl_plan_builder *hl_plan_begin(int serial, uint64_t timeline_every);
/* Add the section's next event.  Fails only on a trace that breaks the slot rules. */
int hl_plan_add(struct hl_plan_builder *b, const struct hl_event *e, struct hl_err *err);
/* Write the plan into a memfd; frees b. */
int hl_plan_finish(struct hl_plan_builder *b, struct hl_plan_info *info, struct hl_err *err);
void hl_plan_abort(struct hl_plan_builder *b);

/* One trace row: a process section with events. */
struct hl_rp_row {
    char name[1100];       /* FILE, or FILE[pid] when the file has several sections */
    char file[1024];
    char hash[32];
    uint32_t pid;
    struct hl_plan_info plan;
};
/* Read every process section of path (or only those of process pid, when pid >= 0)
 * and plan each one with events.  Appends to *rows (malloc'd, *nrows).  Returns 0, or
 * -1 with a one-line message naming the file. */
int hl_plan_trace(const char *path, int serial, uint64_t timeline_every, long pid,
                  struct hl_rp_row **rows, int *nrows, struct hl_err *err);

/* ---- the worker's answer ---- */

#define HL_RP_RESULT_MAGIC 0x534c5254u
#define HL_RP_NVIOL 4

enum { HL_TOUCH_PAGE, HL_TOUCH_ALL, HL_TOUCH_NONE };
enum { HL_CHECK_CHEAP, HL_CHECK_FULL, HL_CHECK_NONE };
enum { HL_CNT_AUTO, HL_CNT_PERF, HL_CNT_SIM, HL_CNT_NONE };

struct hl_rp_lat {
    uint64_t samples, p50, p99, p999, max; /* CPU cycles */
};

struct hl_rp_result {
    uint32_t magic;
    int32_t status;          /* 0 ok; else error holds a one-line message */
    char error[512];
    char version[64];        /* from the library's own API, "" if it has none */
    char malloc_from[512];   /* probe: the object malloc resolved to */
    uint64_t ops, time_ns;
    uint64_t base_rss, peak_rss;   /* peak_rss = VmHWM - base_rss */
    int32_t rss_ok;
    int32_t have_counters;
    uint64_t user_ns, sys_ns, minor_faults, major_faults;
    uint64_t instructions, cycles, l1d_misses, llc_misses, dtlb_misses;
    int32_t have_dtlb;
    char counters_source[200];
    struct hl_rp_lat lat[HL_OP_COUNT_];
    /* Where the time goes (JSON time_split), in nanoseconds of replay-thread time:
     * thread_ns = the replay threads' loop times summed (= the wall time in serial
     * mode); call_ns and touch_ns = the allocator calls and the touching/checking of new
     * blocks, timed in cycles on one event in LAT_EVERY (timed_events of them), less the
     * timer's own cost, scaled up by each thread's events / timed events and converted
     * to ns at the TSC rate measured over the run; wait_ns = every wait for another
     * thread's block, timed in full.  The parent scales them to the wall time.
     * off_cpu_ns: of thread_ns, the time the threads did not run (preempted, blocked,
     * yielding while they waited), from CLOCK_THREAD_CPUTIME_ID; it overlaps the parts. */
    uint64_t thread_ns, call_ns, touch_ns, wait_ns, timed_events, off_cpu_ns;
    uint64_t violations, alloc_failures;
    char viol[HL_RP_NVIOL][200];
    uint64_t ntimeline;      /* followed on the pipe by ntimeline hl_rp_tlsample */
};

struct hl_rp_tlsample {
    uint64_t op_index, time_ns, live_bytes, rss_bytes;
};

/* Worker entry is cmd_worker() (cmd.h). */

#endif
