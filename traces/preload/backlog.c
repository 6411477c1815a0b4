/*
 * backlog.c: holding the program back while finalising catches up (backlog.h; the
 * contract with the finaliser is raw.h's BACKLOG).
 */
#include "backlog.h"

#include "raw.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How long a waiting thread sleeps between two looks at the checkpoint. */
#define HOLD_STEP_NS 1000000L
/* After a stall the checks are skipped for HL_RAW_HOLD_STALL_NS, twice that after the
 * next, ... up to this many doublings. */
#define HOLD_BACKOFF_MAX 6u

static uint64_t g_limit = HL_RAW_BACKLOG_DEFAULT;
static uint64_t g_low;        /* the last checkpoint's low seen */
static uint64_t g_skip_until; /* CLOCK_MONOTONIC ns: no check before (a stall) */
static unsigned g_stalls;     /* stalls in a row */
static uint32_t g_held;
static uint64_t g_held_ns;

void hl_backlog_setup(uint64_t limit)
{
    g_limit = limit;
}

void hl_backlog_after_fork(void)
{
    g_low = g_skip_until = g_held_ns = 0;
    g_stalls = 0;
    g_held = 0;
}

uint32_t hl_backlog_held(void)
{
    return __atomic_load_n(&g_held, __ATOMIC_RELAXED);
}

uint64_t hl_backlog_held_ns(void)
{
    return __atomic_load_n(&g_held_ns, __ATOMIC_RELAXED);
}

static uint64_t mono_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* The checkpoint's low, or 0 if there is no checkpoint (finalising has not begun to
 * give this file back: it may not be reading it yet). */
static uint64_t checkpoint_low(const char *ckpt)
{
    int fd = open(ckpt, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    uint64_t w[HL_RAW_CKPT_W_LOW + 1];
    ssize_t k = pread(fd, w, sizeof w, 0);
    close(fd);
    if (k != (ssize_t)sizeof w || w[0] != HL_RAW_CKPT_MAGIC)
        return 0;
    return w[HL_RAW_CKPT_W_LOW];
}

static uint64_t file_size(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t lag(uint64_t size, uint64_t low)
{
    return size > low ? size - low : 0;
}

void hl_backlog_hold(int fd, const char *raw_path, pid_t watcher)
{
    uint64_t size = file_size(fd);
    if (!g_limit || lag(size, __atomic_load_n(&g_low, __ATOMIC_RELAXED)) <= g_limit)
        return;
    uint64_t t0 = mono_ns();
    if (t0 < __atomic_load_n(&g_skip_until, __ATOMIC_RELAXED))
        return;
    char ckpt[PATH_MAX + 80];
    size_t n = strlen(raw_path);
    if (n + sizeof HL_RAW_CKPT_SUFFIX > sizeof ckpt)
        return;
    memcpy(ckpt, raw_path, n);
    memcpy(ckpt + n, HL_RAW_CKPT_SUFFIX, sizeof HL_RAW_CKPT_SUFFIX);
    uint64_t low = checkpoint_low(ckpt), seen_t = t0, t = t0;
    if (!low)
        return;
    __atomic_store_n(&g_low, low, __ATOMIC_RELAXED);
    if (lag(size, low) <= g_limit)
        return;
    while (lag(size, low) > g_limit / 2) {
        if (watcher > 0 && kill(watcher, 0) != 0 && errno == ESRCH)
            break; /* nobody reads the capture any more */
        if (t - seen_t >= HL_RAW_HOLD_STALL_NS) {
            unsigned s = g_stalls < HOLD_BACKOFF_MAX ? g_stalls : HOLD_BACKOFF_MAX;
            __atomic_store_n(&g_skip_until, t + (HL_RAW_HOLD_STALL_NS << s), __ATOMIC_RELAXED);
            g_stalls++;
            break;
        }
        struct timespec step = {0, HOLD_STEP_NS};
        nanosleep(&step, NULL);
        size = file_size(fd);
        uint64_t l = checkpoint_low(ckpt);
        t = mono_ns();
        if (l > low) {
            low = l;
            seen_t = t;
            g_stalls = 0;
            __atomic_store_n(&g_low, low, __ATOMIC_RELAXED);
        } else if (!l) {
            break; /* the checkpoint is gone: the section is being finished */
        }
    }
    __atomic_fetch_add(&g_held, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_held_ns, t - t0, __ATOMIC_RELAXED);
}
