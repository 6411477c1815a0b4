/*
 * ring.c: an image's chunks in a ring of its raw file (ring.h; the format is raw.h's
 * RING).
 */
#include "ring.h"

#include "backlog.h"
#include "raw.h"

#include <errno.h>
#include <sched.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static uint64_t g_bytes = HL_RAW_RING_DEFAULT; /* configured */
static int g_on;                                /* this image's file has a ring */
static uint64_t g_written;                      /* stream bytes written */
static uint64_t g_spill = HL_RAW_RING_NONE;
static uint64_t g_released;                     /* finalising's, as last read */
static int g_lock;

void hl_ring_set_bytes(uint64_t bytes)
{
    g_bytes = bytes & ~(uint64_t)4095;
}

int hl_ring_wanted(pid_t watcher, uint64_t bufbytes)
{
    return watcher > 0 && g_bytes && bufbytes <= g_bytes / 4;
}

void hl_ring_after_fork(void)
{
    g_on = 0;
    g_written = g_released = 0;
    g_spill = HL_RAW_RING_NONE;
    g_lock = 0;
}

int hl_ring_on(void)
{
    return g_on;
}

uint64_t hl_ring_written(void)
{
    return __atomic_load_n(&g_written, __ATOMIC_RELAXED);
}

/* 0, or the errno of the write that failed (a short write that cannot go on counts as
 * ENOSPC). */
static int pwrite_all(int fd, const void *p, size_t n, uint64_t at)
{
    const char *c = p;
    while (n) {
        ssize_t k = pwrite(fd, c, n, (off_t)at);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : ENOSPC;
        c += k;
        at += (uint64_t)k;
        n -= (size_t)k;
    }
    return 0;
}

static int put_word(int fd, uint64_t at, uint64_t v)
{
    return pwrite_all(fd, &v, sizeof v, at);
}

int hl_ring_start(int fd)
{
    struct hl_raw_ring r = {HL_RAW_RING_MAGIC, g_bytes, 0, HL_RAW_RING_NONE, 0};
    struct rlimit lim;
    g_on = 0;
    g_written = g_released = 0;
    g_spill = HL_RAW_RING_NONE;
    /* Sizing the file past a file size limit would raise SIGXFSZ in the program. */
    if (getrlimit(RLIMIT_FSIZE, &lim) != 0 ||
        (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < HL_RAW_RING_BASE + g_bytes))
        return -1;
    if (pwrite_all(fd, &r, sizeof r, HL_RAW_RING_AT) != 0 ||
        ftruncate(fd, (off_t)(HL_RAW_RING_BASE + g_bytes)) != 0) {
        (void)ftruncate(fd, 0);
        return -1;
    }
    g_on = 1;
    return 0;
}

static void lock(void)
{
    for (unsigned i = 0; __atomic_exchange_n(&g_lock, 1, __ATOMIC_ACQUIRE); i++) {
        if (i < 64) {
            sched_yield();
        } else { /* a writer may be waiting for room: do not spin meanwhile */
            struct timespec t = {0, 100000};
            nanosleep(&t, NULL);
        }
    }
}

static void unlock(void)
{
    __atomic_store_n(&g_lock, 0, __ATOMIC_RELEASE);
}

struct room {
    int fd;
    uint64_t ino, need; /* need: the stream's end once the chunk is in */
};

/* Read `released` again. */
static void reread(int fd)
{
    uint64_t v;
    if (pread(fd, &v, sizeof v, (off_t)HL_RAW_RING_WORD(released)) == (ssize_t)sizeof v &&
        v > g_released && v <= g_written)
        g_released = v;
}

/* No room yet; progress: how far finalising has come in this file (not the whole
 * capture's progress: a file finalising has not begun must not wait for it). */
static int no_room(void *ctx, uint64_t *progress)
{
    const struct room *r = ctx;
    reread(r->fd);
    *progress = g_released + hl_backlog_need(r->ino);
    return r->need > g_released + g_bytes;
}

int hl_ring_put(int fd, uint64_t ino, struct hl_raw_chunk *c, pid_t watcher)
{
    size_t n = sizeof *c + c->nbytes;
    lock();
    uint64_t x = g_written;
    if (g_spill == HL_RAW_RING_NONE && x + n > g_released + g_bytes)
        reread(fd); /* finalising may have given room back since the last look */
    if (g_spill == HL_RAW_RING_NONE && x + n > g_released + g_bytes) {
        struct room r = {fd, ino, x + n};
        if (!hl_backlog_wait(no_room, &r, watcher)) {
            g_spill = x; /* from here on after the ring, for good */
            int e = put_word(fd, HL_RAW_RING_WORD(spill), x);
            if (e) {
                unlock();
                return e;
            }
        }
    }
    c->checksum ^= hl_raw_chunk_salt(x);
    for (size_t done = 0; done < n;) {
        uint64_t len, at = hl_raw_ring_where(g_bytes, g_spill, x + done, &len);
        if (len > n - done)
            len = n - done;
        int e = pwrite_all(fd, (const char *)c + done, (size_t)len, at);
        if (e) {
            unlock();
            return e;
        }
        done += (size_t)len;
    }
    __atomic_store_n(&g_written, x + n, __ATOMIC_RELAXED);
    int e = put_word(fd, HL_RAW_RING_WORD(written), x + n);
    unlock();
    return e;
}
