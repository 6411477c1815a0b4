/*
 * finalise.c: raw capture directory -> finalised trace (see finalise.h).
 *
 * Each raw file is read into a window (struct rawfile, window_read) and its chunks are
 * checked (magic, bounds, checksum) and listed per thread in file order; the scan
 * stops at the first bad chunk, which is what makes a killed process's capture
 * readable up to its last complete chunk.  While the program runs the scan is
 * repeated as the file grows (a chunk not yet complete is simply not read yet), and
 * only the finish call takes a bad or partial chunk as damage.  The window slides
 * past what the merge no longer needs (moving the pointers into it), so that it holds
 * a bounded part of the capture however long.
 *
 * The threads' record streams are merged by sequence number with a binary heap of
 * cursors.  Each cursor decodes its thread's records a batch at a time into a flat
 * array (decode_batch), and the cursor with the smallest key runs (run) until another
 * thread's key comes first: threads allocate in bursts, so the heap is only touched
 * when the order actually switches threads, and a single-threaded process never
 * touches it.  Each event is encoded into the writer's columns as it is made
 * (traces/encode.h), and a run ends where the writer's chunk does, so that checkpoints
 * still fall between chunks.  While the program runs, the merge stops at the file's
 * horizon: the largest sequence number a chunk's mark guarantees to have everything
 * below it in the file already (raw.h).
 *
 * realloc has two sequence numbers (raw.h): at the first its old block leaves the
 * address map (so another thread may get that address in between), at the second the
 * event is written with the new block.  A cursor therefore visits a realloc record
 * twice, in two phases.
 *
 * While the program runs, up to MAX_LIVE sections are written side by side, each
 * through its own writer into a part file next to its raw file; a section is ended
 * once its process image is over (it exec'd, or the process is gone).  At the finish
 * the sections never begun are written into parts of their own too, and the trace is
 * every part as it is, in start order, then a section for each unrecorded process,
 * assembled in the capture folder a window at a time with each window given back to
 * the disk as it is copied (assemble.c).  Finalising a finished capture in one go
 * writes every part at the finish, and gives the same bytes.  A trace of one part and
 * nothing unrecorded (one process) is that part itself, put in place with a hard link
 * (hl_trace_place): not copied, so the disk holds it once (a capture on another file
 * system is copied).
 */
#include "finalise.h"
#include "finalise_int.h"
#include "encode.h"
#include "slotmap.h"
#include "preload/raw.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define fail fz_fail

int fz_fail(struct hl_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

uint64_t fz_env_u64(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static void note_damage(struct hl_finalise_stats *st, struct rawfile *f, size_t off,
                        const char *why)
{
    f->damaged = 1;
    if (!st->damage[0])
        snprintf(st->damage, sizeof st->damage, "%s: %s at byte %zu (read up to there)",
                 f->path, why, off);
}

/* A record that takes a place in its clock run: an event, or a page count (not a
 * clock reading or a mark; decode_batch gives both a time). */
static inline int is_event(uint64_t w0)
{
    unsigned op = hl_raw_op_of(w0);
    return hl_raw_is_short(w0) || (op >= HL_RAW_MALLOC && op <= HL_RAW_PAGES);
}

/* ---- scanning a raw file ---- */

struct rthread *thread_of(struct rawfile *f, uint32_t thread)
{
    if (f->last < f->nused && f->used[f->last] == thread)
        return f->thr[f->last];
    uint32_t lo = 0, hi = f->nused;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (f->used[mid] < thread)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < f->nused && f->used[lo] == thread) {
        f->last = lo;
        return f->thr[lo];
    }
    if (f->nused == f->usedcap) {
        uint32_t cap = f->usedcap ? 2 * f->usedcap : 8;
        uint32_t *u = realloc(f->used, cap * sizeof *u);
        if (!u)
            return NULL;
        f->used = u;
        struct rthread **t = realloc(f->thr, cap * sizeof *t);
        if (!t)
            return NULL;
        f->thr = t;
        f->usedcap = cap;
    }
    struct rthread *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    memmove(f->used + lo + 1, f->used + lo, (f->nused - lo) * sizeof *f->used);
    memmove(f->thr + lo + 1, f->thr + lo, (f->nused - lo) * sizeof *f->thr);
    f->used[lo] = thread;
    f->thr[lo] = t;
    f->nused++;
    f->last = lo;
    t->c.t = t;
    t->c.dense = NO_THREAD;
    t->c.resume_h = f->resume_h;
    return t;
}

static int add_chunk(struct rawfile *f, uint32_t thread, const uint64_t *words, size_t nwords,
                     uint64_t flush_tsc, uint64_t flush_mono)
{
    struct rthread *t = thread_of(f, thread);
    if (!t)
        return -1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        struct chunkref *c = realloc(t->chunks, cap * sizeof *c);
        if (!c)
            return -1;
        t->chunks = c;
        t->cap = cap;
    }
    t->chunks[t->n].words = words;
    t->chunks[t->n].nwords = nwords;
    struct chunkref *k = &t->chunks[t->n];
    k->flush_tsc = flush_tsc;
    k->flush_ns = flush_mono > f->h.start_mono_ns ? flush_mono - f->h.start_mono_ns : 0;
    k->rate = flush_tsc > f->h.start_tsc
                  ? (double)k->flush_ns / (double)(flush_tsc - f->h.start_tsc) : 0.0;
    t->n++;
    return 0;
}

/* Read the header, once the file has one.  Returns 1 if good, 0 if not there yet
 * (only while the program runs), -1 if the file is to be skipped (empty, not a raw
 * capture), -2 on a system error (err set).  No descriptor or map is kept: a
 * recording may leave thousands of files. */
static int read_header(struct rawfile *f, int final, struct hl_finalise_stats *st,
                       struct hl_err *err)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0) {
        fail(err, "%s: %s", f->path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -2;
    }
    f->size = (size_t)sb.st_size;
    if (f->size < sizeof f->h) {
        close(fd);
        if (!final)
            return 0;
        if (f->size > 0)
            note_damage(st, f, 0, "header cut short");
        return -1; /* empty: the process died before writing its header */
    }
    ssize_t k = pread(fd, &f->h, sizeof f->h, 0);
    int e = errno;
    if (k != (ssize_t)sizeof f->h) {
        close(fd);
        fail(err, "%s: cannot read: %s", f->path, k < 0 ? strerror(e) : "file shrank");
        return -2;
    }
    if (!final && !f->h.magic[0]) {
        close(fd);
        return 0; /* a ring file is sized before its header is written (raw.h: RING) */
    }
    struct hl_raw_header h = f->h;
    h.checksum = 0;
    if (memcmp(h.magic, HL_RAW_MAGIC, 8) != 0 || h.version < HL_RAW_MIN_VERSION ||
        h.version > HL_RAW_VERSION ||
        h.header_bytes != sizeof h ||
        hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8) != f->h.checksum) {
        close(fd);
        note_damage(st, f, 0, "not a heaplab raw capture header");
        return -1;
    }
    int ring = raw_stream_open(f, fd);
    close(fd);
    if (ring != 0) {
        note_damage(st, f, HL_RAW_RING_AT, "damaged ring state");
        return -1;
    }
    if (f->ring_bytes)
        f->size = HL_RAW_RING_BASE + f->ring_written;
    f->h.exe[sizeof f->h.exe - 1] = 0;
    f->h.cmdline[sizeof f->h.cmdline - 1] = 0;
    if (f->h.version < 4) /* the end of a longer cmdline there */
        f->h.dropped = f->h.missed = f->h.cut_errno = 0;
    if (f->h.version < 5)
        f->h.big_untracked = 0;
    if (f->h.version < 6) { /* the end of a longer cmdline there */
        f->h.held_ns = 0;
        f->h.held = f->h.reserved = 0;
    }
    return 1;
}

/* Open f's window for its section (empty: scan_more reads into it).  Returns 1, or -1
 * on an error. */
static int window_open(struct rawfile *f, struct hl_err *err)
{
    struct stat sb;
    int e;
    if (stat(f->path, &sb) != 0)
        return fail(err, "%s: %s", f->path, strerror(errno));
    if ((e = raw_stream_size(f, 0, &f->size)) != 0)
        return fail(err, "%s: %s", f->path, strerror(e));
    f->ino = (uint64_t)sb.st_ino;
    f->win = NULL;
    f->win_off = f->win_len = f->win_cap = 0;
    f->off = raw_stream_first(f);
    return 1;
}

static void move_pointers(struct rawfile *f, ptrdiff_t delta);
/* Bytes scan_more reads ahead at a time. */
#define READ_AHEAD ((size_t)1 << 20)
/* Chunks listed per round of a section's step (read ahead of the merge, and held in
 * the window until it passes them). */
#define SCAN_BUDGET ((size_t)1 << 20)

/* Make f's window hold the file's bytes up to `end` (at most f->size), reading what
 * it lacks.  When they would not fit, the window first lets go of the bytes below the
 * first one still needed (moving the rest to its start), then doubles until they fit:
 * it holds what the merge still needs and what the scan reads ahead, however long the
 * file.  The buffer is read into again and again, so its pages stay mapped: a map of
 * the file would take a page fault for every page the program writes, dearer than
 * the copy (traces/HISTORY.md: "The capture read, not mapped"). */
static int window_read(struct rawfile *f, size_t end, size_t min_cap, struct hl_err *err)
{
    size_t top = f->win_off + f->win_len;
    if (end <= top)
        return 0;
    int over = end - f->win_off > f->win_cap;
    if (over || f->off >= top) {
        long pg = sysconf(_SC_PAGESIZE);
        size_t base = first_needed_byte(f) & ~(size_t)(pg - 1);
        /* Slide when out of room, or for nothing when no byte held is needed. */
        if (base > f->win_off && (over || base >= top)) {
            size_t keep = top > base ? top - base : 0;
            if (keep)
                memmove(f->win, f->win + (base - f->win_off), keep);
            move_pointers(f, -(ptrdiff_t)(base - f->win_off));
            f->win_off = base;
            f->win_len = keep;
            top = base + keep;
        }
    }
    size_t cap = f->win_cap ? f->win_cap : min_cap;
    if (end - f->win_off > cap) /* still: room for as much again, so that slides are rare */
        while (end - f->win_off > cap / 2)
            cap *= 2;
    if (cap != f->win_cap) {
        void *m = f->win ? mremap(f->win, f->win_cap, cap, MREMAP_MAYMOVE)
                         : mmap(NULL, cap, PROT_READ | PROT_WRITE,
                                MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            return fail(err, "%s: no memory for a window of %zu MiB", f->path, cap >> 20);
        if (f->win)
            move_pointers(f, (const uint8_t *)m - f->win);
        f->win = m;
        f->win_cap = cap;
    }
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, "%s: %s", f->path, strerror(errno));
    while (top < end) {
        ssize_t k = raw_stream_pread(f, fd, f->win + (top - f->win_off), end - top, top);
        if (k <= 0) {
            int e = errno;
            close(fd);
            return fail(err, "%s: cannot read: %s", f->path, k < 0 ? strerror(e) : "file shrank");
        }
        top += (size_t)k;
    }
    close(fd);
    f->win_len = top - f->win_off;
    return 0;
}

/* List the chunks appended since the last scan, at most `budget` bytes of them (so
 * that what is listed but not merged stays bounded).  A chunk not complete yet, or not
 * right, ends the scan: while the program runs (final == 0) it is read again next
 * time; at the finish it is damage, and nothing after it is read.  Returns 1 if the
 * budget stopped it (call again), 0 if it read all there is, -1 on an error. */
static int scan_more(struct rawfile *f, int final, size_t budget, size_t min_cap,
                     struct hl_finalise_stats *st, struct hl_err *err)
{
    if (f->stopped)
        return 0;
    size_t size;
    int e = raw_stream_size(f, final, &size);
    if (e)
        return fail(err, "%s: %s", f->path, strerror(e));
    if (size > f->size)
        f->size = size;
    size_t off = f->off, start = off;
    const char *why = NULL;
    while (off < f->size) {
        if (off - start >= budget) {
            f->off = off;
            return 1;
        }
        struct hl_raw_chunk c;
        if (f->size - off < sizeof c) {
            why = "chunk header cut short";
            break;
        }
        /* Read ahead in one read (a chunk is a thread's buffer, 1 MiB by default). */
        size_t ahead = budget - (off - start);
        if (ahead > READ_AHEAD)
            ahead = READ_AHEAD;
        size_t end = f->size - off > ahead ? off + ahead : f->size;
        f->off = off; /* the window keeps what is still needed: from here on */
        if (window_read(f, end > off + sizeof c ? end : off + sizeof c, min_cap, err) != 0)
            return -1;
        memcpy(&c, f->win + (off - f->win_off), sizeof c);
        if (c.magic != HL_RAW_CHUNK_MAGIC || c.nbytes % 8 || c.nbytes > HL_RAW_BUFFER_MAX ||
            (c.thread >= MAX_RAW_THREADS && c.thread != HL_RAW_PROC_THREAD)) {
            why = "damaged chunk header";
            break;
        }
        if (c.nbytes > f->size - off - sizeof c) {
            why = "chunk cut short";
            break;
        }
        if (window_read(f, off + sizeof c + c.nbytes, min_cap, err) != 0)
            return -1;
        const uint64_t *words = (const uint64_t *)(f->win + (off - f->win_off) + sizeof c);
        size_t nw = c.nbytes / 8;
        uint64_t want = c.checksum ^ raw_stream_salt(f, off);
        c.checksum = 0;
        uint64_t got = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &c, sizeof c / 8);
        got = hl_raw_checksum(got, words, nw);
        if (got != want) {
            why = "chunk checksum mismatch";
            break;
        }
        if (c.thread == HL_RAW_PROC_THREAD) { /* a process event (unrecorded.c) */
            if (unrec_note(f, words, nw, c.mono_ns, off) != 0)
                return fail(err, "out of memory");
            off += sizeof c + c.nbytes;
            continue;
        }
        if (add_chunk(f, c.thread, words, nw, c.tsc, c.mono_ns) != 0)
            return fail(err, "out of memory");
        /* A mark closes the chunks flushed by their own thread (raw.h). */
        if (nw >= 2 && words[nw - 2] == (uint64_t)HL_RAW_MARK << 1 && words[nw - 1] > f->horizon)
            f->horizon = words[nw - 1];
        off += sizeof c + c.nbytes;
    }
    f->off = off;
    if (why && final) {
        /* A capture cut by a full disk ends where it could, a ring's at its end. */
        if (!unrec_losses(f) && !raw_stream_past_end(f, off))
            note_damage(st, f, off, why);
        f->stopped = 1;
    }
    return 0;
}


/* ---- clock ---- */

/* tsc in nanoseconds since the image started, by chunk k's clock (struct chunkref). */
static inline uint64_t chunk_ns(const struct chunkref *k, uint64_t tsc)
{
    if (tsc >= k->flush_tsc)
        return k->flush_ns;
    double back = (double)(k->flush_tsc - tsc) * k->rate;
    return back < (double)k->flush_ns ? k->flush_ns - (uint64_t)back : 0;
}

/* ---- cursors ---- */

/* The TSC a clock run ends at, and the events in it from q on (up to the next clock
 * reading, or the end of the chunk (end), or a record that does not fit). */
static uint64_t run_rest(const struct cursor *c, const uint64_t *q, const uint64_t *end,
                         uint64_t *t1)
{
    uint64_t n = 0;
    *t1 = c->t->chunks[c->ci - 1].flush_tsc;
    while (q < end) {
        /* Short records, nearly all of a run, are one word each and all events. */
        const uint64_t *q0 = q;
        while (q < end && hl_raw_is_short(*q))
            q++;
        n += (uint64_t)(q - q0);
        if (q == end)
            break;
        unsigned nw = hl_raw_record_words(q[0]);
        if (!nw || (size_t)(end - q) < nw)
            break;
        if (!hl_raw_is_short(q[0]) && hl_raw_op_of(q[0]) == HL_RAW_TIME) {
            *t1 = q[1];
            break;
        }
        n += is_event(q[0]);
        q += nw;
    }
    return n;
}

/* The time of record k of a run that starts at ns and steps q nanoseconds, the first
 * rem steps one longer (the run's span split evenly over its records in whole
 * nanoseconds: close_run). */
static inline uint64_t step_time(uint64_t ns, uint64_t q, uint64_t rem, uint64_t k)
{
    return ns + k * q + (k < rem ? k : rem);
}

/* The time of record k of the cursor's current run, once the run's end is known. */
static inline uint64_t run_time(const struct cursor *c, uint64_t k)
{
    return step_time(c->seg_ns, c->seg_q, c->seg_rem, k);
}

/* The clock run begun at the last reading (seg_t0) has n records in all and ends at
 * TSC t1: its records get evenly spaced times between the two (run_time).  Its ends
 * are made nanoseconds here, once, so that the per-record work is in integers, and
 * the steps are whole nanoseconds, so that the trace's time column (differences of
 * differences) is nearly all zeros. */
static void set_run(struct cursor *c, uint64_t n, uint64_t t1)
{
    const struct chunkref *k = &c->t->chunks[c->ci - 1];
    uint64_t ns0 = chunk_ns(k, c->seg_t0), ns1 = chunk_ns(k, t1);
    uint64_t span = n && ns1 > ns0 ? ns1 - ns0 : 0;
    c->seg_ns = ns0;
    c->seg_q = n ? span / n : 0;
    c->seg_rem = n ? span % n : 0;
}

/* Decode a short record w into r, given the stream's last seq and ptr. */
static inline void decode_short(uint64_t w, uint64_t last_seq, uint64_t last_ptr, struct rec *r)
{
    r->op = (uint8_t)hl_raw_op_of(w);
    r->flags = 0;
    r->seq = r->seq0 = last_seq + hl_raw_short_dseq(w);
    r->ptr = hl_raw_short_ptr(w, last_ptr);
    r->size = hl_raw_short_size(w);
    r->aux = 0;
    r->old = 0;
}

/* Decode a long record w[0..nw) into r, given the stream's last seq. */
static void decode_long(const uint64_t *w, unsigned nw, uint64_t last_seq, struct rec *r)
{
    r->op = (uint8_t)hl_raw_op_of(w[0]);
    r->flags = (uint8_t)hl_raw_flags_of(w[0]);
    r->seq = r->flags & HL_RAWF_SEQ64 ? w[nw - 1] : hl_raw_seq_of(w[0], last_seq);
    r->ptr = w[1];
    r->size = hl_raw_size16_of(w[0]);
    if (r->size == HL_RAW_SIZE_BIG)
        r->size = w[nw - 1 - !!(r->flags & HL_RAWF_SEQ64)];
    r->seq0 = r->seq;
    r->aux = 0;
    r->old = 0;
    switch (r->op) {
    case HL_RAW_REALLOCARRAY:
        r->aux = w[4];
        /* fall through */
    case HL_RAW_REALLOC:
        r->seq0 = w[2];
        r->old = w[3];
        break;
    case HL_RAW_CALLOC:
    case HL_RAW_POSIX_MEMALIGN:
    case HL_RAW_ALIGNED_ALLOC:
    case HL_RAW_MEMALIGN:
        r->aux = w[2];
        break;
    }
}

/* Fill the cursor's batch (used up) with the records that follow, moving to the next
 * chunk as needed and taking in clock readings, until it is full or the chunks read
 * so far are used up (more may come while the program runs: a later call goes on
 * from there).  A record that does not fit its chunk or has an unknown op ends the
 * stream (the chunk passed its checksum, so this means a writer bug); one whose
 * sequence number the thread has passed already is a repeat and is skipped.
 *
 * Times: the records between two clock readings (or a reading and the chunk's flush)
 * get evenly spaced times between the two.  A run's end is in its chunk, so it is
 * read ahead at the reading that begins the run (set_run), and each record gets its
 * time as it is decoded. */
static void decode_batch(struct cursor *c, const struct hl_slotmap *m)
{
    struct rec *b = c->b;
    const uint64_t *p = c->p, *end = c->end;
    uint64_t last_seq = c->last_seq, last_ptr = c->last_ptr;
    const uint64_t resume_h = c->resume_h;
    const struct rthread *t = c->t;
    uint64_t chunk = t->dropped + c->ci - 1;
    /* The run's state, held here (stores into the batch might alias the cursor). */
    uint64_t k = c->seg_k;
    int seen = c->seen;
    uint64_t prev = c->prev;
    unsigned n = 0;
    while (n < BATCH && !c->bad) {
        if (p == end) {
            if (c->ci >= t->n)
                break;
            p = t->chunks[c->ci].words;
            end = p + t->chunks[c->ci].nwords;
            chunk = t->dropped + c->ci;
            c->ci++;
            last_seq = 0;
            last_ptr = 0;
            continue;
        }
        /* Most records are short ones, after the last record was taken, and numbered
         * past the checkpoint gone on from: while they are, each is taken with no
         * test but its kind (a short record's number grows; one that does not is left
         * to the general path below). */
        if (seen && prev == last_seq && last_seq >= resume_h) {
            const uint64_t ns = c->seg_ns, q = c->seg_q, rem = c->seg_rem;
            while (n < BATCH && p < end && hl_raw_is_short(*p) && hl_raw_short_dseq(*p)) {
                struct rec *r = &b[n++];
                decode_short(*p++, last_seq, last_ptr, r);
                r->resumed = 0;
                last_seq = r->seq;
                last_ptr = r->ptr;
                r->hash = hl_slotmap_hash_(last_ptr);
                hl_slotmap_prefetch_h_(m, r->hash);
                r->time = step_time(ns, q, rem, k);
                k++;
                r->chunk = chunk;
            }
            prev = last_seq;
            if (n == BATCH || p == end)
                continue;
        }
        const uint64_t *at = p;
        uint64_t w0 = p[0];
        struct rec *r = &b[n];
        if (hl_raw_is_short(w0)) {
            decode_short(w0, last_seq, last_ptr, r);
            p++;
        } else {
            unsigned nw = hl_raw_record_words(w0);
            if (!nw || (size_t)(end - p) < nw) {
                c->bad_at = p;
                c->bad = 1;
                break;
            }
            unsigned op = hl_raw_op_of(w0);
            if (op == HL_RAW_TIME) {
                c->seg_t0 = p[1];
                k = 0;
                uint64_t t1, count = run_rest(c, p + 2, end, &t1);
                set_run(c, count, t1);
                p += 2;
                continue;
            }
            if (op == HL_RAW_MARK) { /* for the tailing reader only */
                p += nw;
                continue;
            }
            decode_long(p, nw, last_seq, r);
            if (r->old)
                hl_slotmap_prefetch_(m, r->old);
            p += nw;
        }
        last_seq = r->seq;
        last_ptr = r->ptr;
        r->hash = hl_slotmap_hash_(r->ptr);
        hl_slotmap_prefetch_h_(m, r->hash);
        r->time = run_time(c, k);
        k++;
        r->chunk = chunk;
        if (__builtin_expect(r->seq0 > r->seq, 0)) {
            c->bad_at = at;
            c->bad = 1;
            break;
        }
        /* Seen already: the process wrote this thread's unflushed records at exit,
         * then the thread flushed them again (flush_others in interpose.c). */
        if (seen && r->seq0 <= prev)
            continue;
        seen = 1;
        prev = r->seq;
        /* Going on from a checkpoint: written before it, or half done (a realloc). */
        r->resumed = 0;
        if (__builtin_expect(r->seq0 < resume_h, 0)) {
            if (r->seq < resume_h)
                continue;
            r->resumed = 1;
        }
        n++;
    }
    c->p = p;
    c->end = end;
    c->last_seq = last_seq;
    c->last_ptr = last_ptr;
    c->seg_k = k;
    c->seen = seen;
    c->prev = prev;
    c->bi = 0;
    c->bn = n;
}

/* The old slot of a realloc half done at the checkpoint gone on from (checkpoint.c
 * saved it: the address left the map then); HL_NO_SLOT if it was saved as unknown. */
static uint64_t resumed_old_slot(const struct cursor *c)
{
    return cur_rec(c)->seq == c->t->pend_seq ? c->t->pend_old_slot : HL_NO_SLOT;
}

/* Decode the cursor's next batch (the last is used up).  Returns 1, 0 if there is no
 * record (yet, or ever: see c->bad), -1 if out of memory. */
static __attribute__((noinline)) int refill(struct cursor *c, const struct hl_slotmap *m)
{
    if (!c->b && !(c->b = malloc(BATCH * sizeof *c->b)))
        return -1;
    decode_batch(c, m);
    if (!c->bn) {
        /* Nothing until its next chunk: a thread that waits holds no batch. */
        free(c->b);
        c->b = NULL;
        return 0;
    }
    return 1;
}

/* Make b[bi] the cursor's current record, decoding a batch if it is used up.
 * Returns 1, 0 if there is none (yet, or ever: see c->bad), -1 if out of memory. */
static inline int cursor_next(struct cursor *c, const struct hl_slotmap *m)
{
    if (c->bi == c->bn) {
        int k = refill(c, m);
        if (k <= 0)
            return k;
    }
    const struct rec *r = cur_rec(c);
    c->phase = 0;
    c->key = r->seq0;
    if (__builtin_expect(r->resumed, 0)) {
        c->phase = 1; /* its old block left the map before the checkpoint */
        c->key = r->seq;
        c->old_slot = resumed_old_slot(c);
    }
    return 1;
}

static void heap_push(struct heap *h, struct cursor *c)
{
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->a[parent]->key <= c->key)
            break;
        h->a[i] = h->a[parent];
        i = parent;
    }
    h->a[i] = c;
}

static struct cursor *heap_pop(struct heap *h)
{
    struct cursor *top = h->a[0], *last = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const struct cursor *best = last;
        if (l < h->n && h->a[l]->key < best->key) {
            m = l;
            best = h->a[l];
        }
        if (l + 1 < h->n && h->a[l + 1]->key < best->key)
            m = l + 1;
        if (m == i)
            break;
        h->a[i] = h->a[m];
        i = m;
    }
    if (h->n)
        h->a[i] = last;
    return top;
}

/* ---- one process section ---- */

static inline uint64_t new_slot(struct section *s, const struct rec *r)
{
    uint64_t slot = s->next_slot++;
    /* A live address allocated again means its free went unseen (made inside the
     * interposer's guard, or before recording began): the old slot just stays live. */
    hl_slotmap_put_h_(s->map, r->ptr, r->hash, slot);
    return slot;
}

/* After the runs that filled the writer's chunk (or the last ones): give the writer
 * the page counts met meanwhile (their blocks' events are encoded), then write the
 * chunk out if it is full, and see how many events fit in it now: a run ends where
 * the chunk does, so that the merge sees every chunk boundary (checkpoints go there).
 * A page count goes to the writer before the chunk its record fell in is written,
 * whenever the merge stopped meanwhile: the PAGE block after that chunk holds it,
 * finalised while the program ran or afterwards. */
static int submit(struct section *s, struct hl_err *err)
{
    for (size_t k = 0; k < s->npg; k++)
        if (hl_writer_pages(s->w, s->pg[k].slot, s->pg[k].pages, err) != 0)
            return -1;
    s->npg = 0;
    if (hl_writer_enc_done(s->w, err) != 0)
        return -1;
    s->room = hl_writer_room(s->w);
    return 0;
}

/* An HL_RAW_PAGES record: the live block at its address gets a (slot, pages) pair
 * (none if the address is not live: a block of the parent, in a fork child). */
static __attribute__((noinline)) void pages_of(struct section *s, const struct rec *r)
{
    uint64_t slot = hl_slotmap_get_h_(s->map, r->ptr, r->hash);
    if (slot == HL_NO_SLOT)
        return;
    if (s->npg == s->pgcap) {
        size_t cap = s->pgcap ? s->pgcap * 2 : 64;
        struct hl_pages *v = realloc(s->pg, cap * sizeof *v);
        if (!v)
            return; /* the block is touched whole: nothing is lost but the count */
        s->pg = v;
        s->pgcap = cap;
    }
    s->pg[s->npg++] = (struct hl_pages){slot, r->size};
}

/* The time of r's event.  Threads read the TSC a little apart from taking their
 * sequence number: keep time non-decreasing in event order. */
static inline uint64_t event_time(struct section *s, const struct rec *r)
{
    uint64_t t = r->time > s->prev_time ? r->time : s->prev_time;
    return s->prev_time = t;
}

/* What step made of a record. */
enum { STEP_PHASE, STEP_EVENT, STEP_NONE };

/* The cursor's current record (in its current phase) made into event e: STEP_EVENT,
 * STEP_NONE if the record is finished with no event (a page count), STEP_PHASE if it
 * moved to its second phase. */
static inline __attribute__((always_inline)) int step(struct section *s, struct cursor *c,
                                                      struct hl_event *e)
{
    const struct rec *r = cur_rec(c);
    if (__builtin_expect(r->op == HL_RAW_PAGES, 0)) {
        pages_of(s, r);
        return STEP_NONE;
    }
    e->thread = c->dense;
    e->op = r->op;
    e->flags = 0;
    e->old_slot = HL_NO_SLOT;

    switch (r->op) {
    case HL_RAW_FREE:
        e->size = 0;
        e->aux = 0;
        e->slot = hl_slotmap_take_h_(s->map, r->ptr, r->hash);
        if (e->slot == HL_NO_SLOT) {
            e->flags = HL_EV_UNKNOWN;
            s->unknown++;
        }
        break;
    case HL_RAW_REALLOC:
    case HL_RAW_REALLOCARRAY:
        if (!c->phase) {
            c->old_slot = HL_NO_SLOT;
            if (r->old)
                c->old_slot = hl_slotmap_take_(s->map, r->old);
            if (r->seq0 != r->seq) {
                c->phase = 1;
                c->key = r->seq;
                return STEP_PHASE;
            }
        }
        e->size = r->size;
        e->aux = r->aux;
        e->slot = HL_NO_SLOT;
        e->old_slot = c->old_slot;
        if (r->old && c->old_slot == HL_NO_SLOT) {
            e->flags = HL_EV_UNKNOWN;
            s->unknown++;
        }
        if (r->flags & HL_RAWF_FREED) {
            /* glibc's realloc(p, 0): p is freed, nothing allocated. */
            e->op = HL_OP_FREE;
            e->size = 0;
            e->aux = 0;
            e->slot = c->old_slot;
            e->old_slot = HL_NO_SLOT;
        } else if (r->flags & HL_RAWF_FAILED) {
            e->flags |= HL_EV_FAILED;
            if (c->old_slot != HL_NO_SLOT)
                hl_slotmap_put_(s->map, r->old, c->old_slot);
        } else {
            e->slot = new_slot(s, r);
        }
        break;
    default: /* malloc, calloc, the aligned ops, valloc, pvalloc */
        e->size = r->size;
        e->aux = r->aux;
        e->slot = HL_NO_SLOT;
        if (r->flags & HL_RAWF_FAILED)
            e->flags = HL_EV_FAILED;
        else
            e->slot = new_slot(s, r);
        break;
    }
    e->time_ns = event_time(s, r);
    return STEP_EVENT;
}

/* The two records most of a trace is made of, a malloc or a free that did not fail,
 * encoded with their op known, so that the encoder's tests of it fold away (step and
 * hl_enc_event give the same bytes for them; the rest goes through step).  Returns 1
 * if r, a record of the thread with dense index `thread` whose key is below the run's
 * end, was one of them and is written.  (Neither has a second phase: a record resumed
 * from a checkpoint is a realloc, see decode_batch.) */
static inline __attribute__((always_inline)) int fast_event(struct section *s, const struct rec *r,
                                                            uint32_t thread, struct enc *e,
                                                            const unsigned want0,
                                                            const unsigned want1)
{
    if (r->flags)
        return 0;
    struct hl_event ev;
    uint64_t ref;
    if (r->op == HL_RAW_MALLOC) {
        ev.op = HL_OP_MALLOC;
        ev.flags = 0;
        ev.size = r->size;
        ev.aux = 0;
        ev.slot = new_slot(s, r);
        ref = HL_NO_SLOT;
    } else if (r->op == HL_RAW_FREE) {
        ref = hl_slotmap_take_h_(s->map, r->ptr, r->hash);
        if (__builtin_expect(ref == HL_NO_SLOT, 0))
            return 0; /* step makes it an unknown free (the map is unchanged) */
        ev.op = HL_OP_FREE;
        ev.flags = 0;
        ev.size = 0;
        ev.aux = 0;
        ev.slot = ref;
    } else {
        return 0;
    }
    ev.thread = thread;
    ev.old_slot = HL_NO_SLOT;
    ev.time_ns = event_time(s, r);
    hl_enc_event(e, &ev, ref, want0, want1);
    return 1;
}

/* How a run of one cursor ended. */
enum { RUN_OUT, RUN_PAST, RUN_FULL, RUN_NOMEM, RUN_BADOP };

/* run, in the writer's modes want0 and want1 (encode.h): its events go straight into
 * the writer's columns, the encoder's state held here meanwhile. */
static inline __attribute__((always_inline)) int run_in(struct section *s, struct cursor *c,
                                                        uint64_t end, struct enc *we,
                                                        const unsigned want0,
                                                        const unsigned want1)
{
    struct enc e = *we;
    uint32_t room = s->room, n = 0;
    int why;
    for (;;) {
        if (c->key >= end) {
            why = RUN_PAST;
            break;
        }
        if (!room) {
            why = RUN_FULL;
            break;
        }
        /* The batch's records from the current one on, as many as the chunk has room
         * for: when the last one's key is below end, so are all their keys (a
         * thread's keys ascend), and a stretch of them is taken with no test of key
         * or room. */
        unsigned lim = c->bn;
        if (lim - c->bi > room)
            lim = c->bi + room;
        if (c->b[lim - 1].seq0 < end) {
            unsigned i = c->bi;
            while (i < lim && fast_event(s, &c->b[i], c->dense, &e, want0, want1))
                i++;
            if (i > c->bi) {
                room -= i - c->bi;
                n += i - c->bi;
                c->bi = i;
                int more = cursor_next(c, s->map);
                if (more <= 0) {
                    why = more < 0 ? RUN_NOMEM : RUN_OUT;
                    break;
                }
                continue;
            }
        }
        struct hl_event ev;
        int k = step(s, c, &ev);
        if (k == STEP_PHASE)
            continue;
        if (k == STEP_EVENT) {
            if (__builtin_expect(ev.op <= 0 || ev.op >= HL_OP_COUNT_, 0)) {
                why = RUN_BADOP; /* a short record of no op: the writer refuses it */
                break;
            }
            hl_enc_event(&e, &ev, hl_enc_ref(&ev), want0, want1);
            room--;
            n++;
        }
        c->bi++;
        int more = cursor_next(c, s->map);
        if (more <= 0) {
            why = more < 0 ? RUN_NOMEM : RUN_OUT;
            break;
        }
    }
    hl_enc_count(&e, n);
    *we = e;
    s->room = room;
    s->events += n;
    return why;
}

/* Make events of c's records, in order, while their keys are below end and the
 * writer's chunk has room: RUN_PAST when c's key reached end, RUN_FULL when the chunk
 * is full, RUN_OUT when c has no record left (for now, or for good: see c->bad),
 * RUN_NOMEM when out of memory, RUN_BADOP at a record of no op. */
static int run(struct section *s, struct cursor *c, uint64_t end)
{
    /* Dense thread indices in the order of each thread's first record. */
    if (c->dense == NO_THREAD)
        c->dense = s->nthreads++;
    unsigned want0, want1;
    struct enc *we = hl_writer_enc(s->w, &want0, &want1);
#define RUN_IN(w0, w1) run_in(s, c, end, we, w0, w1)
    return HL_ENC_BY_MODES(want0, want1, RUN_IN);
#undef RUN_IN
}

/* Put the threads that have records to go (again) into the merge. */
static int feed(struct section *s, struct hl_finalise_stats *st, struct hl_err *err)
{
    struct rawfile *f = s->f;
    for (uint32_t j = 0; j < f->nused; j++) {
        struct rthread *t = f->thr[j];
        if (!t || t->state != 0)
            continue;
        int k = cursor_next(&t->c, s->map);
        if (k < 0)
            return fail(err, "out of memory");
        if (!k) {
            if (t->c.bad) {
                t->state = 2;
                note_damage(st, f, file_off(f, t->c.bad_at), "malformed record");
            }
            continue;
        }
        if (s->h.n + 1 > s->hcap) {
            size_t cap = s->hcap ? s->hcap * 2 : 8;
            struct cursor **a = realloc(s->h.a, cap * sizeof *a);
            if (!a)
                return fail(err, "out of memory");
            s->h.a = a;
            s->hcap = cap;
        }
        t->state = 1;
        heap_push(&s->h, &t->c);
    }
    return 0;
}

/* Write the events whose keys are below limit, in key order: the cursor with the
 * smallest key runs until another's comes first. */
static int merge(struct section *s, uint64_t limit, struct hl_finalise_stats *st,
                 struct hl_err *err)
{
    struct cursor *cur = s->cur;
    if (!s->room && submit(s, err) != 0)
        return -1;
    if (cur && s->h.n && s->h.a[0]->key < cur->key) {
        heap_push(&s->h, cur); /* fed cursors may come first */
        cur = heap_pop(&s->h);
    }
    for (;;) {
        if (!cur) {
            if (!s->h.n)
                break;
            cur = heap_pop(&s->h);
        }
        if (cur->key >= limit)
            break;
        /* Ties stay with the running cursor. */
        uint64_t end = s->h.n && s->h.a[0]->key < limit ? s->h.a[0]->key + 1 : limit;
        int r = run(s, cur, end);
        if (r == RUN_NOMEM || r == RUN_BADOP) {
            s->cur = cur;
            if (r == RUN_BADOP) /* the cursor is still at that record */
                return fail(err, "event %llu of pid %u: unknown op %d",
                            (unsigned long long)s->events, s->f->h.pid, cur_rec(cur)->op);
            return fail(err, "out of memory");
        }
        if (r == RUN_OUT) {
            struct rthread *t = (struct rthread *)cur->t;
            t->state = 0; /* until its next chunk */
            if (cur->bad) {
                t->state = 2;
                note_damage(st, s->f, file_off(s->f, cur->bad_at), "malformed record");
            }
            cur = NULL;
        } else if (s->h.n && s->h.a[0]->key < cur->key) {
            heap_push(&s->h, cur);
            cur = heap_pop(&s->h);
        }
        if (s->room)
            continue;
        s->cur = cur;
        if (submit(s, err) != 0)
            return -1;
        /* Every record keyed below cur's is written now: a checkpoint may go here. */
        if (__builtin_expect(s->f->off - s->ckpt_low >= s->ckpt_every, 0) && s->ckpt_every &&
            cur && hl_writer_at_boundary(s->w)) {
            s->done_key = cur->key < limit ? cur->key : limit;
            if (checkpoint_maybe(s, s->ckpt_every, err) != 0)
                return -1;
        }
    }
    s->cur = cur;
    return submit(s, err);
}

/* ---- the finaliser ---- */

/* Sections written side by side while the program runs, each into a file of its own
 * (put in order at the finish): enough for a shell and its pipeline, or make and the
 * compilers it runs at once, while bounding the address space reserved for tailing. */
#define MAX_LIVE 8
_Static_assert(MAX_LIVE <= HL_RAW_BACKLOG_FILES, "the backlog state lists every file read");

struct hl_finaliser {
    char *dir, *out;
    struct rawfile **fs;
    size_t n, cap;
    struct section *live[MAX_LIVE];
    unsigned nlive;
    struct hl_finalise_stats st;
    uint64_t moved;         /* raw bytes read by the current poll */
    int failed;
    struct hl_err err;      /* the error, once failed */
    size_t window;          /* a raw file's first window (WINDOW_MIN; ENV_WINDOW) */
    size_t budget;          /* chunks listed per round (SCAN_BUDGET; ENV_WINDOW) */
    size_t ckpt_every;      /* capture bytes between two checkpoints of a section */
    uint64_t slow_us;       /* ENV_FINALISE_SLOW */
    int polling;            /* the program runs (hl_finaliser_poll): publish_backlog */
    int backlog_fd;         /* the state file publish_backlog writes, -1 if none */
    hl_finalise_progress_fn *progress;
    void *progress_ctx;
    uint64_t raw_done;      /* raw bytes read so far */
    uint64_t fail_after;    /* tests: fail once this many bytes are read (0: never) */
    struct unrec_list unrec; /* processes heaplab reaped (hl_finaliser_add_unrecorded) */
    int keep;               /* the capture is kept after the finish (keep_capture) */
};

int hl_finaliser_add_unrecorded(struct hl_finaliser *fz, uint32_t pid, uint32_t ppid,
                                uint64_t realtime_ns, unsigned why, const char *exe,
                                const char *cmdline)
{
    return unrec_add(&fz->unrec, pid, ppid, realtime_ns, why, exe, cmdline);
}

static int progress(struct hl_finaliser *fz, uint64_t bytes, struct hl_err *err)
{
    fz->raw_done += bytes;
    if (fz->fail_after && fz->raw_done >= fz->fail_after)
        return fail(err, "stopped after %llu bytes of capture (%s)",
                    (unsigned long long)fz->raw_done, ENV_FAIL_AFTER);
    if (fz->progress && bytes && fz->progress(fz->progress_ctx, fz->raw_done) != 0)
        return fail(err, "interrupted");
    return 0;
}

struct hl_finaliser *hl_finaliser_new(const char *dir, const char *out, struct hl_err *err)
{
    struct hl_finaliser *fz = calloc(1, sizeof *fz);
    if (fz) {
        fz->dir = strdup(dir);
        fz->out = strdup(out);
    }
    if (!fz || !fz->dir || !fz->out) {
        if (fz) {
            free(fz->dir);
            free(fz->out);
        }
        free(fz);
        fail(err, "out of memory");
        return NULL;
    }
    fz->fail_after = fz_env_u64(ENV_FAIL_AFTER, 0);
    fz->slow_us = fz_env_u64(ENV_FINALISE_SLOW, 0);
    fz->backlog_fd = -1;
    fz->ckpt_every = (size_t)fz_env_u64(ENV_CKPT_EVERY, CKPT_EVERY);
    long pg = sysconf(_SC_PAGESIZE);
    size_t v = (size_t)fz_env_u64(ENV_WINDOW, 0) & ~(size_t)(pg - 1);
    fz->window = v >= (size_t)pg ? v : WINDOW_MIN;
    fz->budget = v >= (size_t)pg ? v : SCAN_BUDGET;
    return fz;
}

void hl_finaliser_set_progress(struct hl_finaliser *fz, hl_finalise_progress_fn *fn, void *ctx)
{
    fz->progress = fn;
    fz->progress_ctx = ctx;
}

void hl_finaliser_keep_capture(struct hl_finaliser *fz)
{
    fz->keep = 1;
}

/* Pick up raw files that appeared since the last look. */
static int list_files(struct hl_finaliser *fz, struct hl_err *err)
{
    DIR *d = opendir(fz->dir);
    if (!d)
        return fail(err, "%s: %s", fz->dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 7 || strcmp(de->d_name + len - 6, ".hlraw") != 0)
            continue;
        char *path;
        if (asprintf(&path, "%s/%s", fz->dir, de->d_name) < 0) {
            rc = fail(err, "out of memory");
            break;
        }
        int known = 0;
        for (size_t i = 0; i < fz->n && !known; i++)
            known = strcmp(fz->fs[i]->path, path) == 0;
        if (known) {
            free(path);
            continue;
        }
        if (fz->n == fz->cap) {
            size_t cap = fz->cap ? fz->cap * 2 : 16;
            struct rawfile **nf = realloc(fz->fs, cap * sizeof *nf);
            if (!nf) {
                free(path);
                rc = fail(err, "out of memory");
                break;
            }
            fz->fs = nf;
            fz->cap = cap;
        }
        struct rawfile *f = calloc(1, sizeof *f);
        if (!f) {
            free(path);
            rc = fail(err, "out of memory");
            break;
        }
        f->path = path;
        fz->fs[fz->n++] = f;
    }
    closedir(d);
    return rc;
}

/* Sections go in the order their images started (pid breaks a tie). */
static int starts_before(const struct rawfile *x, const struct rawfile *y)
{
    if (x->h.start_mono_ns != y->h.start_mono_ns)
        return x->h.start_mono_ns < y->h.start_mono_ns;
    return x->h.pid < y->h.pid;
}

/* Is the process image of f over, so that its file will not grow any more?  It is if
 * a later image of the same pid exists (an exec, or the pid used again after its
 * death), or the process is gone or a zombie with no thread left.  "Not sure" counts
 * as running: the section then just waits for the finish. */
static int image_over_now(struct hl_finaliser *fz, const struct rawfile *f);

static int image_over(struct hl_finaliser *fz, struct rawfile *f)
{
    if (!f->over)
        f->over = image_over_now(fz, f);
    return f->over;
}

static int image_over_now(struct hl_finaliser *fz, const struct rawfile *f)
{
    for (size_t i = 0; i < fz->n; i++) {
        const struct rawfile *g = fz->fs[i];
        if (g != f && g->hdr == 1 && g->h.pid == f->h.pid &&
            g->h.start_mono_ns > f->h.start_mono_ns)
            return 1;
    }
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%u/stat", f->h.pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT;
    ssize_t k = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    /* "pid (comm) state ... num_threads": comm may hold anything, so from its end. */
    const char *p = strrchr(buf, ')');
    if (!p || (p[2] != 'Z' && p[2] != 'X'))
        return 0;
    /* A zombie leader may still have live threads (it left by pthread_exit). */
    snprintf(path, sizeof path, "/proc/%u/task", f->h.pid);
    DIR *d = opendir(path);
    if (!d)
        return 1;
    struct dirent *de;
    int others = 0;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && (unsigned)atoi(de->d_name) != f->h.pid)
            others = 1;
    closedir(d);
    return !others;
}

/* Everything but the name and header, once the file's section is written. */
static void file_release(struct rawfile *f)
{
    if (f->win)
        munmap(f->win, f->win_cap);
    f->win = NULL;
    f->win_off = f->win_len = f->win_cap = 0;
    for (uint32_t j = 0; j < f->nused; j++)
        if (f->thr[j]) {
            free(f->thr[j]->c.b);
            free(f->thr[j]->chunks);
            free(f->thr[j]);
        }
    free(f->thr);
    f->thr = NULL;
    free(f->used);
    f->used = NULL;
    f->nused = f->usedcap = f->last = 0;
}

static void section_free(struct section *s)
{
    if (!s)
        return;
    hl_slotmap_free(s->map);
    free(s->h.a);
    free(s->pg);
    free(s);
}

/* Begin f's section in w. */
/* A section of f, not begun in any writer yet. */
static struct section *section_new(struct hl_finaliser *fz, struct rawfile *f, struct hl_err *err)
{
    struct section *s = calloc(1, sizeof *s);
    if (!s || !(s->map = hl_slotmap_new())) {
        section_free(s);
        fail(err, "out of memory");
        return NULL;
    }
    s->f = f;
    s->ckpt_every = fz->ckpt_every;
    return s;
}

/* Begin f's section in w. */
static struct section *section_begin(struct hl_finaliser *fz, struct rawfile *f,
                                     struct hl_writer *w, struct hl_err *err)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = f->h.pid;
    p.ppid = f->h.ppid;
    p.page_size = f->h.page_size;
    p.start_realtime_ns = f->h.start_realtime_ns;
    if (f->h.version >= 3 && (f->h.flags & HL_RAW_HDR_ATTACHED))
        p.flags |= HL_PROC_ATTACHED;
    snprintf(p.cmdline, sizeof p.cmdline, "%s", f->h.cmdline);
    snprintf(p.exe, sizeof p.exe, "%s", f->h.exe);
    struct section *s = section_new(fz, f, err);
    if (!s)
        return NULL;
    if (hl_writer_begin_process(w, &p, err) != 0) {
        section_free(s);
        return NULL;
    }
    s->w = w;
    f->started = 1;
    return s;
}

/* ---- letting go of what the merge has passed ---- */

/* The first chunk a thread still needs: that of its current record, of the oldest
 * record decoded ahead, the one its cursor is decoding, or the next. */
size_t first_needed(const struct rthread *t)
{
    const struct cursor *c = &t->c;
    size_t k = t->dropped + (c->p != c->end ? c->ci - 1 : c->ci);
    if (c->bi < c->bn && cur_rec(c)->chunk < k)
        k = cur_rec(c)->chunk;
    return k - t->dropped;
}

size_t first_needed_byte(const struct rawfile *f)
{
    size_t low = f->off;
    for (uint32_t j = 0; j < f->nused; j++) {
        const struct rthread *t = f->thr[j];
        size_t k = t ? first_needed(t) : 0;
        if (t && k < t->n) {
            size_t o = file_off(f, t->chunks[k].words) - sizeof(struct hl_raw_chunk);
            if (o < low)
                low = o;
        }
    }
    return low;
}

/* Move every pointer into f's window by delta bytes: the window's bytes moved
 * (window_read). */
static void move_pointers(struct rawfile *f, ptrdiff_t delta)
{
#define MOVE(p) ((p) = (void *)((const uint8_t *)(p) + delta))
    for (uint32_t j = 0; j < f->nused; j++) {
        struct rthread *t = f->thr[j];
        if (!t)
            continue;
        for (size_t k = 0; k < t->n; k++)
            MOVE(t->chunks[k].words);
        if (t->c.p)
            MOVE(t->c.p);
        if (t->c.end)
            MOVE(t->c.end);
        if (t->c.bad_at)
            MOVE(t->c.bad_at);
    }
#undef MOVE
}

/* After a merge: drop the chunk references no record needs any more (the window lets
 * go of their bytes when it next needs room: window_read). */
static void release(struct section *s)
{
    struct rawfile *f = s->f;
    for (uint32_t j = 0; j < f->nused; j++) {
        struct rthread *t = f->thr[j];
        if (!t)
            continue;
        size_t k = first_needed(t);
        if (k >= 64 || (k && 2 * k >= t->n)) {
            memmove(t->chunks, t->chunks + k, (t->n - k) * sizeof *t->chunks);
            t->n -= k;
            t->c.ci -= k;
            t->dropped += k;
        }
    }
}

/* The backlog state file (raw.h: BACKLOG) of fz's capture folder, in buf. */
static const char *backlog_path(const struct hl_finaliser *fz, char *buf, size_t n)
{
    snprintf(buf, n, "%s/%s", fz->dir, HL_RAW_BACKLOG_NAME);
    return buf;
}

/* While the program runs, tell its threads how far finalising is behind in the files
 * it reads (raw.h: BACKLOG), so that they wait when it is too far.  A failure to write
 * the state only means nobody waits. */
static void publish_backlog(struct hl_finaliser *fz)
{
    if (!fz->polling)
        return;
    struct hl_raw_backlog b;
    memset(&b, 0, sizeof b);
    b.magic = HL_RAW_BACKLOG_MAGIC;
    b.progress = fz->raw_done;
    for (unsigned i = 0; i < fz->nlive; i++) {
        const struct rawfile *f = fz->live[i]->f;
        b.file[b.nfiles].ino = f->ino;
        b.file[b.nfiles].need = first_needed_byte(f);
        b.file[b.nfiles++].size = f->size;
    }
    for (size_t i = 0; i < fz->n; i++) {
        struct rawfile *f = fz->fs[i];
        size_t size;
        if (f->hdr == 1 && !f->started && image_over(fz, f) && raw_stream_size(f, 0, &size) == 0)
            b.queued += (uint64_t)size;
    }
    b.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &b, sizeof b / 8 - 1);
    if (fz->backlog_fd < 0) {
        char path[4200];
        fz->backlog_fd = open(backlog_path(fz, path, sizeof path),
                              O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fz->backlog_fd >= 0) {
        ssize_t k = pwrite(fz->backlog_fd, &b, sizeof b, 0);
        (void)k;
    }
}

/* The program is over: nobody is to wait any more. */
static void end_backlog(struct hl_finaliser *fz)
{
    fz->polling = 0;
    if (fz->backlog_fd < 0)
        return;
    close(fz->backlog_fd);
    fz->backlog_fd = -1;
    char path[4200];
    unlink(backlog_path(fz, path, sizeof path));
}

/* Read what f holds now and write what can be written, a bounded window at a time;
 * over: f is complete.  Ends the section (frees s) when over. */
static int section_step(struct hl_finaliser *fz, struct section *s, int over, struct hl_err *err)
{
    struct rawfile *f = s->f;
    int more;
    do {
        size_t before = f->off;
        more = scan_more(f, over, fz->slow_us && !over ? (size_t)1 << 20 : fz->budget, fz->window,
                         &fz->st, err);
        if (more < 0 || feed(s, &fz->st, err) != 0)
            return -1;
        fz->moved += f->off - before;
        if (merge(s, f->horizon, &fz->st, err) != 0)
            return -1;
        release(s);
        if (progress(fz, f->off - before, err) != 0)
            return -1;
        publish_backlog(fz);
        if (fz->slow_us && !over && f->off != before)
            usleep((useconds_t)fz->slow_us);
    } while (more && over); /* while the program runs, one window a call: the poll
                               goes round the files, starting new ones, between two */
    if (!over)
        return 0;
    if (merge(s, UINT64_MAX, &fz->st, err) != 0)
        return -1;
    fz->st.damaged += f->damaged;
    fz->st.cut += unrec_losses(f);
    fz->st.dropped += f->h.dropped;
    fz->st.missed += f->h.missed;
    fz->st.big_untracked += f->h.big_untracked;
    fz->st.held += f->h.held;
    fz->st.held_ns += f->h.held_ns;
    fz->st.spilled += f->ring_spill != HL_RAW_RING_NONE;
    hl_writer_set_losses(s->w, f->h.dropped, f->h.missed, f->h.cut_errno);
    if (hl_writer_end_process(s->w, err) != 0)
        return -1;
    fz->st.processes++;
    fz->st.threads += s->nthreads;
    fz->st.events += s->events;
    fz->st.unknown += s->unknown;
    f->done = 1;
    file_release(f);
    section_free(s);
    return 0;
}

static int read_headers(struct hl_finaliser *fz, int final, struct hl_err *err)
{
    if (list_files(fz, err) != 0)
        return -1;
    for (size_t i = 0; i < fz->n; i++) {
        struct rawfile *f = fz->fs[i];
        if (f->hdr != 0)
            continue;
        int r = read_header(f, final, &fz->st, err);
        if (r == -2)
            return -1;
        if (r < 0) {
            f->hdr = -1;
            f->done = 1;
            fz->st.damaged += f->damaged;
        } else if (r > 0) {
            f->hdr = 1;
        }
    }
    return 0;
}

/* While the program runs: begin the sections of new images (earliest first), each
 * into its own part file, and take every begun section as far as its file allows;
 * a section whose image is over is ended and its part closed. */
static int advance(struct hl_finaliser *fz, struct hl_err *err)
{
    if (read_headers(fz, 0, err) != 0)
        return -1;
    while (fz->nlive < MAX_LIVE) {
        struct rawfile *next = NULL;
        for (size_t i = 0; i < fz->n; i++) {
            struct rawfile *f = fz->fs[i];
            if (f->hdr == 1 && !f->started && (!next || starts_before(f, next)))
                next = f;
        }
        if (!next)
            break;
        if (window_open(next, err) < 0)
            return -1;
        char *part;
        if (asprintf(&part, "%s.part", next->path) < 0)
            return fail(err, "out of memory");
        struct hl_writer *w = hl_writer_open(part, err);
        if (w)
            hl_writer_trust(w); /* the address map hands out every slot (step) */
        struct section *s = w ? section_begin(fz, next, w, err) : NULL;
        if (!s) {
            hl_writer_abort(w);
            free(part);
            return -1;
        }
        next->part = part;
        fz->live[fz->nlive++] = s;
    }
    for (unsigned i = 0; i < fz->nlive;) {
        struct section *s = fz->live[i];
        struct hl_writer *w = s->w;
        struct rawfile *f = s->f;
        int over = image_over(fz, f);
        if (section_step(fz, s, over, err) != 0)
            return -1;
        if (!over) {
            i++;
            continue;
        }
        fz->live[i] = fz->live[--fz->nlive];
        if (hl_writer_close(w, err) != 0)
            return -1;
        /* Its part whole, its capture is no longer needed on the disk.  Should the
         * checkpoint that allows that fail (a full disk), the capture just stays. */
        struct hl_err ignored;
        checkpoint_done(f, &ignored);
    }
    return 0;
}

int hl_finaliser_poll(struct hl_finaliser *fz, struct hl_err *err)
{
    if (fz->failed) {
        *err = fz->err;
        return -1;
    }
    fz->moved = 0;
    fz->polling = 1;
    if (advance(fz, &fz->err) != 0) {
        end_backlog(fz); /* finalising stops here: nobody is to wait for it */
        fz->failed = 1;
        *err = fz->err;
        return -1;
    }
    publish_backlog(fz);
    return fz->moved > 0;
}

static void free_files(struct hl_finaliser *fz)
{
    for (size_t i = 0; i < fz->n; i++) {
        struct rawfile *f = fz->fs[i];
        file_release(f);
        /* A part stays with a checkpoint: the raw file may have holes below it. */
        if (f->part && !checkpoint_exists(f)) {
            char ck[4200];
            snprintf(ck, sizeof ck, "%s.tmp", f->part);
            unlink(f->part);
            unlink(ck);
        }
        unrec_free(f);
        free(f->part);
        free(f->path);
        free(f);
    }
    free(fz->fs);
    free(fz->unrec.v);
}

void hl_finaliser_abort(struct hl_finaliser *fz)
{
    if (!fz)
        return;
    end_backlog(fz);
    /* Parts stay as they stand: a checkpoint may need them (free_files). */
    for (unsigned i = 0; i < fz->nlive; i++) {
        hl_writer_stop(fz->live[i]->w);
        section_free(fz->live[i]);
    }
    free_files(fz);
    free(fz->dir);
    free(fz->out);
    free(fz);
}

static int cmp_start(const void *a, const void *b)
{
    const struct rawfile *x = *(struct rawfile *const *)a, *y = *(struct rawfile *const *)b;
    return starts_before(x, y) ? -1 : starts_before(y, x);
}

/* Drop f's chunk lists whole (a scan for process events only): the window may then
 * let go of everything scanned. */
static void forget_chunks(struct rawfile *f)
{
    for (uint32_t j = 0; j < f->nused; j++)
        if (f->thr[j]) {
            f->thr[j]->dropped += f->thr[j]->n;
            f->thr[j]->n = 0;
        }
}

/* f's process events, for unrec_write, when its section was finished before heaplab
 * stopped: those its checkpoint keeps (the capture below it may be given back to the
 * disk), then a scan of the rest of the file. */
static int rescan_pevs(struct hl_finaliser *fz, struct rawfile *f, struct hl_err *err)
{
    size_t low = 0;
    if (checkpoint_pevs(f, &low, err) < 0) { /* its section is whole: say so, go on */
        f->damaged = 1;
        if (!fz->st.damage[0])
            snprintf(fz->st.damage, sizeof fz->st.damage,
                     "%.400s; the processes its capture announced before it are not named",
                     err->msg);
    }
    if (window_open(f, err) < 0)
        return -1;
    if (low > f->off && low <= f->size)
        f->off = low;
    int k;
    while ((k = scan_more(f, 1, fz->budget, fz->window, &fz->st, err)) == 1)
        forget_chunks(f); /* only its process events are wanted */
    fz->st.damaged += f->damaged;
    file_release(f);
    return k;
}

/* Write f's section whole into its part file PATH.part (f->part), after the program
 * has stopped writing f: from the start of f, or going on from its checkpoint where
 * heaplab stopped before (checkpoint.c), or taking a part finished before as it is.
 * With an assembly to go on from (assemble.c), a part that is there, or is in the
 * assembly already (taken), is neither read nor counted: the assembly's state counts
 * the parts. */
static int finish_section(struct hl_finaliser *fz, struct rawfile *f,
                          const struct asm_state *as, int taken, struct hl_err *err)
{
    char *part;
    if (asprintf(&part, "%s.part", f->path) < 0)
        return fail(err, "out of memory");
    f->part = part;
    if (taken || (as->have && access(part, F_OK) == 0))
        return rescan_pevs(fz, f, err);
    if (access(part, F_OK) == 0) { /* finished before heaplab stopped: count it */
        struct hl_reader *r = hl_reader_open(part, err);
        struct hl_process p;
        int k;
        while (r && (k = hl_reader_next_process(r, &p, err)) == 1) {
            fz->st.processes++;
            fz->st.threads += p.nthreads;
            fz->st.events += p.nevents;
        }
        hl_reader_close(r);
        return r && k == 0 ? rescan_pevs(fz, f, err) : -1;
    }
    int m = window_open(f, err);
    struct section *s = m > 0 ? section_new(fz, f, err) : NULL;
    if (!s)
        return -1;
    struct hl_writer_state ws;
    int r = checkpoint_load(f, &ws, &s, err);
    struct hl_writer *w = NULL;
    if (r > 0) {
        w = hl_writer_resume(part, &ws, err);
    } else if (r == 0) {
        w = hl_writer_open(part, err);
        if (w) {
            hl_writer_trust(w);
            struct section *b = section_begin(fz, f, w, err);
            section_free(s);
            s = b;
        }
    }
    if (!w || !s) {
        if (w)
            hl_writer_stop(w);
        section_free(s);
        return -1;
    }
    s->w = w;
    f->started = 1;
    if (section_step(fz, s, 1, err) != 0) {
        if (f->win) /* section_step frees s once it ends */
            section_free(s);
        hl_writer_stop(w);
        return -1;
    }
    return hl_writer_close(w, err);
}

/* The trace of parts order[0..n-1] and the unrecorded processes (assemble.c).  A part
 * with a checkpoint beside it is the only copy of its section (its raw capture may be
 * given back): a kept capture keeps it whole. */
static int assemble(struct hl_finaliser *fz, struct rawfile *const *order, size_t n,
                    struct asm_state *as, struct hl_err *err)
{
    struct asm_part *parts = calloc(n, sizeof *parts);
    if (!parts)
        return fail(err, "out of memory");
    for (size_t i = 0; i < n; i++) {
        parts[i].path = order[i]->part;
        parts[i].only = checkpoint_exists(order[i]);
    }
    int rc = asm_trace(fz->dir, fz->out, parts, n, &fz->unrec, &fz->st, as, fz->keep, err);
    free(parts);
    return rc;
}

/* Every process has stopped writing: end the begun sections, write the others into
 * parts of their own, then the trace: every part in start order. */
static int finish(struct hl_finaliser *fz, struct hl_err *err)
{
    if (read_headers(fz, 1, err) != 0)
        return -1;
    while (fz->nlive) {
        struct section *s = fz->live[--fz->nlive];
        struct hl_writer *w = s->w;
        if (section_step(fz, s, 1, err) != 0) {
            fz->live[fz->nlive++] = s;
            return -1;
        }
        if (hl_writer_close(w, err) != 0)
            return -1;
    }
    struct rawfile **order = malloc((fz->n ? fz->n : 1) * sizeof *order);
    if (!order)
        return fail(err, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < fz->n; i++)
        if (fz->fs[i]->hdr == 1)
            order[n++] = fz->fs[i];
    if (n == 0) {
        free(order);
        return fail(err, "%s: no recording found (the program never started recording)",
                    fz->dir);
    }
    qsort(order, n, sizeof *order, cmp_start);
    struct asm_state as;
    int rc = asm_load(fz->dir, &as, err) < 0 ? -1 : 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (!order[i]->part)
            rc = finish_section(fz, order[i], &as, as.have && i < as.k, err);
    if (as.have) {
        fz->st.processes = (uint32_t)as.processes;
        fz->st.threads = as.threads;
        fz->st.events = as.events;
    }
    if (rc == 0)
        rc = unrec_gather(fz->fs, fz->n, &fz->unrec, err);
    /* One part and nothing unrecorded (one process): that part is the trace. */
    int placed = 0;
    if (rc == 0 && n == 1 && fz->unrec.n == 0 && !as.have)
        placed = hl_trace_place(order[0]->part, fz->out, err);
    if (rc == 0 && placed == 0)
        rc = assemble(fz, order, n, &as, err);
    free(order);
    if (rc != 0 || placed < 0)
        return -1;
    struct stat sb;
    if (stat(fz->out, &sb) == 0)
        fz->st.trace_bytes = (uint64_t)sb.st_size;
    return 0;
}

int hl_finaliser_finish(struct hl_finaliser *fz, struct hl_finalise_stats *st,
                        struct hl_err *err)
{
    int rc = -1;
    end_backlog(fz);
    if (fz->failed)
        *err = fz->err;
    else if (finish(fz, err) == 0)
        rc = 0;
    for (size_t i = 0; i < fz->n; i++)
        fz->st.raw_bytes += fz->fs[i]->size;
    *st = fz->st;
    hl_finaliser_abort(fz);
    return rc;
}

int hl_finalise(const char *dir, const char *out, struct hl_finalise_stats *st,
                struct hl_err *err)
{
    memset(st, 0, sizeof *st);
    DIR *d = opendir(dir);
    if (!d)
        return fail(err, "%s: %s", dir, strerror(errno));
    closedir(d);
    struct hl_finaliser *fz = hl_finaliser_new(dir, out, err);
    if (!fz)
        return -1;
    return hl_finaliser_finish(fz, st, err);
}
