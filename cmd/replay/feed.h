/*
 * feed.h: a trace section's events decoded on a thread of their own (feed.c), so that
 * the replay plan is built on one core while the trace is read and decoded on the
 * other.  Only the parent uses it, before any worker runs.
 */
#ifndef HEAPLAB_REPLAY_FEED_H
#define HEAPLAB_REPLAY_FEED_H

#include "trace.h"

#include <sys/types.h>

struct hl_feed;

/* Start reading the section r stands at.  NULL if no thread could be started (read
 * it directly then).  r must not be used until hl_feed_end. */
struct hl_feed *hl_feed_start(struct hl_reader *r);
/* The next batch of events, as hl_reader_events: > 0 events (valid until the next
 * call), 0 at the section's end, -1 with err. */
ssize_t hl_feed_next(struct hl_feed *f, const struct hl_event **events, struct hl_err *err);
/* Stop reading (wherever it stands) and free f. */
void hl_feed_end(struct hl_feed *f);

#endif
