/*
 * finalise.h: turning a raw capture (the directory libheaplab-record.so wrote, format
 * in traces/preload/raw.h) into a finalised trace (trace.h).
 *
 * Every raw file becomes one process section, sections ordered by the time their
 * image started.  Within a section the records of all threads are merged by their
 * sequence numbers (one pass, a heap over the threads: O(events log threads)),
 * addresses become dense slots (hl_slotmap), frees of addresses never seen allocated
 * or already freed become HL_EV_UNKNOWN, and TSC readings become nanoseconds since
 * the image started (linear through the header's (TSC, monotonic clock) pair and the
 * pair of the record's own chunk, so that a time depends on nothing but its chunk).  A raw file cut short or damaged (a killed process, a
 * full disk) is read up to its last complete chunk and reported in the stats.
 *
 * The work can be done while the program still runs (hl_finaliser_poll, called by
 * `heaplab record` while it waits), so that little is left when it exits: the raw
 * files are tailed as chunks are appended, and events are merged up to the horizon
 * the chunks' marks guarantee complete (raw.h, HL_RAW_MARK).  The result is the same
 * trace, byte for byte, as finalising the finished capture in one go.
 */
#ifndef HEAPLAB_FINALISE_H
#define HEAPLAB_FINALISE_H

#include "trace.h"

#include <stdint.h>

/* The first unrecorded processes, named in the stats. */
#define HL_FINALISE_NAMED 16
struct hl_unrecorded_proc {
    uint32_t pid, ppid;
    unsigned why;                 /* enum hl_unrecorded */
    char exe[512];
};

struct hl_finalise_stats {
    uint32_t processes;       /* process sections written */
    uint64_t threads;         /* threads over all sections */
    uint64_t events;          /* events written */
    uint64_t unknown;         /* events flagged HL_EV_UNKNOWN */
    uint64_t trace_bytes;     /* size of the finished trace file */
    uint64_t raw_bytes;       /* size of the raw capture read */
    uint32_t damaged;         /* raw files read only up to a damaged or partial chunk */
    char damage[512];         /* the first such file and offset, "" if none */
    uint32_t unrecorded;      /* processes that left no capture (HL_PROC_UNRECORDED) */
    struct hl_unrecorded_proc unrec[HL_FINALISE_NAMED]; /* the first of them */
    uint32_t cut;             /* sections whose capture file could not grow */
    uint64_t dropped;         /* events those lost */
    uint64_t missed;          /* calls made while a wrapper ran, not recorded */
    uint64_t big_untracked;   /* large blocks with no page count (raw.h: HL_RAW_PAGES):
                                 replayed as if every page were written */
    uint64_t held;            /* times a thread waited for finalising to catch up
                                 (raw.h: BACKLOG) ... */
    uint64_t held_ns;         /* ... and the time they waited */
    uint32_t spilled;         /* sections whose capture outgrew its ring (raw.h: RING) */
};

/* Why the program at path (a name without '/' is looked up in PATH) cannot be
 * recorded, as far as its file tells: HL_UNREC_STATIC, HL_UNREC_SETUID, or
 * HL_UNREC_UNKNOWN. */
unsigned hl_program_unrecordable(const char *path);

/* Finalise the capture in `dir` into the trace `out` (written through hl_writer, so a
 * failure leaves no file under `out`).  Returns 0, or -1 with err set. */
int hl_finalise(const char *dir, const char *out, struct hl_finalise_stats *st,
                struct hl_err *err);

/* The same in steps, while the capture is still being written. */
struct hl_finaliser;
/* Nothing is read or created yet.  NULL (err set) only when out of memory. */
struct hl_finaliser *hl_finaliser_new(const char *dir, const char *out, struct hl_err *err);
/* Finalise what the files written so far allow.  Never waits.  Returns 1 if it read
 * anything new (more may be there already: call again soon), 0 if not, or -1 with
 * err set (the same error hl_finaliser_finish will then report). */
int hl_finaliser_poll(struct hl_finaliser *fz, struct hl_err *err);
/* Every process has stopped writing: finalise the rest and close the trace.  Returns
 * 0, or -1 with err set (no trace left under `out`).  Always frees fz. */
int hl_finaliser_finish(struct hl_finaliser *fz, struct hl_finalise_stats *st,
                        struct hl_err *err);
/* Called now and then while finalising, with the raw capture bytes read so far (for a
 * progress line: compare with the capture's size).  A non-zero return stops
 * finalising with the error "interrupted" (the capture stays as it is). */
typedef int hl_finalise_progress_fn(void *ctx, uint64_t raw_done);
void hl_finaliser_set_progress(struct hl_finaliser *fz, hl_finalise_progress_fn *fn, void *ctx);
/* The capture is kept after a finish that succeeds (to be finalised again): the finish
 * then gives back to the disk only parts it can write again from the raw capture.
 * Otherwise (the capture is removed once the trace is whole) every part is given back
 * as it is copied into the trace (assemble.c). */
void hl_finaliser_keep_capture(struct hl_finaliser *fz);
/* A process of the run that heaplab saw end (it reaped it, at realtime_ns): if no raw
 * file of pid
 * turns up, the trace gets a section naming it (HL_PROC_UNRECORDED, reason why,
 * enum hl_unrecorded).  0, or -1 when out of memory. */
int hl_finaliser_add_unrecorded(struct hl_finaliser *fz, uint32_t pid, uint32_t ppid,
                                uint64_t realtime_ns, unsigned why, const char *exe,
                                const char *cmdline);
/* Give up and free fz.  The parts of sections a checkpoint needs stay (a later
 * hl_finalise of the same directory goes on from them); the others are removed. */
void hl_finaliser_abort(struct hl_finaliser *fz);

#endif
