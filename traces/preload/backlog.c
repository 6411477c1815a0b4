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

/* How long a waiting thread sleeps between two looks at the state. */
#define HOLD_STEP_NS 1000000L
/* After a stall the checks are skipped for the stall time (HL_RAW_HOLD_STALL_NS),
 * twice that after the next, ... up to this many doublings. */
#define HOLD_BACKOFF_MAX 6u

static uint64_t g_limit = HL_RAW_BACKLOG_DEFAULT;
static uint64_t g_stall_ns = HL_RAW_HOLD_STALL_NS;
static char g_state[PATH_MAX + sizeof "/" HL_RAW_BACKLOG_NAME];
static uint64_t g_skip_until; /* CLOCK_MONOTONIC ns: no check before (a stall) */
static unsigned g_stalls;     /* stalls in a row */
static uint32_t g_held;
static uint64_t g_held_ns;

void hl_backlog_set_limit(uint64_t limit)
{
    g_limit = limit;
}

void hl_backlog_set_stall(uint64_t ns)
{
    g_stall_ns = ns;
}

void hl_backlog_set_dir(const char *dir)
{
    size_t n = strlen(dir);
    g_state[0] = 0;
    if (n + sizeof "/" HL_RAW_BACKLOG_NAME > sizeof g_state)
        return; /* no state file: never waits */
    memcpy(g_state, dir, n);
    memcpy(g_state + n, "/" HL_RAW_BACKLOG_NAME, sizeof "/" HL_RAW_BACKLOG_NAME);
}

void hl_backlog_after_fork(void)
{
    g_skip_until = g_held_ns = 0;
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

static uint64_t gap(uint64_t size, uint64_t need)
{
    return size > need ? size - need : 0;
}

/* The state finalising publishes, if there is a whole one. */
static int read_state(struct hl_raw_backlog *b)
{
    int sf = open(g_state, O_RDONLY | O_CLOEXEC);
    if (sf < 0)
        return 0;
    ssize_t k = pread(sf, b, sizeof *b, 0);
    close(sf);
    return k == (ssize_t)sizeof *b && b->magic == HL_RAW_BACKLOG_MAGIC &&
           b->checksum == hl_raw_checksum(HL_RAW_CHECKSUM_INIT, b, sizeof *b / 8 - 1) &&
           b->nfiles <= HL_RAW_BACKLOG_FILES;
}

/* How far finalising is behind (raw.h: BACKLOG), this image's file (inode ino) at its
 * size now (size); with its progress count in *progress.  0 if it publishes nothing
 * (or was caught writing it). */
static uint64_t behind(uint64_t size, uint64_t ino, uint64_t *progress)
{
    struct hl_raw_backlog b;
    if (!read_state(&b))
        return 0;
    uint64_t sum = b.queued;
    for (uint64_t i = 0; i < b.nfiles; i++)
        sum += gap(b.file[i].ino == ino ? size : b.file[i].size, b.file[i].need);
    *progress = b.progress;
    return sum;
}

int hl_backlog_wait(int (*more)(void *ctx, uint64_t *progress), void *ctx, pid_t watcher)
{
    uint64_t progress = 0, p;
    uint64_t t0 = mono_ns(), t = t0, seen_t = t0;
    if (!g_limit || t0 < __atomic_load_n(&g_skip_until, __ATOMIC_RELAXED))
        return 0;
    int waiting = more(ctx, &progress);
    while (waiting) {
        if (watcher > 0 && kill(watcher, 0) != 0 && errno == ESRCH)
            break; /* nobody reads the capture any more */
        if (t - seen_t >= g_stall_ns) {
            unsigned s = g_stalls < HOLD_BACKOFF_MAX ? g_stalls : HOLD_BACKOFF_MAX;
            __atomic_store_n(&g_skip_until, t + (g_stall_ns << s), __ATOMIC_RELAXED);
            g_stalls++;
            break;
        }
        struct timespec step = {0, HOLD_STEP_NS};
        nanosleep(&step, NULL);
        t = mono_ns();
        p = progress; /* kept when nothing is published any more */
        waiting = more(ctx, &p);
        if (p != progress) {
            progress = p;
            seen_t = t;
            g_stalls = 0;
        }
    }
    __atomic_fetch_add(&g_held, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_held_ns, t - t0, __ATOMIC_RELAXED);
    return !waiting;
}

struct hold {
    uint64_t size, ino;
};

/* Still more than half the limit behind. */
static int hold_more(void *ctx, uint64_t *progress)
{
    const struct hold *h = ctx;
    return behind(h->size, h->ino, progress) > g_limit / 2;
}

void hl_backlog_hold(uint64_t size, uint64_t ino, pid_t watcher)
{
    uint64_t progress;
    struct hold h = {size, ino};
    if (!g_limit || !g_state[0] || behind(size, ino, &progress) <= g_limit)
        return;
    (void)hl_backlog_wait(hold_more, &h, watcher);
}

uint64_t hl_backlog_need(uint64_t ino)
{
    struct hl_raw_backlog b;
    if (!read_state(&b))
        return 0;
    for (uint64_t i = 0; i < b.nfiles; i++)
        if (b.file[i].ino == ino)
            return b.file[i].need;
    return 0;
}
