/*
 * checkpoint.c: a live section's state saved beside its raw file, so that the
 * capture it has read can be given back to the disk, and so that finalising can go on
 * from there after heaplab itself was stopped (killed, or a failure) -- `heaplab
 * record --from-capture DIR` picks the checkpoints up.
 *
 * A checkpoint is taken at a chunk boundary of the section's part file (so the part
 * is a valid trace prefix up to `bytes`), every CKPT_EVERY bytes of capture read.  At
 * that moment every record whose merge key is below H (done_key) is written and no
 * other is, so the state to keep is small:
 *   - where the part file stands (struct hl_writer_state);
 *   - H, and the first byte of the raw file a record at or above H can be in (low);
 *     going on, the scan starts at low and skips records numbered below H;
 *   - the address map: every live (address, slot) pair;
 *   - dense thread numbers, the horizon, the last time written;
 *   - reallocs half done (old block taken at seq0 < H, event not yet written);
 *   - the process events (fork, spawn, exec announcements: unrecorded.c) read from
 *     below low, which the scan going on from low does not see again.
 * Then the file system gets the raw bytes below low back (a hole punched in the file),
 * so that disk use is the trace plus a bounded window of capture.
 *
 * A section finished while the program runs (its image is over, its part whole)
 * gets a last checkpoint (checkpoint_done): H is CKPT_DONE, low the end of what was
 * read, no section state, only the process events; then everything below low goes
 * back to the disk.  Going on later takes the part as it is and reads the events from
 * the checkpoint.  So a recording of many short processes holds the capture of those
 * still running, not of every one since the start.
 *
 * FILE <raw>.ckpt (written as .tmp and renamed, so it is whole or absent), native
 * 64-bit words: magic, version, H, low, horizon, prev_time, next_slot, events,
 * unknown, nthreads, the writer state (8 words: struct hl_writer_state in order, its
 * last word the modes and, in the high 32 bits, the plain columns; 0 there in an older
 * heaplab's checkpoint, which tries every column again), the counts of dense pairs, clock
 * pairs, pending reallocs, live pairs and process events, then those arrays (2, 2, 3
 * and 2 words each; a process event is its kind, pid, mono_ns, offset, path length and
 * the path's bytes padded to words), then a checksum (hl_raw_checksum) of all the
 * words before it.  Clock pairs are written as none (each chunk carries its own: see
 * struct chunkref) and skipped when an older heaplab's checkpoint has some.
 * Version 1 (no process events) is still read.
 */
#include "finalise_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CKPT_MAGIC 0x31544b43504c4c48ull /* "HLLPCKT1" */
#define CKPT_VERSION 2u
/* H of a finished section's checkpoint (checkpoint_done): its part is whole. */
#define CKPT_DONE UINT64_MAX
/* Word numbers in the FILE layout above. */
enum { CKPT_W_LOW = 3, CKPT_W_COUNTS = 18, CKPT_W_ARRAYS_V1 = 22 };

/* A growing array of words. */
struct words {
    uint64_t *w;
    size_t n, cap;
};

static int put(struct words *b, uint64_t v)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        uint64_t *w = realloc(b->w, cap * sizeof *w);
        if (!w)
            return -1;
        b->w = w;
        b->cap = cap;
    }
    b->w[b->n++] = v;
    return 0;
}

static void ckpt_path(char *buf, size_t n, const struct rawfile *f, const char *suffix)
{
    snprintf(buf, n, "%s.ckpt%s", f->path, suffix);
}

struct live_ctx {
    struct words *b;
    int bad;
};

static void put_live(void *ctx, uint64_t addr, uint64_t slot)
{
    struct live_ctx *l = ctx;
    l->bad |= put(l->b, addr) | put(l->b, slot);
}

/* The process events f holds from below low: those a checkpoint at low keeps. */
static uint64_t count_pevs(const struct rawfile *f, size_t low)
{
    uint64_t n = 0;
    for (size_t k = 0; k < f->npev; k++)
        n += f->pev[k].off < low;
    return n;
}

static int put_pevs(struct words *b, const struct rawfile *f, size_t low);
static int write_ckpt(const struct rawfile *f, struct words *bw, int bad, struct hl_err *err);

static int save(struct section *s, size_t low, struct hl_err *err)
{
    struct rawfile *f = s->f;
    struct hl_writer_state ws;
    if (hl_writer_checkpoint(s->w, &ws, err) != 0)
        return -1;
    struct words b = {0};
    int bad = put(&b, CKPT_MAGIC) | put(&b, CKPT_VERSION) | put(&b, s->done_key) |
              put(&b, low) | put(&b, f->horizon) | put(&b, s->prev_time) | put(&b, s->next_slot) |
              put(&b, s->events) | put(&b, s->unknown) | put(&b, s->nthreads) |
              put(&b, ws.bytes) | put(&b, ws.nevents) | put(&b, ws.next_slot) |
              put(&b, ws.prev_time) | put(&b, ws.pid) | put(&b, ws.nthreads) |
              put(&b, ws.chunk_seq) | put(&b, ws.modes | (uint64_t)ws.plain << 32);
    uint64_t ndense = 0, npend = 0;
    for (uint32_t j = 0; j < f->nused; j++) {
        const struct rthread *t = f->thr[j];
        ndense += t && t->c.dense != NO_THREAD;
        npend += t && t->state == 1 && t->c.phase == 1;
    }
    uint64_t npev = count_pevs(f, low);
    bad |= put(&b, ndense) | put(&b, 0) /* clock pairs: none since chunks carry their own */ |
           put(&b, npend) |
           put(&b, hl_slotmap_count(s->map)) | put(&b, npev);
    for (uint32_t j = 0; j < f->nused; j++) {
        uint32_t i = f->used[j];
        const struct rthread *t = f->thr[j];
        if (t && t->c.dense != NO_THREAD)
            bad |= put(&b, i) | put(&b, t->c.dense);
    }
    for (uint32_t j = 0; j < f->nused; j++) {
        uint32_t i = f->used[j];
        const struct rthread *t = f->thr[j];
        if (t && t->state == 1 && t->c.phase == 1)
            bad |= put(&b, i) | put(&b, cur_rec(&t->c)->seq) | put(&b, t->c.old_slot);
    }
    struct live_ctx lc = {&b, 0};
    hl_slotmap_each(s->map, put_live, &lc);
    bad |= lc.bad;
    bad |= put_pevs(&b, f, low);
    return write_ckpt(f, &b, bad, err);
}

/* The process events f holds from below low (the count is put before them). */
static int put_pevs(struct words *b, const struct rawfile *f, size_t low)
{
    int bad = 0;
    for (size_t k = 0; k < f->npev; k++) {
        const struct pev *e = &f->pev[k];
        if (e->off >= low)
            continue;
        size_t len = strlen(e->path);
        bad |= put(b, e->kind) | put(b, e->pid) | put(b, e->mono_ns) | put(b, e->off) |
               put(b, len);
        for (size_t o = 0; o < len; o += 8) {
            uint64_t word = 0;
            memcpy(&word, e->path + o, len - o < 8 ? len - o : 8);
            bad |= put(b, word);
        }
    }
    return bad;
}

/* The words of b, then their checksum, as f's checkpoint file (whole or absent).
 * bad: building b ran out of memory.  Frees b's words.  0 or -1. */
static int write_ckpt(const struct rawfile *f, struct words *bw, int bad, struct hl_err *err)
{
    struct words b = *bw;
    bad |= put(&b, b.n ? hl_raw_checksum(HL_RAW_CHECKSUM_INIT, b.w, b.n) : 0);
    if (bad) {
        free(b.w);
        return fz_fail(err, "out of memory");
    }
    char tmp[4200], path[4200];
    ckpt_path(tmp, sizeof tmp, f, ".tmp");
    ckpt_path(path, sizeof path, f, "");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = b.n * 8, done = 0;
    while (fd >= 0 && done < len) {
        ssize_t k = write(fd, (const char *)b.w + done, len - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    int e = errno;
    free(b.w);
    if (fd < 0 || done < len || close(fd) != 0 || rename(tmp, path) != 0) {
        if (fd >= 0 && done < len)
            close(fd);
        unlink(tmp);
        return fz_fail(err, "%s: cannot write a checkpoint: %s", path,
                       fd < 0 || done < len ? strerror(e) : strerror(errno));
    }
    return 0;
}

int checkpoint_maybe(struct section *s, size_t every, struct hl_err *err)
{
    struct rawfile *f = s->f;
    /* Each checkpoint writes the live address map: keep that a small part of the
     * capture read between two. */
    size_t map_bytes = hl_slotmap_count(s->map) * 16;
    if (every < 4 * map_bytes)
        every = 4 * map_bytes;
    /* Spaced by what the merge has consumed, not by what the scan has read: a scan
     * reads up to SCAN_BUDGET at once when the program is ahead (or already over),
     * and spacing by it would take one checkpoint at the window's start and none
     * until the next window, giving nothing back to the disk. */
    if (f->off - s->ckpt_low < every || !hl_writer_at_boundary(s->w))
        return 0;
    size_t low = first_needed_byte(f);
    if (low - s->ckpt_low < every)
        return 0;
    s->ckpt_low = low;
    long pg = sysconf(_SC_PAGESIZE);
    if (save(s, low, err) != 0)
        return -1;
    raw_stream_release(f, low & ~(size_t)(pg - 1));
    return 0;
}

int checkpoint_done(struct rawfile *f, struct hl_err *err)
{
    size_t low = f->off;
    struct words b = {0};
    int bad = put(&b, CKPT_MAGIC) | put(&b, CKPT_VERSION) | put(&b, CKPT_DONE) |
              put(&b, low) | put(&b, f->horizon);
    for (int k = 0; k < CKPT_W_COUNTS - 5; k++) /* section and writer state: none */
        bad |= put(&b, 0);
    bad |= put(&b, 0) | put(&b, 0) | put(&b, 0) | put(&b, 0) | put(&b, count_pevs(f, low));
    bad |= put_pevs(&b, f, low);
    if (write_ckpt(f, &b, bad, err) != 0)
        return -1;
    long pg = sysconf(_SC_PAGESIZE);
    raw_stream_release(f, low & ~(size_t)(pg - 1));
    return 0;
}

/* Read f's whole checkpoint file (its name into path) into *w (malloc'd), checking its
 * checksum.  1, 0 if there is none, -1 on an error. */
static int load_words(const struct rawfile *f, char path[4200], uint64_t **w, size_t *n,
                      struct hl_err *err)
{
    ckpt_path(path, 4200, f, "");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : fz_fail(err, "%s: %s", path, strerror(errno));
    struct stat sb;
    uint64_t *buf = NULL;
    if (fstat(fd, &sb) == 0 && sb.st_size >= 16 * 8 && sb.st_size % 8 == 0 &&
        (buf = malloc((size_t)sb.st_size)) != NULL &&
        pread(fd, buf, (size_t)sb.st_size, 0) == sb.st_size) {
        close(fd);
        size_t k = (size_t)sb.st_size / 8;
        if (buf[0] == CKPT_MAGIC && (buf[1] == 1 || buf[1] == CKPT_VERSION) &&
            hl_raw_checksum(HL_RAW_CHECKSUM_INIT, buf, k - 1) == buf[k - 1]) {
            *w = buf;
            *n = k - 1;
            return 1;
        }
    } else {
        close(fd);
    }
    free(buf);
    return fz_fail(err, "%s: a damaged checkpoint (the capture before it cannot be read "
                   "again)", path);
}

/* The npev process events at w[*i..n) into f->pev (in place of any noted before).
 * 0, or -1 if they do not fit exactly (or out of memory). */
static int get_pevs(struct rawfile *f, const uint64_t *w, size_t *i, size_t n, uint64_t npev)
{
    unrec_free(f);
    for (uint64_t k = 0; k < npev; k++) {
        if (n - *i < 5)
            return -1;
        const uint64_t *e = w + *i;
        uint64_t len = e[4], nw = (len + 7) / 8;
        if (len >= 4096 || nw > n - *i - 5 ||
            unrec_push(f, (unsigned)e[0], (uint32_t)e[1], e[2], e[3], (const char *)(e + 5),
                       (size_t)len) != 0)
            return -1;
        *i += 5 + nw;
    }
    return *i == n ? 0 : -1;
}

int checkpoint_pevs(struct rawfile *f, size_t *low, struct hl_err *err)
{
    char path[4200];
    uint64_t *w = NULL;
    size_t n = 0;
    int r = load_words(f, path, &w, &n, err);
    if (r <= 0)
        return r;
    size_t i = CKPT_W_ARRAYS_V1 + (w[1] >= 2); /* v2: the process events' count */
    if (i > n) {
        free(w);
        return fz_fail(err, "%s: a damaged checkpoint (cut short)", path);
    }
    const uint64_t *c = w + CKPT_W_COUNTS;
    uint64_t ndense = c[0], nknots = c[1], npend = c[2], nlive = c[3];
    uint64_t npev = w[1] >= 2 ? c[4] : 0;
    int bad = ndense > n || nknots > n || npend > n || nlive > n ||
              (i += 2 * ndense + 2 * nknots + 3 * npend + 2 * nlive) > n ||
              get_pevs(f, w, &i, n, npev) != 0;
    *low = (size_t)w[CKPT_W_LOW];
    free(w);
    if (bad)
        return fz_fail(err, "%s: a damaged checkpoint (its counts do not fit)", path);
    return 1;
}

int checkpoint_load(struct rawfile *f, struct hl_writer_state *ws, struct section **sp,
                    struct hl_err *err)
{
    char path[4200];
    uint64_t *w = NULL;
    size_t n = 0;
    int r = load_words(f, path, &w, &n, err);
    if (r <= 0)
        return r;
    if (n > 2 && w[2] == CKPT_DONE) {
        free(w);
        return fz_fail(err, "%s: its section was finished into %s.part, which is missing",
                       path, f->path);
    }
    struct section *s = *sp;
    size_t i = 2;
#define NEXT() (i < n ? w[i++] : (bad = 1, 0))
    int bad = 0;
    s->done_key = NEXT();
    uint64_t low = NEXT();
    f->horizon = NEXT();
    s->prev_time = NEXT();
    s->next_slot = NEXT();
    s->events = NEXT();
    s->unknown = NEXT();
    s->nthreads = (uint32_t)NEXT();
    ws->bytes = NEXT();
    ws->nevents = NEXT();
    ws->next_slot = NEXT();
    ws->prev_time = NEXT();
    ws->pid = (uint32_t)NEXT();
    ws->nthreads = (uint32_t)NEXT();
    ws->chunk_seq = (uint32_t)NEXT();
    uint64_t modes = NEXT();
    ws->modes = (uint32_t)modes;
    ws->plain = (uint32_t)(modes >> 32);
    uint64_t ndense = NEXT(), nknots = NEXT(), npend = NEXT(), nlive = NEXT();
    uint64_t npev = w[1] >= 2 ? NEXT() : 0;
    uint64_t fixed = i + 2 * ndense + 2 * nknots + 3 * npend + 2 * nlive;
    if (bad || ndense > n || nknots > n || npend > n || nlive > n || npev > n ||
        (npev ? fixed + 5 * npev > n : fixed != n) || low < raw_stream_first(f) || low > f->size) {
        free(w);
        return fz_fail(err, "%s: a damaged checkpoint (its counts do not fit)", path);
    }
    f->resume_h = s->done_key;
    for (uint64_t k = 0; k < ndense && !bad; k++) {
        uint64_t raw = NEXT(), dense = NEXT();
        struct rthread *t = raw < MAX_RAW_THREADS ? thread_of(f, (uint32_t)raw) : NULL;
        bad = !t;
        if (t)
            t->c.dense = (uint32_t)dense;
    }
    i += 2 * nknots; /* an older heaplab's clock pairs: each chunk has its own now */
    for (uint64_t k = 0; k < npend && !bad; k++) {
        uint64_t raw = NEXT(), seq = NEXT(), old = NEXT();
        struct rthread *t = raw < MAX_RAW_THREADS ? thread_of(f, (uint32_t)raw) : NULL;
        bad = !t;
        if (t) {
            t->pend_seq = seq;
            t->pend_old_slot = old;
        }
    }
    for (uint64_t k = 0; k < nlive && !bad; k++) {
        uint64_t addr = NEXT(), slot = NEXT();
        hl_slotmap_put(s->map, addr, slot);
    }
#undef NEXT
    bad = bad || get_pevs(f, w, &i, n, npev) != 0;
    free(w);
    if (bad)
        return fz_fail(err, "%s: a damaged checkpoint", path);
    long pg = sysconf(_SC_PAGESIZE);
    f->off = (size_t)low;
    f->punched = (size_t)low & ~(size_t)(pg - 1);
    s->ckpt_low = f->off;
    return 1;
}

int checkpoint_exists(const struct rawfile *f)
{
    char path[4200];
    ckpt_path(path, sizeof path, f, "");
    return access(path, F_OK) == 0;
}

void checkpoint_remove(const struct rawfile *f)
{
    char path[4200];
    ckpt_path(path, sizeof path, f, "");
    unlink(path);
}
