/*
 * differential.c: one seeded sequence of calls to the whole malloc API, run against
 * each allocator library and against glibc, checked block by block and compared.
 *
 *   alloc-differential [--seed N] [--steps N] [--threads N] LIBRARY.so...
 *
 * For glibc (no preload) and then for every library, the program runs itself with the
 * library preloaded (LD_PRELOAD) on the same seed.  That run: THREADS threads, started
 * afresh for each of ROUNDS rounds, each with its own table of blocks and its own
 * random stream, call malloc, calloc, realloc, reallocarray, free, posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc and malloc_usable_size with random sizes
 * (0 bytes to 4 MiB) and alignments (valid and invalid), including calls that must fail
 * (sizes that overflow, impossible sizes), and hand blocks to the next thread, which
 * checks and frees or reallocates them.  Every block is filled up to its usable size
 * with a pattern of its own and checked before it is freed or reallocated: contents
 * (the prefix a realloc keeps, calloc's zeroes), alignment, usable size >= requested.
 * Between rounds every live block is checked and no two overlap.  After half the rounds
 * the process forks: the child checks what it inherited and runs the remaining rounds
 * itself (so must reach the parent's result); in another round a thread forks while the
 * others run, and the child allocates, checks and frees on its own.
 *
 * The outcome of every call whose arguments come from the seed alone (which calls fail
 * and with which errno) goes into a digest, which must be the same for glibc and every
 * library: a library that fails a call glibc serves, or serves one glibc refuses, differs.
 * Output: TAP, one check per library for the blocks and one for the digest.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tap.h"

#define MAX_THREADS 16
#define POOL 256
#define MBOX 64
#define ROUNDS 8
#define MIN_ALIGN 16

struct blk {
    unsigned char *p;
    size_t n, usable, align;
    uint64_t tag;
};

struct mailbox {
    pthread_mutex_t lock;
    struct blk b[MBOX];
    int n;
};

struct thr {
    int id;
    struct blk pool[POOL];
    uint64_t rng, digest;
    long calls;
};

static struct thr thr[MAX_THREADS];
static struct mailbox mbox[MAX_THREADS];
static int nthreads = 4;
static long steps_per_round;
static uint64_t seed = 1;
static long page;
static int fork_round = -1, thread_fork_round = -1;
/* In a child forked by a thread: other threads may have held a mailbox lock. */
static int solo;

/* Failures: counted, the first few described on stderr. */
static long bad;

__attribute__((format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
    long n = __atomic_add_fetch(&bad, 1, __ATOMIC_RELAXED);
    if (n > 20)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "differential: seed %" PRIu64 ": %s\n", seed, msg);
}

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void mix(struct thr *t, uint64_t v)
{
    t->digest = (t->digest ^ v) * 0x100000001b3ull;
    t->calls++;
}

/* A size: mostly small, some medium, a few large (the mmap path). */
static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    r >>= 8;
    if (k < 60)
        return (size_t)(r % 129);
    if (k < 85)
        return (size_t)(r % 1025);
    if (k < 97)
        return (size_t)(r % 32768);
    if (k < 99)
        return (size_t)(r % 262144);
    return (size_t)(r % (4u << 20));
}

/* ---- the pattern: every byte up to the usable size ---- */

static unsigned char pat(uint64_t tag, size_t i)
{
    uint64_t x = tag + (i >> 3) * 0x9e3779b97f4a7c15ull;
    return (unsigned char)(x >> ((i & 7) * 8));
}

static void fill(struct blk *b)
{
    for (size_t i = 0; i < b->usable; i++)
        b->p[i] = pat(b->tag, i);
}

/* The first n bytes hold b's pattern; else describe the first wrong byte. */
static int intact(const struct blk *b, size_t n, const char *when)
{
    for (size_t i = 0; i < n; i++)
        if (b->p[i] != pat(b->tag, i)) {
            fail("%s: block %p (%zu bytes asked, %zu usable, alignment %zu) damaged at byte %zu",
                 when, (void *)b->p, b->n, b->usable, b->align, i);
            return 0;
        }
    return 1;
}

/* A block the allocator just returned: check alignment and usable size, then fill. */
static void adopt(struct thr *t, struct blk *b, void *p, size_t n, size_t align, const char *op)
{
    b->p = p;
    b->n = n;
    b->align = align;
    b->tag = next(&t->rng);
    b->usable = malloc_usable_size(p);
    if ((uintptr_t)p % align)
        fail("%s(%zu) returned %p, not aligned to %zu", op, n, p, align);
    if (b->usable < n)
        fail("%s(%zu) returned %p with malloc_usable_size %zu", op, n, p, b->usable);
    fill(b);
}

static void drop(struct blk *b)
{
    intact(b, b->usable, "free");
    free(b->p);
    b->p = NULL;
}

static void release(struct thr *t, struct blk *b)
{
    if (!b->p)
        return;
    drop(b);
    mix(t, 1);
}

/* An allocation call's outcome into the digest: which call, its seeded arguments,
 * whether it succeeded, and errno when it failed. */
static void outcome(struct thr *t, int op, size_t n, size_t a, const void *p, int err)
{
    mix(t, (uint64_t)op << 56 ^ (uint64_t)n << 8 ^ a);
    mix(t, p ? 1 : 2 + (uint64_t)err);
}

static size_t pow2_align(uint64_t r, int lo, int hi)
{
    return (size_t)1 << (lo + (int)(r % (uint64_t)(hi - lo + 1)));
}

/* realloc or reallocarray of b to n bytes (nmemb * size): the old contents up to the
 * smaller size are kept; a failure keeps the old block. */
static void resize(struct thr *t, struct blk *b, int op, size_t nmemb, size_t size)
{
    size_t n;
    int overflow = __builtin_mul_overflow(nmemb, size, &n);
    if (b->p)
        intact(b, b->usable, "before realloc");
    errno = 0;
    void *q = op == 10 ? reallocarray(b->p, nmemb, size) : realloc(b->p, size);
    int err = errno;
    outcome(t, op, op == 10 ? nmemb : size, op == 10 ? size : 0, q, q ? 0 : err);
    if (!q) {
        if (b->p && n == 0 && !overflow) {
            b->p = NULL; /* realloc(p, 0): freed, as glibc does */
            return;
        }
        if (!overflow && n < ((size_t)1 << 40))
            fail("realloc(%p, %zu) failed: %s", (void *)b->p, n, strerror(err));
        if (err != ENOMEM)
            fail("a failed realloc set errno %d, not ENOMEM", err);
        if (b->p)
            intact(b, b->usable, "after a failed realloc");
        return;
    }
    if (overflow)
        fail("reallocarray(%zu, %zu) overflows but returned %p", nmemb, size, q);
    struct blk old = *b;
    old.p = q;
    size_t keep = old.n < n ? old.n : n;
    if (b->p)
        intact(&old, keep, "realloc's kept contents");
    adopt(t, b, q, n, MIN_ALIGN, op == 10 ? "reallocarray" : "realloc");
}

static void mailbox_give(struct thr *t, struct blk *b)
{
    struct mailbox *m = &mbox[(t->id + 1) % nthreads];
    pthread_mutex_lock(&m->lock);
    int ok = m->n < MBOX;
    if (ok) {
        m->b[m->n++] = *b;
        b->p = NULL;
    }
    pthread_mutex_unlock(&m->lock);
    if (!ok)
        drop(b); /* a full mailbox depends on timing: the same digest either way */
    mix(t, 3);
}

/* Blocks handed over by the previous thread: checked, then freed or reallocated and
 * freed.  Which blocks arrive depends on timing, so nothing here enters the digest. */
static void mailbox_take(struct thr *t)
{
    struct mailbox *m = &mbox[t->id];
    struct blk got[MBOX];
    pthread_mutex_lock(&m->lock);
    int n = m->n;
    memcpy(got, m->b, (size_t)n * sizeof *got);
    m->n = 0;
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < n; i++) {
        struct blk *b = &got[i];
        if (!intact(b, b->usable, "handed over"))
            continue;
        if (i & 1) {
            size_t keep = b->n / 2 + 1;
            void *q = realloc(b->p, keep);
            if (!q) {
                fail("realloc(%zu) of a handed-over block failed", keep);
                free(b->p);
                continue;
            }
            b->p = q;
            intact(b, keep < b->n ? keep : b->n, "a handed-over block's kept contents");
        }
        free(b->p);
    }
}

/* A value the compiler cannot see through (it would warn about impossible sizes). */
static size_t opaque(size_t v)
{
    __asm__ volatile("" : "+r"(v));
    return v;
}

/* The calls that must fail, the same way everywhere. */
static void impossible(struct thr *t, struct blk *b, uint64_t r)
{
    void *p;
    size_t huge = opaque((size_t)PTRDIFF_MAX + 1 + (size_t)(r % 4096));
    switch (r % 6) {
    case 0:
        errno = 0;
        p = malloc(huge);
        outcome(t, 1, huge, 0, p, errno);
        break;
    case 1:
        errno = 0;
        p = calloc(opaque(SIZE_MAX / 2), 3 + (size_t)(r >> 8) % 5);
        outcome(t, 2, SIZE_MAX / 2, 3, p, errno);
        break;
    case 2:
        errno = 0;
        p = NULL;
        if (b->p) {
            resize(t, b, 3, 1, SIZE_MAX - 4096);
            return;
        }
        break;
    case 3:
        if (b->p) {
            resize(t, b, 10, SIZE_MAX / 4, 8 + (size_t)(r >> 8) % 8);
            return;
        }
        p = NULL;
        break;
    case 4:
        errno = 0;
        p = pvalloc(opaque(SIZE_MAX - (size_t)(r % 100)));
        outcome(t, 9, 0, 0, p, errno);
        break;
    default: {
        static const size_t bad_align[] = {0, 4, 24, 48, 3, 1};
        size_t a = bad_align[(r >> 8) % 6];
        p = (void *)1;
        errno = 77;
        int rc = posix_memalign(&p, a, 100);
        mix(t, (uint64_t)rc << 32 ^ a);
        if (rc != EINVAL || p != (void *)1 || errno != 77)
            fail("posix_memalign(align %zu) returned %d, %p, errno %d", a, rc, p, errno);
        p = NULL;
        break;
    }
    }
    if (p) {
        fail("an impossible allocation (case %d) returned %p", (int)(r % 6), p);
        free(p);
    }
    if (malloc_usable_size(NULL) != 0)
        fail("malloc_usable_size(NULL) is not 0");
}

static void step(struct thr *t)
{
    uint64_t r1 = next(&t->rng), r2 = next(&t->rng), r3 = next(&t->rng);
    struct blk *b = &t->pool[r1 % POOL];
    unsigned k = (unsigned)(r2 % 100);
    size_t n = pick_size(r3);
    void *p = NULL;
    int err;
    if (k < 35) { /* malloc, or free */
        if (b->p) {
            release(t, b);
            return;
        }
        errno = 0;
        p = malloc(n);
        err = errno;
        outcome(t, 1, n, 0, p, err);
        if (p)
            adopt(t, b, p, n, MIN_ALIGN, "malloc");
        else
            fail("malloc(%zu) failed: %s", n, strerror(err));
    } else if (k < 45) { /* calloc */
        release(t, b);
        size_t nmemb = 1 + (size_t)(r2 >> 8) % 16, size = n / nmemb;
        p = calloc(nmemb, size);
        outcome(t, 2, nmemb, size, p, p ? 0 : errno);
        if (!p) {
            fail("calloc(%zu, %zu) failed", nmemb, size);
            return;
        }
        for (size_t i = 0; i < nmemb * size; i++)
            if (((unsigned char *)p)[i]) {
                fail("calloc(%zu, %zu) = %p is not zero at byte %zu", nmemb, size, p, i);
                break;
            }
        adopt(t, b, p, nmemb * size, MIN_ALIGN, "calloc");
    } else if (k < 60) { /* realloc, to 0 bytes now and then */
        resize(t, b, 3, 1, (r2 >> 8) % 50 == 0 ? 0 : n);
    } else if (k < 65) {
        size_t nmemb = 1 + (size_t)(r2 >> 8) % 8;
        resize(t, b, 10, nmemb, n / nmemb);
    } else if (k < 70) { /* posix_memalign */
        release(t, b);
        size_t a = pow2_align(r2 >> 8, 3, 16);
        int rc = posix_memalign(&p, a, n);
        mix(t, (uint64_t)rc << 40 ^ a << 20 ^ n);
        if (rc || !p)
            fail("posix_memalign(%zu, %zu) failed: %d", a, n, rc);
        else
            adopt(t, b, p, n, a, "posix_memalign");
    } else if (k < 75) { /* aligned_alloc */
        release(t, b);
        size_t a = pow2_align(r2 >> 8, 3, 16);
        p = aligned_alloc(a, n);
        outcome(t, 6, n, a, p, p ? 0 : errno);
        if (!p)
            fail("aligned_alloc(%zu, %zu) failed", a, n);
        else
            adopt(t, b, p, n, a, "aligned_alloc");
    } else if (k < 80) { /* memalign: a non-power of two is rounded up */
        release(t, b);
        size_t a = (r2 >> 8) % 8 == 0 ? 48 : pow2_align(r2 >> 8, 0, 16);
        p = memalign(a, n);
        outcome(t, 7, n, a, p, p ? 0 : errno);
        if (!p)
            fail("memalign(%zu, %zu) failed", a, n);
        else
            adopt(t, b, p, n, a == 48 ? 64 : a < MIN_ALIGN ? MIN_ALIGN : a, "memalign");
    } else if (k < 83) { /* valloc */
        release(t, b);
        p = valloc(n);
        outcome(t, 8, n, 0, p, p ? 0 : errno);
        if (!p)
            fail("valloc(%zu) failed", n);
        else
            adopt(t, b, p, n, (size_t)page, "valloc");
    } else if (k < 85) { /* pvalloc: whole pages */
        release(t, b);
        p = pvalloc(n);
        outcome(t, 9, n, 0, p, p ? 0 : errno);
        size_t pages = (n + (size_t)page - 1) / (size_t)page * (size_t)page;
        if (!p)
            fail("pvalloc(%zu) failed", n);
        else
            adopt(t, b, p, pages, (size_t)page, "pvalloc");
    } else if (solo) {
        return;
    } else if (k < 90) {
        if (b->p)
            mailbox_give(t, b);
    } else if (k < 95) {
        mailbox_take(t);
    } else if (k < 96) {
        impossible(t, b, r3);
    } else if (b->p) { /* the usable size is stable, and all of it is the block's */
        if (malloc_usable_size(b->p) != b->usable)
            fail("malloc_usable_size(%p) changed from %zu to %zu", (void *)b->p, b->usable,
                 malloc_usable_size(b->p));
        intact(b, b->usable, "usable size check");
        b->tag = r3;
        fill(b);
    }
}

/* A child forked while the other threads run: its own blocks are whole, and its
 * allocator works (the atfork handlers left no lock held). */
static void fork_from_thread(struct thr *t)
{
    pid_t pid = fork();
    if (pid < 0) {
        fail("fork: %s", strerror(errno));
        return;
    }
    if (pid == 0) {
        long before = bad;
        solo = 1;
        for (int i = 0; i < POOL; i++)
            if (t->pool[i].p)
                intact(&t->pool[i], t->pool[i].usable, "in a child forked by a thread");
        for (int i = 0; i < 2000; i++)
            step(t);
        for (int i = 0; i < POOL; i++)
            release(t, &t->pool[i]);
        _exit(bad != before);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail("the child forked by thread %d failed (status 0x%x)", t->id, st);
}

static int round_no;

static void *run(void *arg)
{
    struct thr *t = arg;
    for (long i = 0; i < steps_per_round; i++) {
        step(t);
        if (round_no == thread_fork_round && t->id == 0 && i == steps_per_round / 2)
            fork_from_thread(t);
    }
    return NULL;
}

static int cmp_blk(const void *a, const void *b)
{
    const struct blk *x = *(struct blk *const *)a, *y = *(struct blk *const *)b;
    return x->p < y->p ? -1 : x->p > y->p;
}

/* Between rounds: every live block whole, none overlapping another. */
static void check_all(const char *when)
{
    static struct blk *live[MAX_THREADS * (POOL + MBOX)];
    int n = 0;
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < POOL; k++)
            if (thr[i].pool[k].p)
                live[n++] = &thr[i].pool[k];
        for (int k = 0; k < mbox[i].n; k++)
            live[n++] = &mbox[i].b[k];
    }
    for (int i = 0; i < n; i++)
        intact(live[i], live[i]->usable, when);
    qsort(live, (size_t)n, sizeof *live, cmp_blk);
    for (int i = 1; i < n; i++)
        if (live[i - 1]->p + live[i - 1]->usable > live[i]->p)
            fail("%s: blocks %p (+%zu usable) and %p overlap", when, (void *)live[i - 1]->p,
                 live[i - 1]->usable, (void *)live[i]->p);
}

static uint64_t rounds(int from)
{
    for (round_no = from; round_no < ROUNDS; round_no++) {
        pthread_t tid[MAX_THREADS];
        for (int i = 0; i < nthreads; i++)
            if (pthread_create(&tid[i], NULL, run, &thr[i]) != 0) {
                fail("pthread_create failed");
                return 0;
            }
        for (int i = 0; i < nthreads; i++)
            pthread_join(tid[i], NULL);
        check_all("between rounds");
        if (round_no + 1 == fork_round)
            return 0; /* the caller forks here */
    }
    uint64_t d = 0;
    for (int i = 0; i < nthreads; i++)
        d ^= thr[i].digest * (uint64_t)(2 * i + 1);
    return d;
}

static void free_all(void)
{
    for (int i = 0; i < nthreads; i++) {
        for (int k = 0; k < POOL; k++)
            release(&thr[i], &thr[i].pool[k]);
        mbox[i].n = 0;
        mailbox_take(&thr[i]);
    }
}

/* One run of the sequence under whatever allocator is loaded.  Prints
 * "digest D calls C bad B". */
static int run_sequence(void)
{
    page = sysconf(_SC_PAGESIZE);
    fork_round = ROUNDS / 2;
    thread_fork_round = 1;
    for (int i = 0; i < nthreads; i++) {
        thr[i].id = i;
        thr[i].rng = seed * 0x2545f4914f6cdd1dull + (uint64_t)i;
        pthread_mutex_init(&mbox[i].lock, NULL);
    }
    rounds(0);
    /* Fork between rounds: the child runs the rest and must reach the same digest. */
    int fd[2];
    if (pipe(fd) != 0)
        return 2;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        check_all("in the forked child");
        uint64_t d = rounds(fork_round);
        free_all();
        dprintf(fd[1], "%" PRIu64 " %ld\n", d, bad);
        _exit(0);
    }
    close(fd[1]);
    uint64_t d = rounds(fork_round);
    free_all();
    char buf[128] = "";
    ssize_t k = read(fd[0], buf, sizeof buf - 1);
    close(fd[0]);
    int st;
    waitpid(pid, &st, 0);
    uint64_t cd = 0;
    long cbad = -1;
    if (k <= 0 || sscanf(buf, "%" SCNu64 " %ld", &cd, &cbad) != 2 || !WIFEXITED(st) ||
        WEXITSTATUS(st) != 0)
        fail("the forked child did not finish (status 0x%x)", st);
    else if (cbad > 0)
        fail("the forked child found %ld bad blocks", cbad);
    else if (cd != d)
        fail("the forked child's calls came out differently (digest %016" PRIx64
             " against %016" PRIx64 ")", cd, d);
    long calls = 0;
    for (int i = 0; i < nthreads; i++)
        calls += thr[i].calls;
    printf("digest %016" PRIx64 " calls %ld bad %ld\n", d, calls, bad);
    return bad ? 1 : 0;
}

/* Run the sequence under lib ("" = glibc); 0 if it ran, with its figures. */
static int run_under(const char *self, const char *lib, long steps, char *digest, long *calls,
                     long *nbad)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "LD_PRELOAD='%s' '%s' --run --seed %" PRIu64 " --steps %ld "
             "--threads %d", lib, self, seed, steps, nthreads);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char line[256] = "";
    int got = fgets(line, sizeof line, f) != NULL;
    int st = pclose(f);
    if (!got || sscanf(line, "digest %16s calls %ld bad %ld", digest, calls, nbad) != 3)
        return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) <= 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    long steps = 40000;
    int child = 0, first = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--run") == 0)
            child = 1;
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc)
            steps = atol(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            nthreads = atoi(argv[++i]);
        else {
            first = i;
            break;
        }
    }
    if (nthreads < 1 || nthreads > MAX_THREADS || steps < 1) {
        fprintf(stderr, "usage: %s [--seed N] [--steps N] [--threads 1-%d] LIBRARY.so...\n",
                argv[0], MAX_THREADS);
        return 2;
    }
    steps_per_round = steps / ROUNDS / nthreads + 1;
    if (child)
        return run_sequence();

    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 2;
    self[n] = 0;
    char ref[17] = "", d[17];
    long calls, nbad;
    if (run_under(self, "", steps, ref, &calls, &nbad) != 0 || nbad) {
        TAP_CHECK(0, "glibc runs the sequence (seed %" PRIu64 ") without a bad block", seed);
        return tap_done();
    }
    tap_diag("seed %" PRIu64 ", %d threads: %ld calls, glibc's digest %s", seed, nthreads, calls,
             ref);
    for (int i = first; i < argc; i++) {
        const char *name = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
        if (access(argv[i], R_OK) != 0) {
            TAP_CHECK(0, "%s: no such library", argv[i]);
            continue;
        }
        int ran = run_under(self, argv[i], steps, d, &calls, &nbad) == 0;
        TAP_CHECK(ran && nbad == 0,
                  "%s: %ld calls, %d threads handing blocks over, fork while running and "
                  "between rounds: every block's contents, alignment and usable size right, "
                  "no overlap", name, calls, nthreads);
        if (ran && nbad)
            tap_diag("  %ld bad (first ones on stderr)", nbad);
        TAP_CHECK(ran && strcmp(d, ref) == 0,
                  "%s: every call succeeds or fails as under glibc (digest %s)", name, d);
    }
    return tap_done();
}
