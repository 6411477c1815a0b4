/*
 * reader.c: hl_reader, which decodes a trace file (format.h) into events.
 *
 * The file is mapped read-only and walked block by block.  Every length, count and
 * index read from the file is checked before it is used (the fuzz targets in
 * tests/fuzz/ feed this code hostile bytes): a damaged block stops the reader with an
 * error naming the file and the block's byte offset, after every event of the good
 * chunks before it has been returned.  Errors are sticky: once a reader has failed,
 * every later call fails with the same message.
 *
 * Decoding is the hot path of replay planning and `stat`, so each chunk is
 * decompressed into one buffer and its columns are walked in a single tight loop, a
 * batch of HL_BATCH events per call so that the caller reads them while they are still
 * in the cache.  A chunk whose checksum holds but whose content does not add up (only a
 * buggy or hostile writer makes one) may therefore be reported after some of its events
 * were returned; a truncated or damaged chunk never has any of its events returned.
 */
#include "trace.h"
#include "codec.h"
#include "format.h"
#include "liveset.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>


enum { ST_BETWEEN, ST_SECTION, ST_FAILED };

/* Events decoded per hl_reader_events call: a batch (160 KiB of events) stays in the
 * cache while the caller consumes it, which a whole chunk (65536 events, 2.6 MB) does
 * not. */
#define HL_BATCH HL_READER_BATCH

struct block {
    size_t off; /* of the header */
    uint32_t tag, stored, raw, nevents;
    const uint8_t *payload;
};

struct hl_reader {
    char *name;
    const uint8_t *data;
    size_t len;
    size_t map_len; /* non-zero if data is our mapping */
    size_t released; /* pages of the mapping below this were given back */
    int fd;          /* the file, if mapped (else -1) */
    size_t pos;     /* offset of the next block */
    int state;
    struct hl_err sticky;
    char hash[17];
    pthread_t hash_th;   /* hl_reader_hash_begin's thread, while hash_bg */
    int hash_bg;
    int hash_ok;         /* the thread read the whole file: hash_val is its hash */
    uint64_t hash_val;
    uint32_t version;

    /* the current section */
    uint32_t pid;
    uint64_t nevents;
    uint64_t next_slot;
    uint32_t nthreads;
    uint64_t last_time;
    struct hl_liveset live; /* to refuse double frees */
    int trust_slots;        /* hl_reader_trust_slots: the caller checks them instead */
    int no_times;           /* hl_reader_skip_times: the time columns are left packed */
    int live_ok;

    /* the chunk being decoded, a batch at a time */
    uint32_t left;       /* its events not yet decoded */
    size_t chunk_off;    /* its block's offset, for errors */
    const uint8_t *cp[HL_NCOLS], *ce[HL_NCOLS];
    uint32_t thread;     /* thread of the last event decoded */
    unsigned modes;      /* format.h, HL_MODE_* */
    uint64_t prev_ref;   /* HL_MODE_REF_PREV's prediction */
    int64_t prev_dt;     /* HL_MODE_TIME_DD's prediction */

    struct hl_event *ev; /* HL_BATCH events */
    uint8_t *raw;
    ZSTD_DCtx *dctx;
};

__attribute__((format(printf, 3, 4))) static int fail(struct hl_reader *r, struct hl_err *err,
                                                      const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(r->sticky.msg, sizeof r->sticky.msg, "%s: %s", r->name, what);
    r->state = ST_FAILED;
    if (err)
        *err = r->sticky;
    return -1;
}

static void hash_join(struct hl_reader *r);

/* Give back the pages of the mapping in [from, to) (page-aligned inward), so that
 * reading a long trace holds a bounded window of it in memory. */
static void drop_pages(struct hl_reader *r, size_t from, size_t to)
{
    if (!r->map_len)
        return;
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    from = (from + pg - 1) & ~(pg - 1);
    to &= ~(pg - 1);
    if (to > from)
        madvise((void *)(r->data + from), to - from, MADV_DONTNEED);
}

/* Called as the reading position moves on: let go of what lies behind it. */
static void release_behind(struct hl_reader *r)
{
    if (r->pos - r->released >= ((size_t)8 << 20)) {
        drop_pages(r, r->released, r->pos);
        r->released = r->pos & ~(size_t)(sysconf(_SC_PAGESIZE) - 1);
    }
}

static const char *tag_name(uint32_t tag)
{
    switch (tag) {
    case HL_TAG_PROC:
        return "process header";
    case HL_TAG_CHNK:
        return "chunk";
    case HL_TAG_ENDS:
        return "section trailer";
    case HL_TAG_PAGE:
        return "pages block";
    default:
        return "block";
    }
}

/* Read and check the block at r->pos (header and payload checksums, lengths). */
static int read_block(struct hl_reader *r, struct block *b, struct hl_err *err)
{
    size_t off = r->pos;
    b->off = off;
    if (r->len - off < HL_BLOCK_HEADER_BYTES)
        return fail(r, err, "truncated at byte offset %zu: a block header needs %u bytes, "
                    "the file ends at %zu", off, HL_BLOCK_HEADER_BYTES, r->len);
    const uint8_t *h = r->data + off;
    if (hl_crc32c(0, h, 20) != hl_get_le32(h + 20))
        return fail(r, err, "corrupted block header at byte offset %zu (checksum mismatch)", off);
    b->tag = hl_get_le32(h);
    b->stored = hl_get_le32(h + 4);
    b->raw = hl_get_le32(h + 8);
    b->nevents = hl_get_le32(h + 12);
    if (b->tag != HL_TAG_PROC && b->tag != HL_TAG_CHNK && b->tag != HL_TAG_ENDS &&
        (b->tag != HL_TAG_PAGE || r->version < 4))
        return fail(r, err, "corrupted block at byte offset %zu (unknown tag 0x%08x)", off, b->tag);
    uint32_t max_raw = b->tag == HL_TAG_CHNK   ? HL_CHUNK_MAX_RAW
                       : b->tag == HL_TAG_PAGE ? HL_PAGE_MAX_BYTES
                                               : HL_META_MAX_BYTES;
    uint32_t max_stored = b->tag == HL_TAG_CHNK   ? HL_BLOCK_MAX_BYTES
                          : b->tag == HL_TAG_PAGE ? HL_PAGE_MAX_BYTES
                                                  : HL_META_MAX_BYTES;
    if (b->stored > max_stored || b->raw > max_raw)
        return fail(r, err, "corrupted %s at byte offset %zu (length %u out of range)",
                    tag_name(b->tag), off, b->stored > max_stored ? b->stored : b->raw);
    if (b->tag != HL_TAG_CHNK && (b->raw != b->stored || b->nevents != 0))
        return fail(r, err, "corrupted %s at byte offset %zu (bad header fields)",
                    tag_name(b->tag), off);
    if (b->tag == HL_TAG_CHNK && (b->nevents == 0 || b->nevents > HL_CHUNK_MAX_EVENTS))
        return fail(r, err, "corrupted chunk at byte offset %zu (%u events out of range)", off,
                    b->nevents);
    if (r->len - off - HL_BLOCK_HEADER_BYTES < b->stored)
        return fail(r, err, "truncated at byte offset %zu: the %s there needs %zu bytes, "
                    "the file ends at %zu", off, tag_name(b->tag),
                    (size_t)HL_BLOCK_HEADER_BYTES + b->stored, r->len);
    b->payload = h + HL_BLOCK_HEADER_BYTES;
    if (hl_crc32c(0, b->payload, b->stored) != hl_get_le32(h + 16))
        return fail(r, err, "corrupted %s at byte offset %zu (checksum mismatch)",
                    tag_name(b->tag), off);
    r->pos = off + HL_BLOCK_HEADER_BYTES + b->stored;
    return 0;
}

/* The chunk buffer (megabytes: sized for the largest chunk), the event batch and the
 * decompression context of the last reader closed, kept for the next one: a program
 * reading many small traces (a fuzzer, an importer reading back what it wrote) does
 * not map, fault in and unmap them for each. */
static uint8_t *g_spare_raw;
static struct hl_event *g_spare_ev;
static ZSTD_DCtx *g_spare_dctx;
static pthread_mutex_t g_spare_lock = PTHREAD_MUTEX_INITIALIZER;

static struct hl_reader *reader_new(const char *name, struct hl_err *err)
{
    struct hl_reader *r = calloc(1, sizeof *r);
    if (r) {
        r->name = strdup(name);
        pthread_mutex_lock(&g_spare_lock);
        r->raw = g_spare_raw;
        r->ev = g_spare_ev;
        r->dctx = g_spare_dctx;
        g_spare_raw = NULL;
        g_spare_ev = NULL;
        g_spare_dctx = NULL;
        pthread_mutex_unlock(&g_spare_lock);
        if (!r->ev)
            r->ev = malloc(HL_BATCH * sizeof *r->ev);
        if (r->dctx)
            ZSTD_DCtx_reset(r->dctx, ZSTD_reset_session_and_parameters);
        else
            r->dctx = ZSTD_createDCtx();
        r->fd = -1;
        r->live_ok = hl_liveset_init(&r->live) == 0;
    }
    if (!r || !r->name || !r->ev || !r->dctx || !r->live_ok) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", name);
        hl_reader_close(r);
        return NULL;
    }
    return r;
}

static struct hl_reader *check_header(struct hl_reader *r, struct hl_err *err)
{
    if (r->len < HL_FILE_HEADER_BYTES || memcmp(r->data, HL_FORMAT_MAGIC, 8) != 0) {
        snprintf(err->msg, sizeof err->msg, "%s: not a heaplab trace (%s)", r->name,
                 r->len == 0 ? "empty file"
                 : r->len < HL_FILE_HEADER_BYTES &&
                         memcmp(r->data, HL_FORMAT_MAGIC, r->len < 8 ? r->len : 8) == 0
                     ? "truncated file header"
                     : "bad magic");
        hl_reader_close(r);
        return NULL;
    }
    uint32_t v = hl_get_le32(r->data + 8);
    if (v < HL_FORMAT_MIN_VERSION || v > HL_FORMAT_VERSION) {
        snprintf(err->msg, sizeof err->msg,
                 "%s: unsupported trace version %u (this heaplab reads versions %u to %u)",
                 r->name, v, HL_FORMAT_MIN_VERSION, HL_FORMAT_VERSION);
        hl_reader_close(r);
        return NULL;
    }
    r->version = v;
    r->pos = HL_FILE_HEADER_BYTES;
    return r;
}

struct hl_reader *hl_reader_open_mem(const void *buf, size_t len, const char *name,
                                     struct hl_err *err)
{
    struct hl_reader *r = reader_new(name, err);
    if (!r)
        return NULL;
    r->data = buf;
    r->len = len;
    return check_header(r, err);
}

struct hl_reader *hl_reader_open(const char *path, struct hl_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err->msg, sizeof err->msg, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    struct hl_reader *r = reader_new(path, err);
    if (!r) {
        close(fd);
        return NULL;
    }
    if (st.st_size > 0) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            snprintf(err->msg, sizeof err->msg, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            hl_reader_close(r);
            return NULL;
        }
        r->data = m;
        r->len = r->map_len = (size_t)st.st_size;
        r->fd = fd; /* peek_blocks reads headers with pread: see there */
    } else {
        r->data = (const uint8_t *)"";
        close(fd);
    }
    return check_header(r, err);
}

void hl_reader_close(struct hl_reader *r)
{
    if (!r)
        return;
    hash_join(r);
    if (r->map_len)
        munmap((void *)r->data, r->map_len);
    if (r->fd >= 0)
        close(r->fd);
    free(r->name);
    if (r->live_ok)
        hl_liveset_destroy(&r->live);
    pthread_mutex_lock(&g_spare_lock);
    if (r->ev && !g_spare_ev) {
        g_spare_ev = r->ev;
        r->ev = NULL;
    }
    if (r->raw && !g_spare_raw) {
        g_spare_raw = r->raw;
        r->raw = NULL;
    }
    if (r->dctx && !g_spare_dctx) {
        g_spare_dctx = r->dctx;
        r->dctx = NULL;
    }
    pthread_mutex_unlock(&g_spare_lock);
    free(r->ev);
    free(r->raw);
    ZSTD_freeDCtx(r->dctx);
    free(r);
}

/* hl_reader_hash_begin's thread: the file through a buffer of its own (pread), not
 * the reader's mapping, whose pages the decoder gives back behind it. */
static void *hash_main(void *arg)
{
    struct hl_reader *r = arg;
    const size_t piece = (size_t)1 << 20;
    uint8_t *buf = malloc(piece);
    uint64_t h = HL_FNV_INIT;
    size_t off = 0;
    while (buf && off < r->len) {
        const size_t want = r->len - off < piece ? r->len - off : piece;
        ssize_t k = pread(r->fd, buf, want, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        h = hl_fnv1a64(h, buf, (size_t)k);
        off += (size_t)k;
    }
    free(buf);
    r->hash_ok = off == r->len;
    r->hash_val = h;
    return NULL;
}

void hl_reader_hash_begin(struct hl_reader *r)
{
    if (r->hash[0] || r->hash_bg || r->fd < 0)
        return;
    r->hash_bg = pthread_create(&r->hash_th, NULL, hash_main, r) == 0;
}

/* Wait for hl_reader_hash_begin's thread, taking its hash if it read the whole file. */
static void hash_join(struct hl_reader *r)
{
    if (!r->hash_bg)
        return;
    pthread_join(r->hash_th, NULL);
    r->hash_bg = 0;
    if (r->hash_ok)
        snprintf(r->hash, sizeof r->hash, "%016" PRIx64, r->hash_val);
}

const char *hl_reader_hash(struct hl_reader *r)
{
    hash_join(r);
    if (!r->hash[0]) {
        uint64_t h = HL_FNV_INIT;
        const size_t piece = (size_t)8 << 20;
        for (size_t off = 0; off < r->len; off += piece) {
            size_t n = r->len - off < piece ? r->len - off : piece;
            h = hl_fnv1a64(h, r->data + off, n);
            drop_pages(r, off, off + n); /* a window at a time (reading maps it again) */
        }
        snprintf(r->hash, sizeof r->hash, "%016" PRIx64, h);
    }
    return r->hash;
}

/* Skip the rest of the current section (the caller did not read all its events). */
static int skip_section(struct hl_reader *r, struct hl_err *err)
{
    struct block b;
    for (;;) {
        if (r->pos == r->len)
            return fail(r, err, "truncated at byte offset %zu: the section of pid %u has no "
                        "trailer", r->pos, r->pid);
        if (read_block(r, &b, err) < 0)
            return -1;
        if (b.tag == HL_TAG_ENDS)
            break;
        if (b.tag == HL_TAG_PROC)
            return fail(r, err, "corrupted file at byte offset %zu (a process header inside "
                        "a section)", b.off);
    }
    r->state = ST_BETWEEN;
    return 0;
}

/* Look ahead for the section's trailer to fill in its counts; headers only, and
 * silently: damage is reported when the events get there. */
static void peek_blocks(struct hl_reader *r, struct hl_process *p, size_t *at);

static void peek_trailer(struct hl_reader *r, struct hl_process *p)
{
    size_t pos = r->pos;
    peek_blocks(r, p, &pos);
}

/* Bytes a look-ahead reads at a block: its header, and an ENDS payload with it. */
#define PEEK_BYTES (HL_BLOCK_HEADER_BYTES + HL_ENDS_LOSS_BYTES)

/* A look-ahead's view of the block at pos (into buf, PEEK_BYTES): its header and what
 * follows of it, or NULL where a look-ahead stops (the file's end, a damaged header, a
 * tag other than CHNK, PAGE or ENDS, a block past the end).  Through the file, not the
 * map: a fault on the map brings the pages around it in too (fault-around), and one
 * header a chunk would map the whole file. */
static const uint8_t *peek_header(const struct hl_reader *r, size_t pos, uint8_t *buf)
{
    if (r->len - pos < HL_BLOCK_HEADER_BYTES)
        return NULL;
    const uint8_t *h = r->data + pos;
    if (r->fd >= 0) {
        size_t want = r->len - pos < PEEK_BYTES ? r->len - pos : PEEK_BYTES;
        if (pread(r->fd, buf, want, (off_t)pos) != (ssize_t)want)
            return NULL;
        h = buf;
    }
    uint32_t tag = hl_get_le32(h);
    if (hl_crc32c(0, h, 20) != hl_get_le32(h + 20) ||
        (tag != HL_TAG_CHNK && tag != HL_TAG_ENDS && tag != HL_TAG_PAGE) ||
        r->len - pos - HL_BLOCK_HEADER_BYTES < hl_get_le32(h + 4))
        return NULL;
    return h;
}

/* The section's trailer counts, looking from *at on over block headers; *at ends where
 * the look stopped. */
static void peek_blocks(struct hl_reader *r, struct hl_process *p, size_t *at)
{
    size_t pos = *at;
    uint8_t buf[PEEK_BYTES];
    const uint8_t *h;
    while ((h = peek_header(r, pos, buf))) {
        uint32_t tag = hl_get_le32(h), stored = hl_get_le32(h + 4);
        if (tag == HL_TAG_ENDS) {
            if ((stored == HL_ENDS_BYTES || stored == HL_ENDS_LOSS_BYTES) &&
                r->len - pos >= HL_BLOCK_HEADER_BYTES + stored &&
                hl_crc32c(0, h + 24, stored) == hl_get_le32(h + 16)) {
                p->nevents = hl_get_le64(h + 24);
                p->nslots = hl_get_le64(h + 32) - p->first_slot;
                p->nthreads = hl_get_le32(h + 40);
                if (stored == HL_ENDS_LOSS_BYTES) {
                    p->dropped = hl_get_le64(h + 44);
                    p->missed = hl_get_le64(h + 52);
                    p->cut_errno = hl_get_le32(h + 60);
                }
            }
            break;
        }
        pos += HL_BLOCK_HEADER_BYTES + stored;
    }
    *at = pos;
}

int hl_reader_next_process(struct hl_reader *r, struct hl_process *p, struct hl_err *err)
{
    if (r->state == ST_FAILED) {
        *err = r->sticky;
        return -1;
    }
    r->left = 0; /* the rest of a chunk being decoded is skipped with its section */
    if (r->state == ST_SECTION && skip_section(r, err) < 0)
        return -1;
    if (r->pos == r->len)
        return 0;
    struct block b;
    if (read_block(r, &b, err) < 0)
        return -1;
    if (b.tag != HL_TAG_PROC)
        return fail(r, err, "corrupted file at byte offset %zu (a %s where a process header "
                    "should start)", b.off, tag_name(b.tag));
    memset(p, 0, sizeof *p);
    const uint8_t *q = b.payload, *end = q + b.stored;
    if (b.stored < 24)
        return fail(r, err, "corrupted process header at byte offset %zu (too short)", b.off);
    p->pid = hl_get_le32(q);
    p->ppid = hl_get_le32(q + 4);
    p->page_size = hl_get_le32(q + 8);
    p->start_realtime_ns = hl_get_le64(q + 12);
    q += 20;
    if (r->version >= 3) {
        if (end - q < 12)
            return fail(r, err, "corrupted process header at byte offset %zu (too short)", b.off);
        p->flags = hl_get_le32(q);
        p->first_slot = hl_get_le64(q + 4);
        q += 12;
        if (p->flags & ~HL_PROC_KNOWN_FLAGS || p->first_slot > HL_NO_SLOT / 2 ||
            (!(p->flags & HL_PROC_UNRECORDED) && (p->flags & HL_PROC_WHY_MASK)) ||
            hl_proc_why(p->flags) >= HL_UNREC_COUNT_)
            return fail(r, err, "corrupted process header at byte offset %zu (bad flags or first "
                        "slot)", b.off);
    }
    char *dst[2] = {p->cmdline, p->exe};
    size_t caps[2] = {sizeof p->cmdline, sizeof p->exe};
    for (int i = 0; i < 2; i++) {
        if (end - q < 2)
            return fail(r, err, "corrupted process header at byte offset %zu (too short)", b.off);
        size_t n = q[0] | (size_t)q[1] << 8;
        q += 2;
        if (n >= caps[i] || (size_t)(end - q) < n || memchr(q, 0, n))
            return fail(r, err, "corrupted process header at byte offset %zu (bad string)", b.off);
        memcpy(dst[i], q, n);
        dst[i][n] = 0;
        q += n;
    }
    if (q != end)
        return fail(r, err, "corrupted process header at byte offset %zu (trailing bytes)", b.off);
    peek_trailer(r, p);
    r->state = ST_SECTION;
    r->left = 0;
    r->pid = p->pid;
    r->nevents = 0;
    r->next_slot = p->first_slot;
    r->nthreads = 0;
    r->last_time = 0;
    hl_liveset_clear(&r->live);
    return 1;
}

/* Decode a PAGE payload, calling fn for each pair; the slots must be below next_slot.
 * NULL, or what is wrong with it. */
static const char *each_page(const uint8_t *q, const uint8_t *end, uint64_t next_slot,
                             void (*fn)(void *ctx, uint64_t slot, uint64_t pages), void *ctx)
{
    while (q < end) {
        uint64_t slot, pages;
        if (hl_get_varint(&q, end, &slot) || hl_get_varint(&q, end, &pages))
            return "a pair cut short";
        if (slot >= next_slot || pages > HL_PAGE_MAX_PAGES)
            return "a pair out of range";
        if (fn)
            fn(ctx, slot, pages);
    }
    return NULL;
}

struct pages_out {
    struct hl_pages *v;
    size_t n, cap;
    int nomem;
};

static void add_page(void *ctx, uint64_t slot, uint64_t pages)
{
    struct pages_out *o = ctx;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        struct hl_pages *v = realloc(o->v, cap * sizeof *v);
        if (!v) {
            o->nomem = 1;
            return;
        }
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = (struct hl_pages){slot, pages};
}

ssize_t hl_reader_pages(struct hl_reader *r, struct hl_pages **out, struct hl_err *err)
{
    *out = NULL;
    if (r->state == ST_FAILED) {
        *err = r->sticky;
        return -1;
    }
    if (r->state != ST_SECTION || r->version < 4)
        return 0;
    struct pages_out o = {NULL, 0, 0, 0};
    uint8_t hb[PEEK_BYTES], *pay = NULL;
    const uint8_t *h;
    /* Over the block headers from here to the trailer, as peek_blocks (silently: damage
     * is the events' to report), reading only the PAGE payloads. */
    for (size_t pos = r->pos; (h = peek_header(r, pos, hb)) && hl_get_le32(h) != HL_TAG_ENDS;) {
        uint32_t tag = hl_get_le32(h), stored = hl_get_le32(h + 4);
        if (tag == HL_TAG_PAGE && stored <= HL_PAGE_MAX_BYTES) {
            const uint8_t *q = r->data + pos + HL_BLOCK_HEADER_BYTES;
            if (r->fd >= 0) {
                if (!pay && !(pay = malloc(HL_PAGE_MAX_BYTES)))
                    break;
                if (pread(r->fd, pay, stored, (off_t)(pos + HL_BLOCK_HEADER_BYTES)) != (ssize_t)stored)
                    break;
                q = pay;
            }
            if (hl_crc32c(0, q, stored) != hl_get_le32(h + 16) ||
                each_page(q, q + stored, HL_NO_SLOT, add_page, &o))
                break;
        }
        pos += HL_BLOCK_HEADER_BYTES + stored;
    }
    free(pay);
    if (o.nomem) {
        free(o.v);
        return fail(r, err, "out of memory");
    }
    *out = o.v;
    return (ssize_t)o.n;
}

/* Op properties for the decoder: bit 0 has a size, 1 has aux, 2 takes a block,
 * 3 allocates.  Zero marks an invalid op. */
static const uint8_t op_props[16] = {
    [HL_OP_MALLOC] = 1 | 8,
    [HL_OP_CALLOC] = 1 | 2 | 8,
    [HL_OP_REALLOC] = 1 | 4 | 8,
    [HL_OP_FREE] = 4,
    [HL_OP_POSIX_MEMALIGN] = 1 | 2 | 8,
    [HL_OP_ALIGNED_ALLOC] = 1 | 2 | 8,
    [HL_OP_MEMALIGN] = 1 | 2 | 8,
    [HL_OP_VALLOC] = 1 | 8,
    [HL_OP_PVALLOC] = 1 | 8,
    [HL_OP_REALLOCARRAY] = 1 | 2 | 4 | 8,
};

static const size_t col_max[HL_NCOLS] = HL_COL_MAX_BYTES;

static inline int is_time_col(int c)
{
    return c == HL_COL_TIME_LO || c == HL_COL_TIME_HI;
}

/* Unpack a chunk's columns into r->raw: cp[c], ce[c] bound column c.  Returns NULL on
 * success or a reason. */
static const char *unpack_columns(struct hl_reader *r, const struct block *b,
                                  uint64_t *first_slot, uint64_t *base_time,
                                  const uint8_t **cp, const uint8_t **ce)
{
    const uint8_t *p = b->payload, *end = p + b->stored;
    uint64_t mode = 0;
    if (hl_get_varint(&p, end, first_slot) || hl_get_varint(&p, end, base_time) ||
        (r->version >= 2 && hl_get_varint(&p, end, &mode)))
        return "bad chunk header";
    if (mode & ~(uint64_t)(HL_MODE_REF_PREV | HL_MODE_TIME_DD))
        return "unknown modes";
    r->modes = (unsigned)mode;
    uint8_t *out = r->raw;
    size_t total = 0;
    for (int c = 0; c < HL_NCOLS; c++) {
        uint64_t raw, stored;
        if (hl_get_varint(&p, end, &raw) || hl_get_varint(&p, end, &stored))
            return "bad column header";
        if (raw > col_max[c] * b->nevents || total + raw > b->raw)
            return "column length out of range";
        if (r->no_times && is_time_col(c)) {
            if ((uint64_t)(end - p) < (stored ? stored : raw))
                return "column runs past the chunk";
            cp[c] = ce[c] = NULL; /* not unpacked (hl_reader_skip_times) */
            p += stored ? stored : raw;
            total += raw;
            continue;
        }
        if (stored == 0) {
            if ((uint64_t)(end - p) < raw)
                return "column runs past the chunk";
            cp[c] = p;
            p += raw;
        } else {
            if ((uint64_t)(end - p) < stored)
                return "column runs past the chunk";
            size_t got = ZSTD_decompressDCtx(r->dctx, out, (size_t)raw, p, (size_t)stored);
            if (ZSTD_isError(got))
                return ZSTD_getErrorName(got);
            if (got != raw)
                return "column decompresses to the wrong size";
            cp[c] = out;
            out += raw;
            p += stored;
        }
        ce[c] = cp[c] + raw;
        total += raw;
    }
    if (p != end || total != b->raw)
        return "column lengths do not match the chunk";
    if ((size_t)(ce[HL_COL_OPF] - cp[HL_COL_OPF]) != b->nevents)
        return "op column does not match the event count";
    return NULL;
}

/* One lo/hi pair (format.h). */
static inline int get_lohi(const uint8_t **lo, const uint8_t *lo_end, const uint8_t **hi,
                           const uint8_t *hi_end, uint64_t *out)
{
    uint64_t h;
    if (*lo >= lo_end || hl_get_varint(hi, hi_end, &h) || h >> 56)
        return -1;
    *out = h << 8 | *(*lo)++;
    return 0;
}

/* Start decoding a chunk: unpack its columns and check that it continues the section.
 * Returns NULL on success or a reason. */
static const char *start_chunk(struct hl_reader *r, const struct block *b)
{
    uint64_t first_slot, base_time;
    const char *why = unpack_columns(r, b, &first_slot, &base_time, r->cp, r->ce);
    if (why)
        return why;
    if (first_slot != r->next_slot)
        return "chunk does not follow the previous one (slot numbering)";
    if (base_time != r->last_time && !r->no_times)
        return "chunk does not follow the previous one (time base)";
    uint32_t n = b->nevents;
    /* At most n allocations: check the slot limit once, outside the decode loop. */
    if (r->next_slot + n >= HL_NO_SLOT / 2)
        return "too many slots";
    if (!(r->cp[HL_COL_OPF][0] & HL_OPF_THREAD) && r->nthreads == 0)
        r->nthreads = 1; /* thread 0 is seen without a THREAD entry */
    r->thread = 0;
    r->prev_ref = r->next_slot;
    r->prev_dt = 0;
    r->left = n;
    r->chunk_off = b->off;
    return NULL;
}

/* Decode the next n events of the current chunk into r->ev, checking with the live set
 * that every slot given back is live (check_live) or leaving that to the caller
 * (hl_reader_trust_slots), with their times (times) or with 0 for them
 * (hl_reader_skip_times).  Returns NULL on success or a reason. */
static inline __attribute__((always_inline)) const char *
decode_batch_(struct hl_reader *r, uint32_t n, const int check_live, const int times)
{
    /* Local copies: with -fno-strict-aliasing, pointers kept in *r would be reloaded
     * after every store to an event. */
    const uint8_t *cp[HL_NCOLS], *ce[HL_NCOLS];
    memcpy(cp, r->cp, sizeof cp);
    memcpy(ce, r->ce, sizeof ce);
    const uint8_t *opf = cp[HL_COL_OPF];
    struct hl_liveset *live = &r->live;
    uint64_t next = r->next_slot;
    uint64_t t = r->last_time;
    uint32_t thread = r->thread, maxthread = r->nthreads;
    const int ref_prev = !!(r->modes & HL_MODE_REF_PREV);
    const int time_dd = !!(r->modes & HL_MODE_TIME_DD);
    uint64_t prev_dt = (uint64_t)r->prev_dt;
    uint64_t prev_ref = r->prev_ref;
    struct hl_event *ev = r->ev;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t b8 = opf[i];
        unsigned op = b8 & HL_OPF_OP_MASK;
        uint8_t props = op_props[op];
        struct hl_event *e = &ev[i];
        uint64_t v;
        if (!props)
            return "unknown op";
        e->op = (uint8_t)op;
        e->flags = (b8 >> 4) & 3;
        if (b8 & HL_OPF_THREAD) {
            if (hl_get_varint(&cp[HL_COL_THREAD], ce[HL_COL_THREAD], &v) || v >= HL_MAX_THREADS)
                return "bad thread column";
            thread = (uint32_t)v;
            if (thread + 1 > maxthread)
                maxthread = thread + 1;
        }
        e->thread = thread;
        e->size = 0;
        if ((props & 1) && get_lohi(&cp[HL_COL_SIZE_LO], ce[HL_COL_SIZE_LO], &cp[HL_COL_SIZE_HI],
                                    ce[HL_COL_SIZE_HI], &e->size))
            return "bad size column";
        e->aux = 0;
        if ((props & 2) && hl_get_varint(&cp[HL_COL_AUX], ce[HL_COL_AUX], &e->aux))
            return "bad aux column";
        uint64_t ref = HL_NO_SLOT;
        if (props & 4) {
            if ((b8 & (HL_OPF_UNKNOWN | HL_OPF_NOREF)) == 0) {
                if (hl_get_varint(&cp[HL_COL_REF], ce[HL_COL_REF], &v))
                    return "bad slot reference";
                if (!ref_prev) {
                    if (v >= next)
                        return "bad slot reference";
                    ref = next - 1 - v;
                } else {
                    uint64_t s = prev_ref + (uint64_t)hl_unzigzag(v);
                    if (s >= next)
                        return "bad slot reference";
                    ref = prev_ref = s;
                }
                if (check_live && !hl_liveset_take(live, ref, !!(b8 & HL_OPF_FAILED)))
                    return "a slot given back twice";
            } else if ((b8 & (HL_OPF_UNKNOWN | HL_OPF_NOREF)) == (HL_OPF_UNKNOWN | HL_OPF_NOREF)) {
                return "bad op flags";
            }
        } else if (b8 & (HL_OPF_UNKNOWN | HL_OPF_NOREF)) {
            return "bad op flags";
        }
        if (op == HL_OP_FREE) {
            if (b8 & HL_OPF_FAILED)
                return "bad op flags";
            e->slot = ref;
            e->old_slot = HL_NO_SLOT;
        } else {
            e->old_slot = ref;
            if (b8 & HL_OPF_FAILED) {
                e->slot = HL_NO_SLOT;
            } else {
                if (check_live && hl_liveset_add(live, next) < 0)
                    return "out of memory";
                e->slot = next++;
            }
        }
        if (!times) {
            e->time_ns = 0;
            continue;
        }
        /* TIME: the step, or its change (format.h). */
        if (cp[HL_COL_TIME_LO] >= ce[HL_COL_TIME_LO] ||
            hl_get_varint(&cp[HL_COL_TIME_HI], ce[HL_COL_TIME_HI], &v) || v >> 57)
            return "bad time column";
        if (!time_dd)
            prev_dt = ((uint64_t)hl_unzigzag(v) << 8) | *cp[HL_COL_TIME_LO]++;
        else if (v >> 56)
            return "bad time column";
        else
            prev_dt += (uint64_t)hl_unzigzag(v << 8 | *cp[HL_COL_TIME_LO]++);
        t += prev_dt;
        e->time_ns = t;
    }
    cp[HL_COL_OPF] = opf + n;
    memcpy(r->cp, cp, sizeof cp);
    r->next_slot = next;
    r->last_time = t;
    r->thread = thread;
    r->prev_ref = prev_ref;
    r->prev_dt = (int64_t)prev_dt;
    r->nthreads = maxthread;
    r->left -= n;
    if (r->left == 0)
        for (int c = 0; c < HL_NCOLS; c++)
            if (cp[c] != ce[c] && (times || !is_time_col(c)))
                return "column lengths do not match the events";
    return NULL;
}

/* The four loops, each free of the tests it does not need. */
static const char *decode_batch(struct hl_reader *r, uint32_t n)
{
    if (r->no_times)
        return r->trust_slots ? decode_batch_(r, n, 0, 0) : decode_batch_(r, n, 1, 0);
    return r->trust_slots ? decode_batch_(r, n, 0, 1) : decode_batch_(r, n, 1, 1);
}

void hl_reader_trust_slots(struct hl_reader *r)
{
    r->trust_slots = 1;
}

void hl_reader_skip_times(struct hl_reader *r)
{
    r->no_times = 1;
}

ssize_t hl_reader_events(struct hl_reader *r, const struct hl_event **events,
                         struct hl_err *err)
{
    if (r->state == ST_FAILED) {
        *err = r->sticky;
        return -1;
    }
    if (r->state != ST_SECTION)
        return 0;
    if (r->left > 0)
        goto batch;
    if (r->pos == r->len)
        return fail(r, err, "truncated at byte offset %zu: the section of pid %u has no trailer",
                    r->pos, r->pid);
    struct block b;
next_block:
    release_behind(r);
    if (read_block(r, &b, err) < 0)
        return -1;
    if (b.tag == HL_TAG_PROC)
        return fail(r, err, "truncated section at byte offset %zu: pid %u has no trailer "
                    "before the next process header", b.off, r->pid);
    if (b.tag == HL_TAG_PAGE) { /* checked; hl_reader_pages returns them */
        const char *why = each_page(b.payload, b.payload + b.stored, r->next_slot, NULL, NULL);
        if (why)
            return fail(r, err, "corrupted pages block at byte offset %zu (%s)", b.off, why);
        if (r->pos == r->len)
            return fail(r, err, "truncated at byte offset %zu: the section of pid %u has no "
                        "trailer", r->pos, r->pid);
        goto next_block;
    }
    if (b.tag == HL_TAG_ENDS) {
        const uint8_t *q = b.payload;
        if (b.stored != HL_ENDS_BYTES && b.stored != HL_ENDS_LOSS_BYTES)
            return fail(r, err, "corrupted section trailer at byte offset %zu (size)", b.off);
        if (hl_get_le64(q) != r->nevents || hl_get_le64(q + 8) != r->next_slot ||
            hl_get_le32(q + 16) != r->nthreads)
            return fail(r, err, "corrupted section trailer at byte offset %zu (its counts do not "
                        "match the events)", b.off);
        r->state = ST_BETWEEN;
        return 0;
    }
    if (!r->raw && !(r->raw = malloc(HL_CHUNK_MAX_RAW)))
        return fail(r, err, "out of memory");
    const char *why = start_chunk(r, &b);
    if (why)
        return fail(r, err, "corrupted chunk at byte offset %zu (%s)", b.off, why);
batch:;
    uint32_t n = r->left < HL_BATCH ? r->left : HL_BATCH;
    why = decode_batch(r, n);
    if (why)
        return fail(r, err, "corrupted chunk at byte offset %zu (%s)", r->chunk_off, why);
    r->nevents += n;
    *events = r->ev;
    return n;
}

int hl_reader_read_all(struct hl_reader *r, struct hl_event **out, size_t *n,
                       struct hl_err *err)
{
    struct hl_event *all = NULL;
    size_t cnt = 0, cap = 0;
    const struct hl_event *ev;
    ssize_t k;
    while ((k = hl_reader_events(r, &ev, err)) > 0) {
        if (cnt + (size_t)k > cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            while (ncap < cnt + (size_t)k)
                ncap *= 2;
            struct hl_event *na = realloc(all, ncap * sizeof *na);
            if (!na) {
                free(all);
                fail(r, err, "out of memory");
                *out = NULL;
                *n = 0;
                return -1;
            }
            all = na;
            cap = ncap;
        }
        memcpy(all + cnt, ev, (size_t)k * sizeof *ev);
        cnt += (size_t)k;
    }
    if (k < 0) {
        free(all);
        *out = NULL;
        *n = 0;
        return -1;
    }
    *out = all;
    *n = cnt;
    return 0;
}
