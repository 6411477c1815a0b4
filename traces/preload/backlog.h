/*
 * backlog.h: holding the program back while finalising catches up (raw.h: BACKLOG).
 *
 * A thread whose full buffer was just written reads the state finalising publishes in
 * the capture folder (struct hl_raw_backlog) and, while finalising is more than the
 * limit behind, sleeps until that is at most half of it.  So the capture not finalised yet is bounded however much faster
 * than finalising the program allocates, and the program runs at finalising's pace
 * meanwhile.
 *
 * The wait itself (hl_backlog_wait) is also the one a ring with no room makes
 * (ring.c): the same rules for when to stop waiting, the same counts.
 *
 * State is per image: the limit and the state file's path (set up with the capture
 * folder), the waits' count and time (for the header), and the stall backoff.
 * Several threads may hold at once; the counters are atomic, the rest a hint.
 *
 * Called with the interposer's guard up (interpose.c): nothing here allocates.
 */
#ifndef HEAPLAB_BACKLOG_H
#define HEAPLAB_BACKLOG_H

#include <stdint.h>
#include <sys/types.h>

/* The limit in bytes (raw.h: HL_RAW_ENV_BACKLOG), 0 never waits. */
void hl_backlog_set_limit(uint64_t limit);
/* The stall time (raw.h: HL_RAW_HOLD_STALL_NS; HL_RAW_ENV_HOLD_STALL_MS for tests). */
void hl_backlog_set_stall(uint64_t ns);
/* The capture folder (the state file is in it). */
void hl_backlog_set_dir(const char *dir);
/* A fork child's image: nothing held yet. */
void hl_backlog_after_fork(void);
/* After a thread's full buffer was written to this image's raw file (inode ino, its
 * size now in the stream's bytes: size): wait while finalising is more than the limit
 * behind, unless watcher (the heaplab reading the capture, 0 if not known) is gone or
 * finalising stalls. */
void hl_backlog_hold(uint64_t size, uint64_t ino, pid_t watcher);
/* Wait (sleeping in steps of a millisecond) while more(ctx, &progress) returns
 * non-zero, by the same rules: not with a limit of 0, not once watcher is gone, nor
 * once the progress it
 * sets stays the same for the stall time (after which the next waits give up at once
 * for a while, doubling).  Counted in held and held_ns.  Returns 1 if more() said to
 * stop, 0 if the wait gave up. */
int hl_backlog_wait(int (*more)(void *ctx, uint64_t *progress), void *ctx, pid_t watcher);
/* The first byte of file ino finalising says it still needs, 0 if it is not reading
 * it (or publishes nothing). */
uint64_t hl_backlog_need(uint64_t ino);
/* For the header: the waits so far and their time. */
uint32_t hl_backlog_held(void);
uint64_t hl_backlog_held_ns(void);

#endif
