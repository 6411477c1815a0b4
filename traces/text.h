/*
 * text.h: heaplab's text form of a trace, for people to read, diff and write by hand.
 *
 * `heaplab export` writes it and `heaplab import` reads it back; export -> import ->
 * export is byte-identical.  One line per event, one header line per process:
 *
 *   # heaplab-text 1
 *   process pid=123 ppid=1 page_size=4096 start_ns=1700000000000000000 exe="/usr/bin/sort" cmdline="sort -n x"
 *   1042 t0 malloc 64 -> #0
 *   1100 t0 calloc 10x8 -> #1                  calloc(10, 8): nmemb x element size
 *   1205 t1 free #0
 *   1300 t0 realloc #1 200 -> #2               realloc(block #1, 200)
 *   1301 t0 realloc NULL 16 -> #3              realloc(NULL, 16)
 *   1302 t0 reallocarray #3 4x32 -> #4
 *   1400 t0 memalign align=64 100 -> #5        also posix_memalign, aligned_alloc
 *   1500 t0 valloc 10 -> #6                    also pvalloc
 *   1600 t0 malloc 1099511627776 -> FAILED     the call returned NULL
 *   1700 t0 free ?                             unknown pointer or double free
 *   1701 t0 realloc ? 8 -> #7                  realloc of an unknown pointer
 *   1800 t0 free NULL                          free(NULL)
 *   pages #3 12                                block #3 had 12 pages resident when
 *                                              given back (after the section's events)
 *
 * Fields: time in nanoseconds since the process's recording began; tN the thread
 * index; the op (hl_op_name); its arguments; "-> #N" the slot the new block takes (the
 * next slot: #0, #1, ... in order) or "-> FAILED".  A block given back is "#N", "NULL"
 * or "?" (HL_EV_UNKNOWN).  "pages" lines carry a large block's resident pages
 * (struct hl_pages, format.h's PAGE blocks).  process fields: pid, ppid, page_size, start_ns (realtime
 * clock at the start), exe and cmdline (double-quoted; \\ \" \n \t \xHH escapes), and
 * where they are not 0: flags (HL_PROC_*: attached, unrecorded with its reason),
 * first_slot, and what the recording lost: dropped, missed, cut_errno (struct
 * hl_process).
 *
 * Written by hand, the form is forgiving wherever that is unambiguous:
 *   - the time may be left out (it is then 0), and the thread (then t0);
 *   - "-> #N" may be left out on a successful allocation (it takes the next slot);
 *   - calloc/reallocarray take "NxS" (decimal) or "N S" (calloc's argument order); the aligned
 *     ops take "align=A SIZE" or "A SIZE" (the C argument order);
 *   - numbers are decimal or 0x-hex;
 *   - blank lines and lines starting with # are comments, and a word starting with #
 *     but not followed by a digit starts a comment to the end of the line;
 *   - events before any process line belong to an implicit "process pid=0" with
 *     page_size=4096; every process field is optional (0 or "").
 * The slot rule still holds: a free must name a live slot, a result must be the next
 * slot.  Errors name the input file and line.
 */
#ifndef HEAPLAB_TEXT_H
#define HEAPLAB_TEXT_H

#include "trace.h"

#include <stdio.h>

#define HL_TEXT_VERSION 1

/* Write trace IN as text to out.  outname names out in error messages. */
int hl_text_export(const char *in, FILE *out, const char *outname, struct hl_err *err);

/* Parse the text trace in file IN ("-" for stdin) and write the trace OUT. */
int hl_text_import(const char *in, const char *out, struct hl_err *err);

/* Same from memory; name stands for the input in error messages. */
int hl_text_import_mem(const char *buf, size_t len, const char *name, const char *out,
                       struct hl_err *err);

/* Format one event or one process line (no newline) into buf; returns the length it
 * needed (like snprintf). */
int hl_text_format_event(char *buf, size_t n, const struct hl_event *e);
int hl_text_format_process(char *buf, size_t n, const struct hl_process *p);

#endif
