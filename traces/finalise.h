/*
 * finalise.h: turning a raw capture (the directory libheaplab-record.so wrote, format
 * in traces/preload/raw.h) into a finalised trace (trace.h).
 *
 * Every raw file becomes one process section, sections ordered by the time their
 * image started.  Within a section the records of all threads are merged by their
 * sequence numbers (one pass, a heap over the threads: O(events log threads)),
 * addresses become dense slots (hl_slotmap), frees of addresses never seen allocated
 * or already freed become HL_EV_UNKNOWN, and TSC readings become nanoseconds since
 * the image started.  A raw file cut short or damaged (a killed process, a full disk)
 * is read up to its last complete chunk and reported in the stats.
 */
#ifndef HEAPLAB_FINALISE_H
#define HEAPLAB_FINALISE_H

#include "trace.h"

#include <stdint.h>

struct hl_finalise_stats {
    uint32_t processes;       /* process sections written */
    uint64_t threads;         /* threads over all sections */
    uint64_t events;          /* events written */
    uint64_t unknown;         /* events flagged HL_EV_UNKNOWN */
    uint64_t trace_bytes;     /* size of the finished trace file */
    uint64_t raw_bytes;       /* size of the raw capture read */
    uint32_t damaged;         /* raw files read only up to a damaged or partial chunk */
    char damage[512];         /* the first such file and offset, "" if none */
};

/* Finalise the capture in `dir` into the trace `out` (written through hl_writer, so a
 * failure leaves no file under `out`).  Returns 0, or -1 with err set. */
int hl_finalise(const char *dir, const char *out, struct hl_finalise_stats *st,
                struct hl_err *err);

#endif
