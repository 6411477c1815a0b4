/*
 * replay.h: the replay engine's internal contract, shared by the parent (cmd/replay.c)
 * and the worker process (worker.c).
 *
 * Data flow.  The parent reads each trace once and writes, per process section, a plan
 * (plan.c) into an unlinked file: windows of consecutive events of the trace's global
 * order, each holding the window's events per replay thread.  For each run and
 * allocator it starts a worker, `heaplab __worker run ...`, with the allocator
 * preloaded; the worker reads the plan one window at a time into a buffer of constant
 * size (so neither process holds the whole plan, and building it costs the allocator
 * under test nothing), replays it, and writes one struct hl_rp_result (plus its
 * timeline samples) back over a pipe.  `heaplab __worker probe` only checks that the
 * preloaded library really provides malloc and reports its version.
 *
 * Slots are dense: the plan renumbers the trace's blocks so that a new block takes a
 * number given back by a block freed before it, so the worker's slot table is as large
 * as the most blocks live at once, whatever the trace's length.  Dense slot 0 is "no
 * block" (always NULL: free(NULL), realloc(NULL, n)).  With several replay threads, a
 * number freed in a window is handed out again only from the next window on, and all
 * threads finish window k before any starts window k+1 (the recorded interleaving, at
 * the grain of a window); within a window a thread that frees or reallocates another
 * thread's block waits for it (HL_RF_WAIT / HL_RF_PUBLISH).
 */
#ifndef HEAPLAB_REPLAY_H
#define HEAPLAB_REPLAY_H

#include "trace.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ---- the plan, as laid out in its file ---- */

#define HL_PLAN_MAGIC 0x4e414c5042504c48ull /* "HLPBPLAN" */
#define HL_PLAN_VERSION 6
#define HL_PLAN_HDR_BYTES 4096 /* the header's room; windows follow */

/* Replay event flags (hl_rp_ev.flags). */
#define HL_RF_WAIT 0x01    /* frees/reallocs a block another thread allocated in the same
                              window: wait for that slot's ready flag first (and clear it) */
#define HL_RF_PUBLISH 0x02 /* allocates a block another thread consumes in the same
                              window: set its ready flag (release) once done */
#define HL_RF_SAMPLE 0x04  /* take a timeline sample after this event */
#define HL_RF_PAGES 0x08   /* malloc or calloc of a block the trace counted resident pages
                              of (trace.h, struct hl_pages): aux = those pages, touched
                              instead of every page; a calloc is then calloc(1, size),
                              size its bytes (the nmemb x size product is the same call
                              to every allocator) */

/* One replayed call, 16 bytes.  free: size = bytes of the block freed (for
 * --check=full and the live bytes); calloc: size = element size, aux = nmemb; aligned
 * ops: aux = alignment; realloc: size = new bytes, old_slot = the block passed in
 * (reallocarray is replayed as realloc of size*nmemb).  Sizes are below 2^46 (the plan
 * skips larger calls).  old_slot and aux share their word: only realloc has an old
 * block, and realloc has no aux.  Slots are dense (above). */
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

/* The compact stream: how a plan with one replay thread stores its windows (half the
 * bytes to write and read), and what the plain loop (no timeline, --check other than
 * full) walks instead of hl_rp_ev events, half the memory traffic of the loop; the
 * other loops get the events decoded back (sample flags from the timeline points, a
 * free's size from the worker's own table).  Tag in the low 2 bits:
 *   HL_CEV_MALLOC: malloc(w >> HL_CEV_SIZE_SHIFT) into slot (w >> 2) & 0xffffffff
 *                  (sizes below HL_CEV_MAX_SIZE; larger mallocs escape);
 *   HL_CEV_FREE:   free the block of slot w >> 2;
 *   HL_CEV_OTHER:  with a slot, realloc(w >> HL_CEV_SIZE_SHIFT) of the block of that
 *                  slot into the same slot (a serial plan's realloc of a live block,
 *                  sizes below HL_CEV_MAX_SIZE); with slot 0, the next hl_rp_ev of the
 *                  escape array (every other op).  The words of the plain loop's common
 *                  ops, malloc and free, are told apart by one bit each. */
#define HL_CEV_MALLOC 0u
#define HL_CEV_FREE 1u
#define HL_CEV_OTHER 2u
#define HL_CEV_SIZE_SHIFT 34
#define HL_CEV_MAX_SIZE (1ull << 30)
#define HL_CEV_TAG(w) ((unsigned)((w) & 3))
#define HL_CEV_SLOT(w) (((w) >> 2) & 0xffffffffu)
/* The word of an op with a size and a slot (HL_CEV_MALLOC, or HL_CEV_OTHER in place). */
#define HL_CEV_WORD(size, slot, tag) \
    (((uint64_t)(size) << HL_CEV_SIZE_SHIFT) | ((uint64_t)(slot) << 2) | (tag))
/* The realloc an HL_CEV_OTHER word with a slot stands for.  A macro: as an inline
 * function it cost the plain loop 0.5-1 instruction per event (register allocation). */
#define HL_CEV_REALLOC(w)                                                                  \
    ((struct hl_rp_ev){.size = (w) >> HL_CEV_SIZE_SHIFT, .op = HL_OP_REALLOC,              \
                       .slot = (uint32_t)HL_CEV_SLOT(w), .old_slot = (uint32_t)HL_CEV_SLOT(w)})

/* The narrow form of a compact window's words, 4 bytes each where the window's slots
 * take at most slot_bits bits (1..HL_CEV_NARROW_MAX_SLOT_BITS): the tag in the low 2
 * bits, the slot in the next slot_bits, the size above them (below 2^(30 - slot_bits));
 * an op whose size does not fit is an escape there.  The plan writes a window narrow
 * when that takes fewer bytes: half the plan to write and read back on most traces.
 * The worker widens a narrow window into compact words between windows (off the
 * clock), so the timed loop always walks the same 8-byte words. */
#define HL_CEV_NARROW_MAX_SLOT_BITS 22 /* sizes of 8 bits at least */
#define HL_CEV_NARROW(size, slot, tag, slot_bits) \
    ((uint32_t)(((uint64_t)(size) << (2 + (slot_bits))) | ((uint64_t)(slot) << 2) | (tag)))
static inline int hl_cev_narrow_fits(uint64_t size, unsigned slot_bits)
{
    return size >> (30 - slot_bits) == 0;
}
static inline void hl_cev_widen(uint64_t *out, const uint32_t *in, uint64_t n,
                                unsigned slot_bits)
{
    const uint32_t mask = (1u << slot_bits) - 1;
    for (uint64_t k = 0; k < n; k++)
        out[k] = HL_CEV_WORD(in[k] >> (2 + slot_bits), (in[k] >> 2) & mask, in[k] & 3);
}

/* A window: this header, then nev[0] events of thread 0, nev[1] of thread 1, ...
 * (threads from nthr on have none in it); in a compact plan (one thread), nev_total
 * compact words (narrow ones when slot_bits is not 0, padded to 16 bytes) and then ncx
 * escapes instead.  bytes covers it all, the header padded to 16 bytes.  The last
 * window is followed by the timeline points. */
struct hl_plan_win {
    uint64_t bytes;
    uint64_t nev_total;
    uint32_t nthr, ncx;
    uint32_t slot_bits;    /* compact windows: 0 wide words, else narrow ones */
    uint32_t nev[];
};

/* Bytes of a compact window's words. */
static inline uint64_t hl_plan_words_bytes(uint64_t n, uint32_t slot_bits)
{
    return slot_bits ? (n * sizeof(uint32_t) + 15) & ~15ull : n * sizeof(uint64_t);
}

/* Bytes of a window's header with nthr threads. */
static inline uint64_t hl_plan_win_hdr_bytes(uint32_t nthr)
{
    return (sizeof(struct hl_plan_win) + (uint64_t)nthr * sizeof(uint32_t) + 15) & ~15ull;
}

/* A timeline point known from the trace: global op index and live bytes after it. */
struct hl_rp_tlpoint {
    uint64_t op_index, live_bytes;
};

struct hl_plan_hdr {
    uint64_t magic, version, total_bytes;
    uint32_t nthreads;      /* replay threads (1 in serial mode) */
    uint32_t serial;
    uint32_t compact;       /* windows hold the compact stream (one replay thread) */
    uint32_t pad_;
    uint64_t window;        /* events of the global order per window */
    uint64_t nwin, win_off, max_win_bytes; /* windows from win_off, the largest's size */
    uint64_t ndense;        /* dense slots, "no block" (0) included */
    uint64_t events;        /* trace events in the section */
    uint64_t ops;           /* events replayed */
    uint64_t skipped_unknown, skipped_failed;
    uint64_t peak_live;     /* bytes, from the trace's global order */
    uint64_t tl_off, ntl;   /* timeline points, grouped per thread, each group in op
                               order (the order its thread meets its sample flags) */
    uint64_t tl_thread_off; /* uint64_t[nthreads]: points per thread */
    uint32_t recorded_threads;
    uint32_t cross_thread;  /* events that wait on another thread */
    /* What the plan was made from (a cached plan is used only if they all match): the
     * trace's content hash, the section's index in it, the options as asked. */
    uint64_t key_trace, key_every, key_window;
    uint32_t key_section, key_serial;
    uint64_t paged;         /* mallocs and callocs touching their recorded pages only
                               (HL_RF_PAGES) */
};

struct hl_plan_info {
    int fd;                 /* the plan's file (not close-on-exec) */
    uint64_t events, ops, skipped_unknown, skipped_failed, peak_live, ndense, bytes;
    uint64_t paged;
    uint32_t threads, recorded_threads;
};

/* A plan too large to stay in the page cache between runs, more than a quarter of the
 * machine's memory (or HEAPLAB_PLAN_STREAM_MIN bytes, for tests), is streamed: its
 * writer and its reader give its pages back behind them (POSIX_FADV_DONTNEED, every
 * HL_PLAN_STREAM_STEP bytes), so that it cycles through a few tens of MiB of page cache
 * instead of filling it with pages the kernel must take fresh (on a VM whose host takes
 * a guest's free pages back, each one costs more than the disk's read; HISTORY.md).
 * The worker's reads then come from the disk, ahead of it by the kernel's readahead. */
#define HL_PLAN_STREAM_STEP (8ull << 20)
int hl_plan_streamed(uint64_t bytes);

/* Default window: events of the global order per window. */
#define HL_PLAN_WINDOW_SERIAL (1u << 18) /* one replay thread: only a refill */
#define HL_PLAN_WINDOW_THREADS 4096      /* several: also the grain of the interleaving */

struct hl_plan_builder;
/* What a plan is built from, besides its events. */
struct hl_plan_opts {
    int serial;              /* one replay thread in global order */
    uint64_t timeline_every; /* mark every Nth op for a timeline sample; 0 = about 500
                                points (from nevents); UINT64_MAX = none */
    uint64_t window;         /* events per window, 0 = the default */
    int cache;               /* keep plans beside the trace and reuse them (hl_plan_trace) */
    uint64_t trace_key;      /* set by hl_plan_trace: the trace's content hash */
    uint32_t section;        /* and the section's index */
};
/* Plan a section (its header p: event count, threads, first slot) into fd. */
struct hl_plan_builder *hl_plan_begin(int fd, const struct hl_plan_opts *o,
                                      const struct hl_process *p);
/* The section's recorded page counts (hl_reader_pages), before its first event: a
 * malloc or calloc of a block with one touches only that many pages (HL_RF_PAGES).
 * -1 if out of memory. */
int hl_plan_pages(struct hl_plan_builder *b, const struct hl_pages *pg, size_t n);
/* Add the section's next event.  Fails only on a trace that breaks the slot rules, or
 * a failed write (err says which). */
int hl_plan_add(struct hl_plan_builder *b, const struct hl_event *e, struct hl_err *err);
/* Add the next n events: the same plan as n calls of hl_plan_add, faster (the common
 * events of a serial plan take a shorter path). */
int hl_plan_add_events(struct hl_plan_builder *b, const struct hl_event *ev, uint64_t n,
                       struct hl_err *err);
/* Finish the plan in its file; frees b (and, on failure, leaves the fd to the caller). */
int hl_plan_finish(struct hl_plan_builder *b, struct hl_plan_info *info, struct hl_err *err);
void hl_plan_abort(struct hl_plan_builder *b);
/* The directory of path into dir (n bytes): "." when it has none, "/" for "/x". */
static inline void hl_dir_of(const char *path, char *dir, size_t n)
{
    snprintf(dir, n, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash == dir ? (void)(slash[1] = 0) : (void)(*slash = 0);
    else
        snprintf(dir, n, ".");
}

/* A new unlinked file for a plan of a trace at path: in the trace's directory, else
 * $TMPDIR or /tmp.  -1 with err on failure. */
int hl_plan_file(const char *path, struct hl_err *err);

/* One trace row: a process section with events. */
struct hl_rp_row {
    char name[1100];       /* FILE, or FILE[pid] when the file has several sections */
    char file[1024];
    char hash[32];
    uint32_t pid;
    struct hl_plan_info plan;
};
/* Read every process section of path (or only those of process pid, when pid >= 0)
 * and plan each one with events.  With o->cache, each section's plan is kept beside
 * the trace, in PATH.N.plan (N: the section's index; written to a temporary name and
 * renamed into place when complete), and a later replay with the same trace contents
 * and options uses it instead of planning again; a plan that does not match (another
 * trace, other options, truncated, damaged) is rebuilt.  Where the trace's directory
 * cannot be written, plans go to unlinked files in $TMPDIR.  Appends to *rows
 * (malloc'd, *nrows).  Returns 0, or -1 with a one-line message naming the file. */
int hl_plan_trace(const char *path, const struct hl_plan_opts *o, long pid,
                  struct hl_rp_row **rows, int *nrows, struct hl_err *err);

/* ---- the worker's answer ---- */

#define HL_RP_RESULT_MAGIC 0x534c5254u
#define HL_RP_NVIOL 4

enum { HL_TOUCH_PAGE, HL_TOUCH_ALL, HL_TOUCH_NONE, HL_TOUCH_HEAD };
/* --touch=head: one byte per page of a new block's first HL_TOUCH_HEAD_BYTES only (a
 * program fills a buffer from its start, and often never to the end of one sized for
 * the worst case); smaller blocks are touched as with --touch=page. */
#define HL_TOUCH_HEAD_KIB 256
#define HL_TOUCH_HEAD_BYTES ((uint64_t)HL_TOUCH_HEAD_KIB << 10)
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
    /* base_rss: VmRSS at the baseline; startup_rss: of it, the allocator's start-up
     * (baseline.h); peak_rss = VmHWM - (base_rss - startup_rss), what a program
     * running under the allocator pays beyond its own memory. */
    uint64_t base_rss, startup_rss, peak_rss;
    /* startup_ns: from just before the parent forked this worker to the worker's first
     * instruction of its own: fork, exec, dynamic loading (the allocator's library and
     * what only it loads) and the library's constructors.  A program started under the
     * allocator pays the same per process; the harness's share is the same for every
     * allocator.  0 when not measured (a probe). */
    uint64_t startup_ns;
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
    /* --gaps (gaps.h): the recorded gaps spent, the cache lines written in them, and
     * the time that took (gap_ns, timed in full; a part of the time split). */
    uint64_t gap_recorded_ns, gap_lines, gap_ns;
    uint64_t violations, alloc_failures;
    /* The live bytes this replay held at most: with one replay thread, the plan's
     * (the replay follows the global order exactly); with several, summed over the
     * threads at every window's end, where all threads stand still. */
    uint64_t live_peak;
    char viol[HL_RP_NVIOL][200];
    uint64_t ntimeline;      /* followed on the pipe by ntimeline hl_rp_tlsample */
};

struct hl_rp_tlsample {
    uint64_t op_index, time_ns, live_bytes, rss_bytes;
};

/* Worker entry is cmd_worker() (cmd.h). */

#endif
