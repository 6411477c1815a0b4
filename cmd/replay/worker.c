/*
 * worker.c: the worker process, `heaplab __worker probe|run ...` (see replay.h).
 *
 * The worker runs with the allocator under test preloaded, so every byte it allocates
 * itself would disturb what it measures.  It therefore never calls malloc on its own
 * account: the plan is read a window at a time (pread, between windows, with the clock
 * paused) into a buffer of constant size, and the slot table, ready flags, latency
 * samples and histogram, and timeline live in anonymous mmaps, all touched before the
 * baseline is taken, so the harness's memory is constant and subtracted.  The only
 * allocator calls between the baseline and the end of the loop are the replayed ones
 * (and whatever the allocator does for itself).  A plan with one replay thread is
 * replayed on the main thread alone, its windows read inline: no helper thread.
 *
 * Output is one struct hl_rp_result (then the timeline samples) written to the result
 * pipe; errors travel in the same struct so that the parent prints the one-line error.
 */
#include "baseline.h"
#include "cmd.h"
#include "gaps.h"
#include "replay.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <gnu/libc-version.h>
#include <linux/perf_event.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/futex.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* The replayed calls go straight through the GOT (call *malloc@GOTPCREL) rather than
 * through a PLT stub: one jump less per event, for every allocator alike. */
#if defined(__GNUC__) && !defined(__clang__)
extern void *malloc(size_t) __attribute__((noplt));
extern void free(void *) __attribute__((noplt));
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
static inline uint64_t cycles_now(void) { return __rdtsc(); }
#else
static inline uint64_t cycles_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
#endif

#define LAT_EVERY 64 /* one call in LAT_EVERY is timed in cycles */
_Static_assert(LAT_EVERY == HL_GAP_EVENTS, "a gap is spent after each timing block");

/* ---- configuration and shared state (static storage, never the heap) ---- */

static struct {
    const char *lib;
    int result_fd, plan_fd, gap_fd;
    int touch, check, counters, timeline;
} cfg = {NULL, -1, -1, -1, HL_TOUCH_PAGE, HL_CHECK_CHEAP, HL_CNT_AUTO, 0};

static struct hl_rp_result res;
static const struct hl_plan_hdr *plan;
static struct hl_plan_hdr plan_hdr;  /* the plan's header (its windows are read one by one) */
static const struct hl_plan_hdr *plan = &plan_hdr;
static uint64_t *blk_bytes;          /* bytes of each slot's block, written as allocated */
static uint32_t *gap_ns;             /* --gaps: the gap table (gaps.h), NULL without */
static uint64_t ngap;
static uint32_t gap_recent[HL_GAP_RECENT]; /* --gaps: slots of the latest allocations */
static uint32_t gap_nrecent;
static void **slots;
static _Atomic uint8_t *ready;
static size_t pagesz;
static int statm_fd = -1;
static uint64_t t0_ns;
static _Atomic int start_flag;
static _Atomic uint64_t viol_count, fail_count;

/* A block of LAT_EVERY events as it ran: its cycles (waits excluded), and its first
 * event's call and touch windows.  Accounted after the loop, so that the loop itself
 * has no branch that depends on a time (callgrind's counts stay repeatable). */
struct blkrec {
    uint64_t block, call, touch;
    uint32_t ntouch, n;
};

struct wthr {
    const struct hl_rp_ev *ev;
    uint64_t nev;
    const uint64_t *cev;          /* the compact stream (plain loop; replay.h) */
    const struct hl_rp_ev *cx;    /* its escapes */
    uint64_t *lat;  /* (op << 56) | cycles */
    uint64_t nlat;
    uint64_t *tl;   /* pairs: time_ns, rss bytes */
    uint64_t ntl, tlk;
    uint64_t cyc_wait;            /* every wait for another thread, in full */
    struct blkrec *blk;           /* one per block of LAT_EVERY events */
    uint64_t nblk;
    uint64_t est_call, est_touch; /* estimates for all events, cycles (block_account) */
    uint64_t start_ns, end_ns;
    uint64_t cpu_ns;              /* the thread's CPU time over its loop */
    int64_t live;                 /* bytes this thread allocated less those it freed */
    uint64_t gap_next;            /* --gaps: the next gap of the table */
    uint64_t gap_lines, cyc_gap;  /* --gaps: cache lines written, cycles spent in gaps */
    pthread_t tid;
} __attribute__((aligned(64)));
static struct wthr *thr;

/* The library's allocation entry points, checked to come from the library under test. */
static int (*f_posix_memalign)(void **, size_t, size_t);
static void *(*f_aligned_alloc)(size_t, size_t);
static void *(*f_memalign)(size_t, size_t);
static void *(*f_valloc)(size_t);
static void *(*f_pvalloc)(size_t);
static size_t (*f_usable)(void *);

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void send_result(void)
{
    const char *p = (const char *)&res;
    size_t n = sizeof res;
    while (n) {
        ssize_t k = write(cfg.result_fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            _exit(3);
        p += k;
        n -= (size_t)k;
    }
}

__attribute__((format(printf, 1, 2), noreturn)) static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.error, sizeof res.error, fmt, ap);
    va_end(ap);
    res.magic = HL_RP_RESULT_MAGIC;
    res.status = 1;
    res.ntimeline = 0;
    send_result();
    _exit(1);
}

static void *map_anon(size_t n)
{
    if (n == 0)
        n = 1;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        fail("worker: cannot map %zu bytes: %s", n, strerror(errno));
    if (hl_bl_own(p, n) != 0)
        fail("worker: more than %d maps of its own", HL_BL_MAX_OWN);
    memset(p, 0, n); /* resident before the baseline */
    return p;
}

/* ---- which object a function comes from ---- */

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

static const char *object_of(void *fn)
{
    Dl_info di;
    if (!fn || !dladdr(fn, &di) || !di.dli_fname)
        return "";
    return di.dli_fname;
}

/* The object malloc must come from: the preloaded library, or glibc's libc. */
static char home[512];

static void *own(const char *name)
{
    void *fn = dlsym(RTLD_DEFAULT, name);
    if (!fn || !same_file(object_of(fn), home))
        return NULL;
    return fn;
}

static void resolve(void)
{
    void *m = dlsym(RTLD_DEFAULT, "malloc");
    snprintf(res.malloc_from, sizeof res.malloc_from, "%s", object_of(m));
    if (cfg.lib) {
        void *h = dlopen(cfg.lib, RTLD_NOW | RTLD_NOLOAD);
        if (!h)
            fail("%s: cannot be preloaded (not a loadable shared library?)", cfg.lib);
        if (!same_file(res.malloc_from, cfg.lib))
            fail("%s: does not replace malloc (malloc comes from %s)", cfg.lib,
                 res.malloc_from[0] ? res.malloc_from : "an unknown object");
        snprintf(home, sizeof home, "%s", cfg.lib);
        for (const char *const *n = (const char *const[]){"free", "calloc", "realloc", NULL};
             *n; n++)
            if (!own(*n))
                fail("%s: replaces malloc but not %s", cfg.lib, *n);
    } else {
        snprintf(home, sizeof home, "%s", res.malloc_from);
    }
    f_posix_memalign = (int (*)(void **, size_t, size_t))own("posix_memalign");
    f_aligned_alloc = (void *(*)(size_t, size_t))own("aligned_alloc");
    f_memalign = (void *(*)(size_t, size_t))own("memalign");
    f_valloc = (void *(*)(size_t))own("valloc");
    f_pvalloc = (void *(*)(size_t))own("pvalloc");
    f_usable = (size_t(*)(void *))own("malloc_usable_size");
}

/* Aligned allocation through whatever aligned entry point the library has; glibc's
 * own would hand out blocks the library under test cannot free. */
static void *aligned_any(size_t align, size_t size)
{
    void *p = NULL;
    if (f_posix_memalign) {
        if (align < sizeof(void *))
            align = sizeof(void *);
        return f_posix_memalign(&p, align, size) == 0 ? p : NULL;
    }
    if (f_aligned_alloc)
        return f_aligned_alloc(align, (size + align - 1) / align * align);
    if (f_memalign)
        return f_memalign(align, size);
    return malloc(size);
}

static void find_version(void)
{
    if (!cfg.lib) {
        snprintf(res.version, sizeof res.version, "%s", gnu_get_libc_version());
        return;
    }
    int (*mallctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))own("mallctl");
    int (*mi_version)(void) = (int (*)(void))own("mi_version");
    const char *(*tc_version)(int *, int *, const char **) =
        (const char *(*)(int *, int *, const char **))own("tc_version");
    if (mallctl) {
        const char *v = NULL;
        size_t len = sizeof v;
        if (mallctl("version", &v, &len, NULL, 0) == 0 && v)
            snprintf(res.version, sizeof res.version, "%.*s", (int)strcspn(v, "-"), v);
    } else if (mi_version) {
        int v = mi_version();
        snprintf(res.version, sizeof res.version, "%d.%d.%d", v / 100, v / 10 % 10, v % 10);
    } else if (tc_version) {
        int ma = 0, mi = 0;
        const char *patch = "";
        tc_version(&ma, &mi, &patch);
        snprintf(res.version, sizeof res.version, "%d.%d%s", ma, mi, patch ? patch : "");
    }
}

/* ---- contract checks ---- */

static void violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void violation(const char *fmt, ...)
{
    uint64_t k = atomic_fetch_add(&viol_count, 1);
    if (k < HL_RP_NVIOL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(res.viol[k], sizeof res.viol[k], fmt, ap);
        va_end(ap);
    }
}

static uint8_t pattern(uint32_t slot)
{
    return (uint8_t)((slot * 131u) ^ 0x5a) | 1;
}

static int holds(const uint8_t *p, uint64_t n, uint8_t v)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i] != v)
            return 0;
    return 1;
}

static uint64_t ev_align(const struct hl_rp_ev *e, uint64_t bytes)
{
    switch (e->op) {
    case HL_OP_POSIX_MEMALIGN:
    case HL_OP_ALIGNED_ALLOC:
    case HL_OP_MEMALIGN:
        return e->aux;
    case HL_OP_VALLOC:
    case HL_OP_PVALLOC:
        return pagesz;
    default:
        return bytes >= 16 ? 16 : 0;
    }
}

__attribute__((noinline, cold)) static void bad_align(const struct hl_rp_ev *e, const void *p,
                                                     uint64_t bytes, uint64_t a)
{
    violation("%s(%llu) returned %p, not %llu-byte aligned", hl_op_name(e->op),
              (unsigned long long)bytes, p, (unsigned long long)a);
}

__attribute__((noinline, cold)) static void bad_usable(const struct hl_rp_ev *e, uint64_t bytes,
                                                      size_t u)
{
    violation("%s(%llu) returned a block of %zu usable bytes", hl_op_name(e->op),
              (unsigned long long)bytes, u);
}

/* A calloc's nmemb: with HL_RF_PAGES, size holds the product (replay.h). */
static inline __attribute__((always_inline)) uint32_t calloc_nmemb(const struct hl_rp_ev *e)
{
    return e->flags & HL_RF_PAGES ? 1 : e->aux;
}

__attribute__((noinline)) static void check_zeroed(const struct hl_rp_ev *e, const uint8_t *p,
                                                   uint64_t bytes, int full)
{
    int zero;
    if (full || bytes <= 512) {
        zero = holds(p, bytes, 0);
    } else { /* cheap: both ends and one byte per page */
        zero = holds(p, 256, 0) && holds(p + bytes - 256, 256, 0);
        for (uint64_t o = 256; zero && o < bytes; o += pagesz)
            zero = p[o] == 0;
    }
    if (!zero)
        violation("calloc(%u, %llu) returned memory that is not zeroed", calloc_nmemb(e),
                  (unsigned long long)e->size);
}

/* The contract checks on a new block; inlined into the loop, the reports out of line. */
static inline __attribute__((always_inline)) void check_block(const struct hl_rp_ev *e,
                                                              uint8_t *p, uint64_t bytes,
                                                              int full)
{
    uint64_t a = ev_align(e, bytes);
    if (__builtin_expect(a && ((uintptr_t)p & (a - 1)), 0))
        bad_align(e, p, bytes, a);
    if (f_usable) {
        size_t u = f_usable(p);
        if (__builtin_expect(u < bytes, 0))
            bad_usable(e, bytes, u);
    }
    if (e->op == HL_OP_CALLOC)
        check_zeroed(e, p, bytes, full);
}

/* ---- the replay loop ---- */

/* The block is not there yet: spin, then yield, and count the cycles spent, which are
 * neither the allocator's time nor the harness's (time_split.wait_ns). */
__attribute__((noinline)) static void wait_slow(struct wthr *t, uint32_t slot)
{
    const uint64_t c0 = cycles_now();
    for (int spin = 0; !atomic_load_explicit(&ready[slot], memory_order_acquire); spin++) {
        if (spin < 64) {
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        } else {
            sched_yield();
        }
    }
    t->cyc_wait += cycles_now() - c0;
}

/* Wait for the block of slot and take its flag back: the slot is handed out again
 * only in a later window (replay.h), whose publisher must set it anew. */
static inline void wait_ready(struct wthr *t, uint32_t slot)
{
    if (__builtin_expect(!atomic_load_explicit(&ready[slot], memory_order_acquire), 0))
        wait_slow(t, slot);
    atomic_store_explicit(&ready[slot], 0, memory_order_relaxed);
}

static uint64_t rss_now(void)
{
    char buf[128];
    ssize_t n = pread(statm_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *s = strchr(buf, ' ');
    return s ? strtoull(s + 1, NULL, 10) * pagesz : 0;
}

/* A call, timed or not: a timed one adds its cycles to cur->call and one latency
 * sample (op << 56 | cycles) at *latp. */
#define TIMED_CALL(timed, op, latp, cur, expr)                                              \
    do {                                                                                   \
        if (timed) {                                                                       \
            const uint64_t c0_ = cycles_now();                                             \
            expr;                                                                          \
            const uint64_t c1_ = cycles_now();                                             \
            *(*(latp))++ = ((uint64_t)(op) << 56) | (c1_ - c0_);                           \
            (cur)->call += c1_ - c0_;                                                      \
        } else {                                                                           \
            expr;                                                                          \
        }                                                                                  \
    } while (0)

static __attribute__((noinline)) void *call_aligned(const struct hl_rp_ev *e)
{
    switch (e->op) {
    case HL_OP_POSIX_MEMALIGN:
        if (f_posix_memalign) {
            void *p;
            return f_posix_memalign(&p, e->aux, e->size) == 0 ? p : NULL;
        }
        return aligned_any(e->aux, e->size);
    case HL_OP_ALIGNED_ALLOC:
        return f_aligned_alloc ? f_aligned_alloc(e->aux, e->size) : aligned_any(e->aux, e->size);
    case HL_OP_MEMALIGN:
        return f_memalign ? f_memalign(e->aux, e->size) : aligned_any(e->aux, e->size);
    case HL_OP_VALLOC:
        return f_valloc ? f_valloc(e->size) : aligned_any(pagesz, e->size);
    case HL_OP_PVALLOC:
        return f_pvalloc ? f_pvalloc(e->size)
                         : aligned_any(pagesz, (e->size + pagesz - 1) / pagesz * pagesz);
    }
    return NULL;
}

/* Every allocating op but malloc, which step calls itself. */
static inline __attribute__((always_inline)) void *call_other(const struct hl_rp_ev *e,
                                                              void *old, const int pages)
{
    if (e->op == HL_OP_REALLOC)
        return realloc(old, e->size);
    if (e->op == HL_OP_CALLOC)
        return calloc(pages ? calloc_nmemb(e) : e->aux, e->size);
    return call_aligned(e);
}

__attribute__((noinline)) static void full_check_live(uint32_t slot, const void *p,
                                                      uint64_t bytes)
{
    if (p && !holds(p, bytes, pattern(slot)))
        violation("block of slot %u (%llu bytes) changed while live: overlapping blocks", slot,
                  (unsigned long long)bytes);
}

__attribute__((noinline)) static void take_sample(struct wthr *t)
{
    if (t->tlk < t->ntl) {
        t->tl[2 * t->tlk] = mono_ns() - t0_ns;
        t->tl[2 * t->tlk + 1] = rss_now();
        t->tlk++;
    }
}

/* One replayed event.  Inlined into run_events with constant touch, check, plain,
 * timed and pages, so that each configuration pays only for what it does: a plain loop
 * (one replay thread, no timeline) does not even test the event's flags, and with pages
 * 0 nothing is tested or computed for recorded pages (HL_RF_PAGES).  "No block" is a
 * slot of its own that always holds NULL (see replay.h), so free(NULL) and
 * realloc(NULL, n) need no test here.  A timed event adds its call and touch windows to
 * *cur.  op, size and slot are the event's (decoded by the caller, so that the compact
 * stream's mallocs and frees need no hl_rp_ev); e supplies the rest, which only the
 * other ops read (for a compact malloc or free it is a template with just the op). */
static inline __attribute__((always_inline)) void step(struct wthr *t, const struct hl_rp_ev *e,
                                                       const uint8_t op, const uint64_t size,
                                                       const uint64_t slot, void **const sl, uint64_t **latp,
                                                       struct blkrec *cur, const int touch,
                                                       const int check, const int plain,
                                                       const int timed, const int gaps,
                                                       const int pages)
{
    const uint8_t fl = plain ? 0 : e->flags;
    uint64_t ct = 0;
    if (op == HL_OP_FREE) {
        if (!plain && (fl & HL_RF_WAIT))
            wait_ready(t, slot);
        void *p = sl[slot];
        if (check == HL_CHECK_FULL) {
            if (timed)
                ct = cycles_now();
            full_check_live(slot, p, blk_bytes[slot]);
            if (timed) {
                cur->touch += cycles_now() - ct;
                cur->ntouch++;
            }
        }
        TIMED_CALL(timed, HL_OP_FREE, latp, cur, free(p));
        if (gaps) /* the gaps write only to live blocks */
            sl[slot] = NULL;
        if (!plain)
            t->live -= (int64_t)size;
    } else {
        /* Only realloc passes a block in: the others neither wait for it nor load it. */
        void *old = NULL;
        uint8_t *p;
        if (__builtin_expect(op == HL_OP_MALLOC, 1)) {
            TIMED_CALL(timed, op, latp, cur, p = malloc(size));
        } else {
            if (op == HL_OP_REALLOC) {
                if (!plain && (fl & HL_RF_WAIT))
                    wait_ready(t, e->old_slot);
                old = sl[e->old_slot];
                if (check == HL_CHECK_FULL)
                    full_check_live(e->old_slot, old, blk_bytes[e->old_slot]);
            }
            TIMED_CALL(timed, op, latp, cur, p = call_other(e, old, pages));
            if (gaps && op == HL_OP_REALLOC && p)
                sl[e->old_slot] = NULL;
        }
        sl[slot] = p;
        if (gaps)
            gap_recent[gap_nrecent++ & (HL_GAP_RECENT - 1)] = (uint32_t)slot;
        /* The block's bytes, for a later realloc (touch, checks) and the live bytes. */
        /* A block with recorded pages (HL_RF_PAGES, only escapes carry it): tested only
         * where pages is set, which the compact stream's loop leaves to paged_escape.
         * Its live bytes are those pages, as the plan counts them (its free's size). */
        const int paged =
            pages && __builtin_expect(((plain ? e->flags : fl) & HL_RF_PAGES) != 0, 0);
        const uint64_t nbytes =
            op == HL_OP_CALLOC ? e->size * (pages ? calloc_nmemb(e) : e->aux) : size;
        const uint64_t obytes = op == HL_OP_REALLOC ? blk_bytes[e->old_slot] : 0;
        if (!plain || touch != HL_TOUCH_NONE || check == HL_CHECK_FULL || gaps)
            blk_bytes[slot] = nbytes;
        if (!plain)
            t->live += (int64_t)(paged ? (uint64_t)e->aux * pagesz : nbytes) - (int64_t)obytes;
        if (check == HL_CHECK_NONE && touch == HL_TOUCH_NONE) {
            if (__builtin_expect(p == NULL, 0) && size)
                atomic_fetch_add(&fail_count, 1);
        } else if (__builtin_expect(p != NULL, 1)) {
            {
                const uint64_t bytes = nbytes;
                const uint64_t oldbytes = old ? obytes : 0;
                if (timed)
                    ct = cycles_now();
                if (check != HL_CHECK_NONE)
                    check_block(e, p, bytes, check == HL_CHECK_FULL);
                if (check == HL_CHECK_FULL) {
                    uint64_t keep = oldbytes < bytes ? oldbytes : bytes;
                    if (old && !holds(p, keep, pattern(e->old_slot)))
                        violation("realloc(%llu -> %llu) did not keep the contents",
                                  (unsigned long long)oldbytes, (unsigned long long)bytes);
                    memset(p, pattern(slot), bytes);
                } else if (touch == HL_TOUCH_PAGE || touch == HL_TOUCH_HEAD) {
                    const uint64_t pg = pagesz; /* not reloaded after each byte store */
                    uint64_t lim =
                        touch == HL_TOUCH_HEAD && bytes > HL_TOUCH_HEAD_BYTES ? HL_TOUCH_HEAD_BYTES
                                                                              : bytes;
                    /* The pages the program made resident, where the trace counted them. */
                    if (paged && (uint64_t)e->aux * pg < lim)
                        lim = (uint64_t)e->aux * pg;
                    /* A program asks calloc for zeros because it reads them: each page of
                     * a calloc'd block is read before it is written, as the program would
                     * (an allocator that hands out untouched fresh pages then pays for
                     * the kernel's zero page and its copy on write, as it does run
                     * directly: xz's hash tables; one that zeroes them in calloc, not). */
                    for (uint64_t o = oldbytes; o < lim; o += pg) {
                        if (op == HL_OP_CALLOC)
                            (void)*(volatile uint8_t *)(p + o);
                        p[o] = 1;
                    }
                } else if (touch == HL_TOUCH_ALL) {
                    if (oldbytes < bytes)
                        memset(p + oldbytes, 0xa5, bytes - oldbytes);
                }
                if (timed) {
                    cur->touch += cycles_now() - ct;
                    cur->ntouch++;
                }
            }
        } else if (size) {
            atomic_fetch_add(&fail_count, 1);
        }
        if (!plain && (fl & HL_RF_PUBLISH))
            atomic_store_explicit(&ready[slot], 1, memory_order_release);
    }
    if (!plain && (fl & HL_RF_SAMPLE))
        take_sample(t);
}

static uint64_t timer_cyc;   /* one empty timing window, cycles (timer_cost) */
static uint64_t preempt_cyc; /* a window this long was most likely interrupted */

/* A block of n events whose first was timed took block cycles (waits for other threads
 * excluded); its call and touch windows took call and touch cycles, of which the
 * timer's own cost is taken off.  The sample stands for the n events of its block
 * (scaled by n: unbiased, heavy tails included), except a window longer than
 * preempt_cyc (100 us): that is most likely the scheduler running something else, so it
 * is charged once, where it fell, and never for more than the block's own time,
 * instead of n times over. */
static void block_account(struct wthr *t, uint64_t block, uint64_t call, uint64_t touch,
                          uint64_t ntouch, uint64_t n)
{
    call = call > timer_cyc ? call - timer_cyc : 0;
    touch = touch > ntouch * timer_cyc ? touch - ntouch * timer_cyc : 0;
    if (call > preempt_cyc || touch > preempt_cyc) {
        uint64_t c = call < block ? call : block;
        uint64_t u = touch < block - c ? touch : block - c;
        t->est_call += c;
        t->est_touch += u;
    } else {
        t->est_call += call * n;
        t->est_touch += touch * n;
    }
}

/* --gaps (gaps.h): the program's time after the block of events just replayed, spent
 * writing one byte per cache line to the first HL_GAP_BLOCK_BYTES of the blocks
 * allocated most recently that are still live, newest first and round again, as many
 * lines as the gap is worth; none when no recent block is live. */
__attribute__((noinline)) static void spend_gap(struct wthr *t, void **const sl)
{
    if (t->gap_next >= ngap)
        return;
    uint64_t lines = (uint64_t)gap_ns[t->gap_next++] * HL_GAP_LINES_PER_US / 1000;
    const uint64_t c0 = cycles_now();
    const uint32_t nr = gap_nrecent < HL_GAP_RECENT ? gap_nrecent : HL_GAP_RECENT;
    while (lines) {
        uint64_t pass = 0;
        for (uint32_t k = 0; k < nr && lines; k++) {
            const uint32_t s = gap_recent[(gap_nrecent - 1 - k) & (HL_GAP_RECENT - 1)];
            volatile uint8_t *p = sl[s];
            if (!p)
                continue;
            const uint64_t b = blk_bytes[s] < HL_GAP_BLOCK_BYTES ? blk_bytes[s] : HL_GAP_BLOCK_BYTES;
            for (uint64_t o = 0; o < b && lines; o += 64, lines--, pass++)
                p[o]++;
        }
        if (!pass)
            break;
        t->gap_lines += pass;
    }
    t->cyc_gap += cycles_now() - c0;
}

/* Events in blocks of LAT_EVERY: the first of each block is timed, the rest run
 * without even a test for it.  With gaps, each block's gap follows it, outside the
 * block's own time. */
static inline __attribute__((always_inline)) void run_events(struct wthr *t, const int touch,
                                                             const int check, const int plain,
                                                             const int gaps)
{
    const struct hl_rp_ev *e = t->ev, *const end = t->ev + t->nev;
    uint64_t *lat = t->lat;
    struct blkrec *br = t->blk;
    void **const sl = slots; /* a register, not a global reloaded after every call */
    uint64_t bs = cycles_now();
    while (e < end) {
        const uint64_t w0 = plain ? 0 : t->cyc_wait;
        const struct hl_rp_ev *first = e;
        struct blkrec cur = {0, 0, 0, 0, 0};
        step(t, e, e->op, e->size, e->slot, sl, &lat, &cur, touch, check, plain, 1, gaps, 1);
        e++;
        const struct hl_rp_ev *blk = end - e > LAT_EVERY - 1 ? e + LAT_EVERY - 1 : end;
        for (; e < blk; e++)
            step(t, e, e->op, e->size, e->slot, sl, &lat, NULL, touch, check, plain, 0, gaps, 1);
        uint64_t be = cycles_now();
        cur.block = be - bs - (plain ? 0 : t->cyc_wait - w0);
        cur.n = (uint32_t)(e - first);
        *br++ = cur;
        if (gaps) {
            spend_gap(t, sl);
            be = cycles_now();
        }
        bs = be;
    }
    t->nblk = (uint64_t)(br - t->blk);
    t->nlat = (uint64_t)(lat - t->lat);
}

/* What step needs of a compact malloc or free besides op, size and slot: the op, for
 * the contract checks and their messages. */
static const struct hl_rp_ev cev_malloc = {.op = HL_OP_MALLOC};
static const struct hl_rp_ev cev_free = {.op = HL_OP_FREE};

/* An escape of the compact stream with recorded pages (HL_RF_PAGES): rare, so out of
 * the loop, which then tests its escapes' flags once and nothing else for them. */
static __attribute__((noinline)) void paged_escape(struct wthr *t, const struct hl_rp_ev *e,
                                                   void **const sl, uint64_t **latp,
                                                   struct blkrec *cur, const int touch,
                                                   const int check, const int timed,
                                                   const int gaps)
{
    step(t, e, e->op, e->size, e->slot, sl, latp, cur, touch, check, 1, timed, gaps, 1);
}

/* One event of the compact stream (replay.h), plain, check not full. */
static inline __attribute__((always_inline)) void cstep(struct wthr *t, const uint64_t w,
                                                        const struct hl_rp_ev **xp,
                                                        void **const sl, uint64_t **latp,
                                                        struct blkrec *cur, const int touch,
                                                        const int check, const int timed,
                                                        const int gaps)
{
    /* One bit test per kind: the tag's low bit is free, its high bit an escape. */
    if (w & HL_CEV_FREE) {
        step(t, &cev_free, HL_OP_FREE, 0, w >> 2, sl, latp, cur, touch, check, 1, timed, gaps, 0);
    } else if (__builtin_expect(!(w & HL_CEV_OTHER), 1)) {
        const uint64_t size = w >> HL_CEV_SIZE_SHIFT, d = HL_CEV_SLOT(w);
        step(t, &cev_malloc, HL_OP_MALLOC, size, d, sl, latp, cur, touch, check, 1, timed, gaps,
             0);
    } else {
        /* An in-place realloc word or an escape: one step for both, so that the loop
         * holds no more inlined steps than malloc's, free's and the escape's. */
        struct hl_rp_ev re;
        const struct hl_rp_ev *e;
        if (HL_CEV_SLOT(w)) {
            re = HL_CEV_REALLOC(w);
            e = &re;
        } else {
            e = (*xp)++;
            if (__builtin_expect(e->flags & HL_RF_PAGES, 0)) {
                paged_escape(t, e, sl, latp, cur, touch, check, timed, gaps);
                return;
            }
        }
        step(t, e, e->op, e->size, e->slot, sl, latp, cur, touch, check, 1, timed, gaps, 0);
    }
}

/* run_events for the plain loop over the compact stream: the same blocks, timing and
 * calls, half the event bytes read. */
static inline __attribute__((always_inline)) void run_compact(struct wthr *t, const int touch,
                                                              const int check, const int gaps)
{
    const uint64_t *c = t->cev, *const end = t->cev + t->nev;
    const struct hl_rp_ev *x = t->cx;
    uint64_t *lat = t->lat;
    struct blkrec *br = t->blk;
    void **const sl = slots;
    uint64_t bs = cycles_now();
    while (c < end) {
        const uint64_t *first = c;
        struct blkrec cur = {0, 0, 0, 0, 0};
        cstep(t, *c++, &x, sl, &lat, &cur, touch, check, 1, gaps);
        const uint64_t *blk = end - c > LAT_EVERY - 1 ? c + LAT_EVERY - 1 : end;
        for (; c < blk; c++)
            cstep(t, *c, &x, sl, &lat, NULL, touch, check, 0, gaps);
        uint64_t be = cycles_now();
        cur.block = be - bs;
        cur.n = (uint32_t)(c - first);
        *br++ = cur;
        if (gaps) {
            spend_gap(t, sl);
            be = cycles_now();
        }
        bs = be;
    }
    t->nblk = (uint64_t)(br - t->blk);
    t->nlat = (uint64_t)(lat - t->lat);
}

static int plain_loop; /* one replay thread and no timeline: no event has flags */

static inline __attribute__((always_inline)) void run_mode(struct wthr *t, const int touch,
                                                           const int check, const int gaps)
{
    if (plain_loop && check != HL_CHECK_FULL && t->cev)
        run_compact(t, touch, check, gaps);
    else if (plain_loop)
        run_events(t, touch, check, 1, gaps);
    else
        run_events(t, touch, check, 0, gaps);
}

/* --gaps (one replay thread only): apart from hl_replay_loop, so that the default
 * loops are compiled as without it; only in timed runs, whose checks are off (the
 * gaps write to live blocks, which --check=full would take for overlaps) and which
 * callgrind does not count. */
static __attribute__((noinline)) void replay_loop_gaps(struct wthr *t)
{
    if (cfg.touch == HL_TOUCH_PAGE)
        run_mode(t, HL_TOUCH_PAGE, HL_CHECK_NONE, 1);
    else if (cfg.touch == HL_TOUCH_HEAD)
        run_mode(t, HL_TOUCH_HEAD, HL_CHECK_NONE, 1);
    else if (cfg.touch == HL_TOUCH_ALL)
        run_mode(t, HL_TOUCH_ALL, HL_CHECK_NONE, 1);
    else
        run_mode(t, HL_TOUCH_NONE, HL_CHECK_NONE, 1);
}

/* Named so that callgrind can collect exactly this (--toggle-collect=hl_replay_loop). */
__attribute__((noinline, used)) void hl_replay_loop(struct wthr *t);
__attribute__((noinline, used)) void hl_replay_loop(struct wthr *t)
{
    if (cfg.check == HL_CHECK_FULL)
        run_mode(t, HL_TOUCH_ALL, HL_CHECK_FULL, 0);
    else if (cfg.check == HL_CHECK_CHEAP && cfg.touch == HL_TOUCH_PAGE)
        run_mode(t, HL_TOUCH_PAGE, HL_CHECK_CHEAP, 0);
    else if (cfg.check == HL_CHECK_CHEAP && cfg.touch == HL_TOUCH_ALL)
        run_mode(t, HL_TOUCH_ALL, HL_CHECK_CHEAP, 0);
    else if (cfg.check == HL_CHECK_CHEAP && cfg.touch == HL_TOUCH_HEAD)
        run_mode(t, HL_TOUCH_HEAD, HL_CHECK_CHEAP, 0);
    else if (cfg.check == HL_CHECK_CHEAP)
        run_mode(t, HL_TOUCH_NONE, HL_CHECK_CHEAP, 0);
    else if (cfg.touch == HL_TOUCH_PAGE)
        run_mode(t, HL_TOUCH_PAGE, HL_CHECK_NONE, 0);
    else if (cfg.touch == HL_TOUCH_HEAD)
        run_mode(t, HL_TOUCH_HEAD, HL_CHECK_NONE, 0);
    else if (cfg.touch == HL_TOUCH_ALL)
        run_mode(t, HL_TOUCH_ALL, HL_CHECK_NONE, 0);
    else
        run_mode(t, HL_TOUCH_NONE, HL_CHECK_NONE, 0);
}

/* ---- windows of the plan (replay.h) ---- */

static char *win_buf;              /* the window being replayed: max_win_bytes */
static uint64_t win_next, win_left; /* file offset of the next window; windows unread */
static int win_streamed;            /* hl_plan_streamed: pages given back behind */
static uint64_t win_dropped;        /* up to here */
static struct hl_rp_ev *ev_buf;    /* a compact window decoded (loops other than plain) */
static uint64_t *wide_buf;         /* a narrow compact window widened (replay.h) */
static struct hl_rp_tlpoint *tl_points; /* the plan's, grouped per thread */
static uint64_t *tl_per_thread;
static int use_compact;
static uint64_t refill_ns;         /* time between windows: off every reported clock */
static _Atomic uint32_t pending;   /* threads still replaying the current window */
static uint32_t win_seq;           /* windows handed out so far */
static uint32_t nthr_run;          /* replay threads */

/* Latency samples, folded after each window into a histogram per op: exact below
 * LAT_EXACT cycles, above that LAT_SUB buckets per power of two (under 1% apart). */
#define LAT_EXACT 1024u
#define LAT_SUB_BITS 7
#define LAT_BUCKETS (LAT_EXACT + (64 - 10) * (1u << LAT_SUB_BITS))
static uint64_t *lat_hist; /* [HL_OP_COUNT_][LAT_BUCKETS] */
static uint64_t lat_max[HL_OP_COUNT_];

static unsigned lat_bucket(uint64_t v)
{
    if (v < LAT_EXACT)
        return (unsigned)v;
    const unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 10 */
    const unsigned sub = (unsigned)(v >> (e - LAT_SUB_BITS)) & ((1u << LAT_SUB_BITS) - 1);
    return LAT_EXACT + (e - 10) * (1u << LAT_SUB_BITS) + sub;
}

static uint64_t lat_value(unsigned b)
{
    if (b < LAT_EXACT)
        return b;
    const unsigned e = (b - LAT_EXACT) / (1u << LAT_SUB_BITS) + 10;
    const uint64_t sub = (b - LAT_EXACT) % (1u << LAT_SUB_BITS);
    return ((1ull << LAT_SUB_BITS) + sub) << (e - LAT_SUB_BITS);
}

/* What the threads' last window left: block estimates and latency samples. */
static void fold(void)
{
    for (uint32_t i = 0; i < nthr_run; i++) {
        struct wthr *t = &thr[i];
        for (uint64_t k = 0; k < t->nblk; k++) {
            const struct blkrec *b = &t->blk[k];
            block_account(t, b->block, b->call, b->touch, b->ntouch, b->n);
        }
        for (uint64_t k = 0; k < t->nlat; k++) {
            const unsigned op = (unsigned)(t->lat[k] >> 56);
            const uint64_t v = t->lat[k] & ((1ull << 56) - 1);
            if (op >= HL_OP_COUNT_)
                continue;
            lat_hist[(size_t)op * LAT_BUCKETS + lat_bucket(v)]++;
            if (v > lat_max[op])
                lat_max[op] = v;
        }
        t->nblk = t->nlat = 0;
    }
}

static void read_plan(void *buf, uint64_t n, uint64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t k = pread(cfg.plan_fd, p, n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            fail("worker: damaged replay plan (cannot read it: %s)", k ? strerror(errno) : "short");
        p += k;
        n -= (uint64_t)k;
        off += (uint64_t)k;
    }
}

static void damaged(void)
{
    fail("worker: damaged replay plan (window at %llu)", (unsigned long long)win_next);
}

/* A window of events per thread (several replay threads). */
static void load_events(const struct hl_plan_win *w, uint64_t hb)
{
    if ((w->bytes - hb) / sizeof(struct hl_rp_ev) != w->nev_total || w->slot_bits)
        damaged();
    const struct hl_rp_ev *at = (const struct hl_rp_ev *)(win_buf + hb);
    uint64_t sum = 0;
    for (uint32_t i = 0; i < nthr_run; i++) {
        const uint64_t k = i < w->nthr ? w->nev[i] : 0;
        thr[i].ev = at + sum;
        thr[i].nev = k;
        sum += k;
    }
    if (sum != w->nev_total)
        damaged();
    for (uint64_t k = 0; k < sum; k++)
        if (at[k].slot >= plan->ndense ||
            (at[k].op == HL_OP_REALLOC && at[k].old_slot >= plan->ndense))
            damaged();
}

static uint64_t ops_before; /* ops of the windows before this one (compact plans) */
static uint64_t tl_next;    /* the next timeline point to flag (compact plans) */

/* A window of the compact stream (one replay thread): walked as it is by the plain
 * loop, else decoded back into events. */
static void load_compact(const struct hl_plan_win *w, uint64_t hb)
{
    const uint64_t n = w->nev_total;
    const uint64_t wbytes = hl_plan_words_bytes(n, w->slot_bits);
    if (w->nthr != 1 || n > plan->window || w->slot_bits > HL_CEV_NARROW_MAX_SLOT_BITS ||
        w->bytes != hb + wbytes + (uint64_t)w->ncx * sizeof(struct hl_rp_ev))
        damaged();
    const uint64_t *cw = (const uint64_t *)(win_buf + hb);
    if (w->slot_bits) {
        hl_cev_widen(wide_buf, (const uint32_t *)cw, n, w->slot_bits);
        cw = wide_buf;
    }
    const struct hl_rp_ev *cx = (const struct hl_rp_ev *)(win_buf + hb + wbytes), *x = cx;
    for (uint64_t k = 0; k < n; k++) {
        if (HL_CEV_TAG(cw[k]) == HL_CEV_OTHER && HL_CEV_SLOT(cw[k])) {
            if (HL_CEV_SLOT(cw[k]) >= plan->ndense)
                damaged();
        } else if (HL_CEV_TAG(cw[k]) == HL_CEV_OTHER) {
            if (x - cx >= w->ncx || x->slot >= plan->ndense ||
                (x->op == HL_OP_REALLOC && x->old_slot >= plan->ndense) || x->op == HL_OP_FREE ||
                x->op == 0 || x->op >= HL_OP_COUNT_)
                damaged();
            x++;
        } else if (HL_CEV_SLOT(cw[k]) >= plan->ndense || HL_CEV_TAG(cw[k]) == 3 ||
                   (HL_CEV_TAG(cw[k]) == HL_CEV_FREE && (cw[k] >> 34))) {
            damaged();
        }
    }
    thr[0].nev = n;
    if (use_compact) {
        thr[0].cev = cw;
        thr[0].cx = cx;
    } else {
        x = cx;
        for (uint64_t k = 0; k < n; k++) {
            struct hl_rp_ev *e = &ev_buf[k];
            const uint64_t c = cw[k];
            if (HL_CEV_TAG(c) == HL_CEV_OTHER && HL_CEV_SLOT(c)) {
                *e = HL_CEV_REALLOC(c);
            } else if (HL_CEV_TAG(c) == HL_CEV_OTHER) {
                *e = *x++;
            } else {
                memset(e, 0, sizeof *e);
                e->op = HL_CEV_TAG(c) == HL_CEV_FREE ? HL_OP_FREE : HL_OP_MALLOC;
                e->size = HL_CEV_TAG(c) == HL_CEV_FREE ? 0 : c >> HL_CEV_SIZE_SHIFT;
                e->slot = (uint32_t)HL_CEV_SLOT(c);
            }
            if (tl_next < plan->ntl && tl_points[tl_next].op_index == ops_before + k) {
                e->flags |= HL_RF_SAMPLE;
                tl_next++;
            }
        }
        thr[0].ev = ev_buf;
    }
    ops_before += n;
}

/* Read the next window and point each thread at its events; 1 when there is none. */
static int load_window(void)
{
    if (!win_left)
        return 1;
    uint64_t n = plan->tl_off - win_next;
    if (n > plan->max_win_bytes)
        n = plan->max_win_bytes;
    read_plan(win_buf, n, win_next);
    const struct hl_plan_win *w = (const struct hl_plan_win *)win_buf;
    const uint64_t hb = hl_plan_win_hdr_bytes(w->nthr);
    if (n < sizeof *w || w->bytes > n || w->nthr > nthr_run || hb > w->bytes)
        damaged();
    if (plan->compact)
        load_compact(w, hb);
    else
        load_events(w, hb);
    win_next += w->bytes;
    win_left--;
    if (win_streamed && win_next - win_dropped >= HL_PLAN_STREAM_STEP) {
        posix_fadvise(cfg.plan_fd, (off_t)win_dropped, (off_t)(win_next - win_dropped),
                      POSIX_FADV_DONTNEED);
        win_dropped = win_next;
    }
    return 0;
}

/* Between two windows, every replay thread standing still: fold, take the live bytes,
 * read the next window.  Its time is taken off every clock.  1 at the end. */
static int next_window(void)
{
    const uint64_t r0 = mono_ns();
    fold();
    if (nthr_run > 1) {
        int64_t live = 0;
        for (uint32_t i = 0; i < nthr_run; i++)
            live += thr[i].live;
        if (live > 0 && (uint64_t)live > res.live_peak)
            res.live_peak = (uint64_t)live;
    }
    const int end = load_window();
    refill_ns += mono_ns() - r0;
    return end;
}

/* The windows handed out so far (a futex word): every replay thread runs window k
 * (its events in it, maybe none) once win_gen reaches k, and the last to finish reads
 * window k+1 and moves win_gen on; UINT32_MAX: the end. */
static _Atomic uint32_t win_gen;

static void release_window(int end)
{
    atomic_store_explicit(&pending, nthr_run, memory_order_relaxed);
    atomic_store_explicit(&win_gen, end ? UINT32_MAX : ++win_seq, memory_order_release);
    syscall(SYS_futex, &win_gen, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

/* Wait until a window after seen is handed out; the wait is a wait for other threads
 * (time_split.wait_ns). */
static uint32_t wait_window(struct wthr *t, uint32_t seen)
{
    uint32_t g = atomic_load_explicit(&win_gen, memory_order_acquire);
    if (g != seen)
        return g;
    const uint64_t c0 = cycles_now();
    for (int spin = 0; (g = atomic_load_explicit(&win_gen, memory_order_acquire)) == seen; spin++) {
        if (spin < 256) {
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        } else {
            syscall(SYS_futex, &win_gen, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
        }
    }
    t->cyc_wait += cycles_now() - c0;
    return g;
}

/* A replay thread's whole replay: window after window.  One replay thread reads the
 * next window itself, inline (no helper thread); with several, the last to finish a
 * window reads the next and hands it out. */
static void replay_windows(struct wthr *t)
{
    if (nthr_run == 1) {
        do
            gap_ns ? replay_loop_gaps(t) : hl_replay_loop(t);
        while (next_window() == 0);
        return;
    }
    uint32_t seen = 0;
    for (;;) {
        seen = wait_window(t, seen);
        if (seen == UINT32_MAX)
            return;
        if (t->nev)
            hl_replay_loop(t);
        if (atomic_fetch_sub_explicit(&pending, 1, memory_order_acq_rel) == 1)
            release_window(next_window());
    }
}

static void *thread_main(void *arg)
{
    struct wthr *t = arg;
    for (int spin = 0; !atomic_load_explicit(&start_flag, memory_order_acquire); spin++)
        if (spin > 64)
            sched_yield();
    const uint64_t cpu0 = thread_cpu_ns();
    t->start_ns = mono_ns();
    replay_windows(t);
    t->end_ns = mono_ns();
    t->cpu_ns = thread_cpu_ns() - cpu0;
    return NULL;
}

/* The replay threads, on stacks of the worker's own (so that they count as the
 * harness's memory, baseline.h), each with a guard page below it. */
#define THREAD_STACK (256u << 10)
static void start_threads(uint32_t nt)
{
    if (nt < 2)
        return;
    const size_t n = (size_t)(nt - 1) * THREAD_STACK;
    char *st = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (st == MAP_FAILED)
        fail("worker: cannot map %zu bytes of thread stacks: %s", n, strerror(errno));
    if (hl_bl_own(st, n) != 0)
        fail("worker: more than %d maps of its own", HL_BL_MAX_OWN);
    for (uint32_t i = 1; i < nt; i++) {
        char *s = st + (size_t)(i - 1) * THREAD_STACK;
        pthread_attr_t a;
        if (mprotect(s, pagesz, PROT_NONE) != 0 || pthread_attr_init(&a) != 0 ||
            pthread_attr_setstack(&a, s + pagesz, THREAD_STACK - pagesz) != 0 ||
            pthread_create(&thr[i].tid, &a, thread_main, &thr[i]) != 0)
            fail("worker: cannot start replay thread %u", i);
        pthread_attr_destroy(&a);
    }
}

/* ---- measurements around the loop ---- */

static uint64_t status_kb(const char *key)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *s = strstr(buf, key);
    return s ? strtoull(s + strlen(key), NULL, 10) : 0;
}

static int reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY);
    if (fd < 0)
        return -1;
    int ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok ? 0 : -1;
}

static uint64_t tv_ns(struct timeval tv)
{
    return (uint64_t)tv.tv_sec * 1000000000u + (uint64_t)tv.tv_usec * 1000u;
}

enum { PC_INSN, PC_CYCLES, PC_L1D, PC_LLC, PC_DTLB, PC_N };
static int pfd[PC_N] = {-1, -1, -1, -1, -1};

static int perf_open(int i, uint32_t type, uint64_t config)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = type;
    a.config = config;
    a.disabled = 1;
    a.inherit = 1; /* the replay threads are created after this */
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    pfd[i] = (int)syscall(SYS_perf_event_open, &a, 0, -1, -1, 0);
    return pfd[i];
}

static int perf_setup(void)
{
    const uint64_t miss_rd = (PERF_COUNT_HW_CACHE_OP_READ << 8) |
                             (PERF_COUNT_HW_CACHE_RESULT_MISS << 16);
    if (perf_open(PC_INSN, PERF_TYPE_HARDWARE, PERF_COUNT_HW_INSTRUCTIONS) < 0 ||
        perf_open(PC_CYCLES, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES) < 0 ||
        perf_open(PC_L1D, PERF_TYPE_HW_CACHE, PERF_COUNT_HW_CACHE_L1D | miss_rd) < 0 ||
        perf_open(PC_LLC, PERF_TYPE_HARDWARE, PERF_COUNT_HW_CACHE_MISSES) < 0) {
        int e = errno;
        for (int i = 0; i < PC_N; i++)
            if (pfd[i] >= 0) {
                close(pfd[i]);
                pfd[i] = -1;
            }
        errno = e;
        return -1;
    }
    perf_open(PC_DTLB, PERF_TYPE_HW_CACHE, PERF_COUNT_HW_CACHE_DTLB | miss_rd);
    return 0;
}

static void perf_ctl(unsigned long req)
{
    for (int i = 0; i < PC_N; i++)
        if (pfd[i] >= 0)
            ioctl(pfd[i], req, 0);
}

static uint64_t perf_value(int i)
{
    uint64_t v = 0;
    if (pfd[i] < 0 || read(pfd[i], &v, sizeof v) != sizeof v)
        return 0;
    return v;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void latency_summary(void)
{
    for (int op = 1; op < HL_OP_COUNT_; op++) {
        const uint64_t *h = &lat_hist[(size_t)op * LAT_BUCKETS];
        uint64_t n = 0;
        for (unsigned k = 0; k < LAT_BUCKETS; k++)
            n += h[k];
        if (!n)
            continue;
        struct hl_rp_lat *l = &res.lat[op];
        l->samples = n;
        /* the sample of rank (n-1)*q, as a sort would give it */
        const uint64_t rank[3] = {(n - 1) * 50 / 100, (n - 1) * 99 / 100, (n - 1) * 999 / 1000};
        uint64_t *out[3] = {&l->p50, &l->p99, &l->p999};
        uint64_t seen = 0;
        int q = 0;
        for (unsigned k = 0; k < LAT_BUCKETS && q < 3; k++) {
            seen += h[k];
            while (q < 3 && seen > rank[q])
                *out[q++] = lat_value(k);
        }
        l->max = lat_max[op];
    }
}


/* The harness's own resident bytes at the baseline: what peak and timeline RSS are
 * counted above (baseline.h). */
static uint64_t harness_rss(void)
{
    return res.base_rss > res.startup_rss ? res.base_rss - res.startup_rss : 0;
}

static void send_timeline(void)
{
    uint64_t first = 0;
    for (uint32_t i = 0; i < plan->nthreads; i++) {
        const struct hl_rp_tlpoint *tp = tl_points + first;
        first += tl_per_thread[i];
        for (uint64_t k = 0; k < thr[i].tlk; k++) {
            uint64_t rss = thr[i].tl[2 * k + 1];
            struct hl_rp_tlsample s = {tp[k].op_index, thr[i].tl[2 * k], tp[k].live_bytes,
                                       rss > harness_rss() ? rss - harness_rss() : 0};
            if (write(cfg.result_fd, &s, sizeof s) != (ssize_t)sizeof s)
                _exit(3);
        }
    }
}

/* What one timing window costs with nothing inside: the median of back-to-back reads
 * of the cycle counter.  Subtracted from each timed window, so that the split does not
 * charge the timer to the allocator. */
static uint64_t timer_cost(void)
{
    uint64_t d[201];
    for (int i = 0; i < 201; i++) {
        uint64_t a = cycles_now();
        uint64_t b = cycles_now();
        d[i] = b - a;
    }
    qsort(d, 201, sizeof *d, cmp_u64);
    return d[100];
}

/* The cycle counter's rate, over 200 us of spinning. */
static uint64_t cycles_per_us(void)
{
    const uint64_t c0 = cycles_now(), n0 = mono_ns();
    uint64_t n1;
    while ((n1 = mono_ns()) - n0 < 200000)
        ;
    const uint64_t r = (cycles_now() - c0) * 1000 / (n1 - n0);
    return r ? r : 1;
}

/* time_split (see replay.h): the per-block estimates summed over the threads, cycles
 * converted at the rate measured between (c0, ns0) and now. */
static void time_split(uint64_t c0, uint64_t ns0)
{
    const uint64_t c1 = cycles_now(), ns1 = mono_ns();
    const double ns_per_cyc = c1 > c0 && ns1 > ns0 ? (double)(ns1 - ns0) / (double)(c1 - c0) : 1;
    double call = 0, touch = 0, wait = 0;
    for (uint32_t i = 0; i < plan->nthreads; i++) {
        const struct wthr *t = &thr[i];
        uint64_t busy = t->end_ns > t->start_ns ? t->end_ns - t->start_ns : 0;
        busy = busy > refill_ns ? busy - refill_ns : 0; /* the windows' reading is not timed */
        res.thread_ns += busy;
        res.off_cpu_ns += busy > t->cpu_ns ? busy - t->cpu_ns : 0;
        wait += (double)t->cyc_wait;
        call += (double)t->est_call;
        touch += (double)t->est_touch;
    }
    for (int op = 1; op < HL_OP_COUNT_; op++)
        res.timed_events += res.lat[op].samples;
    res.call_ns = (uint64_t)(call * ns_per_cyc + 0.5);
    res.touch_ns = (uint64_t)(touch * ns_per_cyc + 0.5);
    res.wait_ns = (uint64_t)(wait * ns_per_cyc + 0.5);
    res.gap_ns = (uint64_t)((double)thr[0].cyc_gap * ns_per_cyc + 0.5);
}

/* --gaps: the gap table (gaps.h), whole, into a map of the worker's own. */
static void open_gaps(void)
{
    struct stat st;
    if (plan->nthreads != 1)
        fail("worker: --gaps needs a plan of one replay thread");
    if (fstat(cfg.gap_fd, &st) != 0 || st.st_size % sizeof *gap_ns)
        fail("worker: damaged gap table");
    ngap = (uint64_t)st.st_size / sizeof *gap_ns;
    gap_ns = map_anon(ngap * sizeof *gap_ns);
    for (uint64_t off = 0; off < ngap * sizeof *gap_ns;) {
        ssize_t k = pread(cfg.gap_fd, (char *)gap_ns + off, ngap * sizeof *gap_ns - off, (off_t)off);
        if (k <= 0)
            fail("worker: cannot read the gap table: %s", k < 0 ? strerror(errno) : "short");
        off += (uint64_t)k;
    }
}

/* Read and check the plan's header and timeline points; map the worker's tables and
 * window buffers (all touched: resident before the baseline). */
static void open_plan(void)
{
    struct stat st;
    if (cfg.plan_fd < 0 || fstat(cfg.plan_fd, &st) != 0 ||
        (uint64_t)st.st_size < HL_PLAN_HDR_BYTES)
        fail("worker: no replay plan");
    read_plan(&plan_hdr, sizeof plan_hdr, 0);
    const struct hl_plan_hdr *h = &plan_hdr;
    if (h->magic != HL_PLAN_MAGIC || h->version != HL_PLAN_VERSION ||
        h->total_bytes != (uint64_t)st.st_size || h->nthreads == 0 || h->nthreads > 65536 ||
        h->ndense == 0 || h->ndense > UINT32_MAX || h->tl_off > h->total_bytes ||
        (h->compact && h->nthreads != 1) || h->window == 0 || h->window > (1ull << 32) ||
        h->max_win_bytes > h->tl_off || h->win_off > h->tl_off ||
        h->tl_thread_off != h->tl_off + h->ntl * sizeof(struct hl_rp_tlpoint) ||
        h->tl_thread_off + h->nthreads * sizeof(uint64_t) != h->total_bytes)
        fail("worker: damaged replay plan");
    nthr_run = h->nthreads;
    tl_points = map_anon((h->ntl + 1) * sizeof *tl_points);
    tl_per_thread = map_anon(h->nthreads * sizeof *tl_per_thread);
    read_plan(tl_points, h->ntl * sizeof *tl_points, h->tl_off);
    read_plan(tl_per_thread, h->nthreads * sizeof *tl_per_thread, h->tl_thread_off);
    slots = map_anon(h->ndense * sizeof *slots);
    blk_bytes = map_anon(h->ndense * sizeof *blk_bytes);
    if (h->nthreads > 1)
        ready = map_anon(h->ndense);
    win_buf = map_anon(h->max_win_bytes + 16);
    lat_hist = map_anon((size_t)HL_OP_COUNT_ * LAT_BUCKETS * sizeof *lat_hist);
    thr = map_anon(h->nthreads * sizeof *thr);
    /* The threads' buffers, one map each kind for all threads (baseline.h keeps a
     * bounded list of the worker's own maps). */
    const uint64_t nblk = h->window / LAT_EVERY + 2;
    uint64_t *lat = map_anon(h->nthreads * nblk * sizeof *lat);
    struct blkrec *blk = map_anon(h->nthreads * nblk * sizeof *blk);
    uint64_t ntl = 0;
    for (uint32_t i = 0; i < h->nthreads; i++)
        ntl += thr[i].ntl = cfg.timeline ? tl_per_thread[i] : 0;
    uint64_t *tl = map_anon(2 * ntl * sizeof *tl);
    for (uint32_t i = 0, k = 0; i < h->nthreads; k += thr[i].ntl, i++) {
        thr[i].lat = lat + i * nblk;
        thr[i].blk = blk + i * nblk;
        thr[i].tl = tl + 2 * k;
    }
    if (ntl && (statm_fd = open("/proc/self/statm", O_RDONLY)) < 0)
        fail("worker: /proc/self/statm: %s", strerror(errno));
    plain_loop = h->nthreads == 1 && ntl == 0;
    use_compact = plain_loop && cfg.check != HL_CHECK_FULL && h->compact;
    if (h->compact && !use_compact)
        ev_buf = map_anon(h->window * sizeof *ev_buf);
    if (h->compact)
        wide_buf = map_anon(h->window * sizeof *wide_buf);
    if (cfg.gap_fd >= 0)
        open_gaps();
    win_next = h->win_off;
    win_streamed = hl_plan_streamed(h->total_bytes);
    win_dropped = 0;
    win_left = h->nwin;
    load_window(); /* none when every event was skipped: nothing to replay */
}

static void run(void)
{
    const uint64_t cal_c0 = cycles_now(), cal_ns0 = mono_ns();
    open_plan();
    const uint32_t nt = plan->nthreads;

    switch (cfg.counters) {
    case HL_CNT_NONE:
        snprintf(res.counters_source, sizeof res.counters_source,
                 "n/a: not requested (--counters=none)");
        break;
    case HL_CNT_SIM:
        snprintf(res.counters_source, sizeof res.counters_source, "sim");
        break;
    default:
        if (perf_setup() == 0) {
            res.have_counters = 1;
            snprintf(res.counters_source, sizeof res.counters_source, "perf");
        } else if (cfg.counters == HL_CNT_PERF) {
            fail("--counters=perf: no hardware counters (perf_event_open: %s)",
                 strerror(errno));
        } else {
            snprintf(res.counters_source, sizeof res.counters_source,
                     "n/a: no hardware counters (perf_event_open: %s); use --counters=sim",
                     strerror(errno));
        }
    }

    timer_cyc = timer_cost();
    preempt_cyc = cycles_per_us() * 100;
    start_threads(nt);

    /* Baseline: everything the worker needs is resident now.  What of it is the
     * allocator's start-up stays in the peak (baseline.h). */
    res.rss_ok = reset_hwm() == 0;
    res.startup_rss = hl_bl_allocator_rss();
    res.base_rss = status_kb("VmRSS:") * 1024;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    if (res.have_counters) {
        perf_ctl(PERF_EVENT_IOC_RESET);
        perf_ctl(PERF_EVENT_IOC_ENABLE);
    }
    const uint64_t cpu0 = thread_cpu_ns();
    t0_ns = mono_ns();
    thr[0].start_ns = t0_ns;
    if (nt > 1)
        release_window(0);
    atomic_store_explicit(&start_flag, 1, memory_order_release);
    replay_windows(&thr[0]);
    thr[0].end_ns = mono_ns();
    thr[0].cpu_ns = thread_cpu_ns() - cpu0;
    for (uint32_t i = 1; i < nt; i++)
        pthread_join(thr[i].tid, NULL);
    uint64_t end = 0;
    for (uint32_t i = 0; i < nt; i++)
        if (thr[i].end_ns > end)
            end = thr[i].end_ns;
    if (res.have_counters)
        perf_ctl(PERF_EVENT_IOC_DISABLE);
    getrusage(RUSAGE_SELF, &ru1);
    uint64_t hwm = status_kb("VmHWM:") * 1024;

    end = end - t0_ns > refill_ns ? end - refill_ns : t0_ns;
    res.time_ns = end - t0_ns;
    res.ops = plan->ops;
    if (nt == 1) /* the replay follows the global order: its live bytes are the plan's */
        res.live_peak = plan->peak_live;
    res.peak_rss = hwm > harness_rss() ? hwm - harness_rss() : 0;
    res.user_ns = tv_ns(ru1.ru_utime) - tv_ns(ru0.ru_utime);
    res.sys_ns = tv_ns(ru1.ru_stime) - tv_ns(ru0.ru_stime);
    res.minor_faults = (uint64_t)(ru1.ru_minflt - ru0.ru_minflt);
    res.major_faults = (uint64_t)(ru1.ru_majflt - ru0.ru_majflt);
    if (res.have_counters) {
        res.instructions = perf_value(PC_INSN);
        res.cycles = perf_value(PC_CYCLES);
        res.l1d_misses = perf_value(PC_L1D);
        res.llc_misses = perf_value(PC_LLC);
        res.have_dtlb = pfd[PC_DTLB] >= 0;
        res.dtlb_misses = perf_value(PC_DTLB);
    }
    res.violations = atomic_load(&viol_count);
    res.alloc_failures = atomic_load(&fail_count);
    latency_summary();
    for (uint32_t i = 0; i < nt; i++)
        res.ntimeline += thr[i].tlk;
    for (uint64_t k = 0; k < thr[0].gap_next; k++)
        res.gap_recorded_ns += gap_ns[k];
    res.gap_lines = thr[0].gap_lines;
    time_split(cal_c0, cal_ns0);
}

static int parse_int(const char *arg, const char *key, int *out)
{
    size_t k = strlen(key);
    if (strncmp(arg, key, k) != 0 || arg[k] != '=')
        return 0;
    *out = atoi(arg + k + 1);
    return 1;
}

int cmd_worker(int argc, char **argv)
{
    /* First: the clock that ends this process's start-up (replay.h, startup_ns). */
    const uint64_t started = mono_ns();
    /* argv: __worker probe|run --result-fd=N [--plan-fd=N] [--gap-fd=N] [--lib=PATH] [--touch=N]
     *       [--check=N] [--counters=N] [--timeline=0|1] [--spawn-ns=N]  (numbers: the
     *       enums in replay.h; spawn-ns: the parent's CLOCK_MONOTONIC before the fork) */
    if (argc < 2)
        return 2;
    int probe = strcmp(argv[1], "probe") == 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--lib=", 6) == 0) {
            cfg.lib = a + 6;
        } else if (strncmp(a, "--spawn-ns=", 11) == 0) {
            unsigned long long t = strtoull(a + 11, NULL, 10);
            res.startup_ns = t && started > t ? started - t : 0;
        } else if (!parse_int(a, "--result-fd", &cfg.result_fd) &&
                 !parse_int(a, "--plan-fd", &cfg.plan_fd) && !parse_int(a, "--touch", &cfg.touch) &&
                 !parse_int(a, "--gap-fd", &cfg.gap_fd) &&
                 !parse_int(a, "--check", &cfg.check) &&
                 !parse_int(a, "--counters", &cfg.counters) &&
                 !parse_int(a, "--timeline", &cfg.timeline))
            return 2;
    }
    if (cfg.result_fd < 0)
        return 2;
    pagesz = (size_t)sysconf(_SC_PAGESIZE);
    res.magic = HL_RP_RESULT_MAGIC;
    resolve();
    if (probe) {
        find_version();
    } else {
        run();
    }
    send_result();
    if (!probe)
        send_timeline();
    close(cfg.result_fd);
    _exit(0);
}
