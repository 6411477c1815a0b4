/* floor: the least a recording interposer can cost, as yardsticks for heaplab's
 * (`scripts/bench-scale floor`).  Not a recorder: nothing here can be finalised.
 *
 * Built three times (FLOOR_LEVEL), each preloaded in place of heaplab's interposer:
 *   1 shim   malloc and free call glibc's own (__libc_malloc, __libc_free): the cost of
 *            being interposed at all;
 *   2 drop   and each call stores one word into a per-thread 1 MiB buffer (the address
 *            shifted, the size, the operation: no sequence number, no deltas, no guard),
 *            which is dropped when full: the least per-call recording work;
 *   3 write  and each full buffer is appended to $HEAPLAB_CAPTURE_DIR/floor.raw with
 *            write(2), as heaplab's interposer sends its chunks: the least recording
 *            that gets the records out of the process;
 *   4 ring   or instead copied into the next 1 MiB of a 64 MiB file mapped shared
 *            ($HEAPLAB_CAPTURE_DIR/floor.ring), round and round: no system call, and
 *            the same page-cache pages written again (a ring's cost without its flow
 *            control: traces/HISTORY.md, "What a 2x would take").
 * Only malloc and free are replaced (what rec-churn calls in its loop); calloc and
 * realloc stay glibc's, which is consistent because the replacements are glibc's too. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef FLOOR_LEVEL
#error "FLOOR_LEVEL must be 1, 2, 3 or 4"
#endif

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);

#define EXPORT __attribute__((visibility("default")))
#define BUF_WORDS ((size_t)1 << 17) /* 1 MiB */

#if FLOOR_LEVEL >= 2
static __thread uint64_t *pos __attribute__((tls_model("initial-exec")));
static __thread uint64_t *end __attribute__((tls_model("initial-exec")));
static __thread uint64_t *buf __attribute__((tls_model("initial-exec")));

#if FLOOR_LEVEL >= 3
/* $HEAPLAB_CAPTURE_DIR/name, created afresh; -1 if it cannot be. */
static int open_out(const char *name, int flags)
{
    const char *dir = getenv("HEAPLAB_CAPTURE_DIR");
    char path[PATH_MAX];
    if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return -1;
    return open(path, flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}
#endif

#if FLOOR_LEVEL == 3
static int out_fd = -1;
#elif FLOOR_LEVEL == 4
#define RING_SLOTS 64
static uint8_t *ring;
static unsigned ring_next;

static void open_ring(void)
{
    size_t len = RING_SLOTS * BUF_WORDS * 8;
    int fd = open_out("floor.ring", O_RDWR);
    if (fd < 0 || ftruncate(fd, (off_t)len) != 0)
        abort();
    void *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        abort();
    ring = m;
}
#endif

/* The buffer is full (or not there yet): send it on (levels 3, 4) and start again. */
static __attribute__((noinline)) uint64_t *full(void)
{
    if (!buf) {
        void *m = mmap(NULL, BUF_WORDS * 8, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            abort();
        buf = m;
    }
#if FLOOR_LEVEL == 3
    else {
        if (out_fd < 0)
            out_fd = open_out("floor.raw", O_WRONLY | O_APPEND);
        if (out_fd >= 0 && write(out_fd, buf, (size_t)(pos - buf) * 8) < 0)
            abort();
    }
#elif FLOOR_LEVEL == 4
    else { /* one thread in rec-churn: no lock on ring_next */
        if (!ring)
            open_ring();
        memcpy(ring + (size_t)(ring_next++ % RING_SLOTS) * BUF_WORDS * 8, buf,
               (size_t)(pos - buf) * 8);
    }
#endif
    end = buf + BUF_WORDS;
    return buf;
}

static inline void note(uint64_t word)
{
    uint64_t *w = pos;
    if (__builtin_expect(w >= end, 0))
        w = full();
    *w = word;
    pos = w + 1;
}
#endif

EXPORT void *malloc(size_t n)
{
    void *p = __libc_malloc(n);
#if FLOOR_LEVEL >= 2
    note((uint64_t)(uintptr_t)p << 15 | (uint64_t)(n & 0x3fff) << 1 | 1);
#endif
    return p;
}

EXPORT void free(void *p)
{
#if FLOOR_LEVEL >= 2
    note((uint64_t)(uintptr_t)p << 15);
#endif
    __libc_free(p);
}
