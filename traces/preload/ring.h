/*
 * ring.h: where an image's chunks go in its raw file (raw.h: RING).
 *
 * While a heaplab reads the capture as it is written, the chunks go into a ring of
 * page-cache pages used again and again, whose room finalising gives back as it goes
 * (the ring state's `released`); when the ring stays full they go after it, for the
 * rest of the image.  Without a reader, or with a ring too small for the buffer, the
 * file is appended to as before (hl_ring_on() is 0).
 *
 * State is per image (a fork child starts its own with its own file).  Writers are
 * serialised by a lock of the image: one chunk is written whole before the next.
 * Called with the interposer's guard up (interpose.c): nothing here allocates.
 */
#ifndef HEAPLAB_RING_H
#define HEAPLAB_RING_H

#include <stdint.h>
#include <sys/types.h>

struct hl_raw_chunk;

/* The ring's bytes (raw.h: HL_RAW_ENV_RING), 0 for none. */
void hl_ring_set_bytes(uint64_t bytes);
/* Whether the next image's file gets a ring: a heaplab reads it (watcher > 0) and the
 * ring holds at least 4 buffers of bufbytes. */
int hl_ring_wanted(pid_t watcher, uint64_t bufbytes);
/* Set up the ring in the new, empty file fd (opened without O_APPEND), before its
 * header: its state, and the file sized past the ring, so that the ring's pages are
 * the file's.  Returns 0, or -1 (then no ring, the file empty again: the caller
 * appends); -1 also when a file size limit is below the ring's end. */
int hl_ring_start(int fd);
/* A fork child's image: no ring until hl_ring_start. */
void hl_ring_after_fork(void);
/* This image's file has a ring. */
int hl_ring_on(void);
/* The stream's bytes written so far. */
uint64_t hl_ring_written(void);
/* Write chunk c (header and payload, its checksum set as for an appended file) at the
 * stream's end of fd (inode ino): salts its checksum, waits for room as raw.h says, or
 * spills.  Returns 0, or the errno of the write that failed. */
int hl_ring_put(int fd, uint64_t ino, struct hl_raw_chunk *c, pid_t watcher);

#endif
