/*
 * writer.c: hl_writer, which turns a stream of events into a trace file (format.h).
 *
 * Events are checked against the slot rule as they arrive, encoded straight into the
 * chunk's column buffers, and every HL_CHUNK_MAX_EVENTS events the chunk is assembled,
 * zstd-compressed and written as one CHNK block.  The file is written as PATH.tmp and
 * renamed on a successful close, so a failed producer never leaves a half trace under
 * the final name.
 *
 * The writer also tracks which slots are live (liveset.h: memory bounded by the live
 * set), so that a producer bug (a double free at the slot level, a free of a slot not
 * yet allocated) is caught here with a clear message rather than later as a crash in
 * replay.
 */
#include "trace.h"
#include "codec.h"
#include "encode.h"
#include "format.h"
#include "liveset.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

/* zstd settings for the columns, measured with scripts/bench-trace: level 3 encodes
 * about 30M events/s (the record finaliser's speed depends on it); level 9 is no smaller,
 * level 19 is 6% smaller at 1M events/s.  Long minimum matches keep zstd from spending
 * bits on chance three-byte matches in the noisy columns.  Decoding speed does not
 * depend on either. */
#ifndef HL_ZSTD_LEVEL
#define HL_ZSTD_LEVEL 3
#endif
#define HL_ZSTD_MIN_MATCH 7
/* Chunks that try both forms of REF and TIME (chunk_reset): the first this many of
 * a section, then one in MODE_TRIAL_EVERY. */
#define MODE_TRIAL_ALL 64
#define MODE_TRIAL_EVERY 8
/* A column whose compression saved less than 1/2^PLAIN_GAIN_SHIFT of its bytes is
 * stored as it is, without trying zstd, on the chunks after it that are not trial
 * chunks (flush_chunk): a column of noise (the low byte of random sizes, the slot
 * distances of random frees) costs zstd as much time as one it shrinks tenfold, and
 * that time is the record finaliser's, which must keep up with the program.  The
 * trade: such a column is up to 1/2^PLAIN_GAIN_SHIFT larger until the next trial chunk
 * tries again. */
#define PLAIN_GAIN_SHIFT 3

static const size_t col_max[HL_NCOLS] = HL_COL_MAX_BYTES;

struct hl_writer {
    char *path, *tmp;
    FILE *f;
    uint64_t bytes;
    int failed;
    uint32_t chunk_max;
    uint64_t first_slot; /* of every section from now on (tests of the numbering) */
    int trusted;         /* the producer keeps the slot rule: no checks */
    uint64_t dropped, missed; /* the open section's losses (hl_writer_set_losses) */
    uint32_t cut_errno;

    /* the open section */
    int in_section;
    uint32_t pid;
    struct hl_liveset live;
    struct enc e;            /* the encoder's running state */

    /* the chunk being filled */
    uint64_t chunk_first_slot;
    uint64_t chunk_base_time;
    uint8_t *col[HL_NCOLS];  /* the columns, REF and TIME as in mode 0 */
    uint8_t *alt[HL_NCOLS];  /* REF and TIME_LO/HI as in mode 1 (format.h, modes) */
    int trial;               /* this chunk encodes REF and TIME both ways */
    unsigned modes;          /* otherwise, the modes the last trial chose */
    unsigned plain;          /* bit c: column c is stored as it is on chunks that are
                                not trials (PLAIN_GAIN_SHIFT) */
    uint32_t chunk_seq;      /* chunks of this section written (flush_chunk): the number
                                of the one being filled */
    uint8_t *z[HL_NCOLS];    /* compressed columns */
    uint8_t *zalt[HL_NCOLS]; /* compressed alternatives */
    ZSTD_CCtx *cctx;

    /* (slot, pages) pairs not written yet (hl_writer_pages), as a PAGE payload */
    uint8_t *pg;
    size_t pgn, pgcap;
};

static void chunk_reset(struct hl_writer *w);

/* The column buffers (megabytes: sized for the longest chunk) and the compression
 * context of the last writer freed, kept for the next one, so that a producer writing
 * many small traces (an importer under a fuzzer, the finaliser's parts) does not map,
 * fault in and unmap them for each. */
struct bufset {
    uint8_t *col[HL_NCOLS], *alt[HL_NCOLS], *z[HL_NCOLS], *zalt[HL_NCOLS];
    ZSTD_CCtx *cctx;
};
static struct bufset g_spare;
static int g_spare_full;
static pthread_mutex_t g_spare_lock = PTHREAD_MUTEX_INITIALIZER;

/* Take the spare set into w, if there is one.  Returns 1 if taken. */
static int take_spare(struct hl_writer *w)
{
    pthread_mutex_lock(&g_spare_lock);
    int full = g_spare_full;
    if (full) {
        memcpy(w->col, g_spare.col, sizeof w->col);
        memcpy(w->alt, g_spare.alt, sizeof w->alt);
        memcpy(w->z, g_spare.z, sizeof w->z);
        memcpy(w->zalt, g_spare.zalt, sizeof w->zalt);
        w->cctx = g_spare.cctx;
        g_spare_full = 0;
    }
    pthread_mutex_unlock(&g_spare_lock);
    if (full)
        ZSTD_CCtx_reset(w->cctx, ZSTD_reset_session_and_parameters);
    return full;
}

/* Keep w's buffers as the spare set if there is none (they are all there: w was
 * opened whole).  Returns 1 if kept. */
static int keep_spare(struct hl_writer *w)
{
    if (!w->cctx || !w->zalt[HL_COL_TIME_HI])
        return 0;
    pthread_mutex_lock(&g_spare_lock);
    int keep = !g_spare_full;
    if (keep) {
        memcpy(g_spare.col, w->col, sizeof w->col);
        memcpy(g_spare.alt, w->alt, sizeof w->alt);
        memcpy(g_spare.z, w->z, sizeof w->z);
        memcpy(g_spare.zalt, w->zalt, sizeof w->zalt);
        g_spare.cctx = w->cctx;
        g_spare_full = 1;
    }
    pthread_mutex_unlock(&g_spare_lock);
    return keep;
}

/* The columns that have a mode-1 alternative. */
static int has_alt(int c)
{
    return c == HL_COL_REF || c == HL_COL_TIME_LO || c == HL_COL_TIME_HI;
}

__attribute__((format(printf, 3, 4))) static int fail(struct hl_writer *w, struct hl_err *err,
                                                      const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err)
        snprintf(err->msg, sizeof err->msg, "%s: %s", w->path, what);
    return -1;
}

static int write_bytes(struct hl_writer *w, const void *buf, size_t n, struct hl_err *err)
{
    if (w->failed)
        return fail(w, err, "an earlier write failed");
    if (n && fwrite(buf, 1, n, w->f) != n) {
        w->failed = 1;
        return fail(w, err, "write failed: %s", strerror(errno));
    }
    w->bytes += n;
    return 0;
}

static int write_block(struct hl_writer *w, uint32_t tag, const uint8_t *payload,
                       uint32_t stored, uint32_t raw, uint32_t nevents, struct hl_err *err)
{
    uint8_t h[HL_BLOCK_HEADER_BYTES];
    hl_put_le32(h, tag);
    hl_put_le32(h + 4, stored);
    hl_put_le32(h + 8, raw);
    hl_put_le32(h + 12, nevents);
    hl_put_le32(h + 16, hl_crc32c(0, payload, stored));
    hl_put_le32(h + 20, hl_crc32c(0, h, 20));
    if (write_bytes(w, h, sizeof h, err) < 0)
        return -1;
    return write_bytes(w, payload, stored, err);
}

/* A writer on PATH.tmp opened with fopen mode `mode` ("wb": a new trace, whose file
 * header is written; "r+b": an existing one, to go on from a checkpoint). */
/* The name a trace is written under until it is complete (malloc'd; NULL if out of
 * memory): renamed over PATH at the end, so that no half trace has PATH's name. */
static char *tmp_name(const char *path)
{
    char *t;
    return asprintf(&t, "%s.tmp", path) < 0 ? NULL : t;
}

static struct hl_writer *hl_writer_open_file(const char *path, const char *mode,
                                             struct hl_err *err)
{
    struct hl_writer *w = calloc(1, sizeof *w);
    if (!w) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return NULL;
    }
    w->chunk_max = HL_CHUNK_MAX_EVENTS;
    w->path = strdup(path);
    w->tmp = tmp_name(path);
    int spare = take_spare(w);
    if (!spare)
        w->cctx = ZSTD_createCCtx();
    int ok = w->path && w->tmp && w->cctx && hl_liveset_init(&w->live) == 0;
    for (int c = 0; c < HL_NCOLS && !spare; c++) {
        size_t n = col_max[c] * HL_CHUNK_MAX_EVENTS;
        ok = ok && (w->col[c] = malloc(n)) && (w->z[c] = malloc(ZSTD_compressBound(n)));
        if (has_alt(c))
            ok = ok && (w->alt[c] = malloc(n)) && (w->zalt[c] = malloc(ZSTD_compressBound(n)));
    }
    if (!ok) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        hl_writer_abort(w);
        return NULL;
    }
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, HL_ZSTD_LEVEL);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_minMatch, HL_ZSTD_MIN_MATCH);
    /* A new file, not one a killed hl_trace_place left linked to another trace. */
    if (mode[0] == 'w')
        unlink(w->tmp);
    w->f = fopen(w->tmp, mode);
    if (!w->f) {
        snprintf(err->msg, sizeof err->msg, "%s: cannot %s: %s", w->tmp,
                 mode[0] == 'w' ? "create" : "open", strerror(errno));
        hl_writer_abort(w);
        return NULL;
    }
    return w;
}

struct hl_writer *hl_writer_open(const char *path, struct hl_err *err)
{
    struct hl_writer *w = hl_writer_open_file(path, "wb", err);
    if (!w)
        return NULL;
    uint8_t h[HL_FILE_HEADER_BYTES] = {0};
    memcpy(h, HL_FORMAT_MAGIC, 8);
    hl_put_le32(h + 8, HL_FORMAT_VERSION);
    if (write_bytes(w, h, sizeof h, err) < 0) {
        hl_writer_abort(w);
        return NULL;
    }
    return w;
}

void hl_writer_set_chunk_events(struct hl_writer *w, uint32_t n)
{
    if (n < 1)
        n = 1;
    if (n > HL_CHUNK_MAX_EVENTS)
        n = HL_CHUNK_MAX_EVENTS;
    w->chunk_max = n;
}

/* Does h (n bytes read from a file's start) begin a trace of this format version? */
static int is_trace_header(const uint8_t *h, size_t n)
{
    return n >= HL_FILE_HEADER_BYTES && memcmp(h, HL_FORMAT_MAGIC, 8) == 0 &&
           hl_get_le32(h + 8) == HL_FORMAT_VERSION;
}

/* Up to max bytes of the file fd (path) from *from onto w: copied by the kernel where
 * it can (no copy through this process), else read and written here.  *from moves on
 * past what was copied.  The bytes copied (0 at the file's end), or -1. */
static int64_t copy_range(struct hl_writer *w, int fd, const char *path, off_t *from,
                          uint64_t max, struct hl_err *err)
{
    if (fflush(w->f) != 0) {
        w->failed = 1;
        return fail(w, err, "write failed: %s", strerror(errno));
    }
    uint64_t done = 0;
    off_t start = *from;
    ssize_t k = 0;
    while (done < max &&
           (k = copy_file_range(fd, from, fileno(w->f), NULL,
                                (size_t)(max - done < ((uint64_t)1 << 30) ? max - done
                                                                         : (uint64_t)1 << 30),
                                0)) > 0)
        done += (uint64_t)k;
    w->bytes += done;
    if (k < 0 && *from != start) { /* failed midway: a full disk */
        w->failed = 1;
        return fail(w, err, "write failed: %s", strerror(errno));
    }
    if (fseeko(w->f, 0, SEEK_END) != 0) {
        w->failed = 1;
        return fail(w, err, "%s: %s", path, strerror(errno));
    }
    if (k >= 0) /* done, or the file's end */
        return (int64_t)done;
    uint8_t buf[1 << 16];
    while (done < max) { /* the kernel cannot copy between these files */
        size_t want = max - done < sizeof buf ? (size_t)(max - done) : sizeof buf;
        ssize_t n = pread(fd, buf, want, *from);
        if (n < 0)
            return fail(w, err, "%s: read failed: %s", path, strerror(errno));
        if (n == 0)
            break;
        if (write_bytes(w, buf, (size_t)n, err) < 0)
            return -1;
        *from += n;
        done += (uint64_t)n;
    }
    return (int64_t)done;
}

/* Opens the trace file path for hl_writer_append*, checking its header when check is
 * set (a caller that has copied the first window may have given the header back to
 * the disk since).  fd or -1. */
static int open_trace(struct hl_writer *w, const char *path, int check, struct hl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail(w, err, "%s: %s", path, strerror(errno));
    uint8_t h[HL_FILE_HEADER_BYTES];
    ssize_t got = check ? read(fd, h, sizeof h) : 0;
    if (check && (got < 0 || !is_trace_header(h, (size_t)got))) {
        close(fd);
        return fail(w, err, "%s: not a trace of this version", path);
    }
    return fd;
}

int hl_writer_append(struct hl_writer *w, const char *path, struct hl_err *err)
{
    uint64_t from = 0;
    int64_t k = hl_writer_append_window(w, path, &from, UINT64_MAX, err);
    return k < 0 ? -1 : 0;
}

int64_t hl_writer_append_window(struct hl_writer *w, const char *path, uint64_t *from,
                                uint64_t max, struct hl_err *err)
{
    if (w->in_section)
        return fail(w, err, "cannot append %s inside a process section", path);
    int fd = open_trace(w, path, *from == 0, err);
    if (fd < 0)
        return -1;
    /* The sections are self-contained (slots, threads and times start over in each),
     * so their bytes follow as they are. */
    off_t at = *from < HL_FILE_HEADER_BYTES ? HL_FILE_HEADER_BYTES : (off_t)*from;
    int64_t k = copy_range(w, fd, path, &at, max, err);
    close(fd);
    *from = (uint64_t)at;
    return k;
}

int hl_trace_place(const char *from, const char *path, struct hl_err *err)
{
    uint8_t h[HL_FILE_HEADER_BYTES];
    int fd = open(from, O_RDONLY | O_CLOEXEC);
    ssize_t k = fd >= 0 ? read(fd, h, sizeof h) : -1;
    if (fd >= 0)
        close(fd);
    if (k < 0 || !is_trace_header(h, (size_t)k)) {
        snprintf(err->msg, sizeof err->msg, "%s: not a trace of this version", from);
        return -1;
    }
    char *tmp = tmp_name(path);
    if (!tmp) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return -1;
    }
    unlink(tmp); /* a temporary left by a writer that was killed */
    int rc = 1;
    if (link(from, tmp) != 0) {
        if (errno == EXDEV || errno == EPERM || errno == EMLINK || errno == ENOTSUP ||
            errno == ENOSYS)
            rc = 0;
        else {
            snprintf(err->msg, sizeof err->msg, "cannot create %s: %s", tmp, strerror(errno));
            rc = -1;
        }
    } else if (rename(tmp, path) != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot rename %s into place: %s", tmp,
                 strerror(errno));
        unlink(tmp);
        rc = -1;
    }
    free(tmp);
    return rc;
}

/* The pages pairs given so far, as one PAGE block (nothing if there are none). */
static int flush_pages(struct hl_writer *w, struct hl_err *err)
{
    if (!w->pgn)
        return 0;
    size_t n = w->pgn;
    w->pgn = 0;
    return write_block(w, HL_TAG_PAGE, w->pg, (uint32_t)n, (uint32_t)n, 0, err);
}

int hl_writer_pages(struct hl_writer *w, uint64_t slot, uint64_t pages, struct hl_err *err)
{
    if (!w->in_section)
        return fail(w, err, "no process section is open");
    if (slot >= w->e.next_slot || pages > HL_PAGE_MAX_PAGES)
        return fail(w, err, "pages of slot %llu: not a slot allocated so far, or %llu pages "
                    "out of range", (unsigned long long)slot, (unsigned long long)pages);
    if (w->pgn + 20 > HL_PAGE_MAX_BYTES && flush_pages(w, err) < 0)
        return -1;
    if (w->pgcap - w->pgn < 20) {
        size_t cap = w->pgcap ? w->pgcap * 2 : 256;
        uint8_t *q = realloc(w->pg, cap);
        if (!q)
            return fail(w, err, "out of memory");
        w->pg = q;
        w->pgcap = cap;
    }
    uint8_t *q = hl_put_varint(w->pg + w->pgn, slot);
    q = hl_put_varint(q, pages);
    w->pgn = (size_t)(q - w->pg);
    return 0;
}

int hl_writer_at_boundary(const struct hl_writer *w)
{
    return w->in_section && w->e.chunk_n == 0 && !w->failed;
}

int hl_writer_checkpoint(struct hl_writer *w, struct hl_writer_state *st, struct hl_err *err)
{
    if (!hl_writer_at_boundary(w))
        return fail(w, err, "no checkpoint inside a chunk");
    if (flush_pages(w, err) < 0)
        return -1;
    if (fflush(w->f) != 0) {
        w->failed = 1;
        return fail(w, err, "write failed: %s", strerror(errno));
    }
    st->bytes = w->bytes;
    st->nevents = w->e.nevents;
    st->next_slot = w->e.next_slot;
    st->prev_time = w->e.prev_time;
    st->pid = w->pid;
    st->nthreads = w->e.nthreads;
    st->chunk_seq = w->chunk_seq;
    st->modes = w->modes;
    st->plain = w->plain;
    return 0;
}

struct hl_writer *hl_writer_reopen(const char *path, uint64_t bytes, struct hl_err *err)
{
    struct hl_writer *w = hl_writer_open_file(path, "r+b", err);
    if (!w)
        return NULL;
    struct stat sb;
    if (fstat(fileno(w->f), &sb) != 0 || (uint64_t)sb.st_size < bytes) {
        fail(w, err, "%s: shorter than the %llu bytes written before", w->tmp,
             (unsigned long long)bytes);
        hl_writer_stop(w);
        return NULL;
    }
    if (fseeko(w->f, (off_t)bytes, SEEK_SET) != 0 || ftruncate(fileno(w->f), (off_t)bytes) != 0) {
        fail(w, err, "cannot go back to byte %llu of %s: %s", (unsigned long long)bytes,
             w->tmp, strerror(errno));
        hl_writer_stop(w);
        return NULL;
    }
    w->bytes = bytes;
    return w;
}

struct hl_writer *hl_writer_resume(const char *path, const struct hl_writer_state *st,
                                   struct hl_err *err)
{
    struct hl_writer *w = hl_writer_reopen(path, st->bytes, err);
    if (!w)
        return NULL;
    w->trusted = 1;
    w->in_section = 1;
    w->pid = st->pid;
    w->e.nevents = st->nevents;
    w->e.next_slot = st->next_slot;
    w->e.nthreads = st->nthreads;
    w->e.prev_time = st->prev_time;
    w->chunk_seq = st->chunk_seq;
    w->modes = st->modes;
    w->plain = st->plain;
    chunk_reset(w);
    return w;
}

void hl_writer_trust(struct hl_writer *w)
{
    w->trusted = 1;
}

void hl_writer_set_first_slot(struct hl_writer *w, uint64_t slot)
{
    w->first_slot = slot < HL_NO_SLOT / 2 ? slot : HL_NO_SLOT / 2;
}

uint64_t hl_writer_bytes(const struct hl_writer *w)
{
    return w->bytes;
}

static void chunk_reset(struct hl_writer *w)
{
    w->e.chunk_n = 0;
    w->chunk_first_slot = w->e.next_slot;
    w->chunk_base_time = w->e.prev_time;
    w->e.prev_thread = 0;
    for (int c = 0; c < HL_NCOLS; c++)
        w->e.colp[c] = w->col[c];
    for (int c = 0; c < HL_NCOLS; c++)
        w->e.altp[c] = w->alt[c];
    w->e.prev_ref = w->e.next_slot;
    w->e.prev_dt = 0;
    /* Encoding and packing both ways costs a fifth of the writer's time: past a
     * section's first MODE_TRIAL_ALL chunks, try both on one chunk in MODE_TRIAL_EVERY
     * and keep the winner for the chunks after it (a long run's patterns change
     * slowly; short traces keep the best of both on every chunk). */
    w->trial = w->chunk_seq < MODE_TRIAL_ALL || w->chunk_seq % MODE_TRIAL_EVERY == 0;
}

/* A column ready to be written: stored as it is (zn == 0) or compressed. */
struct packed {
    const uint8_t *data, *zdata;
    size_t n, zn;
};

static size_t packed_bytes(const struct packed *p)
{
    return p->zn ? p->zn : p->n;
}

/* data[0..n) as it is. */
static void stored(const uint8_t *data, size_t n, struct packed *out)
{
    out->data = data;
    out->n = n;
    out->zdata = NULL;
    out->zn = 0;
}

/* Did compressing p save less than PLAIN_GAIN_SHIFT asks for? */
static int little_gain(const struct packed *p)
{
    return p->n && (!p->zn || p->zn > p->n - (p->n >> PLAIN_GAIN_SHIFT));
}

/* Compress data[0..n) into zbuf (sized by ZSTD_compressBound for the column). */
static int pack(struct hl_writer *w, const uint8_t *data, size_t n, uint8_t *zbuf, size_t zcap,
                struct packed *out, struct hl_err *err)
{
    stored(data, n, out);
    out->zdata = zbuf;
    if (n == 0)
        return 0;
    size_t zn = ZSTD_compress2(w->cctx, zbuf, zcap, data, n);
    if (ZSTD_isError(zn)) {
        w->failed = 1;
        return fail(w, err, "zstd compression failed: %s", ZSTD_getErrorName(zn));
    }
    if (zn < n)
        out->zn = zn;
    return 0;
}

/* Does column c of this chunk use its mode-1 form? */
static int uses_alt(unsigned modes, int c)
{
    return c == HL_COL_REF ? !!(modes & HL_MODE_REF_PREV)
                           : (c == HL_COL_TIME_LO || c == HL_COL_TIME_HI) && (modes & HL_MODE_TIME_DD);
}

static int flush_chunk(struct hl_writer *w, struct hl_err *err)
{
    if (w->e.chunk_n == 0)
        return 0;
    struct packed col[HL_NCOLS], alt[HL_NCOLS];
    unsigned tried = w->trial ? ~0u : ~w->plain;
    for (int c = 0; c < HL_NCOLS; c++) {
        size_t cap = ZSTD_compressBound(col_max[c] * HL_CHUNK_MAX_EVENTS);
        if (!w->trial && uses_alt(w->modes, c)) {
            const uint8_t *a = w->alt[c];
            size_t n = (size_t)(w->e.altp[c] - a);
            if (!(tried >> c & 1))
                stored(a, n, &col[c]);
            else if (pack(w, a, n, w->z[c], cap, &col[c], err) < 0)
                return -1;
            continue;
        }
        size_t n = (size_t)(w->e.colp[c] - w->col[c]);
        if (!(tried >> c & 1)) {
            stored(w->col[c], n, &col[c]);
            continue;
        }
        if (pack(w, w->col[c], n, w->z[c], cap, &col[c], err) < 0)
            return -1;
        if (w->trial && has_alt(c) &&
            pack(w, w->alt[c], (size_t)(w->e.altp[c] - w->alt[c]), w->zalt[c], cap, &alt[c], err) < 0)
            return -1;
    }
    /* Modes (format.h): on a trial chunk keep whichever prediction packs smaller. */
    unsigned modes = w->modes;
    if (w->trial) {
        modes = 0;
        if (packed_bytes(&alt[HL_COL_REF]) < packed_bytes(&col[HL_COL_REF])) {
            modes |= HL_MODE_REF_PREV;
            col[HL_COL_REF] = alt[HL_COL_REF];
        }
        if (packed_bytes(&alt[HL_COL_TIME_LO]) + packed_bytes(&alt[HL_COL_TIME_HI]) <
            packed_bytes(&col[HL_COL_TIME_LO]) + packed_bytes(&col[HL_COL_TIME_HI])) {
            modes |= HL_MODE_TIME_DD;
            col[HL_COL_TIME_LO] = alt[HL_COL_TIME_LO];
            col[HL_COL_TIME_HI] = alt[HL_COL_TIME_HI];
        }
        w->modes = modes;
    }
    for (int c = 0; c < HL_NCOLS; c++)
        if (tried >> c & 1)
            w->plain = (w->plain & ~(1u << c)) | (unsigned)little_gain(&col[c]) << c;

    /* The payload is written in pieces: its header varints, then per column two varints
     * and the bytes; the checksum runs over the pieces. */
    uint8_t head[3 * 10 + HL_NCOLS * 20], *h = head;
    const uint8_t *piece[2 * HL_NCOLS + 1];
    size_t plen[2 * HL_NCOLS + 1];
    int np = 0;
    size_t stored = 0, raw = 0;
    h = hl_put_varint(h, w->chunk_first_slot);
    h = hl_put_varint(h, w->chunk_base_time);
    h = hl_put_varint(h, modes);
    uint8_t *mark = head;
    for (int c = 0; c < HL_NCOLS; c++) {
        h = hl_put_varint(h, col[c].n);
        h = hl_put_varint(h, col[c].zn);
        piece[np] = mark;
        plen[np++] = (size_t)(h - mark);
        mark = h;
        piece[np] = col[c].zn ? col[c].zdata : col[c].data;
        plen[np++] = packed_bytes(&col[c]);
        raw += col[c].n;
    }
    uint32_t crc = 0;
    for (int i = 0; i < np; i++) {
        crc = hl_crc32c(crc, piece[i], plen[i]);
        stored += plen[i];
    }
    uint8_t bh[HL_BLOCK_HEADER_BYTES];
    hl_put_le32(bh, HL_TAG_CHNK);
    hl_put_le32(bh + 4, (uint32_t)stored);
    hl_put_le32(bh + 8, (uint32_t)raw);
    hl_put_le32(bh + 12, w->e.chunk_n);
    hl_put_le32(bh + 16, crc);
    hl_put_le32(bh + 20, hl_crc32c(0, bh, 20));
    if (write_bytes(w, bh, sizeof bh, err) < 0)
        return -1;
    for (int i = 0; i < np; i++)
        if (write_bytes(w, piece[i], plen[i], err) < 0)
            return -1;
    w->chunk_seq++;
    chunk_reset(w);
    return flush_pages(w, err);
}

int hl_writer_begin_process(struct hl_writer *w, const struct hl_process *p,
                            struct hl_err *err)
{
    if (w->in_section && hl_writer_end_process(w, err) < 0)
        return -1;
    if ((p->flags & ~HL_PROC_KNOWN_FLAGS) || hl_proc_why(p->flags) >= HL_UNREC_COUNT_ ||
        (!(p->flags & HL_PROC_UNRECORDED) && (p->flags & HL_PROC_WHY_MASK)))
        return fail(w, err, "process %u: bad flags 0x%x", p->pid, p->flags);
    uint8_t buf[64 + sizeof p->cmdline + sizeof p->exe];
    uint8_t *q = buf;
    hl_put_le32(q, p->pid);
    hl_put_le32(q + 4, p->ppid);
    hl_put_le32(q + 8, p->page_size);
    hl_put_le64(q + 12, p->start_realtime_ns);
    hl_put_le32(q + 20, p->flags);
    hl_put_le64(q + 24, w->first_slot);
    q += 32;
    const char *strs[2] = {p->cmdline, p->exe};
    size_t caps[2] = {sizeof p->cmdline, sizeof p->exe};
    for (int i = 0; i < 2; i++) {
        size_t n = strnlen(strs[i], caps[i] - 1);
        q[0] = (uint8_t)n;
        q[1] = (uint8_t)(n >> 8);
        memcpy(q + 2, strs[i], n);
        q += 2 + n;
    }
    if (write_block(w, HL_TAG_PROC, buf, (uint32_t)(q - buf), (uint32_t)(q - buf), 0, err) < 0)
        return -1;
    w->in_section = 1;
    w->pid = p->pid;
    w->e.nevents = 0;
    w->e.next_slot = w->first_slot;
    w->e.nthreads = 0;
    w->e.prev_time = 0;
    hl_liveset_clear(&w->live);
    w->chunk_seq = 0;
    w->modes = 0;
    w->plain = 0;
    chunk_reset(w);
    return 0;
}

int hl_writer_end_process(struct hl_writer *w, struct hl_err *err)
{
    if (!w->in_section)
        return fail(w, err, "no process section is open");
    if (flush_chunk(w, err) < 0 || flush_pages(w, err) < 0)
        return -1;
    uint8_t buf[HL_ENDS_LOSS_BYTES];
    hl_put_le64(buf, w->e.nevents);
    hl_put_le64(buf + 8, w->e.next_slot);
    hl_put_le32(buf + 16, w->e.nthreads);
    uint32_t n = HL_ENDS_BYTES;
    if (w->dropped || w->missed || w->cut_errno) {
        hl_put_le64(buf + 20, w->dropped);
        hl_put_le64(buf + 28, w->missed);
        hl_put_le32(buf + 36, w->cut_errno);
        n = HL_ENDS_LOSS_BYTES;
    }
    w->in_section = 0;
    w->dropped = w->missed = 0;
    w->cut_errno = 0;
    return write_block(w, HL_TAG_ENDS, buf, n, n, 0, err);
}

void hl_writer_set_losses(struct hl_writer *w, uint64_t dropped, uint64_t missed,
                          uint32_t cut_errno)
{
    w->dropped = dropped;
    w->missed = missed;
    w->cut_errno = cut_errno;
}

/* Check that event e may give back slot s (not HL_NO_SLOT). */
static int check_live(struct hl_writer *w, const struct hl_event *e, uint64_t s, struct hl_err *err)
{
    const char *op = hl_op_name(e->op);
    if (s >= w->e.next_slot)
        return fail(w, err, "event %llu of pid %u: %s names slot %llu, but only %llu slots are "
                    "allocated", (unsigned long long)w->e.nevents, w->pid, op,
                    (unsigned long long)s, (unsigned long long)w->e.next_slot);
    if (!hl_liveset_take(&w->live, s, 1))
        return fail(w, err, "event %llu of pid %u: %s names slot %llu, which was already freed",
                    (unsigned long long)w->e.nevents, w->pid, op, (unsigned long long)s);
    return 0;
}

/* The slot rule and the fields an op may use (trace.h), for producers that do not
 * guarantee them.  Returns 0, or -1 with err set; *ref_out is the slot given back. */
static int check_event(struct hl_writer *w, const struct hl_event *e, uint64_t *ref_out,
                       struct hl_err *err)
{
    unsigned long long n = w->e.nevents;
    int op = e->op;
    const char *name = hl_op_name(op);
    if (!name)
        return fail(w, err, "event %llu of pid %u: unknown op %d", n, w->pid, op);
    if (e->flags & ~(HL_EV_FAILED | HL_EV_UNKNOWN))
        return fail(w, err, "event %llu of pid %u: unknown flags 0x%x", n, w->pid, e->flags);
    if (e->thread >= HL_MAX_THREADS)
        return fail(w, err, "event %llu of pid %u: thread index %u is too large", n, w->pid,
                    e->thread);
    if (e->aux && !hl_op_has_aux(op))
        return fail(w, err, "event %llu of pid %u: %s must have aux 0, got %llu", n, w->pid, name,
                    (unsigned long long)e->aux);
    int takes = hl_op_takes_block(op), allocates = hl_op_allocates(op);
    if ((e->flags & HL_EV_UNKNOWN) && !takes)
        return fail(w, err, "event %llu of pid %u: %s cannot be of an unknown pointer", n, w->pid,
                    name);
    if ((e->flags & HL_EV_FAILED) && !allocates)
        return fail(w, err, "event %llu of pid %u: free cannot fail", n, w->pid);

    /* The slot given back (free: slot; realloc: old_slot). */
    uint64_t ref = HL_NO_SLOT;
    if (op == HL_OP_FREE) {
        if (e->size)
            return fail(w, err, "event %llu of pid %u: free must have size 0", n, w->pid);
        if (e->old_slot != HL_NO_SLOT)
            return fail(w, err, "event %llu of pid %u: free names its block in slot, not old_slot",
                        n, w->pid);
        ref = e->slot;
    } else if (takes) {
        ref = e->old_slot;
    } else if (e->old_slot != HL_NO_SLOT) {
        return fail(w, err, "event %llu of pid %u: %s must have old_slot HL_NO_SLOT", n, w->pid,
                    name);
    }
    if ((e->flags & HL_EV_UNKNOWN) && ref != HL_NO_SLOT)
        return fail(w, err, "event %llu of pid %u: %s of an unknown pointer names slot %llu", n,
                    w->pid, name, (unsigned long long)ref);
    if (ref != HL_NO_SLOT && check_live(w, e, ref, err) < 0)
        return -1;
    if (allocates) {
        if (e->flags & HL_EV_FAILED) {
            if (e->slot != HL_NO_SLOT)
                return fail(w, err, "event %llu of pid %u: failed %s must have slot HL_NO_SLOT, "
                            "got %llu", n, w->pid, name, (unsigned long long)e->slot);
        } else if (e->slot != w->e.next_slot) {
            return fail(w, err, "event %llu of pid %u: %s must take the next slot %llu, got %llu",
                        n, w->pid, name, (unsigned long long)w->e.next_slot,
                        (unsigned long long)e->slot);
        } else if (w->e.next_slot == HL_NO_SLOT - 1) {
            return fail(w, err, "event %llu of pid %u: too many slots in one section", n, w->pid);
        }
    }
    *ref_out = ref;
    return 0;
}

/* The modes a chunk's events are encoded in (hl_enc_event's want0, want1). */
static unsigned want0_of(const struct hl_writer *w)
{
    return w->trial ? 3 : ~w->modes;
}

static unsigned want1_of(const struct hl_writer *w)
{
    return w->trial ? 3 : w->modes;
}

static int unknown_op(struct hl_writer *w, const struct hl_event *e, struct hl_err *err)
{
    return fail(w, err, "event %llu of pid %u: unknown op %d", (unsigned long long)w->e.nevents,
                w->pid, e->op);
}

int hl_writer_event(struct hl_writer *w, const struct hl_event *e, struct hl_err *err)
{
    if (!w->in_section)
        return fail(w, err, "event before any process section (hl_writer_begin_process)");
    uint64_t ref = HL_NO_SLOT;
    if (w->trusted) {
        if (e->op <= 0 || e->op >= HL_OP_COUNT_)
            return unknown_op(w, e, err);
        ref = hl_enc_ref(e);
    } else {
        if (check_event(w, e, &ref, err) < 0)
            return -1;
        /* The section's live slots: realloc gives the old block back unless it failed. */
        if (ref != HL_NO_SLOT && !(e->flags & HL_EV_FAILED))
            hl_liveset_take(&w->live, ref, 0);
        if ((hl_enc_op_bits[e->op] & 2) && !(e->flags & HL_EV_FAILED) &&
            hl_liveset_add(&w->live, w->e.next_slot) < 0) {
            w->failed = 1;
            return fail(w, err, "out of memory");
        }
    }
    hl_enc_event(&w->e, e, ref, want0_of(w), want1_of(w));
    hl_enc_count(&w->e, 1);
    if (w->e.chunk_n >= w->chunk_max)
        return flush_chunk(w, err);
    return 0;
}

uint32_t hl_writer_room(const struct hl_writer *w)
{
    return w->chunk_max - w->e.chunk_n;
}

struct enc *hl_writer_enc(struct hl_writer *w, unsigned *want0, unsigned *want1)
{
    *want0 = want0_of(w);
    *want1 = want1_of(w);
    return &w->e;
}

int hl_writer_enc_done(struct hl_writer *w, struct hl_err *err)
{
    return w->e.chunk_n >= w->chunk_max ? flush_chunk(w, err) : 0;
}

/* Encode e[0..n) of a trusted producer, all in the same modes, holding the encoder's
 * state in registers; stops before an unknown op.  Returns the events encoded. */
static inline __attribute__((always_inline)) size_t encode_run(struct hl_writer *w,
                                                               const struct hl_event *e,
                                                               size_t n, unsigned want0,
                                                               unsigned want1)
{
    struct enc s = w->e;
    size_t i = 0;
    for (; i < n; i++) {
        if (__builtin_expect(e[i].op <= 0 || e[i].op >= HL_OP_COUNT_, 0))
            break;
        hl_enc_event(&s, &e[i], hl_enc_ref(&e[i]), want0, want1);
    }
    hl_enc_count(&s, i);
    w->e = s;
    return i;
}

int hl_writer_events(struct hl_writer *w, const struct hl_event *e, size_t n, struct hl_err *err)
{
    if (!w->trusted || !w->in_section) {
        for (size_t i = 0; i < n; i++)
            if (hl_writer_event(w, &e[i], err) < 0)
                return -1;
        return 0;
    }
    while (n) {
        size_t k = w->chunk_max - w->e.chunk_n, done;
        if (k > n)
            k = n;
#define ENCODE_RUN(want0, want1) encode_run(w, e, k, want0, want1)
        done = HL_ENC_BY_MODES(want0_of(w), want1_of(w), ENCODE_RUN);
#undef ENCODE_RUN
        if (w->e.chunk_n >= w->chunk_max && flush_chunk(w, err) < 0)
            return -1;
        if (done < k)
            return unknown_op(w, &e[done], err);
        e += k;
        n -= k;
    }
    return 0;
}

static void writer_free(struct hl_writer *w)
{
    free(w->path);
    free(w->tmp);
    if (!keep_spare(w)) {
        for (int c = 0; c < HL_NCOLS; c++) {
            free(w->col[c]);
            free(w->alt[c]);
            free(w->z[c]);
            free(w->zalt[c]);
        }
        ZSTD_freeCCtx(w->cctx);
    }
    hl_liveset_destroy(&w->live);
    free(w->pg);
    free(w);
}

int hl_writer_close(struct hl_writer *w, struct hl_err *err)
{
    int rc = 0;
    if (w->in_section)
        rc = hl_writer_end_process(w, err);
    if (rc == 0 && fflush(w->f) != 0)
        rc = fail(w, err, "write failed: %s", strerror(errno));
    if (fclose(w->f) != 0 && rc == 0)
        rc = fail(w, err, "write failed: %s", strerror(errno));
    w->f = NULL;
    if (rc == 0 && rename(w->tmp, w->path) != 0)
        rc = fail(w, err, "cannot rename %s into place: %s", w->tmp, strerror(errno));
    if (rc != 0)
        unlink(w->tmp);
    writer_free(w);
    return rc;
}

void hl_writer_stop(struct hl_writer *w)
{
    if (w->f)
        fclose(w->f);
    w->f = NULL;
    writer_free(w);
}

void hl_writer_abort(struct hl_writer *w)
{
    if (!w)
        return;
    if (w->f) {
        fclose(w->f);
        unlink(w->tmp);
    }
    writer_free(w);
}
