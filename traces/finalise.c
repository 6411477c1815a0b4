/*
 * finalise.c: raw capture directory -> finalised trace (see finalise.h).
 *
 * Each raw file is mapped read-only and scanned once to check its chunks (magic,
 * bounds, checksum) and to list each thread's chunks in order; the scan stops at the
 * first bad chunk, which is what makes a killed process's capture readable up to its
 * last complete chunk.  Then the threads' record streams are merged by sequence
 * number with a binary heap of cursors.  The cursor that produced the last event
 * usually also holds the next one (threads allocate in bursts), so the heap is only
 * touched when the order actually switches threads; a single-threaded process never
 * touches it.
 *
 * realloc has two sequence numbers (raw.h): at the first its old block leaves the
 * address map (so another thread may get that address in between), at the second the
 * event is written with the new block.  A cursor therefore visits a realloc record
 * twice, in two phases.
 */
#include "finalise.h"
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
#include <unistd.h>

/* Thread numbers in a raw file beyond this are taken as damage. */
#define MAX_RAW_THREADS (1u << 20)

struct chunkref {
    const uint64_t *words; /* payload */
    size_t nwords;
    uint64_t flush_tsc;    /* TSC when it was flushed: after its last record */
};

struct rthread {
    struct chunkref *chunks;
    size_t n, cap;
};

struct rawfile {
    char *path;
    const uint8_t *map;
    size_t size;
    struct hl_raw_header hdr;
    uint64_t last_tsc, last_mono; /* the latest (TSC, monotonic) pair seen */
    struct rthread *thr;
    uint32_t nthr; /* thread numbers seen: 0..nthr-1 (some may have no chunk) */
    int damaged;
    size_t damage_off;
};

/* One decoded record. */
struct rec {
    unsigned op, flags;
    uint64_t seq, seq0;  /* seq0: realloc's seq-before (== seq when nothing is freed) */
    uint64_t ptr, old;   /* the block returned or freed; realloc's old block */
    uint64_t size, aux;
};

struct cursor {
    const struct rthread *t;
    size_t ci;               /* current chunk */
    const uint64_t *p, *end; /* next record, end of the chunk */
    uint64_t last_seq, last_ptr; /* the chunk's running values (raw.h) */
    struct rec r;            /* the current record */
    const uint64_t *at;      /* where it starts, for error offsets */
    uint64_t key;            /* sequence number of the next thing to do */
    int phase;               /* 1: a realloc record whose old block is already taken */
    uint32_t old_slot;
    uint32_t dense;          /* thread index in the trace */
    double seg_tsc, seg_step; /* the current run between clock readings: its start */
                              /* and the TSC ticks per record */
    int bad;                 /* a malformed record ended this stream */
    int seen;                /* a record was decoded (key holds its sequence number) */
    uint64_t seg_k;          /* records of the current run so far */
    double tsc;              /* the current record's time, in TSC ticks */
};

static int fail(struct hl_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct hl_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static void note_damage(struct hl_finalise_stats *st, struct rawfile *f, size_t off,
                        const char *why)
{
    f->damaged = 1;
    f->damage_off = off;
    if (!st->damage[0])
        snprintf(st->damage, sizeof st->damage, "%s: %s at byte %zu (read up to there)",
                 f->path, why, off);
}

/* ---- scanning a raw file ---- */

static int add_chunk(struct rawfile *f, uint32_t thread, const uint64_t *words, size_t nwords,
                     uint64_t flush_tsc)
{
    if (thread >= f->nthr) {
        uint32_t n = f->nthr ? f->nthr : 4;
        while (n <= thread)
            n *= 2;
        struct rthread *t = realloc(f->thr, n * sizeof *t);
        if (!t)
            return -1;
        memset(t + f->nthr, 0, (n - f->nthr) * sizeof *t);
        f->thr = t;
        f->nthr = n;
    }
    struct rthread *t = &f->thr[thread];
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
    t->chunks[t->n].flush_tsc = flush_tsc;
    t->n++;
    return 0;
}

/* Map the file and check its header and chunks.  Returns 1 if usable, 0 to skip it
 * (empty: the process died before writing its header; or a bad header), -1 on a
 * system error. */
static int scan_file(struct rawfile *f, struct hl_finalise_stats *st, struct hl_err *err)
{
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(err, "%s: %s", f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return fail(err, "%s: %s", f->path, strerror(errno));
    }
    f->size = (size_t)sb.st_size;
    st->raw_bytes += f->size;
    if (f->size == 0) {
        close(fd);
        return 0;
    }
    void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return fail(err, "%s: cannot map: %s", f->path, strerror(errno));
    f->map = m;
    madvise(m, f->size, MADV_SEQUENTIAL);

    if (f->size < sizeof f->hdr) {
        note_damage(st, f, 0, "header cut short");
        return 0;
    }
    memcpy(&f->hdr, f->map, sizeof f->hdr);
    struct hl_raw_header h = f->hdr;
    h.checksum = 0;
    if (memcmp(h.magic, HL_RAW_MAGIC, 8) != 0 || h.version != HL_RAW_VERSION ||
        h.header_bytes != sizeof h ||
        hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8) != f->hdr.checksum) {
        note_damage(st, f, 0, "not a heaplab raw capture header");
        return 0;
    }
    f->hdr.exe[sizeof f->hdr.exe - 1] = 0;
    f->hdr.cmdline[sizeof f->hdr.cmdline - 1] = 0;
    f->last_tsc = f->hdr.start_tsc;
    f->last_mono = f->hdr.start_mono_ns;

    size_t off = sizeof f->hdr;
    while (off < f->size) {
        struct hl_raw_chunk c;
        if (f->size - off < sizeof c) {
            note_damage(st, f, off, "chunk header cut short");
            break;
        }
        memcpy(&c, f->map + off, sizeof c);
        if (c.magic != HL_RAW_CHUNK_MAGIC || c.nbytes % 8 || c.thread >= MAX_RAW_THREADS) {
            note_damage(st, f, off, "damaged chunk header");
            break;
        }
        if (c.nbytes > f->size - off - sizeof c) {
            note_damage(st, f, off, "chunk cut short");
            break;
        }
        const uint64_t *words = (const uint64_t *)(f->map + off + sizeof c);
        uint64_t want = c.checksum;
        c.checksum = 0;
        uint64_t got = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &c, sizeof c / 8);
        got = hl_raw_checksum(got, words, c.nbytes / 8);
        if (got != want) {
            note_damage(st, f, off, "chunk checksum mismatch");
            break;
        }
        if (add_chunk(f, c.thread, words, c.nbytes / 8, c.tsc) != 0)
            return fail(err, "out of memory");
        if (c.mono_ns > f->last_mono) {
            f->last_mono = c.mono_ns;
            f->last_tsc = c.tsc;
        }
        off += sizeof c + c.nbytes;
    }
    return 1;
}

/* ---- cursors ---- */

/* A clock reading at c->p: the records up to the next reading (or the chunk's flush)
 * get evenly spaced times between the two. */
static void start_segment(struct cursor *c, uint64_t flush_tsc)
{
    uint64_t t0 = c->p[1], t1 = flush_tsc;
    size_t n = 0;
    for (const uint64_t *q = c->p + 2; q < c->end;) {
        unsigned nw = hl_raw_record_words(q[0]);
        if (!nw || (size_t)(c->end - q) < nw)
            break;
        if (!(q[0] & 1) && (q[0] >> 1 & 15) == HL_RAW_TIME) {
            t1 = q[1];
            break;
        }
        n++;
        q += nw;
    }
    c->seg_tsc = (double)t0;
    c->seg_k = 0;
    c->seg_step = n && t1 > t0 ? (double)(t1 - t0) / (double)n : 0.0;
}

/* Decode the record at c->p into c->r and step past it. */
static void decode(struct cursor *c, unsigned nw)
{
    const uint64_t *w = c->p;
    struct rec *r = &c->r;
    c->at = w;
    c->p += nw;
    r->aux = 0;
    r->old = 0;
    if (w[0] & 1) {
        r->op = (unsigned)(w[0] >> 1 & 15);
        r->flags = 0;
        r->seq = c->last_seq + (w[0] >> 5 & 31);
        int64_t dp = (int64_t)w[0] >> 26; /* arithmetic shift: the signed delta */
        r->ptr = (uint64_t)((int64_t)(c->last_ptr >> 4) + dp) << 4;
        r->size = w[0] >> 10 & 0xffff;
        r->seq0 = r->seq;
    } else {
        r->op = (unsigned)(w[0] >> 1 & 15);
        r->flags = (unsigned)(w[0] >> 5 & 7);
        r->seq = w[0] >> 24;
        r->ptr = w[1];
        r->size = w[0] >> 8 & 0xffff;
        if (r->size == HL_RAW_SIZE_BIG)
            r->size = w[nw - 1];
        r->seq0 = r->seq;
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
    c->last_seq = r->seq;
    c->last_ptr = r->ptr;
}

/* Decode the cursor's next event record (moving to the next chunk as needed, taking
 * in clock readings).  Returns 0 at the end of the stream.  A record that does not
 * fit its chunk or has an unknown op ends the stream (the chunk passed its checksum,
 * so this means a writer bug); one whose sequence number the thread has passed
 * already is a repeat and is skipped. */
static int cursor_next(struct cursor *c)
{
    for (;;) {
        if (c->p == c->end) {
            if (c->ci >= c->t->n)
                return 0;
            c->p = c->t->chunks[c->ci].words;
            c->end = c->p + c->t->chunks[c->ci].nwords;
            c->ci++;
            c->last_seq = 0;
            c->last_ptr = 0;
            continue;
        }
        unsigned nw = hl_raw_record_words(c->p[0]);
        if (!nw || (size_t)(c->end - c->p) < nw) {
            c->at = c->p;
            c->bad = 1;
            return 0;
        }
        if (!(c->p[0] & 1) && (c->p[0] >> 1 & 15) == HL_RAW_TIME) {
            start_segment(c, c->t->chunks[c->ci - 1].flush_tsc);
            c->p += 2;
            continue;
        }
        c->tsc = c->seg_tsc + c->seg_step * (double)c->seg_k++;
        uint64_t prev = c->key;
        decode(c, nw);
        if (c->r.seq0 > c->r.seq) {
            c->bad = 1;
            return 0;
        }
        /* Seen already: the process wrote this thread's unflushed records at exit,
         * then the thread flushed them again (flush_others in interpose.c). */
        if (c->seen && c->r.seq0 <= prev)
            continue;
        c->seen = 1;
        c->phase = 0;
        c->key = c->r.seq0;
        return 1;
    }
}

/* Min-heap of cursors by key. */
struct heap {
    struct cursor **a;
    size_t n;
};

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

struct section {
    struct hl_writer *w;
    struct hl_slotmap *map;
    uint32_t next_slot;
    uint64_t start_tsc;
    double ns_per_tick;
    uint64_t prev_time;
    uint64_t events, unknown;
};

static inline uint64_t tick_ns(struct section *s, uint64_t tsc)
{
    uint64_t t = tsc > s->start_tsc ? (uint64_t)((double)(tsc - s->start_tsc) * s->ns_per_tick) : 0;
    /* Threads read the TSC a little apart from taking their sequence number: keep
     * time non-decreasing in event order. */
    if (t < s->prev_time)
        t = s->prev_time;
    s->prev_time = t;
    return t;
}

static inline uint32_t new_slot(struct section *s, uint64_t addr)
{
    uint32_t slot = s->next_slot++;
    /* A live address allocated again means its free went unseen (made inside the
     * interposer's guard, or before recording began): the old slot just stays live. */
    hl_slotmap_put(s->map, addr, slot);
    return slot;
}

/* Do what the cursor's current record (in its current phase) says.  Returns 1 if the
 * record is finished, 0 if it moved to its second phase, -1 on a writer error. */
static int step(struct section *s, struct cursor *c, struct hl_err *err)
{
    const struct rec *r = &c->r;
    struct hl_event e;
    e.size = 0;
    e.aux = 0;
    e.slot = HL_NO_SLOT;
    e.old_slot = HL_NO_SLOT;
    e.thread = c->dense;
    e.op = (uint8_t)r->op;
    e.flags = 0;

    switch (r->op) {
    case HL_RAW_FREE:
        e.slot = hl_slotmap_take(s->map, r->ptr);
        if (e.slot == HL_NO_SLOT)
            e.flags = HL_EV_UNKNOWN;
        break;
    case HL_RAW_REALLOC:
    case HL_RAW_REALLOCARRAY:
        if (!c->phase) {
            c->old_slot = HL_NO_SLOT;
            if (r->old)
                c->old_slot = hl_slotmap_take(s->map, r->old);
            if (r->seq0 != r->seq) {
                c->phase = 1;
                c->key = r->seq;
                return 0;
            }
        }
        e.size = r->size;
        e.aux = r->aux;
        e.old_slot = c->old_slot;
        if (r->old && c->old_slot == HL_NO_SLOT)
            e.flags = HL_EV_UNKNOWN;
        if (r->flags & HL_RAWF_FREED) {
            /* glibc's realloc(p, 0): p is freed, nothing allocated. */
            e.op = HL_OP_FREE;
            e.size = 0;
            e.aux = 0;
            e.slot = c->old_slot;
            e.old_slot = HL_NO_SLOT;
        } else if (r->flags & HL_RAWF_FAILED) {
            e.flags |= HL_EV_FAILED;
            if (c->old_slot != HL_NO_SLOT)
                hl_slotmap_put(s->map, r->old, c->old_slot);
        } else {
            e.slot = new_slot(s, r->ptr);
        }
        break;
    default: /* malloc, calloc, the aligned ops, valloc, pvalloc */
        e.size = r->size;
        e.aux = r->aux;
        if (r->flags & HL_RAWF_FAILED)
            e.flags = HL_EV_FAILED;
        else
            e.slot = new_slot(s, r->ptr);
        break;
    }
    e.time_ns = tick_ns(s, (uint64_t)c->tsc);
    if (e.flags & HL_EV_UNKNOWN)
        s->unknown++;
    s->events++;
    if (hl_writer_event(s->w, &e, err) != 0)
        return -1;
    return 1;
}

static int cmp_first_key(const void *a, const void *b)
{
    const struct cursor *x = *(struct cursor *const *)a, *y = *(struct cursor *const *)b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int write_section(struct rawfile *f, struct hl_writer *w, double ns_per_tick,
                         struct hl_finalise_stats *st, struct hl_err *err)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = f->hdr.pid;
    p.ppid = f->hdr.ppid;
    p.page_size = f->hdr.page_size;
    p.start_realtime_ns = f->hdr.start_realtime_ns;
    snprintf(p.cmdline, sizeof p.cmdline, "%s", f->hdr.cmdline);
    snprintf(p.exe, sizeof p.exe, "%s", f->hdr.exe);
    if (hl_writer_begin_process(w, &p, err) != 0)
        return -1;

    /* One cursor per thread that wrote anything; dense thread indices in the order
     * of each thread's first record. */
    struct cursor *cs = calloc(f->nthr ? f->nthr : 1, sizeof *cs);
    struct cursor **order = calloc(f->nthr ? f->nthr : 1, sizeof *order);
    struct heap h = {calloc(f->nthr ? f->nthr : 1, sizeof *h.a), 0};
    struct section s = {.w = w, .map = hl_slotmap_new(), .start_tsc = f->hdr.start_tsc,
                        .ns_per_tick = ns_per_tick};
    int rc = -1;
    if (!cs || !order || !h.a || !s.map) {
        fail(err, "out of memory");
        goto out;
    }
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->nthr; i++) {
        cs[i].t = &f->thr[i];
        if (cursor_next(&cs[i]))
            order[n++] = &cs[i];
    }
    qsort(order, n, sizeof *order, cmp_first_key);
    for (uint32_t i = 0; i < n; i++) {
        order[i]->dense = i;
        heap_push(&h, order[i]);
    }
    st->threads += n;

    struct cursor *cur = h.n ? heap_pop(&h) : NULL;
    while (cur) {
        int r = step(&s, cur, err);
        if (r < 0)
            goto out;
        if (r == 1 && !cursor_next(cur)) {
            if (cur->bad)
                note_damage(st, f, (size_t)((const uint8_t *)cur->at - f->map),
                            "malformed record");
            cur = h.n ? heap_pop(&h) : NULL;
            continue;
        }
        if (h.n && h.a[0]->key < cur->key) {
            heap_push(&h, cur);
            cur = heap_pop(&h);
        }
    }
    if (hl_writer_end_process(w, err) != 0)
        goto out;
    st->processes++;
    st->events += s.events;
    st->unknown += s.unknown;
    rc = 0;
out:
    if (s.map)
        hl_slotmap_free(s.map);
    free(h.a);
    free(order);
    free(cs);
    return rc;
}

/* ---- the whole capture ---- */

static int cmp_start(const void *a, const void *b)
{
    const struct rawfile *x = a, *y = b;
    if (x->hdr.start_mono_ns != y->hdr.start_mono_ns)
        return x->hdr.start_mono_ns < y->hdr.start_mono_ns ? -1 : 1;
    return x->hdr.pid < y->hdr.pid ? -1 : x->hdr.pid > y->hdr.pid;
}

static void free_files(struct rawfile *fs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (fs[i].map)
            munmap((void *)fs[i].map, fs[i].size);
        for (uint32_t t = 0; t < fs[i].nthr; t++)
            free(fs[i].thr[t].chunks);
        free(fs[i].thr);
        free(fs[i].path);
    }
    free(fs);
}

int hl_finalise(const char *dir, const char *out, struct hl_finalise_stats *st,
                struct hl_err *err)
{
    memset(st, 0, sizeof *st);
    DIR *d = opendir(dir);
    if (!d)
        return fail(err, "%s: %s", dir, strerror(errno));
    struct rawfile *fs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = -1;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 7 || strcmp(de->d_name + len - 6, ".hlraw") != 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct rawfile *nf = realloc(fs, cap * sizeof *nf);
            if (!nf) {
                fail(err, "out of memory");
                goto out;
            }
            fs = nf;
        }
        memset(&fs[n], 0, sizeof fs[n]);
        if (asprintf(&fs[n].path, "%s/%s", dir, de->d_name) < 0) {
            fs[n].path = NULL;
            fail(err, "out of memory");
            goto out;
        }
        n++;
        int r = scan_file(&fs[n - 1], st, err);
        if (r < 0)
            goto out;
        if (r == 0) { /* unusable: drop it */
            n--;
            st->damaged += fs[n].damaged;
            if (fs[n].map)
                munmap((void *)fs[n].map, fs[n].size);
            free(fs[n].path);
        }
    }
    if (n == 0) {
        fail(err, "%s: no recording found (the program never started recording)", dir);
        goto out;
    }
    qsort(fs, n, sizeof *fs, cmp_start);

    /* The TSC rate, from the widest (TSC, monotonic) span of any file: all processes
     * of one recording run on one machine with one TSC. */
    double ns_per_tick = 1.0;
    uint64_t best = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t dm = fs[i].last_mono - fs[i].hdr.start_mono_ns;
        uint64_t dt = fs[i].last_tsc - fs[i].hdr.start_tsc;
        if (dm > best && dt > 0 && fs[i].last_tsc > fs[i].hdr.start_tsc) {
            best = dm;
            ns_per_tick = (double)dm / (double)dt;
        }
    }

    struct hl_writer *w = hl_writer_open(out, err);
    if (!w)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (write_section(&fs[i], w, ns_per_tick, st, err) != 0) {
            hl_writer_abort(w);
            goto out;
        }
    for (size_t i = 0; i < n; i++)
        st->damaged += fs[i].damaged;
    if (hl_writer_close(w, err) != 0)
        goto out;
    struct stat sb;
    if (stat(out, &sb) == 0)
        st->trace_bytes = (uint64_t)sb.st_size;
    rc = 0;
out:
    closedir(d);
    free_files(fs, n);
    return rc;
}
