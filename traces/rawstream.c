/*
 * rawstream.c: where a raw file's chunk stream is, for the finaliser (raw.h: RING).
 *
 * The finaliser reads every raw file as a stream of chunks at offsets, as if the file
 * were appended to (finalise.c: scan_more, window_read; checkpoint.c's `low`).  In an
 * appended file an offset is the file's.  In a ring file, offset HL_RAW_RING_BASE + x
 * stands for stream offset x, which is in the ring or after it (hl_raw_ring_where),
 * and its end is the ring state's `written`, not the file's size.  Giving back what
 * was read is a hole punched in an appended file, and the ring's `released` moved on
 * (and a hole in what went after the ring) in a ring file.
 */
#include "finalise_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read the ring state of f (fd open) into f: 0, or -1 if it is not a ring state. */
static int ring_state(struct rawfile *f, int fd, struct hl_raw_ring *r)
{
    if (pread(fd, r, sizeof *r, HL_RAW_RING_AT) != (ssize_t)sizeof *r ||
        r->magic != HL_RAW_RING_MAGIC || !r->bytes || r->bytes % 4096 ||
        r->bytes > HL_RAW_RING_MAX)
        return -1;
    f->ring_bytes = r->bytes;
    if (r->spill != HL_RAW_RING_NONE && r->spill < f->ring_spill)
        f->ring_spill = r->spill;
    if (r->written > f->ring_written)
        f->ring_written = r->written;
    return 0;
}

int raw_stream_open(struct rawfile *f, int fd)
{
    struct hl_raw_ring r;
    f->ring_bytes = 0;
    f->ring_spill = HL_RAW_RING_NONE;
    f->ring_written = 0;
    if (f->h.version < 7 || !(f->h.flags & HL_RAW_HDR_RING))
        return 0;
    return ring_state(f, fd, &r);
}

size_t raw_stream_first(const struct rawfile *f)
{
    return f->ring_bytes ? HL_RAW_RING_BASE : sizeof f->h;
}

int raw_stream_size(struct rawfile *f, int final, size_t *size)
{
    struct stat sb;
    if (!f->ring_bytes) {
        if (stat(f->path, &sb) != 0)
            return errno;
        *size = (size_t)sb.st_size;
        return 0;
    }
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return e ? e : EIO;
    }
    struct hl_raw_ring r;
    int bad = ring_state(f, fd, &r);
    close(fd);
    if (bad)
        return EIO;
    uint64_t end = f->ring_written;
    if (final) {
        /* A process killed between a chunk and `written` leaves the chunk: look as far
         * as the writer could have gone (the scan stops at the first that does not
         * check: raw_stream_past_end). */
        uint64_t after = (uint64_t)sb.st_size > HL_RAW_RING_BASE + f->ring_bytes
                             ? (uint64_t)sb.st_size - HL_RAW_RING_BASE - f->ring_bytes : 0;
        end = f->ring_spill != HL_RAW_RING_NONE ? f->ring_spill + after
                                                : r.released + f->ring_bytes;
        if (end < f->ring_written)
            end = f->ring_written;
    }
    *size = (size_t)(HL_RAW_RING_BASE + end);
    return 0;
}

int raw_stream_past_end(const struct rawfile *f, size_t off)
{
    return f->ring_bytes && off >= HL_RAW_RING_BASE + f->ring_written;
}

ssize_t raw_stream_pread(const struct rawfile *f, int fd, void *buf, size_t n, size_t off)
{
    if (!f->ring_bytes || off + n <= HL_RAW_RING_BASE)
        return pread(fd, buf, n, (off_t)off);
    if (off < HL_RAW_RING_BASE) /* the header's page: read it alone */
        return pread(fd, buf, HL_RAW_RING_BASE - off, (off_t)off);
    uint64_t len, at = hl_raw_ring_where(f->ring_bytes, f->ring_spill, off - HL_RAW_RING_BASE,
                                         &len);
    if (len < n)
        n = (size_t)len; /* to the ring's end: the caller reads the rest next */
    return pread(fd, buf, n, (off_t)at);
}

uint64_t raw_stream_salt(const struct rawfile *f, size_t off)
{
    return f->ring_bytes ? hl_raw_chunk_salt(off - HL_RAW_RING_BASE) : 0;
}

/* A hole from file byte `from` to `to`: 0, or -1. */
static int hole(const char *path, size_t from, size_t to)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)from,
                      (off_t)(to - from));
    close(fd);
    return r;
}

void raw_stream_release(struct rawfile *f, size_t upto)
{
    /* The header stays: the file is still listed and ordered by it. */
    long pg = sysconf(_SC_PAGESIZE);
    size_t keep = (raw_stream_first(f) + (size_t)pg - 1) & ~(size_t)(pg - 1);
    if (f->punched < keep)
        f->punched = keep;
    if (upto <= f->punched)
        return;
    if (!f->ring_bytes) {
        if (hole(f->path, f->punched, upto) == 0)
            f->punched = upto;
        return;
    }
    uint64_t x = upto - HL_RAW_RING_BASE, spill = f->ring_spill;
    uint64_t rel = x < spill ? x : spill;
    int fd = open(f->path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t k = pwrite(fd, &rel, sizeof rel, (off_t)HL_RAW_RING_WORD(released));
    close(fd);
    if (k != (ssize_t)sizeof rel)
        return;
    if (x > spill) { /* what went after the ring: given back as an appended file's */
        uint64_t from = f->punched - HL_RAW_RING_BASE;
        if (from < spill)
            from = spill;
        uint64_t base = HL_RAW_RING_BASE + f->ring_bytes;
        if (hole(f->path, (size_t)(base + from - spill), (size_t)(base + x - spill)) != 0)
            return;
    }
    f->punched = upto;
}
