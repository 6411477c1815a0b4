/*
 * test_trace.c: the trace library (traces/trace.h): writer and reader round trips,
 * the slot rule, multi-process files, many chunks, damaged files (truncated, a flipped
 * byte, wrong magic or version), the file hash and the address -> slot map.
 */
#include "codec.h"
#include "format.h"
#include "synth.h"
#include "tap.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/hltrace-test.XXXXXX";

static const char *path(const char *name)
{
    static char buf[8][256];
    static int k;
    char *p = buf[k++ % 8];
    snprintf(p, 256, "%s/%s", dir, name);
    return p;
}

static struct hl_event ev(int op, uint8_t flags, uint64_t size, uint64_t aux, uint64_t slot,
                          uint64_t old_slot, uint32_t thread, uint64_t t)
{
    struct hl_event e = {.time_ns = t, .size = size, .aux = aux, .slot = slot,
                         .old_slot = old_slot, .thread = thread, .op = (uint8_t)op,
                         .flags = flags};
    return e;
}

#define N HL_NO_SLOT

/* One event of every op and flag combination the format allows. */
static const struct hl_event *all_ops(size_t *n)
{
    static struct hl_event e[32];
    size_t k = 0;
    e[k++] = ev(HL_OP_MALLOC, 0, 64, 0, 0, N, 0, 1000);
    e[k++] = ev(HL_OP_CALLOC, 0, 8, 10, 1, N, 0, 1010);
    e[k++] = ev(HL_OP_FREE, 0, 0, 0, 0, N, 1, 1020);
    e[k++] = ev(HL_OP_REALLOC, 0, 200, 0, 2, 1, 0, 1030);
    e[k++] = ev(HL_OP_REALLOC, 0, 16, 0, 3, N, 0, 1040);            /* realloc(NULL, 16) */
    e[k++] = ev(HL_OP_REALLOCARRAY, 0, 32, 4, 4, 3, 2, 1050);
    e[k++] = ev(HL_OP_POSIX_MEMALIGN, 0, 100, 64, 5, N, 2, 1060);
    e[k++] = ev(HL_OP_ALIGNED_ALLOC, 0, 128, 128, 6, N, 0, 1070);
    e[k++] = ev(HL_OP_MEMALIGN, 0, 100, 4096, 7, N, 0, 1080);
    e[k++] = ev(HL_OP_VALLOC, 0, 10, 0, 8, N, 0, 1090);
    e[k++] = ev(HL_OP_PVALLOC, 0, 5000, 0, 9, N, 0, 1100);
    e[k++] = ev(HL_OP_MALLOC, HL_EV_FAILED, 1ull << 40, 0, N, N, 0, 1110);
    e[k++] = ev(HL_OP_CALLOC, HL_EV_FAILED, UINT64_MAX, 2, N, N, 0, 1120);
    e[k++] = ev(HL_OP_REALLOC, HL_EV_FAILED, 1ull << 50, 0, N, 2, 0, 1130); /* #2 stays live */
    e[k++] = ev(HL_OP_POSIX_MEMALIGN, HL_EV_FAILED, 8, 3, N, N, 0, 1140);
    e[k++] = ev(HL_OP_FREE, HL_EV_UNKNOWN, 0, 0, N, N, 0, 1150);
    e[k++] = ev(HL_OP_REALLOC, HL_EV_UNKNOWN, 24, 0, 10, N, 0, 1160);
    e[k++] = ev(HL_OP_REALLOC, HL_EV_UNKNOWN | HL_EV_FAILED, 24, 0, N, N, 0, 1170);
    e[k++] = ev(HL_OP_REALLOCARRAY, HL_EV_UNKNOWN, 8, 3, 11, N, 0, 1180);
    e[k++] = ev(HL_OP_FREE, 0, 0, 0, N, N, 0, 1190);                /* free(NULL) */
    e[k++] = ev(HL_OP_FREE, 0, 0, 0, 2, N, 7, 1200);                /* the failed realloc's block */
    e[k++] = ev(HL_OP_MALLOC, 0, 0, 0, 12, N, 7, 900);              /* time going back */
    e[k++] = ev(HL_OP_MALLOC, 0, UINT64_MAX, 0, 13, N, 0, UINT64_MAX);
    e[k++] = ev(HL_OP_FREE, 0, 0, 0, 5, N, 0, 5);
    *n = k;
    return e;
}

static int same_event(const struct hl_event *a, const struct hl_event *b)
{
    return a->time_ns == b->time_ns && a->size == b->size && a->aux == b->aux &&
           a->slot == b->slot && a->old_slot == b->old_slot && a->thread == b->thread &&
           a->op == b->op && a->flags == b->flags;
}

static struct hl_process proc(uint32_t pid, const char *cmd)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = pid;
    p.ppid = pid - 1;
    p.page_size = 4096;
    p.start_realtime_ns = 1700000000123456789ull + pid;
    snprintf(p.cmdline, sizeof p.cmdline, "%s", cmd);
    snprintf(p.exe, sizeof p.exe, "/usr/bin/%s", cmd);
    return p;
}

static int write_events(const char *file, const struct hl_process *p, const struct hl_event *e,
                        size_t n, uint32_t chunk)
{
    struct hl_err err;
    struct hl_writer *w = hl_writer_open(file, &err);
    if (!w)
        return -1;
    if (chunk)
        hl_writer_set_chunk_events(w, chunk);
    if (hl_writer_begin_process(w, p, &err) < 0)
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (hl_writer_event(w, &e[i], &err) < 0)
            goto bad;
    return hl_writer_close(w, &err);
bad:
    tap_diag("write failed: %s", err.msg);
    hl_writer_abort(w);
    return -1;
}

static void test_op_names(void)
{
    int ok;
    TAP_CHECK(hl_crc32c(0, "123456789", 9) == 0xe3069283u, "CRC-32C gives the standard check value");
    TAP_CHECK(hl_crc32c_portable(0, "123456789", 9) == 0xe3069283u,
              "CRC-32C without the CPU's instruction gives it too");
    uint8_t buf[300];
    uint32_t x = 1;
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)((x = x * 1103515245u + 12345u) >> 16);
    ok = 1;
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 7)
            ok &= hl_crc32c(len, buf + off, len) == hl_crc32c_portable(len, buf + off, len);
    TAP_CHECK(ok, "CRC-32C is the same with and without the instruction, any length and alignment");
    ok = 1;
    for (int op = 1; op < HL_OP_COUNT_; op++)
        ok &= hl_op_name(op) && hl_op_from_name(hl_op_name(op)) == op;
    TAP_CHECK(ok, "every op name maps back to its op");
    TAP_CHECK(!hl_op_name(0) && !hl_op_name(HL_OP_COUNT_) && hl_op_from_name("mmap") == 0,
              "unknown ops and names are refused");
    struct hl_event c = ev(HL_OP_CALLOC, 0, 1ull << 40, 1ull << 40, 0, N, 0, 0);
    TAP_CHECK(hl_event_bytes(&c) == UINT64_MAX, "calloc bytes saturate on overflow");
    c.aux = 3;
    TAP_EQ_U(hl_event_bytes(&c), 3ull << 40, "calloc bytes are nmemb x size");
}

static void test_round_trip(void)
{
    size_t n;
    const struct hl_event *e = all_ops(&n);
    struct hl_process p = proc(4242, "sort -n \"x y\"");
    const char *f = path("ops.hlt");
    TAP_CHECK(write_events(f, &p, e, n, 0) == 0, "a trace with every op and flag is written");
    struct stat st;
    TAP_CHECK(stat(path("ops.hlt.tmp"), &st) != 0, "no temporary file is left behind");
    struct hl_err err;
    struct hl_reader *r = hl_reader_open(f, &err);
    TAP_CHECK(r != NULL, "the trace opens");
    if (!r)
        return;
    struct hl_process q;
    TAP_CHECK(hl_reader_next_process(r, &q, &err) == 1, "it has a process section");
    TAP_CHECK(q.pid == p.pid && q.ppid == p.ppid && q.page_size == 4096 &&
                  q.start_realtime_ns == p.start_realtime_ns && strcmp(q.cmdline, p.cmdline) == 0 &&
                  strcmp(q.exe, p.exe) == 0,
              "process header fields round-trip");
    TAP_EQ_U(q.nevents, n, "section event count comes from the trailer");
    TAP_EQ_U(q.nslots, 14, "section slot count comes from the trailer");
    TAP_EQ_U(q.nthreads, 8, "thread count is the largest thread index + 1");
    struct hl_event *got;
    size_t m;
    TAP_CHECK(hl_reader_read_all(r, &got, &m, &err) == 0, "events read back");
    int same = m == n;
    for (size_t i = 0; same && i < n; i++)
        if (!same_event(&got[i], &e[i])) {
            tap_diag("event %zu differs", i);
            same = 0;
        }
    TAP_CHECK(same, "every op and flag round-trips exactly");
    free(got);
    TAP_CHECK(hl_reader_next_process(r, &q, &err) == 0, "no second section");
    hl_reader_close(r);
}

static int expect_reject(const struct hl_event *pre, size_t npre, struct hl_event bad,
                         const char *want)
{
    struct hl_err err;
    struct hl_writer *w = hl_writer_open(path("bad.hlt"), &err);
    struct hl_process p = proc(7, "x");
    hl_writer_begin_process(w, &p, &err);
    for (size_t i = 0; i < npre; i++)
        if (hl_writer_event(w, &pre[i], &err) < 0) {
            tap_diag("setup event refused: %s", err.msg);
            hl_writer_abort(w);
            return 0;
        }
    int rc = hl_writer_event(w, &bad, &err);
    int ok = rc < 0 && strstr(err.msg, want) && strstr(err.msg, "bad.hlt");
    if (!ok)
        tap_diag("rc %d, message '%s', want '%s'", rc, rc < 0 ? err.msg : "", want);
    /* The writer stays usable after a refused event. */
    struct hl_event next = ev(HL_OP_MALLOC, 0, 1, 0, 0, N, 0, 0);
    for (size_t i = 0; i < npre; i++)
        if (hl_op_allocates(pre[i].op) && !(pre[i].flags & HL_EV_FAILED))
            next.slot++;
    ok = ok && hl_writer_event(w, &next, &err) == 0;
    hl_writer_abort(w);
    return ok;
}

static void test_slot_rule(void)
{
    struct hl_event pre[2] = {ev(HL_OP_MALLOC, 0, 8, 0, 0, N, 0, 0),
                              ev(HL_OP_FREE, 0, 0, 0, 0, N, 0, 0)};
    TAP_CHECK(expect_reject(NULL, 0, ev(HL_OP_MALLOC, 0, 8, 0, 1, N, 0, 0), "next slot 0"),
              "an allocation that skips a slot is refused");
    TAP_CHECK(expect_reject(pre, 1, ev(HL_OP_MALLOC, 0, 8, 0, 0, N, 0, 0), "next slot 1"),
              "an allocation that reuses a slot is refused");
    TAP_CHECK(expect_reject(pre, 1, ev(HL_OP_FREE, 0, 0, 0, 1, N, 0, 0), "only 1 slots"),
              "a free of a slot not yet allocated is refused");
    TAP_CHECK(expect_reject(pre, 2, ev(HL_OP_FREE, 0, 0, 0, 0, N, 0, 0), "already freed"),
              "a double free of a slot is refused");
    TAP_CHECK(expect_reject(pre, 2, ev(HL_OP_REALLOC, 0, 8, 0, 1, 0, 0, 0), "already freed"),
              "a realloc of a freed slot is refused");
    TAP_CHECK(expect_reject(NULL, 0, ev(HL_OP_MALLOC, HL_EV_FAILED, 8, 0, 0, N, 0, 0),
                            "HL_NO_SLOT"),
              "a failed allocation that takes a slot is refused");
    TAP_CHECK(expect_reject(pre, 1, ev(HL_OP_FREE, HL_EV_UNKNOWN, 0, 0, 0, N, 0, 0), "unknown"),
              "an unknown free that names a slot is refused");
    TAP_CHECK(expect_reject(NULL, 0, ev(HL_OP_MALLOC, 0, 8, 16, 0, N, 0, 0), "aux 0"),
              "aux on an op without one is refused");
    TAP_CHECK(expect_reject(NULL, 0, ev(11, 0, 8, 0, 0, N, 0, 0), "unknown op"),
              "an unknown op is refused");
    TAP_CHECK(expect_reject(NULL, 0, ev(HL_OP_MALLOC, 0x80, 8, 0, 0, N, 0, 0), "flags"),
              "unknown flags are refused");
    TAP_CHECK(expect_reject(pre, 1, ev(HL_OP_FREE, HL_EV_FAILED, 0, 0, 0, N, 0, 0), "cannot fail"),
              "a failed free is refused");
    TAP_CHECK(expect_reject(NULL, 0, ev(HL_OP_MALLOC, 0, 8, 0, 0, 0, 0, 0), "old_slot"),
              "malloc with an old_slot is refused");

    struct hl_err err;
    struct hl_writer *w = hl_writer_open(path("nosec.hlt"), &err);
    struct hl_event e = ev(HL_OP_MALLOC, 0, 8, 0, 0, N, 0, 0);
    TAP_CHECK(hl_writer_event(w, &e, &err) < 0 && strstr(err.msg, "process section"),
              "an event before any process section is refused");
    hl_writer_abort(w);
    struct stat st;
    TAP_CHECK(stat(path("nosec.hlt"), &st) != 0 && stat(path("nosec.hlt.tmp"), &st) != 0,
              "an aborted writer leaves no file");
    TAP_CHECK(hl_writer_open(path("no/such/dir.hlt"), &err) == NULL &&
                  strstr(err.msg, "no/such/dir.hlt.tmp"),
              "a writer that cannot create its file says which");
}

static void test_multi_process(void)
{
    struct hl_err err;
    const char *f = path("multi.hlt");
    struct hl_writer *w = hl_writer_open(f, &err);
    struct synth s[3];
    for (int k = 0; k < 3; k++) {
        struct hl_process p = proc(100 + (uint32_t)k, k == 1 ? "child" : "parent");
        hl_writer_begin_process(w, &p, &err);
        synth_init(&s[k], (uint64_t)k + 1, 2);
        for (int i = 0; i < (k == 1 ? 9000 : 1000 * (k + 1)); i++) {
            struct hl_event e;
            synth_next(&s[k], &e);
            hl_writer_event(w, &e, &err);
        }
        synth_done(&s[k]);
        if (k != 1) /* the writer also ends a section by itself */
            hl_writer_end_process(w, &err);
    }
    TAP_CHECK(hl_writer_close(w, &err) == 0, "a three-process trace is written");

    struct hl_reader *r = hl_reader_open(f, &err);
    struct hl_process p;
    int ok = 1;
    for (int k = 0; k < 3 && r; k++) {
        ok &= hl_reader_next_process(r, &p, &err) == 1 && p.pid == 100 + (uint32_t)k &&
              p.nevents == (k == 1 ? 9000 : 1000 * ((uint64_t)k + 1));
        if (k == 1) {
            /* Read one batch, skip the rest: next_process must move past them. */
            const struct hl_event *ev;
            ok &= hl_reader_events(r, &ev, &err) > 0;
            continue;
        }
        struct hl_event *got;
        size_t m;
        ok &= hl_reader_read_all(r, &got, &m, &err) == 0 && m == p.nevents;
        struct synth t;
        synth_init(&t, (uint64_t)k + 1, 2);
        for (size_t i = 0; ok && i < m; i++) {
            struct hl_event e;
            synth_next(&t, &e);
            ok &= same_event(&e, &got[i]);
        }
        synth_done(&t);
        free(got);
    }
    TAP_CHECK(ok, "each process section reads back in order, even when one is left half read");
    TAP_CHECK(r && hl_reader_next_process(r, &p, &err) == 0, "the file ends after three sections");
    hl_reader_close(r);
}

/* Offsets of the blocks in a trace file (for damaging it at known places). */
static size_t block_offsets(const uint8_t *d, size_t len, size_t *offs, size_t max)
{
    size_t pos = HL_FILE_HEADER_BYTES, k = 0;
    while (pos + HL_BLOCK_HEADER_BYTES <= len && k < max) {
        offs[k++] = pos;
        uint32_t stored = (uint32_t)d[pos + 4] | (uint32_t)d[pos + 5] << 8 |
                          (uint32_t)d[pos + 6] << 16 | (uint32_t)d[pos + 7] << 24;
        pos += HL_BLOCK_HEADER_BYTES + stored;
    }
    return k;
}

static uint8_t *slurp(const char *f, size_t *len)
{
    FILE *fp = fopen(f, "rb");
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    rewind(fp);
    uint8_t *d = malloc(*len);
    if (fread(d, 1, *len, fp) != *len)
        *len = 0;
    fclose(fp);
    return d;
}

static void test_large(void)
{
    const size_t n = 500000;
    struct hl_event *e = malloc(n * sizeof *e);
    struct synth s;
    synth_init(&s, 99, 4);
    for (size_t i = 0; i < n; i++)
        synth_next(&s, &e[i]);
    synth_done(&s);
    struct hl_process p = proc(1, "big");
    const char *f = path("large.hlt");
    TAP_CHECK(write_events(f, &p, e, n, 0) == 0, "a 500000-event trace is written");
    struct hl_err err;
    struct hl_reader *r = hl_reader_open(f, &err);
    struct hl_process q;
    hl_reader_next_process(r, &q, &err);
    const struct hl_event *got;
    ssize_t k;
    size_t at = 0, batches = 0;
    int same = 1;
    while ((k = hl_reader_events(r, &got, &err)) > 0) {
        batches++;
        for (ssize_t i = 0; i < k && same; i++)
            same = at + (size_t)i < n && same_event(&got[i], &e[at + (size_t)i]);
        at += (size_t)k;
    }
    TAP_CHECK(k == 0 && at == n && same, "all 500000 events read back identical, in %zu batches",
              batches);
    hl_reader_close(r);
    /* As the replay's planner reads: times skipped, live slots left to the caller. */
    r = hl_reader_open(f, &err);
    hl_reader_trust_slots(r);
    hl_reader_skip_times(r);
    hl_reader_next_process(r, &q, &err);
    at = 0;
    same = 1;
    while ((k = hl_reader_events(r, &got, &err)) > 0) {
        for (ssize_t i = 0; i < k && same; i++) {
            struct hl_event want = e[at + (size_t)i];
            want.time_ns = 0;
            same = at + (size_t)i < n && same_event(&got[i], &want);
        }
        at += (size_t)k;
    }
    TAP_CHECK(k == 0 && at == n && same,
              "skipping times: the same 500000 events over the chunks, each with time 0");
    size_t len, offs[64];
    uint8_t *d = slurp(f, &len);
    TAP_EQ_U(block_offsets(d, len, offs, 64), 2 + (n + 65535) / 65536,
             "they are written as full 65536-event chunks between the header and trailer");
    free(d);
    tap_diag("%.3f bytes per event", (double)len / (double)n);
    hl_reader_close(r);
    free(e);
}

static void spit(const char *f, const uint8_t *d, size_t len)
{
    FILE *fp = fopen(f, "wb");
    fwrite(d, 1, len, fp);
    fclose(fp);
}

/* Read f to the end; return the events seen and the error (if any) in err. */
static size_t read_until_error(const char *f, int *rc, struct hl_err *err)
{
    struct hl_reader *r = hl_reader_open(f, err);
    size_t total = 0;
    *rc = -1;
    if (!r)
        return 0;
    struct hl_process p;
    int more;
    while ((more = hl_reader_next_process(r, &p, err)) > 0) {
        const struct hl_event *e;
        ssize_t k;
        while ((k = hl_reader_events(r, &e, err)) > 0)
            total += (size_t)k;
        if (k < 0) {
            more = -1;
            break;
        }
    }
    *rc = more;
    hl_reader_close(r);
    return total;
}

/* A program tearing down a table frees blocks in allocation order: the writer should
 * pick the REF prediction from the previous free (format.h, HL_MODE_REF_PREV). */
static void test_fifo(void)
{
    const size_t n = 40000;
    struct hl_event *e = malloc(n * sizeof *e);
    for (size_t i = 0; i < n / 2; i++)
        e[i] = ev(HL_OP_MALLOC, 0, 16 + (i % 7) * 8, 0, (uint32_t)i, N, 0, 0);
    for (size_t i = 0; i < n / 2; i++)
        e[n / 2 + i] = ev(HL_OP_FREE, 0, 0, 0, (uint32_t)i, N, 0, 0);
    /* Times as a recorder that interpolates between clock readings makes them: the step
     * changes every 30 events and is rounded up or down in between, which favours
     * storing the change of step (HL_MODE_TIME_DD).  A few wild times make sure that
     * path wraps correctly too. */
    struct synth s;
    synth_init(&s, 11, 1);
    uint64_t t = 0, step = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = synth_rand(&s);
        if (i % 30 == 0)
            step = 20 + r % 2000;
        e[i].time_ns = t += step + ((r >> 20) & 1);
    }
    synth_done(&s);
    e[100].time_ns = UINT64_MAX;
    e[101].time_ns = 0;
    e[102].time_ns = 1ull << 63;
    e[30000].time_ns = 7;
    struct hl_process p = proc(3, "fifo");
    const char *f = path("fifo.hlt");
    TAP_CHECK(write_events(f, &p, e, n, 0) == 0, "a trace freeing in allocation order is written");
    struct hl_err err;
    struct hl_reader *r = hl_reader_open(f, &err);
    struct hl_process q;
    struct hl_event *got = NULL;
    size_t m = 0;
    int ok = r && hl_reader_next_process(r, &q, &err) == 1 &&
             hl_reader_read_all(r, &got, &m, &err) == 0 && m == n;
    for (size_t i = 0; ok && i < n; i++)
        ok = same_event(&got[i], &e[i]);
    TAP_CHECK(ok, "it reads back identical, wild times included");
    free(got);
    hl_reader_close(r);
    size_t len, offs[4];
    uint8_t *d = slurp(f, &len);
    /* The chunk's third header varint is its modes (first_slot 0 and base_time 0 are
     * one byte each). */
    int mode = block_offsets(d, len, offs, 4) >= 2 ? d[offs[1] + HL_BLOCK_HEADER_BYTES + 2] : -1;
    TAP_EQ_U(mode, HL_MODE_REF_PREV | HL_MODE_TIME_DD,
             "the writer chose the previous-free and change-of-step predictions for it");
    free(d);
    free(e);
}

static void test_damage(void)
{
    const size_t n = 10000;
    struct hl_event *e = malloc(n * sizeof *e);
    struct synth s;
    synth_init(&s, 7, 1);
    for (size_t i = 0; i < n; i++)
        synth_next(&s, &e[i]);
    synth_done(&s);
    struct hl_process p = proc(1, "dmg");
    const char *f = path("good.hlt");
    write_events(f, &p, e, n, 1000);
    free(e);
    struct hl_err err;
    int rc;
    TAP_EQ_U(read_until_error(f, &rc, &err), n, "a single-threaded trace reads back whole");
    TAP_CHECK(rc == 0, "and its trailer matches its events");
    if (rc != 0)
        tap_diag("%s", err.msg);
    size_t len, offs[64];
    uint8_t *d = slurp(f, &len);
    size_t nb = block_offsets(d, len, offs, 64);
    TAP_EQ_U(nb, 12, "the damage test file has PROC, 10 chunks and ENDS");
    char want[128];

    /* Cut in the middle of the fourth chunk (block 4). */
    const char *t = path("trunc.hlt");
    spit(t, d, offs[4] + 30);
    size_t got = read_until_error(t, &rc, &err);
    TAP_EQ_U(got, 3000, "a truncated trace reads the events of its good chunks");
    snprintf(want, sizeof want, "truncated at byte offset %zu", offs[4]);
    TAP_CHECK(rc < 0 && strstr(err.msg, want) && strstr(err.msg, "trunc.hlt"),
              "then reports the truncation with the file and the chunk's offset");
    if (rc >= 0 || !strstr(err.msg, want))
        tap_diag("message: %s", err.msg);

    /* Cut exactly between chunks: the trailer is missing. */
    spit(t, d, offs[6]);
    got = read_until_error(t, &rc, &err);
    snprintf(want, sizeof want, "byte offset %zu", offs[6]);
    TAP_CHECK(got == 5000 && rc < 0 && strstr(err.msg, want) && strstr(err.msg, "no trailer"),
              "a trace cut between chunks reads them all, then reports the missing trailer");

    /* Flip a byte inside the payload of the third chunk (block 3). */
    const char *c = path("flip.hlt");
    uint8_t *d2 = malloc(len);
    memcpy(d2, d, len);
    d2[offs[3] + HL_BLOCK_HEADER_BYTES + 5] ^= 0x10;
    spit(c, d2, len);
    got = read_until_error(c, &rc, &err);
    snprintf(want, sizeof want, "corrupted chunk at byte offset %zu (checksum mismatch)", offs[3]);
    TAP_CHECK(got == 2000 && rc < 0 && strstr(err.msg, want) && strstr(err.msg, "flip.hlt"),
              "a flipped byte in a chunk is a checksum error naming the file and offset");
    if (rc >= 0 || !strstr(err.msg, want))
        tap_diag("got %zu, message: %s", got, err.msg);

    /* Flip a byte in a chunk's length field. */
    memcpy(d2, d, len);
    d2[offs[5] + 5] ^= 0x01;
    spit(c, d2, len);
    got = read_until_error(c, &rc, &err);
    snprintf(want, sizeof want, "corrupted block header at byte offset %zu", offs[5]);
    TAP_CHECK(got == 4000 && rc < 0 && strstr(err.msg, want),
              "a damaged chunk length is reported as corruption, not truncation");

    /* The reader keeps failing with the same message. */
    struct hl_reader *r = hl_reader_open(c, &err);
    struct hl_process q;
    hl_reader_next_process(r, &q, &err);
    const struct hl_event *ev;
    while (hl_reader_events(r, &ev, &err) > 0)
        ;
    struct hl_err err2;
    TAP_CHECK(hl_reader_events(r, &ev, &err2) < 0 && strcmp(err.msg, err2.msg) == 0 &&
                  hl_reader_next_process(r, &q, &err2) < 0,
              "errors are sticky");
    hl_reader_close(r);

    /* Wrong magic, wrong version, empty, missing. */
    memcpy(d2, d, len);
    d2[0] = 'X';
    spit(c, d2, len);
    TAP_CHECK(!hl_reader_open(c, &err) && strstr(err.msg, "not a heaplab trace") &&
                  strstr(err.msg, "flip.hlt"),
              "a file with the wrong magic is not a heaplab trace");
    memcpy(d2, d, len);
    d2[8] = HL_FORMAT_VERSION + 1;
    spit(c, d2, len);
    snprintf(want, sizeof want, "unsupported trace version %u", HL_FORMAT_VERSION + 1);
    TAP_CHECK(!hl_reader_open(c, &err) && strstr(err.msg, want),
              "a file of another version is refused with its version");
    spit(c, d2, 0);
    TAP_CHECK(!hl_reader_open(c, &err) && strstr(err.msg, "empty"), "an empty file is refused");
    spit(c, d, 10);
    TAP_CHECK(!hl_reader_open(c, &err) && strstr(err.msg, "truncated file header"),
              "a file cut inside its header is refused");
    TAP_CHECK(!hl_reader_open(path("missing.hlt"), &err) && strstr(err.msg, "missing.hlt") &&
                  strstr(err.msg, "No such file"),
              "a missing file is named");
    TAP_CHECK(!hl_reader_open(dir, &err) && strstr(err.msg, "not a regular file"),
              "a directory is refused");
    free(d2);
    free(d);
}

static void test_hash(void)
{
    struct hl_err err;
    struct hl_reader *a = hl_reader_open(path("ops.hlt"), &err);
    struct hl_reader *b = hl_reader_open(path("ops.hlt"), &err);
    struct hl_reader *c = hl_reader_open(path("multi.hlt"), &err);
    if (!a || !b || !c) {
        TAP_CHECK(0, "hash test files open");
        return;
    }
    const char *h = hl_reader_hash(a);
    int hex = strlen(h) == 16 && strspn(h, "0123456789abcdef") == 16;
    TAP_CHECK(hex, "the hash is 16 hex digits");
    TAP_CHECK(strcmp(h, hl_reader_hash(b)) == 0, "the same file hashes the same");
    TAP_CHECK(strcmp(h, hl_reader_hash(c)) != 0, "different files hash differently");
    hl_reader_close(a);
    hl_reader_close(b);
    hl_reader_close(c);
}

static void test_slotmap(void)
{
    struct hl_slotmap *m = hl_slotmap_new();
    enum { K = 200000 };
    uint64_t *ref = malloc(K * sizeof *ref); /* reference: slot of address i*16+4096 */
    for (int i = 0; i < K; i++)
        ref[i] = HL_NO_SLOT;
    struct synth s;
    synth_init(&s, 3, 1);
    int ok = 1;
    for (uint32_t step = 0; step < 1000000; step++) {
        uint64_t r = synth_rand(&s);
        uint32_t i = (uint32_t)(r % K);
        uint64_t addr = 4096 + (uint64_t)i * 16;
        if ((r >> 40) % 3) {
            ok &= hl_slotmap_put(m, addr, step) == ref[i];
            ref[i] = step;
        } else {
            ok &= hl_slotmap_take(m, addr) == ref[i];
            ref[i] = HL_NO_SLOT;
        }
    }
    TAP_CHECK(ok, "the slot map agrees with a plain array over a million puts and takes");
    ok = 1;
    for (int i = 0; i < K; i++)
        ok &= hl_slotmap_take(m, 4096 + (uint64_t)i * 16) == ref[i];
    TAP_CHECK(ok, "every live address is found once at the end");
    TAP_CHECK(hl_slotmap_take(m, 4096) == HL_NO_SLOT, "a taken address is gone");
    synth_done(&s);
    free(ref);
    hl_slotmap_free(m);
}


/* Slots past 2^32 and 2^40: a section numbered from just below each boundary (the
 * writer's test hook) crosses it, and every slot, free and realloc reads back. */
static void test_slot_boundaries(void)
{
    static const uint64_t bases[] = {(1ull << 32) - 100, (1ull << 40) - 100};
    for (int b = 0; b < 2; b++) {
        const uint64_t base = bases[b];
        const char *f = path("boundary.hlt");
        struct hl_err err;
        struct hl_writer *w = hl_writer_open(f, &err);
        struct hl_process p = proc(77, "boundary");
        hl_writer_set_first_slot(w, base);
        hl_writer_set_chunk_events(w, 64); /* chunks that start on either side */
        int ok = hl_writer_begin_process(w, &p, &err) == 0;
        uint64_t next = base;
        enum { N_EV = 600 };
        static struct hl_event want[N_EV];
        size_t n = 0;
        /* 200 mallocs, then free every third oldest-first, realloc the newest ones. */
        for (int i = 0; i < 200; i++)
            want[n++] = ev(HL_OP_MALLOC, 0, 16 + i, 0, next++, N, 0, i);
        for (uint64_t s = base; s < base + 200; s += 3) {
            want[n] = ev(HL_OP_FREE, 0, 0, 0, s, N, 1, n);
            n++;
        }
        for (uint64_t s = base + 199; s > base + 150; s -= 3) {
            want[n] = ev(HL_OP_REALLOC, 0, 1000, 0, next++, s, 0, n);
            n++;
        }
        for (size_t i = 0; i < n && ok; i++)
            ok = hl_writer_event(w, &want[i], &err) == 0;
        /* A free of a slot past the next one, and a double free, are refused. */
        struct hl_event bad = ev(HL_OP_FREE, 0, 0, 0, next, N, 0, n);
        ok = ok && hl_writer_event(w, &bad, &err) < 0;
        bad.slot = base;
        ok = ok && hl_writer_event(w, &bad, &err) < 0;
        ok = ok && hl_writer_close(w, &err) == 0;
        if (!ok)
            tap_diag("%s", err.msg);
        struct hl_reader *r = ok ? hl_reader_open(f, &err) : NULL;
        struct hl_event *got = NULL;
        size_t ngot = 0;
        ok = r && hl_reader_next_process(r, &p, &err) == 1 &&
             hl_reader_read_all(r, &got, &ngot, &err) == 0 && ngot == n;
        int same = ok;
        for (size_t i = 0; same && i < n; i++)
            same = got[i].slot == want[i].slot && got[i].old_slot == want[i].old_slot &&
                   got[i].op == want[i].op;
        TAP_CHECK(same && p.first_slot == base && p.nslots == next - base,
                  "a section numbered from 2^%d - 100 crosses the boundary and reads back",
                  b ? 40 : 32);
        free(got);
        hl_reader_close(r);
    }
}

/* The live-slot set stays exact when blocks outlive its window: one block allocated
 * first and freed after millions of others (swept out of the window, then found in
 * the old set), and a double free of it still refused by writer and reader. */
static void test_long_lived(void)
{
    const char *f = path("longlived.hlt");
    struct hl_err err;
    struct hl_writer *w = hl_writer_open(f, &err);
    struct hl_process p = proc(78, "longlived");
    int ok = hl_writer_begin_process(w, &p, &err) == 0;
    uint64_t next = 0;
    struct hl_event e = ev(HL_OP_MALLOC, 0, 64, 0, next++, N, 0, 0);
    ok = ok && hl_writer_event(w, &e, &err) == 0;
    const uint64_t churn = 3 * (1ull << 22);
    for (uint64_t i = 0; i < churn && ok; i++) {
        e = ev(HL_OP_MALLOC, 0, 32, 0, next++, N, 0, 0);
        ok = hl_writer_event(w, &e, &err) == 0;
        if (i % 1000 != 0) { /* one in a thousand stays live */
            e = ev(HL_OP_FREE, 0, 0, 0, next - 1, N, 0, 0);
            ok = ok && hl_writer_event(w, &e, &err) == 0;
        }
    }
    e = ev(HL_OP_FREE, 0, 0, 0, 0, N, 0, 0);
    ok = ok && hl_writer_event(w, &e, &err) == 0;
    TAP_CHECK(ok && hl_writer_event(w, &e, &err) < 0 && strstr(err.msg, "already freed"),
              "the writer frees a slot older than its window once, and refuses it twice");
    e = ev(HL_OP_FREE, 0, 0, 0, 1001, N, 0, 0); /* live since the start of the churn */
    ok = ok && hl_writer_event(w, &e, &err) == 0 && hl_writer_close(w, &err) == 0;
    struct hl_reader *r = ok ? hl_reader_open(f, &err) : NULL;
    const struct hl_event *b;
    ssize_t k;
    uint64_t frees = 0, events = 0;
    ok = r && hl_reader_next_process(r, &p, &err) == 1;
    while (ok && (k = hl_reader_events(r, &b, &err)) > 0) {
        for (ssize_t i = 0; i < k; i++)
            frees += b[i].op == HL_OP_FREE;
        events += (uint64_t)k;
    }
    TAP_CHECK(ok && events == churn + 1 + (churn - (churn + 999) / 1000) + 2 &&
                  p.nslots == churn + 1,
              "the reader follows slots freed after millions of others (%llu events)",
              (unsigned long long)events);
    hl_reader_close(r);
}

/* The pages of a section's large blocks (format.h, PAGE blocks): written between
 * chunks, returned by hl_reader_pages before the events, checked where they stand. */
static void test_pages(void)
{
    struct hl_err err;
    struct hl_process p = proc(3, "pages");
    const char *f = path("pages.hlt");
    struct hl_writer *w = hl_writer_open(f, &err);
    hl_writer_set_chunk_events(w, 2);
    hl_writer_begin_process(w, &p, &err);
    struct hl_event e[] = {
        ev(HL_OP_MALLOC, 0, 1 << 20, 0, 0, N, 0, 10), ev(HL_OP_MALLOC, 0, 16, 0, 1, N, 0, 20),
        ev(HL_OP_CALLOC, 0, 1 << 16, 8, 2, N, 0, 30), ev(HL_OP_FREE, 0, 0, 0, 0, N, 0, 40),
        ev(HL_OP_FREE, 0, 0, 0, 2, N, 0, 50),
    };
    int ok = 1;
    for (size_t i = 0; i < 4; i++)
        ok &= hl_writer_event(w, &e[i], &err) == 0;
    ok &= hl_writer_pages(w, 0, 10, &err) == 0;
    TAP_CHECK(hl_writer_pages(w, 3, 1, &err) < 0 && strstr(err.msg, "slot 3"),
              "the writer refuses the pages of a slot not allocated yet");
    ok &= hl_writer_event(w, &e[4], &err) == 0;
    ok &= hl_writer_pages(w, 2, 7, &err) == 0;
    ok &= hl_writer_close(w, &err) == 0;
    TAP_CHECK(ok, "a section with page counts is written");

    struct hl_reader *r = hl_reader_open(f, &err);
    struct hl_process q;
    struct hl_pages *pg = NULL;
    ssize_t npg = -1;
    if (r && hl_reader_next_process(r, &q, &err) == 1)
        npg = hl_reader_pages(r, &pg, &err);
    TAP_CHECK(npg == 2 && pg[0].slot == 0 && pg[0].pages == 10 && pg[1].slot == 2 &&
                  pg[1].pages == 7,
              "hl_reader_pages returns the section's pairs before its events");
    free(pg);
    const struct hl_event *got;
    ssize_t k;
    size_t n = 0;
    int same = 1;
    while (r && (k = hl_reader_events(r, &got, &err)) > 0)
        for (ssize_t i = 0; i < k; i++, n++)
            same &= n < 5 && same_event(&got[i], &e[n]);
    TAP_CHECK(same && n == 5 && hl_reader_next_process(r, &q, &err) == 0,
              "the events read back unchanged around the PAGE blocks");
    hl_reader_close(r);

    size_t len, offs[16];
    uint8_t *d = slurp(f, &len);
    size_t nb = block_offsets(d, len, offs, 16), at = 0;
    for (size_t i = 0; i < nb; i++)
        if (hl_get_le32(d + offs[i]) == HL_TAG_PAGE)
            at = at ? at : offs[i];
    TAP_CHECK(at != 0, "the file holds PAGE blocks");
    /* A pair naming a slot no chunk before it allocated, its checksum made good. */
    uint8_t *d2 = malloc(len);
    memcpy(d2, d, len);
    d2[at + HL_BLOCK_HEADER_BYTES] = 4; /* the first pair's slot, a one-byte varint */
    hl_put_le32(d2 + at + 16, hl_crc32c(0, d2 + at + HL_BLOCK_HEADER_BYTES,
                                       hl_get_le32(d2 + at + 4)));
    hl_put_le32(d2 + at + 20, hl_crc32c(0, d2 + at, 20));
    const char *c = path("pages-bad.hlt");
    spit(c, d2, len);
    int rc;
    char want[128];
    snprintf(want, sizeof want, "corrupted pages block at byte offset %zu (a pair out of range)", at);
    read_until_error(c, &rc, &err);
    TAP_CHECK(rc < 0 && strstr(err.msg, want), "a pair naming a later slot is corruption");
    if (rc >= 0 || !strstr(err.msg, want))
        tap_diag("message: %s", err.msg);
    /* Version 3 had no PAGE blocks. */
    memcpy(d2, d, len);
    d2[8] = 3;
    spit(c, d2, len);
    read_until_error(c, &rc, &err);
    TAP_CHECK(rc < 0 && strstr(err.msg, "unknown tag"), "a version 3 trace with a PAGE block is corrupt");
    free(d2);
    free(d);
}

/* Column c's stored length in the chunk block at d + off (format.h, CHNK payload): 0
 * if it is stored as it is; its raw length in *raw. */
static uint64_t col_stored(const uint8_t *d, size_t len, size_t off, int c, uint64_t *raw_out)
{
    const uint8_t *q = d + off + HL_BLOCK_HEADER_BYTES, *end = d + len;
    uint64_t v, raw = 0, st = 0;
    for (int i = 0; i < 3; i++) /* first_slot, base_time, modes */
        if (hl_get_varint(&q, end, &v) != 0)
            return UINT64_MAX;
    for (int k = 0; k <= c; k++) {
        if (hl_get_varint(&q, end, &raw) != 0 || hl_get_varint(&q, end, &st) != 0)
            return UINT64_MAX;
        if (k < c)
            q += st ? st : raw;
    }
    *raw_out = raw;
    return st;
}

/* A column zstd shrinks by a few percent only (the low bytes of sizes spread evenly
 * over 150 values: about 9%) is compressed on trial chunks and stored as it is on the others
 * (writer.c, PLAIN_GAIN_SHIFT); that choice is part of a checkpoint, so a writer
 * resumed from one writes the same bytes as one that never stopped. */
static void test_plain_columns(void)
{
    const uint32_t per = 16384, chunks = 80, stop_at = 69;
    const size_t n = (size_t)per * chunks;
    struct hl_event *e = calloc(n, sizeof *e);
    uint64_t live[1024], next = 0;
    size_t nlive = 0;
    uint32_t x = 7;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        e[i].time_ns = i * 10;
        e[i].old_slot = HL_NO_SLOT;
        if (nlive == 1024 || (nlive && (x >> 8 & 1))) {
            size_t k = (x >> 9) % nlive;
            e[i].op = HL_OP_FREE;
            e[i].slot = live[k];
            live[k] = live[--nlive];
        } else {
            e[i].op = HL_OP_MALLOC;
            e[i].size = 16 + (x >> 16) % 150;
            e[i].slot = live[nlive++] = next++;
        }
    }
    struct hl_process p = proc(5, "plain");
    struct hl_err err;
    const char *whole = path("plain-whole.hlt");
    struct hl_writer *w = hl_writer_open(whole, &err);
    hl_writer_set_chunk_events(w, per);
    int ok = hl_writer_begin_process(w, &p, &err) == 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = hl_writer_event(w, &e[i], &err) == 0;
    ok = ok && hl_writer_end_process(w, &err) == 0;
    TAP_CHECK(hl_writer_close(w, &err) == 0 && ok, "a trace of %u chunks is written", chunks);

    const char *resumed = path("plain-resumed.hlt");
    char part[256];
    snprintf(part, sizeof part, "%s.tmp", resumed);
    w = hl_writer_open(resumed, &err);
    hl_writer_set_chunk_events(w, per);
    ok = hl_writer_begin_process(w, &p, &err) == 0;
    size_t i = 0;
    for (; i < (size_t)per * stop_at && ok; i++)
        ok = hl_writer_event(w, &e[i], &err) == 0;
    struct hl_writer_state st;
    ok = ok && hl_writer_checkpoint(w, &st, &err) == 0;
    hl_writer_stop(w);
    w = ok ? hl_writer_resume(resumed, &st, &err) : NULL;
    ok = w != NULL;
    if (w)
        hl_writer_set_chunk_events(w, per);
    for (; i < n && ok; i++)
        ok = hl_writer_event(w, &e[i], &err) == 0;
    ok = ok && hl_writer_end_process(w, &err) == 0;
    TAP_CHECK(w && hl_writer_close(w, &err) == 0 && ok,
              "the same events, stopped at a checkpoint after chunk %u and resumed", stop_at);

    size_t la, lb, offs[128];
    uint8_t *a = slurp(whole, &la), *b = slurp(resumed, &lb);
    TAP_CHECK(la == lb && memcmp(a, b, la) == 0,
              "the resumed writer wrote the same bytes (%zu and %zu)", la, lb);
    size_t nb = block_offsets(a, la, offs, 128);
    TAP_CHECK(nb == 2 + chunks, "a section header, %u chunks and a trailer (%zu blocks)", chunks,
              nb);
    /* Chunk k is block k + 1; trial chunks: the first 64, then one in 8 (writer.c). */
    uint64_t raw1, raw72, raw70;
    uint64_t first = col_stored(a, la, offs[1], HL_COL_SIZE_LO, &raw1);
    uint64_t trial = col_stored(a, la, offs[1 + 72], HL_COL_SIZE_LO, &raw72);
    uint64_t later = col_stored(a, la, offs[1 + 70], HL_COL_SIZE_LO, &raw70);
    TAP_CHECK(first > raw1 * 7 / 8 && first < raw1,
              "a trial chunk compresses the low bytes of sizes by less than 1/8 (%llu of %llu "
              "bytes)", (unsigned long long)first, (unsigned long long)raw1);
    TAP_CHECK(trial > raw72 * 7 / 8 && trial < raw72, "so does a later trial chunk (%llu of %llu)",
              (unsigned long long)trial, (unsigned long long)raw72);
    TAP_CHECK(later == 0 && raw70 > 0,
              "a chunk between trials stores them as they are (%llu bytes)",
              (unsigned long long)raw70);
    free(a);
    free(b);

    struct hl_reader *r = hl_reader_open(whole, &err);
    struct hl_process q;
    const struct hl_event *got;
    ssize_t k;
    size_t at = 0;
    int same = r && hl_reader_next_process(r, &q, &err) > 0;
    while (same && (k = hl_reader_events(r, &got, &err)) > 0) {
        for (ssize_t j = 0; j < k && same; j++)
            same = at + (size_t)j < n && same_event(&got[j], &e[at + (size_t)j]);
        at += (size_t)k;
    }
    TAP_CHECK(same && at == n, "every event reads back the same (%zu)", at);
    if (r)
        hl_reader_close(r);
    free(e);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_op_names();
    test_round_trip();
    test_slot_rule();
    test_multi_process();
    test_large();
    test_fifo();
    test_damage();
    test_hash();
    test_slotmap();
    test_slot_boundaries();
    test_long_lived();
    test_pages();
    test_plain_columns();
    char cmd[300];
    snprintf(cmd, sizeof cmd, getenv("KEEP") ? "true %s" : "rm -rf %s", dir);
    if (system(cmd) != 0)
        tap_diag("could not remove %s", dir);
    return tap_done();
}
