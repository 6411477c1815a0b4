/*
 * mtrace.h: import glibc's mtrace log (the file MALLOC_TRACE names) into a trace.
 *
 * glibc writes one line per call, optionally prefixed by the caller:
 *
 *   = Start
 *   @ ./prog:[0x4005d4] + 0x1c3d010 0x40      malloc/calloc/memalign (or realloc(NULL))
 *   @ ./prog:[0x4005e8] - 0x1c3d010           free (or realloc(p, 0))
 *   @ ./prog:[0x4005f0] < 0x1c3d030           realloc: the block given back...
 *   @ ./prog:[0x4005f0] > 0x1c3d460 0x80      ...and the block returned, with its size
 *   @ ./prog:[0x400600] ! 0x1c3d460 0x8000    a failed realloc (the block stays)
 *   + (nil) 0x7fffffffffff                    a failed malloc
 *   = End
 *
 * Addresses become slots through hl_slotmap; "+" lines become malloc, "<"/">" pairs one
 * realloc, "!" a failed realloc.  A free of an address that is not live is kept as an
 * HL_EV_UNKNOWN free (replay skips it).  An allocation at an address that is still live
 * means the log lost that block's free (mtrace is not thread-safe): the importer emits
 * the missing free first so the block does not show as a leak.  mtrace has no
 * timestamps, no threads and no aligned or calloc distinction: every event is on thread
 * 0, and its time is its index (1 ns per event), so time-based figures are in events.
 */
#ifndef HEAPLAB_MTRACE_H
#define HEAPLAB_MTRACE_H

#include "trace.h"

/* Read mtrace log IN ("-" for stdin) and write trace OUT.  Returns 0, or -1 with a
 * one-line message naming IN (and the line) or OUT. */
int hl_mtrace_import(const char *in, const char *out, struct hl_err *err);

#endif
