/*
 * backlog.h: holding the program back while finalising catches up (raw.h: BACKLOG).
 *
 * A thread whose full buffer was just written asks how far finalising is behind in
 * this image's raw file (the file's size less the `low` word of the section's
 * checkpoint) and, when that is above the limit, sleeps until it is at most half of
 * it.  So an unread capture on disk is bounded however much faster than finalising
 * the program allocates, and the program runs at finalising's pace meanwhile.
 *
 * State is per image: the limit (from the environment at setup), the last `low` seen
 * (low only grows, so the size less it bounds the lag from above: the checkpoint is
 * read only when that bound is over the limit), the waits' count and time (for the
 * header), and the stall backoff.  Several threads may hold at once; the counters are
 * atomic, the rest a hint.
 *
 * Called with the interposer's guard up (interpose.c): nothing here allocates.
 */
#ifndef HEAPLAB_BACKLOG_H
#define HEAPLAB_BACKLOG_H

#include <stdint.h>
#include <sys/types.h>

/* The limit in bytes (raw.h: HL_RAW_ENV_BACKLOG), 0 never waits. */
void hl_backlog_setup(uint64_t limit);
/* A fork child's image: a new file, nothing held yet. */
void hl_backlog_after_fork(void);
/* After a thread's full buffer was written to fd, the raw file at raw_path: wait while
 * finalising is more than the limit behind, unless watcher (the heaplab reading the
 * capture, 0 if not known) is gone or finalising stalls. */
void hl_backlog_hold(int fd, const char *raw_path, pid_t watcher);
/* For the header: the waits so far and their time. */
uint32_t hl_backlog_held(void);
uint64_t hl_backlog_held_ns(void);

#endif
