/*
 * plan_test.c: the replay plan built from events in memory (cmd/replay/plan.c).
 *
 * What replay promises before any allocator runs: the replayed op count, the peak
 * live bytes, which events are dropped (double free, foreign free, failed calls), and
 * where a thread must wait for a block another thread allocated.
 */
#include "replay.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static struct hl_event ev(int thread, int op, uint64_t size, uint64_t slot, uint64_t old)
{
    struct hl_event e;
    memset(&e, 0, sizeof e);
    e.thread = (uint32_t)thread;
    e.op = (uint8_t)op;
    e.size = size;
    e.slot = slot;
    e.old_slot = old;
    return e;
}
#define N HL_NO_SLOT

/* A plan read back: its header, and each thread's events over all windows (with the
 * window each came from). */
struct rplan {
    struct hl_plan_hdr h;
    struct hl_rp_ev *ev[64];
    uint64_t *win[64];
    uint64_t nev[64];
};
static struct rplan P;
/* Of the last compact plan read back: reallocs held in one word, and escapes. */
static uint64_t ncompact_realloc, nescape;
/* Of the last compact plan read back: windows stored narrow (replay.h). */
static uint64_t nnarrow;

/* The section header of n events: their count, first slot and threads. */
static struct hl_process section_of(const struct hl_event *e, uint64_t n, uint64_t first_slot)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.nevents = n;
    p.first_slot = first_slot;
    for (uint64_t i = 0; i < n; i++)
        if (e[i].thread + 1 > p.nthreads)
            p.nthreads = e[i].thread + 1;
    return p;
}

/* Page counts the next builds give the planner (hl_plan_pages). */
static const struct hl_pages *g_pages;
static size_t g_npages;

static const struct hl_plan_hdr *build_w(const struct hl_event *e, int n, int serial,
                                         uint64_t window, uint64_t first_slot,
                                         struct hl_plan_info *info, int *rc)
{
    struct hl_err err;
    int fd = hl_plan_file("/tmp/x", &err);
    struct hl_process p = section_of(e, (uint64_t)n, first_slot);
    struct hl_plan_opts o = {serial, UINT64_MAX, window, 0, 0, 0};
    struct hl_plan_builder *b = hl_plan_begin(fd, &o, &p);
    *rc = 0;
    if (hl_plan_pages(b, g_pages, g_npages) != 0)
        *rc = -1;
    for (int i = 0; i < n; i++)
        if (hl_plan_add(b, &e[i], &err) != 0) {
            *rc = -1;
            hl_plan_abort(b);
            close(fd);
            return NULL;
        }
    if (hl_plan_finish(b, info, &err) != 0) {
        *rc = -1;
        close(fd);
        return NULL;
    }
    for (int t = 0; t < 64; t++) {
        free(P.ev[t]);
        free(P.win[t]);
        P.ev[t] = calloc((size_t)n + 1, sizeof *P.ev[t]);
        P.win[t] = calloc((size_t)n + 1, sizeof *P.win[t]);
        P.nev[t] = 0;
    }
    ncompact_realloc = nescape = nnarrow = 0;
    if (pread(fd, &P.h, sizeof P.h, 0) != (ssize_t)sizeof P.h)
        return NULL;
    static char buf[1 << 24];
    uint64_t off = P.h.win_off;
    for (uint64_t w = 0; w < P.h.nwin; w++) {
        if (pread(fd, buf, sizeof buf, (off_t)off) <= 0)
            return NULL;
        const struct hl_plan_win *hw = (const struct hl_plan_win *)buf;
        const char *body = buf + hl_plan_win_hdr_bytes(hw->nthr);
        if (P.h.compact) { /* words (maybe narrow), then escapes (replay.h) */
            static uint64_t wide[1 << 20];
            const uint64_t *cw = (const uint64_t *)body;
            if (hw->slot_bits) {
                nnarrow++;
                hl_cev_widen(wide, (const uint32_t *)body, hw->nev_total, hw->slot_bits);
                cw = wide;
            }
            const struct hl_rp_ev *x =
                (const struct hl_rp_ev *)(body + hl_plan_words_bytes(hw->nev_total, hw->slot_bits));
            for (uint64_t k = 0; k < hw->nev_total; k++) {
                struct hl_rp_ev e;
                memset(&e, 0, sizeof e);
                if (HL_CEV_TAG(cw[k]) == HL_CEV_OTHER && HL_CEV_SLOT(cw[k])) {
                    e = HL_CEV_REALLOC(cw[k]); /* in place: the same slot */
                    ncompact_realloc++;
                } else if (HL_CEV_TAG(cw[k]) == HL_CEV_OTHER) {
                    e = *x++;
                    nescape++;
                } else {
                    e.op = HL_CEV_TAG(cw[k]) == HL_CEV_FREE ? HL_OP_FREE : HL_OP_MALLOC;
                    e.size = HL_CEV_TAG(cw[k]) == HL_CEV_FREE ? 0 : cw[k] >> HL_CEV_SIZE_SHIFT;
                    e.slot = (uint32_t)HL_CEV_SLOT(cw[k]);
                }
                P.win[0][P.nev[0]] = w;
                P.ev[0][P.nev[0]++] = e;
            }
            off += hw->bytes;
            continue;
        }
        const struct hl_rp_ev *at = (const struct hl_rp_ev *)body;
        for (uint32_t t = 0; t < hw->nthr && t < 64; t++)
            for (uint32_t k = 0; k < hw->nev[t]; k++) {
                P.win[t][P.nev[t]] = w;
                P.ev[t][P.nev[t]++] = *at++;
            }
        off += hw->bytes;
    }
    close(fd);
    return &P.h;
}

static const struct hl_plan_hdr *build(const struct hl_event *e, int n, int serial,
                                       struct hl_plan_info *info, int *rc)
{
    return build_w(e, n, serial, 0, 0, info, rc);
}

static const struct hl_rp_ev *tev(const struct hl_plan_hdr *h, int t)
{
    (void)h;
    return P.ev[t];
}

/* The dense slots stand for the right blocks: replaying window by window (within a
 * window, a thread's events in order; with several threads, a slot is handed out at
 * most once per window and never while live), no block is freed twice, no slot is
 * taken while its block is live, and "no block" (0) is never allocated. */
static int dense_ok(const struct hl_plan_hdr *h)
{
    static uint8_t live[1 << 16], taken_in[1 << 16];
    memset(live, 0, sizeof live);
    if (h->ndense > sizeof live)
        return 0;
    uint64_t pos[64] = {0};
    for (uint64_t w = 0; w < h->nwin; w++) {
        memset(taken_in, 0, sizeof taken_in);
        /* several threads: allocations of the window first (a consumer waits for them) */
        for (uint32_t t = 0; t < h->nthreads; t++)
            for (uint64_t k = pos[t]; k < P.nev[t] && P.win[t][k] == w; k++) {
                const struct hl_rp_ev *e = &P.ev[t][k];
                if (e->op == HL_OP_FREE)
                    continue;
                if (e->slot == 0 || e->slot >= h->ndense || (h->nthreads > 1 && taken_in[e->slot]++))
                    return 0;
                if (h->nthreads > 1 && live[e->slot])
                    return 0;
                if (h->nthreads > 1)
                    live[e->slot] = 2; /* made in this window */
            }
        for (uint32_t t = 0; t < h->nthreads; t++)
            for (; pos[t] < P.nev[t] && P.win[t][pos[t]] == w; pos[t]++) {
                const struct hl_rp_ev *e = &P.ev[t][pos[t]];
                if (h->nthreads == 1 && e->op == HL_OP_REALLOC && e->slot == e->old_slot) {
                    if (!live[e->slot]) /* in place: the block must be live */
                        return 0;
                    continue;
                }
                if (h->nthreads == 1 && e->op != HL_OP_FREE) {
                    if (live[e->slot])
                        return 0;
                    live[e->slot] = 1;
                }
                uint32_t gone = e->op == HL_OP_FREE ? e->slot : e->op == HL_OP_REALLOC ? e->old_slot : 0;
                if (gone && !live[gone])
                    return 0;
                if (gone)
                    live[gone] = 0;
            }
        for (uint64_t d = 0; d < h->ndense; d++)
            if (live[d] == 2)
                live[d] = 1;
    }
    return 1;
}

/* The plan file of a section built with hl_plan_add one event at a time (batch 0) or
 * with hl_plan_add_events in batches of `batch`: its bytes (malloc'd, *len), NULL if
 * planning failed. */
static char *plan_bytes(const struct hl_event *e, uint64_t n, int serial, uint64_t window,
                        uint64_t every, uint64_t batch, size_t *len)
{
    struct hl_err err;
    int fd = hl_plan_file("/tmp/x", &err);
    struct hl_process p = section_of(e, n, 0);
    struct hl_plan_opts o = {serial, every, window, 0, 0, 0};
    struct hl_plan_builder *b = hl_plan_begin(fd, &o, &p);
    int bad = 0;
    for (uint64_t i = 0; i < n && !bad; i += batch ? batch : 1)
        bad = batch ? hl_plan_add_events(b, e + i, n - i < batch ? n - i : batch, &err)
                    : hl_plan_add(b, &e[i], &err);
    struct hl_plan_info info;
    if (bad) {
        hl_plan_abort(b);
        close(fd);
        return NULL;
    }
    if (hl_plan_finish(b, &info, &err) != 0) {
        close(fd);
        return NULL;
    }
    *len = (size_t)lseek(fd, 0, SEEK_END);
    char *buf = malloc(*len);
    if (buf && pread(fd, buf, *len, 0) != (ssize_t)*len) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    return buf;
}

/* The same plan from both ways of adding events. */
static int same_plan(const struct hl_event *e, uint64_t n, int serial, uint64_t window,
                     uint64_t every, uint64_t batch)
{
    size_t la = 0, lb = 0;
    char *a = plan_bytes(e, n, serial, window, every, 0, &la);
    char *b = plan_bytes(e, n, serial, window, every, batch, &lb);
    int same = a && b && la == lb && memcmp(a, b, la) == 0;
    free(a);
    free(b);
    return same;
}

/* A trace that gives a slot back twice, written by a trusted writer (which checks
 * nothing, as the record finaliser's), planned the way `heaplab replay` plans: the reader
 * leaves the live slots to the planner (hl_reader_trust_slots), which must refuse it as a
 * corrupted trace, not drop it as a double free.  With free_twice 0 the same trace
 * without the second free plans. */
static int plan_file_with_double_free(int free_twice, char *msg, size_t msglen)
{
    char path[] = "/tmp/heaplab-plan-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -2;
    close(fd);
    struct hl_err err = {{0}};
    struct hl_writer *w = hl_writer_open(path, &err);
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = 42;
    p.page_size = 4096;
    int ok = w != NULL;
    if (ok) {
        hl_writer_trust(w);
        ok = hl_writer_begin_process(w, &p, &err) == 0;
    }
    struct hl_event e[] = {ev(0, HL_OP_MALLOC, 64, 0, N), ev(0, HL_OP_MALLOC, 32, 1, N),
                           ev(0, HL_OP_FREE, 0, 0, N), ev(0, HL_OP_FREE, 0, 0, N),
                           ev(0, HL_OP_FREE, 0, 1, N)};
    for (size_t i = 0; ok && i < sizeof e / sizeof e[0]; i++)
        if (free_twice || i != 3)
            ok = hl_writer_event(w, &e[i], &err) == 0;
    ok = ok && hl_writer_close(w, &err) == 0;
    int rc = -2;
    if (ok) {
        struct hl_plan_opts o;
        memset(&o, 0, sizeof o);
        struct hl_rp_row *rows = NULL;
        int nrows = 0;
        rc = hl_plan_trace(path, &o, -1, &rows, &nrows, &err);
        for (int i = 0; i < nrows; i++)
            close(rows[i].plan.fd);
        free(rows);
    }
    snprintf(msg, msglen, "%s", err.msg);
    unlink(path);
    return rc;
}

int main(void)
{
    struct hl_plan_info info;
    int rc;

    /* one thread: malloc 64, malloc 100, free #0, realloc #1 -> 300, free ?, free #0
     * (double free), malloc FAILED, free #2 */
    struct hl_event a[] = {
        ev(0, HL_OP_MALLOC, 64, 0, N),   ev(0, HL_OP_MALLOC, 100, 1, N),
        ev(0, HL_OP_FREE, 0, 0, N),      ev(0, HL_OP_REALLOC, 300, 2, 1),
        ev(0, HL_OP_FREE, 0, N, N),      ev(0, HL_OP_FREE, 0, 0, N),
        ev(0, HL_OP_MALLOC, 1 << 20, N, N), ev(0, HL_OP_FREE, 0, 2, N),
    };
    a[4].flags = HL_EV_UNKNOWN;
    a[6].flags = HL_EV_FAILED;
    const struct hl_plan_hdr *h = build(a, 8, 0, &info, &rc);
    TAP_CHECK(h && rc == 0, "a valid section plans");
    if (!h)
        return tap_done();
    TAP_EQ_U(h->events, 8, "every trace event is counted");
    TAP_EQ_U(h->ops, 5, "the replayed ops exclude unknown, double and failed events");
    TAP_EQ_U(h->skipped_unknown, 2, "a foreign free and a double free are skipped as unknown");
    TAP_EQ_U(h->skipped_failed, 1, "a failed malloc is skipped");
    TAP_EQ_U(h->peak_live, 300, "peak live bytes follow the trace (realloc frees, then allocates)");
    TAP_EQ_U(h->ndense, 3, "dense slots: the most blocks live at once (2), and no block");
    TAP_EQ_U(h->nthreads, 1, "one recorded thread, one replay thread");
    TAP_EQ_U(tev(h, 0)[3].size, 300, "realloc carries its new size");
    TAP_CHECK(tev(h, 0)[3].slot == tev(h, 0)[1].slot && tev(h, 0)[3].old_slot == tev(h, 0)[1].slot,
              "a serial realloc of a live block keeps its dense slot");
    TAP_CHECK(h->compact && ncompact_realloc == 1 && nescape == 0,
              "and is one compact word, not an escape");
    TAP_CHECK(dense_ok(h), "its dense slots consistent");
    TAP_CHECK(h->compact, "a one-thread section is stored as the compact stream");
    TAP_EQ_U(nnarrow, 1, "its window of few slots and small sizes is written narrow");

    /* Narrow windows: an op whose size does not fit the narrow word becomes an escape;
     * when more than a quarter would, the window stays wide. */
    {
        struct hl_event big[16];
        for (int i = 0; i < 8; i++) {
            big[i] = ev(0, HL_OP_MALLOC, i == 7 ? 1u << 29 : 16, (uint64_t)i, N);
            big[8 + i] = ev(0, HL_OP_FREE, 0, (uint64_t)i, N);
        }
        h = build(big, 16, 1, &info, &rc);
        TAP_CHECK(h && nnarrow == 1 && nescape == 1,
                  "one size too large for the narrow word: narrow, that op an escape");
        TAP_CHECK(h && P.nev[0] == 16 && tev(h, 0)[7].op == HL_OP_MALLOC &&
                      tev(h, 0)[7].size == 1u << 29 && tev(h, 0)[7].slot == tev(h, 0)[15].slot &&
                      tev(h, 0)[0].size == 16 && tev(h, 0)[8].op == HL_OP_FREE,
                  "and every event reads back as planned");
        for (int i = 0; i < 8; i++)
            big[i].size = 1u << 29;
        h = build(big, 16, 1, &info, &rc);
        TAP_CHECK(h && nnarrow == 0 && nescape == 0 && tev(h, 0)[3].size == 1u << 29,
                  "half the ops too large: the window stays wide, no escapes");
    }

    /* Recorded page counts (HL_RF_PAGES): a 1 MiB malloc and calloc with 10 and 20 pages
     * touch those; a small malloc with a pair, and a block whose pair covers all of it,
     * are planned as before.  Serial (compact: escapes) and threaded alike. */
    {
        struct hl_event pe[] = {
            ev(0, HL_OP_MALLOC, 1 << 20, 0, N), ev(0, HL_OP_CALLOC, 1 << 16, 1, N),
            ev(1, HL_OP_MALLOC, 100, 2, N),     ev(1, HL_OP_MALLOC, 1 << 17, 3, N),
            ev(0, HL_OP_FREE, 0, 0, N),         ev(1, HL_OP_FREE, 0, 1, N),
        };
        pe[1].aux = 16; /* calloc(16, 64 KiB) */
        const struct hl_pages pairs[] = {{0, 10}, {1, 5}, {1, 20}, {2, 1}, {3, 32}};
        g_pages = pairs;
        g_npages = 5;
        for (int serial = 1; serial >= 0; serial--) {
            h = build(pe, 6, serial, &info, &rc);
            const struct hl_rp_ev *m = h ? tev(h, 0) : NULL, *o = h ? tev(h, serial ? 0 : 1) : NULL;
            int t1 = serial ? 2 : 0; /* thread 1's first event, where it is */
            TAP_CHECK(h && h->paged == 2 && info.paged == 2 && (m[0].flags & HL_RF_PAGES) &&
                          m[0].aux == 10 && m[0].size == 1 << 20,
                      "%s: a malloc with a page count touches those pages (aux)",
                      serial ? "serial" : "threads");
            TAP_CHECK(h && (m[1].flags & HL_RF_PAGES) && m[1].op == HL_OP_CALLOC &&
                          m[1].aux == 20 && m[1].size == 1 << 20,
                      "%s: a calloc's last pair counts, its size the product (calloc(1, size))",
                      serial ? "serial" : "threads");
            TAP_CHECK(h && !(o[t1].flags & HL_RF_PAGES) && !(o[t1 + 1].flags & HL_RF_PAGES) &&
                          o[t1 + 1].size == 1 << 17,
                      "%s: a small block's pair and one that covers its block change nothing",
                      serial ? "serial" : "threads");
            TAP_CHECK(h && h->peak_live == 30 * 4096 + 100 + (1 << 17),
                      "%s: live bytes count those blocks by their pages", serial ? "serial" : "threads");
        }
        g_pages = NULL;
        g_npages = 0;
    }

    /* two threads: t0 allocates #0 and #1, t1 frees #0 and reallocs #1, t0 frees #2 */
    struct hl_event b[] = {
        ev(0, HL_OP_MALLOC, 32, 0, N), ev(0, HL_OP_MALLOC, 48, 1, N),
        ev(1, HL_OP_FREE, 0, 0, N),    ev(1, HL_OP_REALLOC, 96, 2, 1),
        ev(0, HL_OP_FREE, 0, 2, N),
    };
    h = build(b, 5, 0, &info, &rc);
    TAP_CHECK(h != NULL, "a two-thread section plans");
    if (!h)
        return tap_done();
    TAP_EQ_U(h->nthreads, 2, "recorded mode replays one thread per recorded thread");
    TAP_EQ_U(P.nev[0], 3, "thread 0 keeps its own events");
    TAP_EQ_U(P.nev[1], 2, "thread 1 keeps its own events");
    TAP_CHECK(tev(h, 0)[0].flags & HL_RF_PUBLISH, "a block freed by another thread is published");
    TAP_CHECK(tev(h, 1)[0].flags & HL_RF_WAIT, "a cross-thread free waits for the allocation");
    TAP_CHECK(tev(h, 1)[1].flags & HL_RF_WAIT, "a cross-thread realloc waits for the allocation");
    TAP_CHECK(tev(h, 0)[2].flags & HL_RF_WAIT, "a block moving back waits too");
    TAP_CHECK(!(tev(h, 0)[1].flags & HL_RF_WAIT), "a same-thread event does not wait");
    TAP_EQ_U(h->peak_live, 96, "peak live bytes across threads follow the global order");
    h = build_w(b, 5, 0, 2, 0, &info, &rc);
    TAP_CHECK(h && h->nwin == 3 && !(tev(h, 1)[0].flags & HL_RF_WAIT) &&
                  !(tev(h, 1)[1].flags & HL_RF_WAIT) && !(tev(h, 0)[0].flags & HL_RF_PUBLISH) &&
                  !(tev(h, 0)[2].flags & HL_RF_WAIT),
              "windows of 2 events: a block from an earlier window needs no wait");
    h = build(b, 5, 1, &info, &rc);
    TAP_CHECK(h && h->nthreads == 1 && P.nev[0] == 5, "serial mode replays the global order on one thread");
    int waits = 0;
    for (uint64_t i = 0; h && i < P.nev[0]; i++)
        waits += (tev(h, 0)[i].flags & (HL_RF_WAIT | HL_RF_PUBLISH)) != 0;
    TAP_EQ_U(waits, 0, "serial mode has no cross-thread waits");

    /* every op, free(NULL), realloc(NULL), a skipped allocation (a gap in the slots
     * the stream replays), a malloc too large for a compact word */
    struct hl_event d[] = {
        ev(0, HL_OP_MALLOC, 24, 0, N),         ev(0, HL_OP_CALLOC, 16, 1, N),
        ev(0, HL_OP_REALLOC, 200, 2, 0),       ev(0, HL_OP_POSIX_MEMALIGN, 100, 3, N),
        ev(0, HL_OP_ALIGNED_ALLOC, 128, 4, N), ev(0, HL_OP_MEMALIGN, 50, 5, N),
        ev(0, HL_OP_VALLOC, 5000, 6, N),       ev(0, HL_OP_PVALLOC, 3, 7, N),
        ev(0, HL_OP_REALLOCARRAY, 8, 8, 1),    ev(0, HL_OP_FREE, 0, N, N),
        ev(0, HL_OP_REALLOC, 70, 9, N),        ev(0, HL_OP_MALLOC, 1ull << 50, 10, N),
        ev(0, HL_OP_MALLOC, 33, 11, N),        ev(0, HL_OP_MALLOC, 1ull << 31, 12, N),
        ev(0, HL_OP_FREE, 0, 11, N),           ev(0, HL_OP_FREE, 0, 3, N),
        ev(0, HL_OP_FREE, 0, 12, N),           ev(0, HL_OP_FREE, 0, 9, N),
        ev(1, HL_OP_MALLOC, 9, 13, N),         ev(0, HL_OP_FREE, 0, 13, N),
    };
    d[1].aux = 4;
    d[3].aux = 64;
    d[4].aux = 64;
    d[5].aux = 32;
    d[8].aux = 5;
    h = build(d, 20, 1, &info, &rc);
    TAP_CHECK(h && h->ops == 19 && dense_ok(h), "every op plans, its dense slots consistent");
    TAP_EQ_U(h ? tev(h, 0)[8].op : 0, HL_OP_REALLOC, "reallocarray is replayed as realloc");

    /* Random, partly nonsensical sections (frees of dead, unknown and future slots,
     * random flags and threads): the plan must still be self-consistent. */
    uint64_t seed = 88172645463325252ull;
    int consistent = 1, planned = 0;
    for (int round = 0; round < 20; round++) {
        static struct hl_event r[20000];
        uint64_t next = 0;
        for (int i = 0; i < 20000; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            int op = (int)(seed % 11);
            int thread = (int)((seed >> 8) % 5);
            uint64_t victim = next ? (seed >> 16) % (next + 2) : N;
            if (op == 0)
                r[i] = ev(thread, HL_OP_FREE, 0, victim, N);
            else if (op == HL_OP_REALLOC || op == HL_OP_REALLOCARRAY)
                r[i] = ev(thread, op, (seed >> 24) % 5000, next++, victim);
            else if (op == HL_OP_FREE)
                r[i] = ev(thread, op, 0, victim, N);
            else
                r[i] = ev(thread, op, (seed >> 24) % 5000, next++, N);
            r[i].aux = op == HL_OP_CALLOC || op == HL_OP_REALLOCARRAY ? 3 : 64;
            r[i].flags = (seed >> 40) % 17 == 0 ? HL_EV_UNKNOWN : 0;
            if ((seed >> 44) % 23 == 0 && hl_op_allocates(r[i].op)) {
                r[i].flags = HL_EV_FAILED;
                r[i].slot = N;
                next--;
            }
        }
        h = build_w(r, 20000, round & 1, round & 2 ? 64 : 0, 0, &info, &rc);
        if (!h)
            continue;
        planned++;
        uint64_t ops = 0;
        for (uint32_t t = 0; t < h->nthreads; t++)
            ops += P.nev[t];
        if (ops != h->ops || !dense_ok(h))
            consistent = 0;
    }
    TAP_CHECK(planned > 0, "random sections plan");
    TAP_CHECK(consistent, "planned random sections (serial and threads, windows of 64 and default) free each block at most once, never hand out a live slot");

    /* Dense slots stay as few as the blocks live at once, however long the section, and
     * slot numbers past 2^32 plan. */
    static struct hl_event long_[200000];
    const uint64_t base = (1ull << 32) + 5;
    for (int i = 0; i < 200000; i += 2) {
        long_[i] = ev(i % 4 == 0 ? 0 : 1, HL_OP_MALLOC, 40, base + (uint64_t)i / 2, N);
        long_[i + 1] = ev(0, HL_OP_FREE, 0, base + (uint64_t)i / 2, N);
    }
    h = build_w(long_, 200000, 1, 0, base, &info, &rc);
    TAP_EQ_U(h ? h->ndense : 0, 2, "100k blocks, one live at a time, past slot 2^32, serial: one dense slot and no block");
    h = build_w(long_, 200000, 0, 0, base, &info, &rc);
    TAP_CHECK(h && h->ops == 200000 && h->ndense <= HL_PLAN_WINDOW_THREADS + 2,
              "the same on two threads: slots freed in a window come back in the next, at most a window's worth");
    TAP_CHECK(h && dense_ok(h), "and they are consistent across windows");


    /* The batch path plans exactly as one event at a time: a long serial section
     * (blocks outliving the ring of recent slots, large and odd calls, double and
     * foreign frees, failures), in windows and batches that do not line up. */
    {
        const uint64_t n = 3000000;
        struct hl_event *m = calloc(n, sizeof *m);
        uint64_t *live = calloc(n, sizeof *live), nlive = 0, next = 0, x = 88172645463325252ull;
        for (uint64_t i = 0; m && live && i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            unsigned r = (unsigned)(x % 1000);
            if (nlive && (r < 480 || nlive > 20000)) {
                uint64_t k = (x >> 20) % nlive;
                /* keep one block in 64 live for good: it outlives the ring */
                if ((live[k] & 63) == 0 && r > 5) {
                    m[i] = ev(0, HL_OP_MALLOC, 24, next, N);
                    live[nlive++] = next++;
                    continue;
                }
                m[i] = ev(0, HL_OP_FREE, 0, live[k], N);
                if (r > 2)
                    live[k] = live[--nlive];
            } else if (r < 490) {
                m[i] = ev(0, r & 1 ? HL_OP_CALLOC : HL_OP_MEMALIGN, 16, next, N);
                m[i].aux = 4 + (r & 1) * 28;
                live[nlive++] = next++;
            } else if (r < 495 && nlive) {
                uint64_t k = (x >> 20) % nlive;
                m[i] = ev(0, HL_OP_REALLOC, r == 494 ? (1ull << 30) + 8 : 1 + (x >> 40) % 5000,
                          next, live[k]);
                live[k] = next++;
            } else if (r < 497) {
                m[i] = ev(0, HL_OP_MALLOC, r & 1 ? (1ull << 31) : 8, N, N);
                m[i].flags = HL_EV_FAILED;
            } else if (r < 498) {
                m[i] = ev(0, HL_OP_FREE, 0, N, N);
                m[i].flags = r & 1 ? HL_EV_UNKNOWN : 0;
            } else {
                m[i] = ev(0, HL_OP_MALLOC, r & 1 ? (1ull << 30) + 16 : 1 + (x >> 40) % 5000, next, N);
                live[nlive++] = next++;
            }
        }
        TAP_CHECK(m && live && same_plan(m, n, 0, 0, 0, 4096),
                  "a long one-thread section: the same plan file from the batch path");
        TAP_CHECK(m && live && same_plan(m, n / 10, 0, 1000, 77, 999),
                  "the same with windows of 1000 events, a timeline point every 77 ops, batches of 999");
        for (uint64_t i = 0; m && i < n / 10; i += 3)
            m[i].thread = 1;
        TAP_CHECK(m && live && same_plan(m, n / 10, 1, 0, 0, 4096),
                  "two threads replayed serially: the same plan file from the batch path");
        free(m);
        free(live);
    }

    /* the slot rule: an allocation must take the next slot */
    struct hl_event c[] = {ev(0, HL_OP_MALLOC, 8, 0, N), ev(0, HL_OP_MALLOC, 8, 5, N)};
    build(c, 2, 0, &info, &rc);
    TAP_CHECK(rc != 0, "a section that skips a slot is refused as corrupted");
    char msg[512];
    TAP_CHECK(plan_file_with_double_free(0, msg, sizeof msg) == 0,
              "a trace file plans as `heaplab replay` plans it (%s)", msg);
    rc = plan_file_with_double_free(1, msg, sizeof msg);
    tap_diag("%s", msg);
    TAP_CHECK(rc == -1 && strstr(msg, "corrupted trace") && strstr(msg, "slot 0, which is not live"),
              "a trace file that gives a slot back twice is refused as corrupted");
    return tap_done();
}
