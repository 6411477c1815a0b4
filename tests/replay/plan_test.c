/*
 * plan_test.c: the replay plan built from events in memory (cmd/replay/plan.c).
 *
 * What replay promises before any allocator runs: the replayed op count, the peak
 * live bytes, which events are dropped (double free, foreign free, failed calls), and
 * where a thread must wait for a block another thread allocated.
 */
#include "replay.h"
#include "tap.h"

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

static const struct hl_plan_hdr *build(const struct hl_event *e, int n, int serial,
                                       struct hl_plan_info *info, int *rc)
{
    struct hl_err err;
    struct hl_plan_builder *b = hl_plan_begin(serial, UINT64_MAX);
    *rc = 0;
    for (int i = 0; i < n; i++)
        if (hl_plan_add(b, &e[i], &err) != 0) {
            *rc = -1;
            hl_plan_abort(b);
            return NULL;
        }
    if (hl_plan_finish(b, info, &err) != 0) {
        *rc = -1;
        return NULL;
    }
    off_t sz = lseek(info->fd, 0, SEEK_END);
    const struct hl_plan_hdr *h = mmap(NULL, (size_t)sz, PROT_READ, MAP_PRIVATE, info->fd, 0);
    return h == MAP_FAILED ? NULL : h;
}

static const struct hl_rp_ev *tev(const struct hl_plan_hdr *h, int t)
{
    return (const struct hl_rp_ev *)((const char *)h + h->thr[t].ev_off);
}

/* The plain loop's decoding of the compact stream (worker.c cstep), checked against
 * the plan's full events: the same op and size for every event, escapes identical but
 * for their slots, and the dense slots standing for the right blocks: a free's dense
 * slot is the one its block was given, and no dense slot is given to two live blocks
 * (else a later free would find another block there). */
static int compact_matches(const struct hl_plan_hdr *h)
{
    if (h->nthreads != 1 || h->ncev != h->thr[0].nev || h->ndense < 1 ||
        h->ndense > h->nslots + 1)
        return 0;
    const struct hl_rp_ev *e = tev(h, 0);
    const uint64_t *c = (const uint64_t *)((const char *)h + h->cev_off);
    const struct hl_rp_ev *x = (const struct hl_rp_ev *)((const char *)h + h->cx_off);
    static uint32_t held[65536]; /* dense slot -> trace slot of its live block */
    static uint8_t live[65536];
    if (h->ndense > 65536)
        return 0;
    memset(live, 0, sizeof live);
    held[0] = (uint32_t)h->nslots; /* "no block" */
    live[0] = 1;
    uint64_t nx = 0;
    for (uint64_t i = 0; i < h->ncev; i++) {
        const uint64_t w = c[i];
        if (HL_CEV_TAG(w) == HL_CEV_FREE) {
            uint64_t d = w >> 2;
            if (e[i].op != HL_OP_FREE || d >= h->ndense || !live[d] || held[d] != e[i].slot)
                return 0;
            live[d] = d == 0;
        } else if (HL_CEV_TAG(w) == HL_CEV_MALLOC) {
            uint64_t d = HL_CEV_SLOT(w);
            if (e[i].op != HL_OP_MALLOC || e[i].size != w >> HL_CEV_SIZE_SHIFT || d == 0 ||
                d >= h->ndense || live[d])
                return 0;
            held[d] = e[i].slot;
            live[d] = 1;
        } else if (HL_CEV_TAG(w) == HL_CEV_OTHER) {
            if (nx >= h->ncx)
                return 0;
            struct hl_rp_ev y = x[nx++];
            uint32_t d = y.slot, od = y.old_slot;
            if (d == 0 || d >= h->ndense || live[d])
                return 0;
            if (y.op == HL_OP_REALLOC) {
                if (od >= h->ndense || !live[od] || held[od] != e[i].old_slot)
                    return 0;
                y.old_slot = e[i].old_slot;
                live[od] = od == 0;
            }
            y.slot = e[i].slot;
            if (memcmp(&y, &e[i], sizeof y) != 0)
                return 0;
            held[d] = e[i].slot;
            live[d] = 1;
        } else {
            return 0;
        }
    }
    return nx == h->ncx;
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
    TAP_EQ_U(h->nslots, 3, "slots are the trace's allocations");
    TAP_EQ_U(h->nthreads, 1, "one recorded thread, one replay thread");
    TAP_EQ_U(tev(h, 0)[3].size, 300, "realloc carries its new size");
    TAP_EQ_U(tev(h, 0)[4].size, 300, "a free carries the freed block's size");

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
    TAP_EQ_U(h->thr[0].nev, 3, "thread 0 keeps its own events");
    TAP_EQ_U(h->thr[1].nev, 2, "thread 1 keeps its own events");
    TAP_CHECK(tev(h, 0)[0].flags & HL_RF_PUBLISH, "a block freed by another thread is published");
    TAP_CHECK(tev(h, 1)[0].flags & HL_RF_WAIT, "a cross-thread free waits for the allocation");
    TAP_CHECK(tev(h, 1)[1].flags & HL_RF_WAIT, "a cross-thread realloc waits for the allocation");
    TAP_CHECK(tev(h, 0)[2].flags & HL_RF_WAIT, "a block moving back waits too");
    TAP_CHECK(!(tev(h, 0)[1].flags & HL_RF_WAIT), "a same-thread event does not wait");
    TAP_EQ_U(h->peak_live, 96, "peak live bytes across threads follow the global order");
    h = build(b, 5, 1, &info, &rc);
    TAP_CHECK(h && h->nthreads == 1 && h->thr[0].nev == 5, "serial mode replays the global order on one thread");
    int waits = 0;
    for (uint64_t i = 0; h && i < h->thr[0].nev; i++)
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
    TAP_CHECK(h && h->ops == 19 && h->ncx == 10,
              "the compact stream escapes every op but malloc and free, and mallocs of 1 GiB or more");
    TAP_CHECK(h && compact_matches(h), "the compact stream decodes to the plan's events (every op)");
    h = build(d, 20, 0, &info, &rc);
    TAP_CHECK(h && h->nthreads == 2 && h->ncev == 0 && h->cev_off == 0,
              "a plan with several replay threads has no compact stream");

    /* Random, partly nonsensical sections (frees of dead, unknown and future slots,
     * random flags and threads): the plan must still be self-consistent. */
    uint64_t seed = 88172645463325252ull;
    int consistent = 1, planned = 0, compact = 1;
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
        h = build(r, 20000, round & 1, &info, &rc);
        if (!h)
            continue;
        planned++;
        static uint8_t freed[20001], made[20001];
        memset(freed, 0, sizeof freed);
        memset(made, 0, sizeof made);
        uint64_t ops = 0;
        for (uint32_t t = 0; t < h->nthreads; t++) {
            for (uint64_t i = 0; i < h->thr[t].nev; i++) {
                const struct hl_rp_ev *e = &tev(h, t)[i];
                ops++;
                if (e->slot > h->nslots || (e->op == HL_OP_REALLOC && e->old_slot > h->nslots))
                    consistent = 0;
                else if (e->op == HL_OP_FREE && e->slot < h->nslots && freed[e->slot]++)
                    consistent = 0;
                else if (e->op != HL_OP_FREE && (e->slot == h->nslots || made[e->slot]++))
                    consistent = 0;
                else if (e->op == HL_OP_REALLOC && e->old_slot < h->nslots && freed[e->old_slot]++)
                    consistent = 0;
            }
        }
        if (ops != h->ops)
            consistent = 0;
        if (h->nthreads == 1 && !compact_matches(h))
            compact = 0;
    }
    TAP_CHECK(planned > 0, "random sections plan");
    TAP_CHECK(consistent, "planned random sections free each block at most once, never NULL-slot allocations");
    TAP_CHECK(compact, "random serial sections' compact streams decode to their events");

    /* the slot rule: an allocation must take the next slot */
    struct hl_event c[] = {ev(0, HL_OP_MALLOC, 8, 0, N), ev(0, HL_OP_MALLOC, 8, 5, N)};
    build(c, 2, 0, &info, &rc);
    TAP_CHECK(rc != 0, "a section that skips a slot is refused as corrupted");
    return tap_done();
}
