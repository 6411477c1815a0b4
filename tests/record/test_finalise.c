/*
 * test_finalise.c: the finaliser (traces/finalise.c) on raw captures written by hand
 * from the format in traces/preload/raw.h, read back through hl_reader.  Unit suite,
 * so it also runs under the sanitizers: the finaliser parses files a killed process
 * may have left half written.
 */
#include "finalise.h"
#include "preload/raw.h"
#include "tap.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];

/* ---- writing raw files ---- */

struct chunk {
    uint64_t w[4096];
    size_t n;
    uint64_t last_seq, last_ptr;
};

static int raw_create(const char *name, uint32_t pid, uint32_t ppid, uint64_t start_mono)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    struct hl_raw_header h;
    memset(&h, 0, sizeof h);
    memcpy(h.magic, HL_RAW_MAGIC, 8);
    h.version = HL_RAW_VERSION;
    h.header_bytes = sizeof h;
    h.pid = pid;
    h.ppid = ppid;
    h.page_size = 4096;
    h.start_mono_ns = start_mono;
    h.start_tsc = start_mono; /* one tick per nanosecond */
    snprintf(h.cmdline, sizeof h.cmdline, "prog %u", pid);
    h.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    if (write(fd, &h, sizeof h) != (ssize_t)sizeof h)
        abort();
    return fd;
}

static void chunk_start(struct chunk *c, uint64_t tsc)
{
    c->n = 0;
    c->last_seq = c->last_ptr = 0;
    c->w[c->n++] = HL_RAW_TIME << 1;
    c->w[c->n++] = tsc;
}

static void add_time(struct chunk *c, uint64_t tsc)
{
    c->w[c->n++] = HL_RAW_TIME << 1;
    c->w[c->n++] = tsc;
}

/* A long record: w0, ptr, then the op's extra words, then the size if big. */
static void add_long(struct chunk *c, unsigned op, unsigned flags, uint64_t seq, uint64_t ptr,
                     uint64_t size, const uint64_t *extra, int nextra)
{
    if (hl_raw_needs_seq64(seq, c->last_seq))
        flags |= HL_RAWF_SEQ64;
    c->w[c->n++] = hl_raw_w0(seq, size, op, flags);
    c->w[c->n++] = ptr;
    for (int i = 0; i < nextra; i++)
        c->w[c->n++] = extra[i];
    if (size >= HL_RAW_SIZE_BIG)
        c->w[c->n++] = size;
    if (flags & HL_RAWF_SEQ64)
        c->w[c->n++] = seq;
    c->last_seq = seq;
    c->last_ptr = ptr;
}

static void add_short(struct chunk *c, unsigned op, uint64_t seq, uint64_t ptr, uint64_t size)
{
    uint64_t w = hl_raw_short(op, seq, c->last_seq, ptr, c->last_ptr, size);
    if (!w)
        abort(); /* the test itself is wrong: this record cannot be short */
    c->w[c->n++] = w;
    c->last_seq = seq;
    c->last_ptr = ptr;
}

static void realloc_rec(struct chunk *c, unsigned flags, uint64_t seq0, uint64_t seq,
                        uint64_t old, uint64_t ptr, uint64_t size)
{
    uint64_t extra[2] = {seq0, old};
    add_long(c, HL_RAW_REALLOC, flags, seq, ptr, size, extra, 2);
}

/* A malloc or free as the interposer writes it: short where it can be. */
static void add_rec(struct chunk *c, unsigned op, uint64_t seq, uint64_t ptr, uint64_t size)
{
    if (hl_raw_short(op, seq, c->last_seq, ptr, c->last_ptr, size))
        add_short(c, op, seq, ptr, size);
    else
        add_long(c, op, 0, seq, ptr, size, NULL, 0);
}

/* The horizon mark that ends a chunk a thread flushed itself (raw.h). */
static void add_mark(struct chunk *c, uint64_t horizon)
{
    c->w[c->n++] = (uint64_t)HL_RAW_MARK << 1;
    c->w[c->n++] = horizon;
}

/* A chunk as the bytes write(2) gets; returns their count. */
static size_t chunk_bytes(struct chunk *c, uint32_t thread, uint64_t flush_tsc, uint8_t *buf)
{
    struct hl_raw_chunk h = {HL_RAW_CHUNK_MAGIC, thread, (uint32_t)(c->n * 8), 0, flush_tsc,
                             flush_tsc, 0};
    uint64_t sum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    h.checksum = hl_raw_checksum(sum, c->w, c->n);
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, c->w, c->n * 8);
    return sizeof h + c->n * 8;
}

static void chunk_write(int fd, struct chunk *c, uint32_t thread, uint64_t flush_tsc)
{
    struct hl_raw_chunk h = {HL_RAW_CHUNK_MAGIC, thread, (uint32_t)(c->n * 8), 0, flush_tsc,
                             flush_tsc, 0};
    uint64_t sum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    h.checksum = hl_raw_checksum(sum, c->w, c->n);
    if (write(fd, &h, sizeof h) != (ssize_t)sizeof h ||
        write(fd, c->w, c->n * 8) != (ssize_t)(c->n * 8))
        abort();
}

/* ---- reading the result ---- */

static struct hl_event *events[8];
static size_t nevents[8];
static struct hl_process procs[8];
static int nprocs;

static int finalise_and_read(struct hl_finalise_stats *st)
{
    char out[512];
    struct hl_err err;
    snprintf(out, sizeof out, "%s/out.hlt", dir);
    for (int i = 0; i < nprocs; i++)
        free(events[i]);
    nprocs = 0;
    if (hl_finalise(dir, out, st, &err) != 0) {
        tap_diag("finalise: %s", err.msg);
        return -1;
    }
    struct hl_reader *r = hl_reader_open(out, &err);
    if (!r)
        return -1;
    while (nprocs < 8 && hl_reader_next_process(r, &procs[nprocs], &err) == 1) {
        if (hl_reader_read_all(r, &events[nprocs], &nevents[nprocs], &err) != 0) {
            hl_reader_close(r);
            return -1;
        }
        nprocs++;
    }
    hl_reader_close(r);
    unlink(out);
    return 0;
}

static void clear_dir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -f %s/*", dir);
    if (system(cmd) != 0)
        abort();
}

static int ev_is(const struct hl_event *e, int op, uint32_t thread, uint64_t size, uint64_t aux,
                 uint64_t slot, uint64_t old_slot, int flags)
{
    return e->op == op && e->thread == thread && e->size == size && e->aux == aux &&
           e->slot == slot && e->old_slot == old_slot && e->flags == flags;
}

#define NS HL_NO_SLOT

int main(void)
{
    snprintf(dir, sizeof dir, "%s/heaplab-test-finalise.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    struct hl_finalise_stats st;
    struct chunk c;

    /* 1. one thread, every kind of record */
    int fd = raw_create("1-1.hlraw", 100, 1, 1000);
    chunk_start(&c, 1100);
    /* #0: the chunk's first pointer is too far from 0 for a short record */
    add_long(&c, HL_RAW_MALLOC, 0, 1, 0x7f0000001000, 24, NULL, 0);
    add_short(&c, HL_RAW_MALLOC, 2, 0x7f0000001040, 100);   /* #1 */
    add_long(&c, HL_RAW_MALLOC, 0, 3, 0x7f0000100000, 70000, NULL, 0); /* big: #2 */
    uint64_t cal[1] = {10};
    add_long(&c, HL_RAW_CALLOC, 0, 4, 0x7f0000002000, 8, cal, 1);       /* #3 */
    add_short(&c, HL_RAW_FREE, 5, 0x7f0000001040, 0);                   /* free #1 */
    realloc_rec(&c, 0, 6, 7, 0x7f0000002000, 0x7f0000003000, 300);     /* #3 -> #4 */
    add_long(&c, HL_RAW_MALLOC, HL_RAWF_FAILED, 8, 0, 1ull << 62, NULL, 0);
    realloc_rec(&c, HL_RAWF_FAILED, 9, 10, 0x7f0000003000, 0, 1ull << 61); /* #4 stays */
    realloc_rec(&c, HL_RAWF_FREED, 11, 12, 0x7f0000003000, 0, 0);       /* free #4 */
    realloc_rec(&c, 0, 13, 13, 0, 0x7f0000004000, 40);                  /* NULL -> #5 */
    uint64_t al[1] = {64};
    add_long(&c, HL_RAW_POSIX_MEMALIGN, 0, 14, 0x7f0000005000, 512, al, 1); /* #6 */
    add_short(&c, HL_RAW_FREE, 15, 0x7f0000009990, 0);                  /* unknown */
    chunk_write(fd, &c, 0, 2000);
    close(fd);
    int ok = finalise_and_read(&st) == 0 && nprocs == 1;
    TAP_CHECK(ok, "a one-thread capture finalises into one section");
    if (ok) {
        struct hl_event *e = events[0];
        TAP_EQ_U(nevents[0], 12, "every record is an event");
        TAP_CHECK(ev_is(&e[0], HL_OP_MALLOC, 0, 24, 0, 0, NS, 0) &&
                      ev_is(&e[1], HL_OP_MALLOC, 0, 100, 0, 1, NS, 0),
                  "short malloc records decode (size, slot)");
        TAP_CHECK(ev_is(&e[2], HL_OP_MALLOC, 0, 70000, 0, 2, NS, 0),
                  "a size too big for the compact field comes from its extra word");
        TAP_CHECK(ev_is(&e[3], HL_OP_CALLOC, 0, 8, 10, 3, NS, 0), "calloc keeps nmemb");
        if (!TAP_CHECK(ev_is(&e[4], HL_OP_FREE, 0, 0, 0, 1, NS, 0), "a short free names its slot"))
            tap_diag("op %d size %llu slot %llu flags %d", e[4].op, (unsigned long long)e[4].size, (unsigned long long)e[4].slot, e[4].flags);
        TAP_CHECK(ev_is(&e[5], HL_OP_REALLOC, 0, 300, 0, 4, 3, 0), "realloc: old slot -> new");
        TAP_CHECK(ev_is(&e[6], HL_OP_MALLOC, 0, 1ull << 62, 0, NS, NS, HL_EV_FAILED),
                  "a failed malloc is flagged and takes no slot");
        TAP_CHECK(ev_is(&e[7], HL_OP_REALLOC, 0, 1ull << 61, 0, NS, 4, HL_EV_FAILED),
                  "a failed realloc keeps its old block");
        TAP_CHECK(ev_is(&e[8], HL_OP_FREE, 0, 0, 0, 4, NS, 0),
                  "realloc(p, 0) that freed p becomes free(p)");
        TAP_CHECK(ev_is(&e[9], HL_OP_REALLOC, 0, 40, 0, 5, NS, 0), "realloc(NULL, n)");
        TAP_CHECK(ev_is(&e[10], HL_OP_POSIX_MEMALIGN, 0, 512, 64, 6, NS, 0),
                  "posix_memalign keeps its alignment");
        TAP_CHECK(ev_is(&e[11], HL_OP_FREE, 0, 0, 0, NS, NS, HL_EV_UNKNOWN),
                  "a free of an address never allocated is unknown");
        TAP_EQ_U(st.unknown, 1, "stats count the unknown free");
        TAP_CHECK(procs[0].pid == 100 && procs[0].ppid == 1 &&
                      strcmp(procs[0].cmdline, "prog 100") == 0,
                  "the process header comes from the raw header");
        /* times: a reading at 1100, the flush at 2000, 12 records evenly between */
        TAP_CHECK(e[0].time_ns == 100 && e[1].time_ns == 175 && e[11].time_ns == 925,
                  "times come from clock readings, spread evenly, relative to the start "
                  "(%llu, %llu, %llu)", (unsigned long long)e[0].time_ns,
                  (unsigned long long)e[1].time_ns, (unsigned long long)e[11].time_ns);
    }

    /* 2. two threads: an address freed by one thread's realloc is reused by another
     * before the realloc returns; a block crosses threads. */
    clear_dir();
    fd = raw_create("2-1.hlraw", 200, 1, 0);
    struct chunk a, b;
    chunk_start(&b, 10);
    add_short(&b, HL_RAW_MALLOC, 3, 0x1000, 32);          /* gets A's old address */
    add_short(&b, HL_RAW_FREE, 5, 0x1000, 0);
    add_short(&b, HL_RAW_FREE, 7, 0x2000, 0);             /* frees A's new block */
    chunk_write(fd, &b, 1, 100); /* thread 1's chunk is written first */
    chunk_start(&a, 5);
    add_short(&a, HL_RAW_MALLOC, 1, 0x1000, 16);
    realloc_rec(&a, 0, 2, 4, 0x1000, 0x2000, 64);
    add_time(&a, 50);
    add_short(&a, HL_RAW_MALLOC, 6, 0x3000, 8);
    chunk_write(fd, &a, 0, 100);
    close(fd);
    ok = finalise_and_read(&st) == 0 && nprocs == 1 && nevents[0] == 6;
    TAP_CHECK(ok, "a two-thread capture merges into one section of 6 events");
    if (ok) {
        struct hl_event *e = events[0];
        TAP_CHECK(ev_is(&e[0], HL_OP_MALLOC, 0, 16, 0, 0, NS, 0) &&
                      ev_is(&e[1], HL_OP_MALLOC, 1, 32, 0, 1, NS, 0) &&
                      ev_is(&e[2], HL_OP_REALLOC, 0, 64, 0, 2, 0, 0) &&
                      ev_is(&e[3], HL_OP_FREE, 1, 0, 0, 1, NS, 0) &&
                      ev_is(&e[4], HL_OP_MALLOC, 0, 8, 0, 3, NS, 0) &&
                      ev_is(&e[5], HL_OP_FREE, 1, 0, 0, 2, NS, 0),
                  "merged by sequence; realloc frees its old address before it returns");
        TAP_EQ_U(st.unknown, 0, "no unknown frees in a causal merge");
        TAP_CHECK(e[0].thread == 0 && e[1].thread == 1,
                  "thread 0 is the thread that recorded first");
    }

    /* 3. processes in start order; empty and foreign files */
    clear_dir();
    fd = raw_create("a-late.hlraw", 301, 300, 5000);
    chunk_start(&c, 5001);
    add_short(&c, HL_RAW_MALLOC, 1, 0x1000, 1);
    chunk_write(fd, &c, 0, 6000);
    close(fd);
    fd = raw_create("b-early.hlraw", 300, 1, 1000);
    chunk_start(&c, 1001);
    add_short(&c, HL_RAW_MALLOC, 1, 0x1000, 2);
    chunk_write(fd, &c, 0, 2000);
    close(fd);
    char path[600];
    snprintf(path, sizeof path, "%s/c-empty.hlraw", dir);
    close(open(path, O_WRONLY | O_CREAT, 0600));
    ok = finalise_and_read(&st) == 0 && nprocs == 2;
    TAP_CHECK(ok && procs[0].pid == 300 && procs[1].pid == 301,
              "sections are ordered by start time, not by file name");
    TAP_CHECK(ok && st.damaged == 0, "an empty raw file (died before its header) is skipped");
    snprintf(path, sizeof path, "%s/d-junk.hlraw", dir);
    fd = open(path, O_WRONLY | O_CREAT, 0600);
    char junk[2000];
    memset(junk, 'x', sizeof junk);
    if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk)
        abort();
    close(fd);
    ok = finalise_and_read(&st) == 0 && nprocs == 2;
    TAP_CHECK(ok && st.damaged == 1 && strstr(st.damage, "d-junk.hlraw: not a heaplab raw"),
              "a file that is not a raw capture is skipped and reported");

    /* 4. damage: a bad checksum in the second of three chunks, a cut-short last chunk */
    clear_dir();
    fd = raw_create("4-1.hlraw", 400, 1, 0);
    off_t offs[3];
    for (int k = 0; k < 3; k++) {
        offs[k] = lseek(fd, 0, SEEK_CUR);
        chunk_start(&c, 10 + (uint64_t)k);
        add_short(&c, HL_RAW_MALLOC, (uint64_t)k + 1, 0x1000 * ((uint64_t)k + 1), 8);
        chunk_write(fd, &c, 0, 20 + (uint64_t)k);
    }
    close(fd);
    snprintf(path, sizeof path, "%s/4-1.hlraw", dir);
    fd = open(path, O_RDWR);
    char byte;
    if (pread(fd, &byte, 1, offs[1] + (off_t)sizeof(struct hl_raw_chunk) + 9) != 1)
        abort();
    byte ^= 0x40;
    if (pwrite(fd, &byte, 1, offs[1] + (off_t)sizeof(struct hl_raw_chunk) + 9) != 1)
        abort();
    close(fd);
    ok = finalise_and_read(&st) == 0 && nprocs == 1;
    char want[64];
    snprintf(want, sizeof want, "checksum mismatch at byte %lld", (long long)offs[1]);
    TAP_CHECK(ok && nevents[0] == 1, "a damaged chunk: the chunks before it are kept");
    TAP_CHECK(ok && st.damaged == 1 && strstr(st.damage, "4-1.hlraw") && strstr(st.damage, want),
              "a damaged chunk is reported with the file and its byte offset");
    if (truncate(path, offs[1] + 20) != 0)
        abort();
    ok = finalise_and_read(&st) == 0 && nprocs == 1;
    TAP_CHECK(ok && nevents[0] == 1 && st.damaged == 1 && strstr(st.damage, "cut short"),
              "a chunk cut short (a killed writer) ends the file there");

    /* 4b. a thread's records written twice (at exit by another thread, then by the
     * thread itself): the repeats are skipped, nothing is reported */
    clear_dir();
    fd = raw_create("4b.hlraw", 450, 1, 0);
    chunk_start(&c, 10);
    add_short(&c, HL_RAW_MALLOC, 1, 0x1000, 8);
    add_short(&c, HL_RAW_MALLOC, 2, 0x1010, 8);
    chunk_write(fd, &c, 0, 20);
    add_short(&c, HL_RAW_FREE, 3, 0x1000, 0);
    chunk_write(fd, &c, 0, 30); /* the same chunk grown: records 1, 2 again, then 3 */
    close(fd);
    ok = finalise_and_read(&st) == 0 && nprocs == 1;
    TAP_CHECK(ok && nevents[0] == 3 && st.damaged == 0 && events[0][2].op == HL_OP_FREE &&
                  events[0][2].slot == 0,
              "records written twice are read once, without a damage report");

    /* 4c. finalised in steps while the capture grows (as `heaplab record` does while
     * the program runs).  Thread 1 holds sequence number 3 in its buffer while thread
     * 0 flushes 4 and 6; the marks say so, and the merge must wait for 3.  The pid is
     * this test's own, so that the image counts as still running. */
    clear_dir();
    fd = raw_create("4c.hlraw", (uint32_t)getpid(), 1, 0);
    char live[600], after[600];
    snprintf(live, sizeof live, "%s/live.hlt", dir);
    snprintf(after, sizeof after, "%s/after.hlt", dir);
    struct hl_err err;
    struct hl_finaliser *fz = hl_finaliser_new(dir, live, &err);
    ok = fz && hl_finaliser_poll(fz, &err) >= 0;
    chunk_start(&a, 10);
    add_short(&a, HL_RAW_MALLOC, 1, 0x1000, 16);
    add_short(&a, HL_RAW_MALLOC, 2, 0x2000, 16);
    add_mark(&a, 3);
    chunk_write(fd, &a, 0, 20);
    ok = ok && hl_finaliser_poll(fz, &err) >= 0;
    chunk_start(&a, 30);
    add_short(&a, HL_RAW_MALLOC, 4, 0x3000, 16);
    add_short(&a, HL_RAW_FREE, 6, 0x2000, 0);
    add_mark(&a, 3);
    static uint8_t bytes[sizeof(struct hl_raw_chunk) + sizeof a.w];
    size_t nb = chunk_bytes(&a, 0, 40, bytes);
    ok = ok && write(fd, bytes, nb / 2) == (ssize_t)(nb / 2); /* half written so far */
    ok = ok && hl_finaliser_poll(fz, &err) >= 0;
    ok = ok && write(fd, bytes + nb / 2, nb - nb / 2) == (ssize_t)(nb - nb / 2);
    ok = ok && hl_finaliser_poll(fz, &err) >= 0;
    chunk_start(&b, 15);
    add_short(&b, HL_RAW_FREE, 3, 0x1000, 0);   /* frees thread 0's first block */
    add_short(&b, HL_RAW_MALLOC, 5, 0x1000, 24); /* and gets its address again */
    add_mark(&b, 7);
    chunk_write(fd, &b, 1, 45);
    ok = ok && hl_finaliser_poll(fz, &err) >= 0;
    close(fd);
    ok = ok && hl_finaliser_finish(fz, &st, &err) == 0;
    if (!ok)
        tap_diag("finalise in steps: %s", err.msg);
    TAP_CHECK(ok && st.events == 6 && st.damaged == 0,
              "finalised in steps: every event, and a chunk caught half written is no damage");
    struct hl_finalise_stats st2;
    ok = ok && hl_finalise(dir, after, &st2, &err) == 0;
    int same = 0;
    if (ok) {
        FILE *x = fopen(live, "rb"), *y = fopen(after, "rb");
        int cx, cy;
        same = x && y;
        while (same && ((cx = getc(x)) != EOF) | ((cy = getc(y)) != EOF))
            same = cx == cy;
        if (x)
            fclose(x);
        if (y)
            fclose(y);
    }
    TAP_CHECK(same, "finalised in steps: the same trace, byte for byte, as in one go");
    unlink(after);
    ok = ok && rename(live, after) == 0;
    ok = ok && unlink(after) == 0; /* only raw files left for finalise_and_read */
    snprintf(path, sizeof path, "%s/4c.hlraw", dir);
    ok = ok && finalise_and_read(&st) == 0 && nevents[0] == 6;
    if (ok) {
        struct hl_event *e = events[0];
        TAP_CHECK(ev_is(&e[0], HL_OP_MALLOC, 0, 16, 0, 0, NS, 0) &&
                      ev_is(&e[1], HL_OP_MALLOC, 0, 16, 0, 1, NS, 0) &&
                      ev_is(&e[2], HL_OP_FREE, 1, 0, 0, 0, NS, 0) &&
                      ev_is(&e[3], HL_OP_MALLOC, 0, 16, 0, 2, NS, 0) &&
                      ev_is(&e[4], HL_OP_MALLOC, 1, 24, 0, 3, NS, 0) &&
                      ev_is(&e[5], HL_OP_FREE, 0, 0, 0, 1, NS, 0),
                  "finalised in steps: merged in sequence order across the wait for a thread");
    } else {
        TAP_CHECK(0, "finalised in steps: merged in sequence order across the wait for a thread");
    }

    /* 5. sequence numbers past 2^40 (a long record keeps 40 bits of them): two
     * threads whose records cross the boundary, a chunk that starts past it (its first
     * record carries the whole number) and a realloc whose two numbers straddle it. */
    clear_dir();
    {
        const uint64_t b = (1ull << 40) - 3;
        fd = raw_create("5.hlraw", 500, 1, 0);
        chunk_start(&c, 100);
        add_long(&c, HL_RAW_MALLOC, 0, b, 0x7f0000001000, 32, NULL, 0);      /* #0 */
        add_short(&c, HL_RAW_MALLOC, b + 2, 0x7f0000001040, 48);            /* #2 */
        realloc_rec(&c, 0, b + 3, b + 4, 0x7f0000001000, 0x7f0000002000, 64); /* #0 -> #3 */
        chunk_write(fd, &c, 0, 200);
        chunk_start(&c, 150);
        add_long(&c, HL_RAW_MALLOC, 0, b + 1, 0x7f0000009000, 16, NULL, 0);  /* #1, thread 1 */
        add_long(&c, HL_RAW_CALLOC, 0, b + 5, 0x7f000000a000, 8, (uint64_t[]){4}, 1); /* #4 */
        add_short(&c, HL_RAW_FREE, b + 6, 0x7f0000009000, 0);               /* free #1 */
        chunk_write(fd, &c, 1, 250);
        chunk_start(&c, 300);
        add_long(&c, HL_RAW_FREE, 0, b + 7, 0x7f0000002000, 0, NULL, 0);     /* free #3 */
        add_short(&c, HL_RAW_FREE, b + 8, 0x7f0000001040, 0);               /* free #2 */
        chunk_write(fd, &c, 0, 400);
        close(fd);
        int ok = finalise_and_read(&st) == 0 && nprocs == 1 && nevents[0] == 8;
        struct hl_event *e = ok ? events[0] : NULL;
        TAP_CHECK(ok && ev_is(&e[0], HL_OP_MALLOC, 0, 32, 0, 0, NS, 0) &&
                      ev_is(&e[1], HL_OP_MALLOC, 1, 16, 0, 1, NS, 0) &&
                      ev_is(&e[2], HL_OP_MALLOC, 0, 48, 0, 2, NS, 0) &&
                      ev_is(&e[3], HL_OP_REALLOC, 0, 64, 0, 3, 0, 0) &&
                      ev_is(&e[4], HL_OP_CALLOC, 1, 8, 4, 4, NS, 0) &&
                      ev_is(&e[5], HL_OP_FREE, 1, 0, 0, 1, NS, 0) &&
                      ev_is(&e[6], HL_OP_FREE, 0, 0, 0, 3, NS, 0) &&
                      ev_is(&e[7], HL_OP_FREE, 0, 0, 0, 2, NS, 0),
                  "sequence numbers crossing 2^40 merge in order (whole numbers where needed)");
    }

    /* 5b. long clock runs and long runs of one thread: records between two clock
     * readings get evenly spaced times however many there are (here more than the
     * finaliser decodes at a time), a chunk that starts without a reading goes on at
     * the step of the run before it, and threads merge in order where they switch. */
    {
        clear_dir();
        int fd = raw_create("7-1.hlraw", 7, 1, 50);
        struct chunk c;
        const uint64_t P = 0x7f0000100000, Q = 0x7f0000200000;
        chunk_start(&c, 100); /* thread 1: seq 0..299, one tick apart */
        for (uint64_t k = 0; k < 300; k++)
            add_rec(&c, HL_RAW_MALLOC, k, Q + 16 * k, 40);
        chunk_write(fd, &c, 1, 400);
        chunk_start(&c, 1000); /* thread 0: seq 300..599 */
        for (uint64_t k = 0; k < 300; k++)
            add_rec(&c, HL_RAW_MALLOC, 300 + k, P + 16 * k, 24);
        chunk_write(fd, &c, 0, 1300);
        c.n = 0; /* thread 0 again, no reading: seq 600..899 go on at one tick */
        c.last_seq = c.last_ptr = 0;
        for (uint64_t k = 0; k < 300; k++)
            add_rec(&c, HL_RAW_FREE, 600 + k, P + 16 * k, 0);
        chunk_write(fd, &c, 0, 1700);
        chunk_start(&c, 2000); /* thread 1: seq 900..1199 */
        for (uint64_t k = 0; k < 300; k++)
            add_rec(&c, HL_RAW_FREE, 900 + k, Q + 16 * k, 0);
        chunk_write(fd, &c, 1, 2300);
        close(fd);
        int ok = finalise_and_read(&st) == 0 && nprocs == 1 && nevents[0] == 1200;
        int order = ok, times = ok;
        for (size_t i = 0; ok && i < 1200; i++) {
            const struct hl_event *e = &events[0][i];
            uint64_t k = i % 300, part = i / 300;
            static const uint64_t start[4] = {100, 1000, 1300, 2000};
            order &= part == 0 ? ev_is(e, HL_OP_MALLOC, 0, 40, 0, k, NS, 0)
                   : part == 1 ? ev_is(e, HL_OP_MALLOC, 1, 24, 0, 300 + k, NS, 0)
                   : part == 2 ? ev_is(e, HL_OP_FREE, 1, 0, 0, 300 + k, NS, 0)
                               : ev_is(e, HL_OP_FREE, 0, 0, 0, k, NS, 0);
            times &= e->time_ns == start[part] + k - 50;
        }
        TAP_CHECK(order, "long runs of each thread merge in sequence order, slots follow");
        TAP_CHECK(times, "long clock runs: evenly spaced times, continued into a chunk "
                         "without a reading");
    }

    /* 6. the header's counts of waits for finalising (raw.h: BACKLOG), and a version 5
     * header, whose longer command line ran over where they are now */
    for (unsigned version = 5; version <= 6; version++) {
        clear_dir();
        fd = raw_create("6-1.hlraw", 600, 1, 0);
        chunk_start(&c, 10);
        add_rec(&c, HL_RAW_MALLOC, 1, 0x1000, 16);
        add_rec(&c, HL_RAW_FREE, 2, 0x1000, 0);
        chunk_write(fd, &c, 0, 20);
        close(fd);
        struct hl_raw_header h;
        snprintf(path, sizeof path, "%s/6-1.hlraw", dir);
        fd = open(path, O_RDWR);
        if (fd < 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
            abort();
        h.version = version;
        if (version == 5) {
            /* version 5's cmdline was 1000 bytes: its end lies over held_ns and held */
            memset(h.cmdline, 'x', sizeof h.cmdline);
            memset((char *)&h.held_ns, 'x', 16);
        } else {
            h.held = 3;
            h.held_ns = 1500000000;
        }
        h.checksum = 0;
        h.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
        if (pwrite(fd, &h, sizeof h, 0) != (ssize_t)sizeof h)
            abort();
        close(fd);
        ok = finalise_and_read(&st) == 0 && nprocs == 1 && nevents[0] == 2;
        if (version == 6)
            TAP_CHECK(ok && st.held == 3 && st.held_ns == 1500000000,
                      "the header's waits for finalising reach the stats (%llu, %llu ns)",
                      (unsigned long long)st.held, (unsigned long long)st.held_ns);
        else
            TAP_CHECK(ok && st.held == 0 && st.held_ns == 0 &&
                          strlen(procs[0].cmdline) == sizeof h.cmdline - 1,
                      "a version 5 header: no waits read from its command line's end, "
                      "the command line cut to the field (%llu, %zu bytes)",
                      (unsigned long long)st.held, ok ? strlen(procs[0].cmdline) : 0);
    }

    /* 7. nothing to finalise */
    clear_dir();
    snprintf(path, sizeof path, "%s/none.hlt", dir);
    TAP_CHECK(hl_finalise(dir, path, &st, &err) != 0 && strstr(err.msg, dir) &&
                  access(path, F_OK) != 0,
              "an empty capture is an error naming the folder, and writes no trace");
    TAP_CHECK(hl_finalise("/no/such/dir", path, &st, &err) != 0 && strstr(err.msg, "/no/such"),
              "a missing capture folder is an error naming it");

    for (int i = 0; i < nprocs; i++)
        free(events[i]);
    rmdir(dir);
    return tap_done();
}
