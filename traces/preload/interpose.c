/*
 * interpose.c: libheaplab-record.so, the LD_PRELOAD interposer behind `heaplab record`.
 *
 * It wraps the C allocation API, forwards every call to the next definition
 * (dlsym(RTLD_NEXT)) and appends one fixed-layout record per call to a per-thread
 * buffer; full buffers go to one raw file per process image, each as one chunk: into
 * a ring inside the file while a heaplab reads it (ring.c), appended with a single
 * write(2) otherwise.  The raw format is documented in raw.h; traces/finalise.c
 * turns a capture directory into a trace.
 *
 * Rules that keep it safe inside any program:
 *   - It never allocates with malloc: buffers come from mmap, file names and the
 *     environment given to exec are built on the stack, and the few calls dlsym makes
 *     while the real functions are being looked up are served from a static bootstrap
 *     buffer (whose blocks are never freed).
 *   - A thread-local guard is set for the whole of every wrapper, so calls made from
 *     inside the real allocator, from libc functions the interposer uses, or from a
 *     signal handler that interrupts a wrapper pass straight through unrecorded.
 *     What is safe and what is not: a record is reserved, numbered, filled and
 *     committed in steps that a nested call on the same thread would interleave with
 *     (the same reserved words, and with one thread a sequence number taken as a plain
 *     load and store), so a nested call cannot append to the thread's buffer.  Such
 *     calls are counted instead (the header's `missed`, raw.h), those made inside a
 *     wrapper (guard == 1: a signal handler, or the real allocator calling itself);
 *     the interposer's own work (bootstrap, flushes, exec, exit) raises the guard by
 *     GUARD_INSIDE, and calls made there are neither recorded nor counted.
 *   - Ordering: a free takes its sequence number before the real free, an allocation
 *     after the real call returned, realloc both (see raw.h).  One relaxed atomic
 *     add on one counter gives all threads a total order consistent with causality:
 *     if a block freed by thread A is handed to thread B, the allocator's own
 *     synchronisation orders A's add before B's.
 *   - The hot path makes no system call and takes no lock: the TLS cursor checked
 *     against one soft end, one add on the sequence counter (atomic once the process
 *     has several threads), a few stores; the clock is read at the soft end only,
 *     every TIME_EVERY_WORDS words.  errno is preserved across recording.
 *
 * Buffers are flushed when full, at thread exit (a pthread key destructor), before
 * exec (every thread's, since exec ends them), at _exit/_Exit and at normal exit (a library destructor).  A fork child drops
 * the copy of its parent's unflushed buffer and opens its own raw file.  exec keeps
 * recording: the environment passed to the new image always carries LD_PRELOAD and
 * HEAPLAB_CAPTURE_DIR, even when the program passes an envp of its own.
 */
#include "backlog.h"
#include "bigblocks.h"
#include "raw.h"
#include "ring.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#define EXPORT __attribute__((visibility("default")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

extern char **environ;

/* ---- the real functions ---- */

static struct {
    void *(*malloc)(size_t);
    void (*free)(void *);
    void *(*calloc)(size_t, size_t);
    void *(*realloc)(void *, size_t);
    void *(*reallocarray)(void *, size_t, size_t);
    int (*posix_memalign)(void **, size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void *(*memalign)(size_t, size_t);
    void *(*valloc)(size_t);
    void *(*pvalloc)(size_t);
    size_t (*malloc_usable_size)(void *);
    int (*execve)(const char *, char *const[], char *const[]);
    int (*execvpe)(const char *, char *const[], char *const[]);
    int (*fexecve)(int, char *const[], char *const[]);
    int (*posix_spawn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                       const posix_spawnattr_t *, char *const[], char *const[]);
    int (*posix_spawnp)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);
    int (*pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    pid_t (*fork)(void);
} real;

/* ---- per-thread state ---- */

struct tstate {
    uint64_t *pos;       /* write cursor */
    uint64_t *end;       /* soft end: a record may start at pos while pos < end (the
                            next clock reading; MAX_RECORD_WORDS fit past it) */
    uint64_t *hard;      /* end of the buffer */
    uint64_t last_seq;   /* running values of the chunk (raw.h: short records) */
    uintptr_t last_ptr;
    uint64_t *buf;       /* first payload word; the chunk header sits just before */
    uint32_t nlong;      /* records in the buffer other than short ones ... */
    uint32_t long_words; /* ... and their words: the short ones are the other words,
                            so that the fast path counts nothing (see nrecords) */
    uint32_t thread;     /* thread number within the image */
    int guard;           /* 1 inside a wrapper, + GUARD_INSIDE inside the interposer */
    int registered;      /* thread number assigned, destructor armed */
    int dtor_rounds;     /* pthread key destructor calls so far */
    int dead;            /* past its last destructor round: record nowhere */
    uint32_t gen;        /* odd while the buffer is being flushed (see flush_others) */
    uint64_t lo;         /* at most the first sequence number in the buffer, UINT64_MAX
                            when it has none (see horizon) */
    /* Kept by threads computing a horizon, under g_reg_lock (see quiet_copy): */
    uint64_t *seen_pos;  /* pos when last looked at */
    uint64_t *copied_pos; /* the buffer is in the file up to here ... */
    uint32_t copied_gen; /* ... as of this gen */
    uint64_t scratch[8]; /* records go here while recording is off */
};

static __thread struct tstate ts __attribute__((tls_model("initial-exec")));

#define GUARD_INSIDE 2 /* what the interposer's own work adds to the guard */

/* The guard of a wrapper also tells a thread computing a horizon (quiet_copy) whether
 * this one may hold a sequence number whose record is not committed yet: it is set
 * before the number is taken and cleared after the commit.  Compiler fences keep
 * those stores in place; on x86 the locked add that takes a number in a process with
 * several threads orders them for the other cores. */
static inline void guard_on(struct tstate *t)
{
    __atomic_store_n(&t->guard, 1, __ATOMIC_RELAXED);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

static inline void guard_off(struct tstate *t)
{
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    __atomic_store_n(&t->guard, 0, __ATOMIC_RELAXED);
}

/* ---- process state ---- */

static int g_attached; /* loaded into a running process by hook.c, not preloaded */
static pid_t g_watcher; /* the heaplab recording us: attached (see orphaned), or
                           preloaded by heaplab record (HL_RAW_ENV_WATCHER) */

static uint64_t g_seq;              /* the global sequence counter */
static int g_multi;                 /* the process has (had) more than one thread */
static uint32_t g_nthreads;         /* thread numbers handed out in this image */
static int g_state;                 /* 0 not set up, 1 setting up, 2 done */
static int g_on;                    /* recording into g_fd */
static int g_fd = -1;
static int g_oflags;                /* g_fd's open flags (raw_fd_ok reopens with them) */
static dev_t g_dev;                 /* identity of g_fd's file, to notice a program */
static ino_t g_ino;                 /* that closed it and reused the number */
static size_t g_bufbytes = HL_RAW_BUFFER_DEFAULT; /* per-thread buffer, chunk header included */
static pthread_key_t g_key;
static char g_dir[PATH_MAX];
static char g_path[PATH_MAX + 64];  /* this image's raw file */
static char g_libpath[PATH_MAX];    /* this library, for LD_PRELOAD of exec'd images */
static char g_env_dir[PATH_MAX + 32];      /* "HEAPLAB_CAPTURE_DIR=<dir>" */

/* Threads with a buffer, so that the thread that ends the process can also write what
 * the others have not flushed yet.  g_reg_lock guards the list and keeps a buffer
 * mapped while it is read; it is taken only off the hot path (a thread's first
 * record, its last destructor round, process exit). */
#define MAX_REGISTERED 1024
static struct tstate *g_reg[MAX_REGISTERED];
static int g_reg_lock;
static int g_reg_full;              /* a thread found no room: no horizon any more */

/* What could not be recorded (raw.h: DISK FULL, the header's dropped and missed). */
static int g_cut;                   /* a chunk could not be written: write no more */
static uint64_t g_dropped;          /* events not written */
static uint64_t g_missed;           /* calls made inside a wrapper, not recorded */

/* A call that passes through unrecorded because the guard is up: counted when it came
 * while a wrapper ran (not from the interposer's own work). */
static inline void note_missed(const struct tstate *t)
{
    if (t->guard == 1)
        __atomic_fetch_add(&g_missed, 1, __ATOMIC_RELAXED);
}

/* ---- small helpers that do not allocate ---- */

static inline uint64_t read_tsc(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
#endif
}

static uint64_t clock_ns(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static char *put_str(char *p, char *end, const char *s)
{
    while (*s && p < end)
        *p++ = *s++;
    return p;
}

static char *put_u64(char *p, char *end, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && p < end)
        *p++ = tmp[--n];
    return p;
}

/* 0, or the errno of the write that failed (a short write that cannot go on counts as
 * ENOSPC). */
static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = write(fd, c, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return k < 0 ? errno : ENOSPC;
        c += k;
        n -= (size_t)k;
    }
    return 0;
}

/* ---- bootstrap allocator, for dlsym's own calls while `real` is being filled ---- */

static char boot_buf[64 << 10] __attribute__((aligned(64)));
static size_t boot_used;

static int is_boot(const void *p)
{
    return (uintptr_t)p - (uintptr_t)boot_buf < sizeof boot_buf;
}

/* Blocks carry their size in the 16 bytes before them (for realloc and
 * malloc_usable_size); they are never reused. */
static void *boot_alloc(size_t n, size_t align)
{
    if (align < 16)
        align = 16;
    size_t old, start, next;
    do {
        old = __atomic_load_n(&boot_used, __ATOMIC_RELAXED);
        start = (old + 16 + align - 1) & ~(align - 1);
        next = start + n;
        if (next > sizeof boot_buf || next < start)
            return NULL;
    } while (!__atomic_compare_exchange_n(&boot_used, &old, next, 0, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    memcpy(boot_buf + start - 16, &n, sizeof n);
    return boot_buf + start;
}

static size_t boot_size(const void *p)
{
    size_t n;
    memcpy(&n, (const char *)p - 16, sizeof n);
    return n;
}

static void resolve(void)
{
    ts.guard += GUARD_INSIDE;
#define R(name) real.name = (__typeof__(real.name))dlsym(RTLD_NEXT, #name)
    R(malloc);
    R(free);
    R(calloc);
    R(realloc);
    R(reallocarray);
    R(posix_memalign);
    R(aligned_alloc);
    R(memalign);
    R(valloc);
    R(pvalloc);
    R(malloc_usable_size);
    R(execve);
    R(execvpe);
    R(fexecve);
    R(posix_spawn);
    R(posix_spawnp);
    R(pthread_create);
    R(fork);
#undef R
    ts.guard -= GUARD_INSIDE;
}

/* ---- the raw file ---- */

/* This image's header as written, for rewriting it in place (rewrite_header). */
static struct hl_raw_header g_hdr;

static void write_header(void)
{
    struct hl_raw_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, HL_RAW_MAGIC, 8);
    h.version = HL_RAW_VERSION;
    h.header_bytes = sizeof h;
    h.pid = (uint32_t)getpid();
    h.ppid = (uint32_t)getppid();
    h.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    if (g_attached)
        h.flags |= HL_RAW_HDR_ATTACHED;
    if (hl_ring_on())
        h.flags |= HL_RAW_HDR_RING;
    h.start_realtime_ns = clock_ns(CLOCK_REALTIME);
    h.start_mono_ns = clock_ns(CLOCK_MONOTONIC);
    h.start_tsc = read_tsc();
    ssize_t k = readlink("/proc/self/exe", h.exe, sizeof h.exe - 1);
    if (k < 0)
        k = 0;
    h.exe[k] = 0;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = 0, r;
        while (n < (ssize_t)sizeof h.cmdline - 1 &&
               (r = read(fd, h.cmdline + n, sizeof h.cmdline - 1 - (size_t)n)) > 0)
            n += r;
        close(fd);
        while (n > 0 && h.cmdline[n - 1] == 0)
            n--;
        for (ssize_t i = 0; i < n; i++)
            if (h.cmdline[i] == 0)
                h.cmdline[i] = ' ';
        h.cmdline[n] = 0;
    }
    h.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    g_hdr = h;
    (void)write_all(g_fd, &h, sizeof h);
}

/* Create this image's raw file and write its header.  Returns 0 or -1. */
static int open_raw(void)
{
    char *p = g_path, *end = g_path + sizeof g_path - 1;
    p = put_str(p, end, g_dir);
    p = put_str(p, end, "/");
    p = put_u64(p, end, (uint64_t)getpid());
    p = put_str(p, end, "-");
    p = put_u64(p, end, clock_ns(CLOCK_MONOTONIC));
    p = put_str(p, end, ".hlraw");
    *p = 0;
    /* A ring's chunks are written in place (pwrite, under the ring's lock; its state
     * is read back), an appended file's by all threads at once (O_APPEND). */
    int ring = hl_ring_wanted(g_watcher, g_bufbytes);
    g_oflags = O_CLOEXEC | (ring ? O_RDWR : O_WRONLY | O_APPEND);
    int fd = open(g_path, g_oflags | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    if (ring && hl_ring_start(fd) != 0) {
        g_oflags |= O_APPEND;
        (void)fcntl(fd, F_SETFL, O_APPEND);
    }
    /* Keep clear of the low descriptor numbers programs like to dup2 onto. */
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 500);
    if (hi >= 0) {
        close(fd);
        fd = hi;
    }
    struct stat st;
    if (fstat(fd, &st) == 0) {
        g_dev = st.st_dev;
        g_ino = st.st_ino;
    }
    g_fd = fd;
    write_header();
    return 0;
}

/* The program may have closed our descriptor (close_fds before exec, daemons closing
 * everything) and even reused its number: check before each chunk, reopen if so. */
static int raw_fd_ok(void)
{
    struct stat st;
    if (g_fd >= 0 && fstat(g_fd, &st) == 0 && st.st_dev == g_dev && st.st_ino == g_ino)
        return 1;
    int fd = open(g_path, g_oflags);
    if (fd < 0)
        return 0;
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 500);
    if (hi >= 0) {
        close(fd);
        fd = hi;
    }
    if (fstat(fd, &st) != 0) {
        close(fd);
        return 0;
    }
    g_fd = fd;
    g_dev = st.st_dev;
    g_ino = st.st_ino;
    return 1;
}

/* The raw file's size as finalising counts it (raw.h: BACKLOG): with a ring, where the
 * stream's end stands. */
static uint64_t raw_size(void)
{
    struct stat st;
    if (hl_ring_on())
        return HL_RAW_RING_BASE + hl_ring_written();
    return g_fd >= 0 && fstat(g_fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

#define CHUNK_WORDS (sizeof(struct hl_raw_chunk) / 8)

/* Rewrite this image's header in place (it takes no new space, so it works on a full
 * disk) with the counts of what was not recorded.  Through a descriptor of its own:
 * the raw file's is O_APPEND, with which pwrite appends on Linux. */
static void rewrite_header(void)
{
    if (!g_hdr.magic[0])
        return;
    struct hl_raw_header h = g_hdr;
    h.dropped = __atomic_load_n(&g_dropped, __ATOMIC_RELAXED);
    h.missed = __atomic_load_n(&g_missed, __ATOMIC_RELAXED);
    h.big_untracked = hl_big_untracked();
    h.held = hl_backlog_held();
    h.held_ns = hl_backlog_held_ns();
    h.checksum = 0;
    h.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    int fd = open(g_path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t k = pwrite(fd, &h, sizeof h, 0);
    (void)k;
    close(fd);
}

/* At the end of the image (exit, exec, detach): put the counts into the header if
 * anything went unrecorded, or a thread waited for finalising (raw.h: BACKLOG). */
static void finish_header(void)
{
    if (g_on && (__atomic_load_n(&g_cut, __ATOMIC_RELAXED) ||
                 __atomic_load_n(&g_dropped, __ATOMIC_RELAXED) ||
                 __atomic_load_n(&g_missed, __ATOMIC_RELAXED) || hl_big_untracked() ||
                 hl_backlog_held()))
        rewrite_header();
}

/* Events in a chunk's payload (clock readings, marks and page counts are not). */
static uint64_t chunk_events(const uint64_t *w, size_t nwords)
{
    uint64_t n = 0;
    for (size_t i = 0; i < nwords;) {
        unsigned k = hl_raw_record_words(w[i]);
        if (!k)
            break;
        n += hl_raw_is_short(w[i]) || hl_raw_op_of(w[i]) < HL_RAW_PAGES;
        i += k;
    }
    return n;
}

/* Write chunk c (header and payload, checksum set) to the raw file.  The first write
 * that fails (a full disk, a file size limit) ends writing for the image: the header
 * says so, and the events of every chunk the image's threads flush from then on,
 * this one included, are counted as dropped.  own: c is its thread's own flush (a
 * copy's events are counted when their thread flushes them).  Returns 1 if written. */
static int put_chunk(struct hl_raw_chunk *c, int own)
{
    if (!__atomic_load_n(&g_cut, __ATOMIC_RELAXED) && raw_fd_ok()) {
        int e = hl_ring_on() ? hl_ring_put(g_fd, (uint64_t)g_ino, c, g_watcher)
                             : write_all(g_fd, c, sizeof *c + c->nbytes);
        if (e == 0)
            return 1;
        if (!__atomic_exchange_n(&g_cut, 1, __ATOMIC_RELAXED)) {
            g_hdr.flags |= HL_RAW_HDR_CUT;
            g_hdr.cut_errno = (uint32_t)e;
        }
    }
    if (own)
        __atomic_fetch_add(&g_dropped, chunk_events((const uint64_t *)(c + 1), c->nbytes / 8),
                           __ATOMIC_RELAXED);
    if (__atomic_load_n(&g_cut, __ATOMIC_RELAXED))
        rewrite_header();
    return 0;
}

/* A process event (raw.h: PROCESS CHUNKS), written at once. */
static void proc_event(uint64_t kind, pid_t pid, const char *path)
{
    if (!g_on)
        return;
    int saved = errno;
    size_t plen = path ? strnlen(path, PATH_MAX) : 0;
    size_t pw = plen / 8 + 1;
    uint64_t buf[CHUNK_WORDS + 3 + PATH_MAX / 8 + 1];
    struct hl_raw_chunk *c = (struct hl_raw_chunk *)buf;
    uint64_t *w = buf + CHUNK_WORDS;
    w[0] = kind;
    w[1] = (uint64_t)pid;
    w[2] = plen;
    memset(w + 3, 0, pw * 8);
    if (plen)
        memcpy(w + 3, path, plen);
    c->magic = HL_RAW_CHUNK_MAGIC;
    c->thread = HL_RAW_PROC_THREAD;
    c->nbytes = (uint32_t)((3 + pw) * 8);
    c->nrecords = 0;
    c->tsc = read_tsc();
    c->mono_ns = clock_ns(CLOCK_MONOTONIC);
    c->checksum = 0;
    uint64_t h = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, c, CHUNK_WORDS);
    c->checksum = hl_raw_checksum(h, w, 3 + pw);
    put_chunk(c, 0);
    errno = saved;
}

/* ---- buffers ---- */

#define MAX_RECORD_WORDS 7 /* reallocarray with a big size and a whole seq */
/* A clock reading (HL_RAW_TIME) every this many words, about 30 records: the soft end
 * t->end stops the fast path there, so the reading costs the fast path nothing. */
#define TIME_EVERY_WORDS 64
/* Room kept at the end of every buffer for the chunk's mark (raw.h). */
#define MARK_WORDS 2

/* Records in the buffer: the short ones are one word each, the others are counted. */
static uint32_t nrecords(const struct tstate *t)
{
    return t->nlong + (uint32_t)(t->pos - t->buf) - t->long_words;
}

static void reg_lock(void);
static void reg_unlock(void);
static int raw_fd_ok(void);
static int write_all(int fd, const void *p, size_t n);
static int put_chunk(struct hl_raw_chunk *c, int own);

/* A thread that holds records but has not recorded anything for a while (blocked in
 * a join, a wait, a read) would hold every horizon back until it flushes, maybe at
 * its exit.  Instead, a thread computing a horizon writes a copy of such a quiet
 * thread's committed records (seqlock on gen, as flush_others), which covers all its
 * numbers below the counter value read before: seeing its guard down after reading
 * the counter means any number it took before is committed (guard_on), and any it
 * takes later is above the counter.  When the thread flushes later its chunk repeats
 * the copied records, which the finaliser skips.  Returns 1 if u's records below the
 * counter are all in the file.  With g_reg_lock held. */
static uint64_t g_copy_buf[(1 << 20) / 8];

static int quiet_copy(struct tstate *u)
{
#if defined(__x86_64__) || defined(__i386__)
    uint32_t g1 = __atomic_load_n(&u->gen, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&u->guard, __ATOMIC_ACQUIRE) || (g1 & 1))
        return 0;
    uint64_t *buf = u->buf, *pos = __atomic_load_n(&u->pos, __ATOMIC_ACQUIRE);
    if (!buf || pos < buf || pos > u->hard)
        return 0;
    if (u->copied_gen == g1 && u->copied_pos == pos)
        return 1; /* nothing new since the last copy */
    if (u->seen_pos != pos) {
        u->seen_pos = pos; /* it is busy: it will flush soon enough itself */
        return 0;
    }
    size_t nwords = (size_t)(pos - buf);
    if (nwords > sizeof g_copy_buf / 8 - CHUNK_WORDS)
        return 0;
    struct hl_raw_chunk *c = (struct hl_raw_chunk *)g_copy_buf;
    uint64_t *copy = g_copy_buf + CHUNK_WORDS;
    memcpy(copy, buf, nwords * 8);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    if (__atomic_load_n(&u->gen, __ATOMIC_ACQUIRE) != g1)
        return 0;
    c->magic = HL_RAW_CHUNK_MAGIC;
    c->thread = u->thread;
    c->nbytes = (uint32_t)(nwords * 8);
    c->nrecords = 0; /* a copy, like flush_others' */
    c->tsc = read_tsc();
    c->mono_ns = clock_ns(CLOCK_MONOTONIC);
    c->checksum = 0;
    uint64_t h = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, c, CHUNK_WORDS);
    c->checksum = hl_raw_checksum(h, copy, nwords);
    if (!put_chunk(c, 0))
        return 0;
    u->copied_gen = g1;
    u->copied_pos = pos;
    return 1;
#else
    (void)u;
    return 0;
#endif
}

/* The chunk's mark (raw.h): every record of the process numbered below the result is
 * in this chunk or already in the file.  With one thread that is the next number.
 * With several it is also below the first record of any other thread's buffer: each
 * thread stores a lower bound of it (lo, seq_cst) before taking its first number,
 * and clears it only after its chunk is written.  Reading the counter before the lo
 * values (seq_cst) makes a thread that starts a buffer meanwhile take a number
 * above the counter read; one that registers meanwhile does so after the scan. */
static uint64_t horizon(struct tstate *self)
{
    if (!__atomic_load_n(&g_multi, __ATOMIC_SEQ_CST))
        return __atomic_load_n(&g_seq, __ATOMIC_RELAXED);
    reg_lock();
    uint64_t c = __atomic_load_n(&g_seq, __ATOMIC_SEQ_CST), h = c;
    for (size_t i = 0; i < MAX_REGISTERED; i++) {
        struct tstate *t = g_reg[i];
        if (t && t != self) {
            uint64_t lo = __atomic_load_n(&t->lo, __ATOMIC_SEQ_CST);
            if (lo < h && !(g_on && quiet_copy(t)))
                h = lo;
        }
    }
    if (__atomic_load_n(&g_reg_full, __ATOMIC_RELAXED))
        h = 0;
    reg_unlock();
    return h;
}

static int orphaned(void);

/* Write the buffer as one chunk (or drop it if recording stopped: a fork child that
 * could not open its file, an attach whose heaplab is gone) and start it over. */
static void flush(struct tstate *t)
{
    if (!t->buf || t->pos == t->buf)
        return;
    int saved = errno;
    if (g_attached && g_on && orphaned())
        __atomic_store_n(&g_on, 0, __ATOMIC_SEQ_CST);
    struct hl_raw_chunk *c = (struct hl_raw_chunk *)(t->buf - CHUNK_WORDS);
    /* The mark goes past pos: flush_others never copies it. */
    t->pos[0] = (uint64_t)HL_RAW_MARK << 1;
    t->pos[1] = horizon(t);
    size_t nwords = (size_t)(t->pos - t->buf) + MARK_WORDS;
    c->magic = HL_RAW_CHUNK_MAGIC;
    c->thread = t->thread;
    c->nbytes = (uint32_t)(nwords * 8);
    c->nrecords = nrecords(t) + 1;
    c->tsc = read_tsc();
    c->mono_ns = clock_ns(CLOCK_MONOTONIC);
    c->checksum = 0;
    uint64_t h = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, c, CHUNK_WORDS);
    c->checksum = hl_raw_checksum(h, t->buf, nwords);
    __atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE); /* odd: being rewritten */
    if (g_on)
        put_chunk(c, 1);
    /* The next record takes the slow path, which starts the chunk with a reading. */
    __atomic_store_n(&t->pos, t->buf, __ATOMIC_RELEASE);
    t->end = t->buf;
    t->nlong = t->long_words = 0;
    t->last_seq = 0;
    t->last_ptr = 0;
    __atomic_store_n(&t->lo, UINT64_MAX, __ATOMIC_SEQ_CST); /* written: holds nothing back */
    __atomic_store_n(&t->gen, t->gen + 1, __ATOMIC_RELEASE);
    errno = saved;
}

static void reg_lock(void)
{
    while (__atomic_exchange_n(&g_reg_lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void reg_unlock(void)
{
    __atomic_store_n(&g_reg_lock, 0, __ATOMIC_RELEASE);
}

static void reg_add(struct tstate *t)
{
    reg_lock();
    size_t i = 0;
    while (i < MAX_REGISTERED && g_reg[i])
        i++;
    if (i < MAX_REGISTERED)
        g_reg[i] = t;
    else
        __atomic_store_n(&g_reg_full, 1, __ATOMIC_RELAXED);
    reg_unlock();
}

/* With g_reg_lock held. */
static void reg_remove(struct tstate *t)
{
    for (size_t i = 0; i < MAX_REGISTERED; i++)
        if (g_reg[i] == t)
            g_reg[i] = NULL;
}

/* The process is ending (exit, _exit) while other threads may still run: write the
 * records they have committed but not flushed.  Their owners keep appending past
 * `pos` meanwhile, which is harmless; a flush by the owner during the copy changes its
 * `gen` (a seqlock), and the copy is then dropped.  If an owner flushes again before
 * the process is gone, its chunk repeats records already written here: the
 * finaliser skips records whose sequence number it has already seen in that thread. */
static void flush_others(void)
{
    if (!g_on || !__atomic_load_n(&g_multi, __ATOMIC_RELAXED))
        return;
    void *m = mmap(NULL, g_bufbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return;
    int saved = errno;
    struct hl_raw_chunk *c = m;
    uint64_t *copy = (uint64_t *)m + CHUNK_WORDS;
    reg_lock();
    for (size_t i = 0; i < MAX_REGISTERED; i++) {
        struct tstate *t = g_reg[i];
        if (!t || t == &ts)
            continue;
        uint32_t g1 = __atomic_load_n(&t->gen, __ATOMIC_ACQUIRE);
        uint64_t *buf = t->buf, *pos = __atomic_load_n(&t->pos, __ATOMIC_ACQUIRE);
        if ((g1 & 1) || !buf || pos <= buf || pos > t->hard)
            continue;
        size_t nwords = (size_t)(pos - buf);
        memcpy(copy, buf, nwords * 8);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&t->gen, __ATOMIC_ACQUIRE) != g1)
            continue;
        c->magic = HL_RAW_CHUNK_MAGIC;
        c->thread = t->thread;
        c->nbytes = (uint32_t)(nwords * 8);
        c->nrecords = 0;
        c->tsc = read_tsc();
        c->mono_ns = clock_ns(CLOCK_MONOTONIC);
        c->checksum = 0;
        uint64_t h = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, c, CHUNK_WORDS);
        c->checksum = hl_raw_checksum(h, copy, nwords);
        put_chunk(c, 0);
    }
    reg_unlock();
    munmap(m, g_bufbytes);
    errno = saved;
}

static void thread_dtor(void *arg);

static void setup_process(void);

/* A thread that records seldom beside a fast one would hold every horizon back until
 * it fills its buffer (quiet_copy skips a thread that recorded since the last look),
 * and finalising could not pass its first record meanwhile: minutes, for a thread
 * that allocates once a millisecond.  So a buffer less than 1/OLD_SHARE full whose
 * first record is more than OLD_BUFFERS buffers' worth of the process's numbers old
 * is flushed at its thread's next clock reading (about every 30 records).  Threads
 * that record at comparable rates fill their buffers first. */
#define OLD_BUFFERS 4
#define OLD_SHARE 16

static inline int buffer_old(const struct tstate *t)
{
    size_t words = g_bufbytes / 8;
    uint64_t lo = __atomic_load_n(&t->lo, __ATOMIC_RELAXED);
    return lo != UINT64_MAX && (size_t)(t->pos - t->buf) < words / OLD_SHARE &&
           __atomic_load_n(&g_multi, __ATOMIC_RELAXED) &&
           __atomic_load_n(&g_seq, __ATOMIC_RELAXED) - lo > OLD_BUFFERS * words;
}

/* The fast path reached the soft end: flush if the buffer is full (or old), set it up
 * if there is none, write a clock reading, and return where the next record goes (with
 * room for MAX_RECORD_WORDS). */
static __attribute__((noinline)) uint64_t *reserve_slow(struct tstate *t)
{
    int saved = errno;
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == 0)
        setup_process();
    if (t->buf) {
        if ((size_t)(t->hard - t->pos) < 2 + MAX_RECORD_WORDS) {
            flush(t);
            if (g_on)
                hl_backlog_hold(raw_size(), (uint64_t)g_ino, g_watcher);
        } else if (buffer_old(t)) {
            flush(t);
        }
    } else if (g_on && !t->dead) {
        void *m = mmap(NULL, g_bufbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
        if (m != MAP_FAILED) {
            t->buf = (uint64_t *)m + CHUNK_WORDS;
            t->pos = t->buf;
            t->hard = (uint64_t *)m + g_bufbytes / 8 - MARK_WORDS;
            t->nlong = t->long_words = 0;
            t->last_seq = 0;
            t->last_ptr = 0;
            if (!t->registered) {
                t->thread = __atomic_fetch_add(&g_nthreads, 1, __ATOMIC_RELAXED);
                t->registered = 1;
                /* A thread not made by pthread_create (which sets g_multi first). */
                if (t->thread > 0)
                    __atomic_store_n(&g_multi, 1, __ATOMIC_RELAXED);
            }
            reg_add(t);
            pthread_setspecific(g_key, t);
        }
    }
    if (t->buf) {
        /* A fresh buffer: publish a lower bound of the number its first record takes
         * (taken after this returns: every caller reserves before numbering). */
        if (t->pos == t->buf)
            __atomic_store_n(&t->lo, __atomic_load_n(&g_seq, __ATOMIC_SEQ_CST), __ATOMIC_SEQ_CST);
        t->pos[0] = HL_RAW_TIME << 1;
        t->pos[1] = read_tsc();
        t->pos += 2;
        t->nlong++;
        t->long_words += 2;
        /* The flush above left room for a whole record at pos. */
        uint64_t *last = t->hard - MAX_RECORD_WORDS + 1;
        t->end = last - t->pos > TIME_EVERY_WORDS ? t->pos + TIME_EVERY_WORDS : last;
    } else {
        /* Not recording: let records land in the scratch area, one at a time. */
        t->pos = t->scratch;
        t->end = t->scratch + 1;
        t->nlong = t->long_words = 0;
    }
    errno = saved;
    return t->pos;
}

/* Room for a record of up to MAX_RECORD_WORDS; the caller fills it and commits the
 * words it used, so a record whose size needs an extra word can store it
 * unconditionally. */
static inline uint64_t *reserve(struct tstate *t)
{
    uint64_t *p = t->pos;
    if (unlikely(p >= t->end))
        p = reserve_slow(t);
    return p;
}

static inline void commit(struct tstate *t, uint64_t *w, unsigned nw)
{
    /* Release: the record's words before the position that publishes them (a plain
     * store on x86; it only stops the compiler reordering).  See flush_others. */
    __atomic_store_n(&t->pos, w + nw, __ATOMIC_RELEASE);
}

/* One thread: a plain increment.  Several: an atomic add.  g_multi is set before the
 * second thread exists (pthread_create below), so no increment is ever lost. */
static inline uint64_t next_seq(void)
{
    if (likely(!__atomic_load_n(&g_multi, __ATOMIC_RELAXED))) {
        uint64_t s = __atomic_load_n(&g_seq, __ATOMIC_RELAXED);
        __atomic_store_n(&g_seq, s + 1, __ATOMIC_RELAXED);
        return s;
    }
    return __atomic_fetch_add(&g_seq, 1, __ATOMIC_RELAXED);
}

/* A long record (raw.h): w[0] = its first word, w[1 .. n-1] its fixed words already
 * written; append the size word and the whole seq where they are needed, commit, and
 * move the running values on. */
static inline void commit_long(struct tstate *t, uint64_t *w, unsigned n, uint64_t seq,
                               uintptr_t p, size_t size, unsigned op, unsigned flags)
{
    if (unlikely(hl_raw_needs_seq64(seq, t->last_seq)))
        flags |= HL_RAWF_SEQ64;
    w[0] = hl_raw_w0(seq, size, op, flags);
    if (size >= HL_RAW_SIZE_BIG)
        w[n++] = size;
    if (flags & HL_RAWF_SEQ64)
        w[n++] = seq;
    t->last_seq = seq;
    t->last_ptr = p;
    t->nlong++;
    t->long_words += n;
    commit(t, w, n);
}

/* Threads flush at exit.  Later destructors (other keys, in the same round) may still
 * allocate: re-arm for up to three rounds, then give the buffer back. */
static void thread_dtor(void *arg)
{
    struct tstate *t = &ts;
    (void)arg;
    t->guard += GUARD_INSIDE;
    flush(t);
    if (++t->dtor_rounds < 3) {
        pthread_setspecific(g_key, t);
    } else if (t->buf) {
        reg_lock();
        reg_remove(t);
        munmap(t->buf - CHUNK_WORDS, g_bufbytes);
        t->buf = NULL;
        t->pos = t->end = t->hard = NULL;
        t->dead = 1;
        reg_unlock();
    }
    t->guard -= GUARD_INSIDE;
}

static void atfork_child(void)
{
    struct tstate *t = &ts;
    g_multi = 0; /* the child has one thread */
    g_reg_lock = 0;
    hl_big_after_fork();
    for (size_t i = 0; i < MAX_REGISTERED; i++)
        if (g_reg[i] != t)
            g_reg[i] = NULL;
    /* What the parent could not record is the parent's to count. */
    g_cut = 0;
    g_dropped = 0;
    g_missed = 0;
    hl_backlog_after_fork();
    hl_ring_after_fork();
    memset(&g_hdr, 0, sizeof g_hdr);
    if (!g_on)
        return;
    g_reg_full = 0;
    /* The copy of the parent's unflushed records is the parent's to write. */
    t->lo = UINT64_MAX;
    if (t->buf) {
        t->pos = t->end = t->buf;
        t->nlong = t->long_words = 0;
        t->last_seq = 0;
        t->last_ptr = 0;
    }
    t->thread = 0;
    t->registered = t->buf != NULL;
    g_nthreads = t->registered ? 1 : 0;
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    if (open_raw() != 0)
        g_on = 0;
}

/* A size from the environment: digits, then K, M or G for KiB, MiB or GiB.  Returns 1
 * and sets *v if name is set to one. */
static int env_size(const char *name, uint64_t *v)
{
    const char *s = getenv(name);
    char *e;
    if (!s || *s < '0' || *s > '9')
        return 0;
    unsigned long long x = strtoull(s, &e, 10);
    unsigned shift = 0;
    if (*e == 'k' || *e == 'K')
        shift = 10;
    else if (*e == 'm' || *e == 'M')
        shift = 20;
    else if (*e == 'g' || *e == 'G')
        shift = 30;
    e += shift != 0;
    if (*e || x > (UINT64_MAX >> shift))
        return 0;
    *v = (uint64_t)x << shift;
    return 1;
}

static void setup_process(void)
{
    int expect = 0;
    if (!__atomic_compare_exchange_n(&g_state, &expect, 1, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        return; /* done, or another thread is at it: record nothing meanwhile */
    ts.guard += GUARD_INSIDE;
    if (!real.malloc)
        resolve();
    const char *dir = getenv(HL_RAW_ENV_DIR);
    const char *ss = getenv(HL_RAW_ENV_SEQ_START);
    if (ss && *ss)
        g_seq = strtoull(ss, NULL, 10);
    uint64_t v;
    if (env_size(HL_RAW_ENV_BUFFER, &v) && v >= HL_RAW_BUFFER_MIN && v <= HL_RAW_BUFFER_MAX)
        g_bufbytes = (size_t)v & ~(size_t)4095;
    if (env_size(HL_RAW_ENV_BACKLOG, &v))
        hl_backlog_set_limit(v);
    if (env_size(HL_RAW_ENV_RING, &v))
        hl_ring_set_bytes(v);
    if (env_size(HL_RAW_ENV_HOLD_STALL_MS, &v) && v <= UINT64_MAX / 1000000u)
        hl_backlog_set_stall(v * 1000000u);
    if (env_size(HL_RAW_ENV_WATCHER, &v) && v > 0 && v <= INT_MAX)
        g_watcher = (pid_t)v;
    Dl_info di;
    if (dladdr((void *)&setup_process, &di) && di.dli_fname &&
        strlen(di.dli_fname) < sizeof g_libpath)
        strcpy(g_libpath, di.dli_fname);
    if (dir && *dir && strlen(dir) < sizeof g_dir && g_libpath[0] &&
        pthread_key_create(&g_key, thread_dtor) == 0) {
        strcpy(g_dir, dir);
        hl_backlog_set_dir(g_dir);
        char *p = put_str(g_env_dir, g_env_dir + sizeof g_env_dir - 1, HL_RAW_ENV_DIR "=");
        *put_str(p, g_env_dir + sizeof g_env_dir - 1, g_dir) = 0;
        if (open_raw() == 0) {
            pthread_atfork(NULL, NULL, atfork_child);
            g_on = 1;
        }
    }
    ts.guard -= GUARD_INSIDE;
    __atomic_store_n(&g_state, 2, __ATOMIC_RELEASE);
}

__attribute__((constructor)) static void hl_record_init(void)
{
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == 0)
        setup_process();
}

static void pages_at_end(void);

__attribute__((destructor)) static void hl_record_fini(void)
{
    pages_at_end();
    ts.guard += GUARD_INSIDE;
    flush(&ts);
    flush_others();
    finish_header();
    ts.guard -= GUARD_INSIDE;
}

static void flush_current(void)
{
    ts.guard += GUARD_INSIDE;
    flush(&ts);
    ts.guard -= GUARD_INSIDE;
}

/* ---- the allocation API ---- */

/* Calls made with the guard up, or before `real` is known: no recording. */
static void *quiet_malloc(size_t n)
{
    if (real.malloc)
        return real.malloc(n);
    return boot_alloc(n, 16);
}

/* A malloc or free as a one-word short record if its deltas fit (raw.h), which they
 * nearly always do.  Returns 1 if written. */
static inline int record_short(struct tstate *t, uint64_t *w, unsigned op, uint64_t seq,
                               uintptr_t p, size_t size)
{
    uint64_t r = hl_raw_short(op, seq, t->last_seq, p, t->last_ptr, size);
    if (likely(r)) {
        w[0] = r; /* room for a long record was reserved */
        t->last_seq = seq;
        t->last_ptr = p;
        commit(t, w, 1);
        return 1;
    }
    return 0;
}

/* The resident pages of a large block being given back (or live at the end):
 * w0 ptr [pages] [seq] (raw.h, HL_RAW_PAGES).  Before the record that gives it back,
 * whose reserve follows this commit. */
static void record_pages(struct tstate *t, uintptr_t p, size_t bytes)
{
    uint64_t pages = hl_big_resident(p, bytes);
    uint64_t *w = reserve(t);
    uint64_t seq = next_seq();
    w[1] = p;
    commit_long(t, w, 2, seq, p, pages, HL_RAW_PAGES, 0);
}

/* A block given back: its pages first, if it is a tracked large one. */
static inline void giving_back(struct tstate *t, void *p)
{
    if (unlikely(hl_big_maybe((uintptr_t)p))) {
        size_t bytes = hl_big_take((uintptr_t)p);
        if (bytes)
            record_pages(t, (uintptr_t)p, bytes);
    }
}

static void pages_of_live(void *ctx, uintptr_t p, size_t bytes)
{
    record_pages(ctx, p, bytes);
}

/* The image ends (exit, _exit, exec): the pages of the large blocks still live. */
static void pages_at_end(void)
{
    ts.guard += GUARD_INSIDE;
    hl_big_drain(pages_of_live, &ts);
    ts.guard -= GUARD_INSIDE;
}

/* malloc, valloc, pvalloc: w0 ptr [size] [seq] */
static inline void record_plain(struct tstate *t, unsigned op, void *p, size_t size)
{
    uint64_t *w = reserve(t);
    uint64_t seq = next_seq();
    if (op == HL_RAW_MALLOC && p && record_short(t, w, op, seq, (uintptr_t)p, size))
        return;
    w[1] = (uintptr_t)p;
    commit_long(t, w, 2, seq, (uintptr_t)p, size, op, p ? 0 : HL_RAWF_FAILED);
}

/* calloc and the aligned ops: w0 ptr aux [size] [seq] */
static inline void record_aux(struct tstate *t, unsigned op, void *p, size_t size, size_t aux)
{
    uint64_t *w = reserve(t);
    uint64_t seq = next_seq();
    w[1] = (uintptr_t)p;
    w[2] = aux;
    commit_long(t, w, 3, seq, (uintptr_t)p, size, op, p ? 0 : HL_RAWF_FAILED);
}

EXPORT void *malloc(size_t n)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.malloc)) {
        note_missed(t);
        /* Before the constructor (another library's constructor allocating): look
         * the real functions up now and record the call as usual. */
        if (t->guard)
            return quiet_malloc(n);
        resolve();
        if (!real.malloc)
            return boot_alloc(n, 16);
    }
    guard_on(t);
    void *p = real.malloc(n);
    record_plain(t, HL_RAW_MALLOC, p, n);
    if (unlikely(n >= HL_RAW_PAGES_MIN) && p)
        hl_big_add((uintptr_t)p, n);
    guard_off(t);
    return p;
}

EXPORT void free(void *p)
{
    struct tstate *t = &ts;
    if (unlikely(!p || is_boot(p)))
        return;
    if (unlikely(t->guard || !real.free)) {
        note_missed(t);
        if (real.free)
            real.free(p);
        return;
    }
    guard_on(t);
    giving_back(t, p);
    uint64_t *w = reserve(t);
    uint64_t seq = next_seq();
    if (!record_short(t, w, HL_RAW_FREE, seq, (uintptr_t)p, 0)) {
        w[1] = (uintptr_t)p;
        commit_long(t, w, 2, seq, (uintptr_t)p, 0, HL_RAW_FREE, 0);
    }
    real.free(p);
    guard_off(t);
}

/* glibc dropped cfree; old binaries may still call it. */
EXPORT void cfree(void *p);
EXPORT void cfree(void *p)
{
    free(p);
}

EXPORT void *calloc(size_t nmemb, size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.calloc)) {
        note_missed(t);
        if (real.calloc)
            return real.calloc(nmemb, size);
        size_t n;
        if (__builtin_mul_overflow(nmemb, size, &n))
            return NULL;
        return boot_alloc(n, 16); /* static memory: already zero */
    }
    guard_on(t);
    void *p = real.calloc(nmemb, size);
    record_aux(t, HL_RAW_CALLOC, p, size, nmemb);
    size_t bytes;
    if (p && !__builtin_mul_overflow(nmemb, size, &bytes) && unlikely(bytes >= HL_RAW_PAGES_MIN))
        hl_big_add((uintptr_t)p, bytes);
    guard_off(t);
    return p;
}

/* realloc of a bootstrap block: move it to the real heap. */
static void *boot_realloc(void *old, size_t n)
{
    void *p = quiet_malloc(n);
    if (p) {
        size_t k = boot_size(old);
        memcpy(p, old, k < n ? k : n);
    }
    return p;
}

/* w0(seq after) new seq-before old [nmemb] [size] [seq], into w (reserved before s0
 * was taken, so that a horizon never passes s0 while the record is not written). */
static void record_realloc(struct tstate *t, uint64_t *w, unsigned op, uint64_t s0, void *old,
                           void *p, size_t size, size_t nmemb, size_t total)
{
    unsigned flags = 0;
    if (!p)
        flags = old && total == 0 ? HL_RAWF_FREED : HL_RAWF_FAILED;
    uint64_t s1 = next_seq();
    w[1] = (uintptr_t)p;
    w[2] = old ? s0 : s1;
    w[3] = (uintptr_t)old;
    unsigned n = 4;
    if (op == HL_RAW_REALLOCARRAY)
        w[n++] = nmemb;
    commit_long(t, w, n, s1, (uintptr_t)p, size, op, flags);
}

EXPORT void *realloc(void *old, size_t n)
{
    struct tstate *t = &ts;
    if (unlikely(is_boot(old)))
        return boot_realloc(old, n);
    if (unlikely(t->guard || !real.realloc)) {
        note_missed(t);
        if (real.realloc)
            return real.realloc(old, n);
        return old ? NULL : boot_alloc(n, 16);
    }
    guard_on(t);
    if (old)
        giving_back(t, old);
    uint64_t *w = reserve(t);
    uint64_t s0 = old ? next_seq() : 0;
    void *p = real.realloc(old, n);
    record_realloc(t, w, HL_RAW_REALLOC, s0, old, p, n, 0, n);
    guard_off(t);
    return p;
}

/* reallocarray as glibc defines it, on the real realloc: glibc's own calls realloc
 * through the symbol, which would come back here as a nested call (counted as missed,
 * note_missed). */
static void *do_reallocarray(void *old, size_t nmemb, size_t size)
{
    size_t n;
    if (__builtin_mul_overflow(nmemb, size, &n)) {
        errno = ENOMEM;
        return NULL;
    }
    return real.realloc(old, n);
}

EXPORT void *reallocarray(void *old, size_t nmemb, size_t size)
{
    struct tstate *t = &ts;
    size_t total;
    if (__builtin_mul_overflow(nmemb, size, &total))
        total = SIZE_MAX;
    if (unlikely(is_boot(old))) {
        if (total == SIZE_MAX) {
            errno = ENOMEM;
            return NULL;
        }
        return boot_realloc(old, total);
    }
    if (unlikely(t->guard || !real.realloc)) {
        note_missed(t);
        if (real.realloc)
            return do_reallocarray(old, nmemb, size);
        return old || total == SIZE_MAX ? NULL : boot_alloc(total, 16);
    }
    guard_on(t);
    if (old)
        giving_back(t, old);
    uint64_t *w = reserve(t);
    uint64_t s0 = old ? next_seq() : 0;
    void *p = do_reallocarray(old, nmemb, size);
    record_realloc(t, w, HL_RAW_REALLOCARRAY, s0, old, p, size, nmemb, total);
    guard_off(t);
    return p;
}

EXPORT int posix_memalign(void **out, size_t align, size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.posix_memalign)) {
        note_missed(t);
        if (real.posix_memalign)
            return real.posix_memalign(out, align, size);
        void *p = boot_alloc(size, align);
        if (!p)
            return ENOMEM;
        *out = p;
        return 0;
    }
    guard_on(t);
    int r = real.posix_memalign(out, align, size);
    record_aux(t, HL_RAW_POSIX_MEMALIGN, r == 0 ? *out : NULL, size, align);
    guard_off(t);
    return r;
}

EXPORT void *aligned_alloc(size_t align, size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.aligned_alloc)) {
        note_missed(t);
        if (real.aligned_alloc)
            return real.aligned_alloc(align, size);
        return boot_alloc(size, align);
    }
    guard_on(t);
    void *p = real.aligned_alloc(align, size);
    record_aux(t, HL_RAW_ALIGNED_ALLOC, p, size, align);
    guard_off(t);
    return p;
}

EXPORT void *memalign(size_t align, size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.memalign)) {
        note_missed(t);
        if (real.memalign)
            return real.memalign(align, size);
        return boot_alloc(size, align);
    }
    guard_on(t);
    void *p = real.memalign(align, size);
    record_aux(t, HL_RAW_MEMALIGN, p, size, align);
    guard_off(t);
    return p;
}

EXPORT void *valloc(size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.valloc)) {
        note_missed(t);
        if (real.valloc)
            return real.valloc(size);
        return boot_alloc(size, 4096);
    }
    guard_on(t);
    void *p = real.valloc(size);
    record_plain(t, HL_RAW_VALLOC, p, size);
    guard_off(t);
    return p;
}

EXPORT void *pvalloc(size_t size)
{
    struct tstate *t = &ts;
    if (unlikely(t->guard || !real.pvalloc)) {
        note_missed(t);
        if (real.pvalloc)
            return real.pvalloc(size);
        return boot_alloc((size + 4095) & ~(size_t)4095, 4096);
    }
    guard_on(t);
    void *p = real.pvalloc(size);
    record_plain(t, HL_RAW_PVALLOC, p, size);
    guard_off(t);
    return p;
}

/* Threads: the process is about to have more than one, so sequence numbers must come
 * from an atomic add from now on (see next_seq). */
EXPORT int pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *),
                          void *arg)
{
    if (!real.pthread_create)
        resolve();
    __atomic_store_n(&g_multi, 1, __ATOMIC_SEQ_CST);
    return real.pthread_create(th, attr, fn, arg);
}

EXPORT size_t malloc_usable_size(void *p)
{
    if (!p)
        return 0;
    if (is_boot(p))
        return boot_size(p);
    if (!real.malloc_usable_size)
        return 0;
    return real.malloc_usable_size(p);
}

/* ---- exec, spawn and exit ---- */

/* Does the colon/space separated list `v` name `lib`? */
static int list_has(const char *v, const char *lib)
{
    size_t n = strlen(lib);
    while (*v) {
        while (*v == ':' || *v == ' ')
            v++;
        size_t k = strcspn(v, ": ");
        if (k == n && memcmp(v, lib, n) == 0)
            return 1;
        v += k;
    }
    return 0;
}

static const char *env_value(char *const *envp, const char *name, size_t nlen, size_t *idx)
{
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, nlen) == 0 && envp[i][nlen] == '=') {
            *idx = i;
            return envp[i] + nlen + 1;
        }
    return NULL;
}

typedef int (*exec_fn)(void *ctx, char *const *envp);

/* Call fn with an environment that keeps recording on in the new image: envp itself
 * when it already does, else a copy on the stack with LD_PRELOAD (this library first)
 * and HEAPLAB_CAPTURE_DIR put right.  The stack is used because this may run in a
 * vfork child, which shares the parent's memory. */
static int with_recording_env(char *const *envp, exec_fn fn, void *ctx)
{
    if (!g_on)
        return fn(ctx, envp);
    size_t n = 0, ip = SIZE_MAX, id = SIZE_MAX;
    while (envp && envp[n])
        n++;
    const char *pre = env_value(envp, "LD_PRELOAD", 10, &ip);
    const char *dir = env_value(envp, HL_RAW_ENV_DIR, sizeof HL_RAW_ENV_DIR - 1, &id);
    int pre_ok = pre && list_has(pre, g_libpath);
    int dir_ok = dir && strcmp(dir, g_dir) == 0;
    if ((pre_ok && dir_ok) || n > (1u << 20))
        return fn(ctx, envp);
    size_t plen = sizeof "LD_PRELOAD=" + strlen(g_libpath) + 1 + (pre ? strlen(pre) : 0);
    char prebuf[plen];
    char *arr[n + 3];
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if ((i != ip || pre_ok) && (i != id || dir_ok))
            arr[m++] = envp[i];
    if (!pre_ok) {
        char *p = prebuf, *end = prebuf + plen - 1;
        p = put_str(p, end, "LD_PRELOAD=");
        p = put_str(p, end, g_libpath);
        if (pre && *pre) {
            p = put_str(p, end, ":");
            p = put_str(p, end, pre);
        }
        *p = 0;
        arr[m++] = prebuf;
    }
    if (!dir_ok)
        arr[m++] = g_env_dir;
    arr[m] = NULL;
    return fn(ctx, arr);
}

struct exec_ctx {
    const char *path;
    int fd;
    char *const *argv;
    pid_t *pid;
    const posix_spawn_file_actions_t *fa;
    const posix_spawnattr_t *attr;
};

/* exec ends every other thread of the process: write what they committed too (as at
 * exit).  If the exec fails they go on, and a later flush of theirs repeats records the
 * finaliser has seen already and skips. */
static void before_exec(void)
{
    if (!real.execve)
        resolve();
    pages_at_end();
    ts.guard += GUARD_INSIDE;
    flush(&ts);
    flush_others();
    finish_header();
    ts.guard -= GUARD_INSIDE;
}

static int do_execve(void *c, char *const *envp)
{
    struct exec_ctx *x = c;
    return real.execve(x->path, x->argv, envp);
}

static int do_execvpe(void *c, char *const *envp)
{
    struct exec_ctx *x = c;
    if (real.execvpe)
        return real.execvpe(x->path, x->argv, envp);
    errno = ENOSYS;
    return -1;
}

static int do_fexecve(void *c, char *const *envp)
{
    struct exec_ctx *x = c;
    return real.fexecve(x->fd, x->argv, envp);
}

static int do_spawn(void *c, char *const *envp)
{
    struct exec_ctx *x = c;
    return real.posix_spawn(x->pid, x->path, x->fa, x->attr, x->argv, envp);
}

static int do_spawnp(void *c, char *const *envp)
{
    struct exec_ctx *x = c;
    return real.posix_spawnp(x->pid, x->path, x->fa, x->attr, x->argv, envp);
}

/* An exec through fn: announced in the raw file (raw.h: PROCESS CHUNKS) so that an
 * image that leaves no file of its own is named, and its failure too. */
static int exec_announced(const char *path, char *const *envp, exec_fn fn, struct exec_ctx *x)
{
    before_exec();
    pid_t self = getpid(); /* a vfork child's own pid: it writes into its parent's file */
    proc_event(HL_RAW_PEV_EXEC, self, path);
    int r = with_recording_env(envp, fn, x);
    proc_event(HL_RAW_PEV_EXEC_FAILED, self, path);
    return r;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    struct exec_ctx x = {.path = path, .argv = argv};
    return exec_announced(path, envp, do_execve, &x);
}

EXPORT int execv(const char *path, char *const argv[])
{
    return execve(path, argv, environ);
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    struct exec_ctx x = {.path = file, .argv = argv};
    return exec_announced(file, envp, do_execvpe, &x);
}

EXPORT int execvp(const char *file, char *const argv[])
{
    return execvpe(file, argv, environ);
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    struct exec_ctx x = {.fd = fd, .argv = argv};
    return exec_announced(NULL, envp, do_fexecve, &x);
}

/* execl and friends: count the arguments, then copy them into a stack array (and,
 * for execle, take the envp that follows the terminating NULL). */
#define COLLECT_ARGS(arg0, argv, envp_out, want_env)                                       \
    va_list ap_;                                                                            \
    size_t n_ = 1;                                                                          \
    va_start(ap_, arg0);                                                                    \
    while (va_arg(ap_, const char *))                                                       \
        n_++;                                                                               \
    va_end(ap_);                                                                            \
    char *argv[n_ + 1];                                                                     \
    argv[0] = (char *)arg0;                                                                 \
    va_start(ap_, arg0);                                                                    \
    for (size_t i_ = 1; i_ <= n_; i_++)                                                     \
        argv[i_] = va_arg(ap_, char *);                                                     \
    if (want_env)                                                                           \
        envp_out = va_arg(ap_, char **);                                                    \
    va_end(ap_)

EXPORT int execl(const char *path, const char *arg, ...)
{
    char **envp = environ;
    COLLECT_ARGS(arg, argv, envp, 0);
    return execve(path, argv, envp);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    char **envp = environ;
    COLLECT_ARGS(arg, argv, envp, 0);
    return execvpe(file, argv, envp);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    char **envp = NULL;
    COLLECT_ARGS(arg, argv, envp, 1);
    return execve(path, argv, envp);
}

/* A spawn through fn, its child announced (raw.h: PROCESS CHUNKS) when it started. */
static int spawn_announced(pid_t *pid, const char *path, char *const *envp, exec_fn fn,
                           struct exec_ctx *x)
{
    pid_t child = 0;
    x->pid = &child;
    int r = with_recording_env(envp, fn, x);
    if (pid)
        *pid = child;
    if (r == 0)
        proc_event(HL_RAW_PEV_SPAWN, child, path);
    return r;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real.posix_spawn)
        resolve();
    struct exec_ctx x = {.path = path, .argv = argv, .fa = fa, .attr = attr};
    return spawn_announced(pid, path, envp, do_spawn, &x);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *fa,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
    if (!real.posix_spawnp)
        resolve();
    struct exec_ctx x = {.path = file, .argv = argv, .fa = fa, .attr = attr};
    return spawn_announced(pid, file, envp, do_spawnp, &x);
}

/* fork: the parent announces the child (raw.h: PROCESS CHUNKS), so that a child that
 * cannot create its own raw file (a seccomp filter, no space) is named. */
EXPORT pid_t fork(void)
{
    if (!real.fork)
        resolve();
    pid_t pid = real.fork();
    if (pid > 0)
        proc_event(HL_RAW_PEV_FORK, pid, NULL);
    return pid;
}

EXPORT void _exit(int status)
{
    pages_at_end();
    flush_current();
    ts.guard += GUARD_INSIDE;
    flush_others();
    finish_header();
    ts.guard -= GUARD_INSIDE;
    for (;;)
        syscall(SYS_exit_group, status);
}

EXPORT void _Exit(int status)
{
    _exit(status);
}

/* ---- attaching to a running process (hook.c) ----
 *
 * When the library is dlopen'ed into a running program, nothing calls the wrappers
 * until hook.c points the program's GOT entries at them.  The real functions are then
 * the program's global definitions (an allocator the program preloads, say), not the
 * next ones after this library (RTLD_NEXT from a dlopen'ed library means libc's):
 * hook.c finds them and passes them in fns (in its own order).  hl_attach_begin starts
 * a capture in dir for the heaplab process `watcher` (if that dies without detaching,
 * writing stops at the next flush), hl_attach_end flushes it and stops: the library
 * stays loaded (threads may still be inside a wrapper), and a later attach starts over
 * with the thread buffers it left behind.  hl_attach_begin returns 0, -2 if the library
 * was preloaded and records already, -1 if the capture cannot start. */
__attribute__((visibility("hidden"))) int hl_attach_begin(const char *dir, void *const *fns,
                                                         pid_t watcher);
__attribute__((visibility("hidden"))) void hl_attach_end(void);

/* The heaplab that attached is gone (killed before it could detach): nobody will read
 * the capture any more. */
static int orphaned(void)
{
    return g_watcher > 0 && kill(g_watcher, 0) != 0 && errno == ESRCH;
}

int hl_attach_begin(const char *dir, void *const *fns, pid_t watcher)
{
    static int atfork_set, key_made;
    if (g_on && !g_attached)
        return -2; /* preloaded: recorded from its start */
    if (g_on || strlen(dir) >= sizeof g_dir || !g_libpath[0])
        return -1;
    ts.guard += GUARD_INSIDE;
    /* In hook.c's order (its `hooked` table). */
    void **slot[] = {(void **)&real.malloc, (void **)&real.free, (void **)&real.calloc,
                     (void **)&real.realloc, (void **)&real.reallocarray,
                     (void **)&real.posix_memalign, (void **)&real.aligned_alloc,
                     (void **)&real.memalign, (void **)&real.valloc, (void **)&real.pvalloc,
                     (void **)&real.malloc_usable_size};
    for (size_t i = 0; i < sizeof slot / sizeof slot[0]; i++)
        *slot[i] = fns[i];
    int r = -1;
    if (real.malloc && real.free && real.calloc && real.realloc &&
        (key_made || (key_made = pthread_key_create(&g_key, thread_dtor) == 0))) {
        strcpy(g_dir, dir);
        hl_backlog_set_dir(g_dir);
        char *p = put_str(g_env_dir, g_env_dir + sizeof g_env_dir - 1, HL_RAW_ENV_DIR "=");
        *put_str(p, g_env_dir + sizeof g_env_dir - 1, g_dir) = 0;
        /* Threads that recorded in an earlier attach start over, numbered afresh. */
        reg_lock();
        g_nthreads = 0;
        g_reg_full = 0;
        for (size_t i = 0; i < MAX_REGISTERED; i++) {
            struct tstate *t = g_reg[i];
            if (!t)
                continue;
            t->pos = t->end = t->buf;
            t->nlong = t->long_words = 0;
            t->last_seq = 0;
            t->last_ptr = 0;
            t->lo = UINT64_MAX;
            t->seen_pos = t->copied_pos = NULL;
            t->thread = g_nthreads++;
        }
        reg_unlock();
        /* No pthread_create wrapper saw the threads already running: count them
         * (the wrapper, hooked from now on, sees later ones). */
        int nthreads = 0;
        DIR *d = opendir("/proc/self/task");
        struct dirent *de;
        while (d && (de = readdir(d)))
            nthreads += de->d_name[0] != '.';
        if (d)
            closedir(d);
        if (nthreads != 1)
            __atomic_store_n(&g_multi, 1, __ATOMIC_SEQ_CST);
        g_attached = 1;
        g_watcher = watcher;
        if (open_raw() == 0) {
            if (!atfork_set)
                atfork_set = pthread_atfork(NULL, NULL, atfork_child) == 0;
            __atomic_store_n(&g_on, 1, __ATOMIC_SEQ_CST);
            r = 0;
        }
    }
    ts.guard -= GUARD_INSIDE;
    return r;
}

void hl_attach_end(void)
{
    ts.guard += GUARD_INSIDE;
    flush(&ts);
    flush_others();
    finish_header();
    __atomic_store_n(&g_on, 0, __ATOMIC_SEQ_CST);
    if (g_fd >= 0)
        close(g_fd);
    g_fd = -1;
    ts.guard -= GUARD_INSIDE;
}
