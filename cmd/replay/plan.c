/*
 * plan.c: turning a trace section into a replay plan (see replay.h).
 *
 * Everything the timed loop reads is decided here, before any allocator runs: which
 * events are replayed (frees of unknown or already-freed blocks and failed calls are
 * counted and dropped), which replay thread runs each event, where a thread must wait
 * for a block another thread allocates, the live-bytes curve and the timeline sample
 * points, and each block's dense slot.  The result is a file of windows that workers
 * read one at a time (replay.h); the builder holds one window and the live blocks.
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_THREADS 65536
#define TL_TARGET 512 /* default timeline: between TL_TARGET and 2*TL_TARGET points */
#define MAX_DENSE (UINT32_MAX - 1) /* dense slots are 32-bit: blocks live at once */
#define SKIPPED_D ((uint64_t)UINT32_MAX) /* map value: a block that is not replayed */

struct evvec {
    struct hl_rp_ev *v;
    uint64_t n, cap;
};

struct tlmark {
    uint64_t op_index, live;
    uint32_t thread;
};

/* What the plan knows of a live dense slot: its block's bytes, and where its
 * allocating event is while its window is still being built (for HL_RF_PUBLISH). */
struct dslot {
    uint64_t bytes, win;
    uint32_t thread;
    uint32_t idx;
};

/* Live trace slot -> dense slot.  Slots are handed out in increasing order and most
 * are given back soon: the newest RING_SLOTS slots are a direct array (0: not live),
 * older live ones move to a hash map as the ring passes them.  Memory is the ring
 * (constant) plus the long-lived blocks. */
#define RING_BITS 20
#define RING_SLOTS (1ull << RING_BITS)

struct hl_plan_builder {
    int fd, serial, single;
    int strict;                   /* a slot given back that is not live is a corrupted
                                     trace (the reader left that check to us), not a
                                     double free to count and drop */
    struct hl_plan_opts opts;     /* as asked (the cache key) */
    uint32_t *ring;               /* RING_SLOTS entries: slot s at s % RING_SLOTS */
    uint64_t every;   /* timeline interval; UINT64_MAX: no timeline */
    uint64_t window;
    struct evvec *thr; /* the window being built, per replay thread */
    uint32_t nthr, thrcap;
    uint32_t recorded_threads;
    uint64_t first_slot, next_slot;
    struct hl_slotmap *map;       /* live trace slot -> dense slot (or SKIPPED_D) */
    struct hl_slotmap *pages;     /* trace slot -> resident pages (hl_reader_pages), for
                                     the blocks not allocated yet; NULL if none */
    uint64_t pages_min;           /* allocations this large look there (else never) */
    uint64_t page_size, paged;    /* the trace's page size; HL_RF_PAGES events planned */
    struct dslot *ds;
    uint64_t dscap, hi;           /* dense slots handed out so far: 1 .. hi-1 */
    uint32_t *freed;              /* dense slots to hand out again */
    uint64_t nfreed, freedcap;
    uint32_t *pend;               /* freed in this window (several threads) */
    uint64_t npend, pendcap;
    uint64_t win, win_ev;         /* window number, events in it */
    uint64_t off, nwin, max_win;
    uint64_t synced;              /* written back up to here (a plan kept in the cache,
                                     or streamed) */
    uint64_t dropped;             /* streamed: pages given back up to here */
    int streamed;                 /* hl_plan_streamed, from the section's event count */
    uint64_t events, ops, unknown, failed, live, peak, cross;
    struct tlmark *tl;
    uint64_t ntl, tlcap;
    uint64_t next_sample;         /* the op index of the next timeline point */
    char *wbuf;                   /* the window as written (several threads) */
    uint64_t wcap;
    /* A serial plan's window is built in its compact form directly: */
    uint64_t *cw;                 /* compact words */
    uint64_t ncw, cwcap;
    struct hl_rp_ev *cx;          /* escapes */
    uint64_t ncx, cxcap;
    struct hl_rp_ev one;          /* the event being planned (serial) */
    uint32_t *nw;                 /* the window's words in the narrow form, */
    uint64_t nwcap;
    struct hl_rp_ev *nx;          /* and its escapes then */
    uint64_t nxn, nxcap;
    int werr;
};

static void *grow(void *p, uint64_t *cap, uint64_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    uint64_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    void *q = realloc(p, c * elem);
    if (!q) {
        fprintf(stderr, "heaplab: out of memory building the replay plan\n");
        exit(1);
    }
    *cap = c;
    return q;
}

/* Trace slots as slot-map keys: consecutive slots are neighbouring cells (the map
 * keeps 16-byte granules of a page together), and none is the map's empty key 0. */
static inline uint64_t key_of(uint64_t slot)
{
    return (slot + 1) << 4;
}

/* Slot s (the next one, b->next_slot) now maps to v: the ring entry it takes over
 * held slot s - RING_SLOTS, which moves to the map if still live.  (Taking the ring
 * and map as arguments lets plan_run's loop keep them in registers.) */
static inline void ring_put(uint32_t *ring, struct hl_slotmap *map, uint64_t s, uint32_t v)
{
    uint32_t *r = &ring[s & (RING_SLOTS - 1)];
    if (*r)
        hl_slotmap_put(map, key_of(s - RING_SLOTS), *r);
    *r = v;
}

static void slot_put(struct hl_plan_builder *b, uint64_t s, uint32_t v)
{
    ring_put(b->ring, b->map, s, v);
}

/* Take slot s's value out: a dense slot, SKIPPED_D, or HL_NO_SLOT if not live. */
static uint64_t slot_take(struct hl_plan_builder *b, uint64_t s)
{
    if (s >= b->next_slot || s < b->first_slot)
        return HL_NO_SLOT;
    if (b->next_slot - s <= RING_SLOTS) {
        uint32_t *r = &b->ring[s & (RING_SLOTS - 1)];
        uint32_t v = *r;
        *r = 0;
        return v ? v : HL_NO_SLOT;
    }
    return hl_slotmap_take(b->map, key_of(s));
}

struct hl_plan_builder *hl_plan_begin(int fd, const struct hl_plan_opts *o,
                                      const struct hl_process *p)
{
    struct hl_plan_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->map = hl_slotmap_new();
    b->ring = calloc(RING_SLOTS, sizeof *b->ring);
    if (!b->map || !b->ring) {
        hl_slotmap_free(b->map);
        free(b->ring);
        free(b);
        return NULL;
    }
    b->fd = fd;
    b->opts = *o;
    /* A section of one thread is planned as serial (the same plan, slots reused at
     * once); an event of another thread there is a corrupted trace. */
    b->serial = o->serial || p->nthreads == 1;
    b->single = p->nthreads == 1;
    b->every = o->timeline_every ? o->timeline_every : p->nevents / TL_TARGET + 1;
    b->next_sample = b->every == UINT64_MAX ? UINT64_MAX : 0;
    b->window = o->window ? o->window : b->serial ? HL_PLAN_WINDOW_SERIAL : HL_PLAN_WINDOW_THREADS;
    b->first_slot = b->next_slot = p->first_slot;
    b->pages_min = UINT64_MAX;
    b->page_size = p->page_size ? p->page_size : 4096;
    b->hi = 1;
    b->off = b->synced = HL_PLAN_HDR_BYTES;
    /* At least 4 bytes per event (narrow words), so the plan is at least this large. */
    b->streamed = hl_plan_streamed(p->nevents * sizeof(uint32_t));
    return b;
}

void hl_plan_abort(struct hl_plan_builder *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->thrcap; i++)
        free(b->thr[i].v);
    free(b->thr);
    hl_slotmap_free(b->map);
    hl_slotmap_free(b->pages);
    free(b->ring);
    free(b->ds);
    free(b->freed);
    free(b->pend);
    free(b->tl);
    free(b->wbuf);
    free(b->cw);
    free(b->cx);
    free(b->nw);
    free(b->nx);
    free(b);
}

static int write_at(int fd, const void *p, uint64_t n, uint64_t off)
{
    const char *c = p;
    while (n) {
        ssize_t k = pwrite(fd, c, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        c += k;
        n -= (uint64_t)k;
        off += (uint64_t)k;
    }
    return 0;
}

/* pwrite of several pieces, whole. */
static int writev_at(int fd, struct iovec *iov, int n, uint64_t off)
{
    while (n > 0) {
        ssize_t k = pwritev(fd, iov, n > 64 ? 64 : n, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        off += (uint64_t)k;
        while (n > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

int hl_plan_streamed(uint64_t bytes)
{
    static uint64_t min;
    if (!min) {
        const char *e = getenv("HEAPLAB_PLAN_STREAM_MIN");
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        uint64_t m = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize / 4 : UINT64_MAX;
        if (e && *e)
            m = strtoull(e, NULL, 10);
        min = m ? m : 1;
    }
    return bytes >= min;
}

/* A plan kept beside the trace is made durable (fsync) before it is renamed into
 * place: start writing it back as it grows, so that the disk works while the plan is
 * built and the final fsync has little left to wait for.  A streamed plan
 * (hl_plan_streamed) is written back the same way, and its pages are given back once
 * written, a step behind. */
static void written(struct hl_plan_builder *b)
{
    if (!(b->opts.cache || b->streamed) || b->off - b->synced < HL_PLAN_STREAM_STEP)
        return;
    sync_file_range(b->fd, (off64_t)b->synced, (off64_t)(b->off - b->synced),
                    SYNC_FILE_RANGE_WRITE);
    b->synced = b->off;
    if (b->streamed && b->synced - b->dropped >= 4 * HL_PLAN_STREAM_STEP) {
        const uint64_t to = b->synced - HL_PLAN_STREAM_STEP;
        sync_file_range(b->fd, (off64_t)b->dropped, (off64_t)(to - b->dropped),
                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                            SYNC_FILE_RANGE_WAIT_AFTER);
        posix_fadvise(b->fd, (off_t)b->dropped, (off_t)(to - b->dropped), POSIX_FADV_DONTNEED);
        b->dropped = to;
    }
}

/* The window's words in the narrow form (replay.h) into b->nw, its escapes (those of
 * the wide form and the ops whose size does not fit) into b->nx: the slot bits used,
 * or 0 when the narrow form would not be smaller (the window is written wide). */
static unsigned narrow_window(struct hl_plan_builder *b)
{
    const uint64_t n = b->ncw;
    uint64_t any = 0;
    for (uint64_t k = 0; k < n; k++)
        any |= b->cw[k];
    const uint64_t slots = HL_CEV_SLOT(any); /* its top bit is the largest slot's */
    const unsigned sb = slots ? 64u - (unsigned)__builtin_clzll(slots) : 1u;
    if (sb > HL_CEV_NARROW_MAX_SLOT_BITS)
        return 0;
    b->nw = grow(b->nw, &b->nwcap, n + 4, sizeof *b->nw);
    b->nx = grow(b->nx, &b->nxcap, b->ncx + n / 4 + 1, sizeof *b->nx);
    if (hl_cev_narrow_fits(any >> HL_CEV_SIZE_SHIFT, sb)) {
        /* Every size fits (their OR does): each word narrowed as it is, escapes
         * included (HL_CEV_OTHER: size and slot 0), in a loop without branches; the
         * escapes stay as they are. */
        const uint64_t *cw = b->cw;
        uint32_t *nw = b->nw;
        for (uint64_t k = 0; k < n; k++)
            nw[k] = HL_CEV_NARROW(cw[k] >> HL_CEV_SIZE_SHIFT, HL_CEV_SLOT(cw[k]),
                                  HL_CEV_TAG(cw[k]), sb);
        if (b->ncx) /* (cx is NULL before a plan's first escape) */
            memcpy(b->nx, b->cx, b->ncx * sizeof *b->nx);
        b->nxn = b->ncx;
        return sb;
    }
    const uint64_t most = b->ncx + n / 4; /* more escapes: wide is smaller */
    const struct hl_rp_ev *x = b->cx;
    uint64_t nx = 0;
    for (uint64_t k = 0; k < n; k++) {
        const uint64_t w = b->cw[k];
        const unsigned tag = HL_CEV_TAG(w);
        const uint64_t size = w >> HL_CEV_SIZE_SHIFT;
        if (tag == HL_CEV_OTHER && !HL_CEV_SLOT(w)) {
            b->nx[nx++] = *x++;
        } else if (hl_cev_narrow_fits(size, sb)) {
            b->nw[k] = HL_CEV_NARROW(size, HL_CEV_SLOT(w), tag, sb);
            continue;
        } else {
            if (nx == most)
                return 0;
            struct hl_rp_ev *e = &b->nx[nx++];
            if (tag == HL_CEV_MALLOC) {
                memset(e, 0, sizeof *e);
                e->op = HL_OP_MALLOC;
                e->size = size;
                e->slot = (uint32_t)HL_CEV_SLOT(w);
            } else {
                *e = HL_CEV_REALLOC(w);
            }
        }
        b->nw[k] = HL_CEV_OTHER;
    }
    b->nxn = nx;
    return sb;
}

/* A serial window (replay.h's compact stream, built as the events came): its header,
 * words and escapes written in one call, narrow where that is smaller. */
static void write_compact(struct hl_plan_builder *b)
{
    const uint64_t hb = hl_plan_win_hdr_bytes(1);
    const unsigned sb = narrow_window(b);
    const uint64_t ncx = sb ? b->nxn : b->ncx;
    const uint64_t wbytes = hl_plan_words_bytes(b->ncw, sb);
    const uint64_t bytes = hb + wbytes + ncx * sizeof(struct hl_rp_ev);
    union {
        struct hl_plan_win w;
        char pad[64];
    } h;
    memset(&h, 0, sizeof h);
    h.w.bytes = bytes;
    h.w.nev_total = b->ncw;
    h.w.nthr = 1;
    h.w.ncx = (uint32_t)ncx;
    h.w.slot_bits = sb;
    h.w.nev[0] = (uint32_t)b->ncw;
    if (sb) /* the padding after the narrow words: written, so zero */
        memset(b->nw + b->ncw, 0, wbytes - b->ncw * sizeof *b->nw);
    struct iovec iov[3] = {{&h, hb},
                           {sb ? (void *)b->nw : (void *)b->cw, wbytes},
                           {sb ? b->nx : b->cx, ncx * sizeof(struct hl_rp_ev)}};
    if (!b->werr && writev_at(b->fd, iov, 3, b->off) != 0)
        b->werr = errno ? errno : EIO;
    b->off += bytes;
    if (bytes > b->max_win)
        b->max_win = bytes;
    b->ncw = b->ncx = 0;
    written(b);
}

/* The events of a window with several threads: thread after thread; bytes written. */
static uint64_t threads_window(struct hl_plan_builder *b, uint64_t hb, uint64_t n)
{
    uint64_t bytes = hb + n * sizeof(struct hl_rp_ev);
    b->wbuf = grow(b->wbuf, &b->wcap, bytes, 1);
    memset(b->wbuf, 0, hb);
    struct hl_plan_win *w = (struct hl_plan_win *)b->wbuf;
    char *at = b->wbuf + hb;
    for (uint32_t i = 0; i < b->nthr; i++) {
        w->nev[i] = (uint32_t)b->thr[i].n;
        memcpy(at, b->thr[i].v, b->thr[i].n * sizeof(struct hl_rp_ev));
        at += b->thr[i].n * sizeof(struct hl_rp_ev);
    }
    return bytes;
}

/* Write the window built so far; the slots freed in it can be handed out again. */
static void flush_window(struct hl_plan_builder *b)
{
    if (b->serial) {
        if (b->ncw == 0)
            return;
        write_compact(b);
        b->nwin++;
        b->win++;
        b->win_ev = 0;
        return;
    }
    uint64_t hb = hl_plan_win_hdr_bytes(b->nthr), n = 0;
    for (uint32_t i = 0; i < b->nthr; i++)
        n += b->thr[i].n;
    if (n == 0)
        return;
    const uint64_t bytes = threads_window(b, hb, n);
    struct hl_plan_win *w = (struct hl_plan_win *)b->wbuf;
    w->bytes = bytes;
    w->nev_total = n;
    w->nthr = b->nthr;
    for (uint32_t i = 0; i < b->nthr; i++)
        b->thr[i].n = 0;
    if (!b->werr && write_at(b->fd, b->wbuf, bytes, b->off) != 0)
        b->werr = errno ? errno : EIO;
    b->off += bytes;
    b->nwin++;
    if (bytes > b->max_win)
        b->max_win = bytes;
    written(b);
    for (uint64_t k = 0; k < b->npend; k++)
        b->freed[b->nfreed++] = b->pend[k];
    b->npend = 0;
    b->win++;
    b->win_ev = 0;
}

static struct hl_rp_ev *push(struct hl_plan_builder *b, uint32_t t, uint32_t *idx)
{
    if (t >= b->nthr) {
        if (t >= b->thrcap) {
            uint64_t cap = b->thrcap;
            b->thr = grow(b->thr, &cap, (uint64_t)t + 1, sizeof *b->thr);
            memset(b->thr + b->thrcap, 0, (cap - b->thrcap) * sizeof *b->thr);
            b->thrcap = (uint32_t)cap;
        }
        b->nthr = t + 1;
    }
    struct evvec *v = &b->thr[t];
    v->v = grow(v->v, &v->cap, v->n + 1, sizeof *v->v);
    *idx = (uint32_t)v->n;
    struct hl_rp_ev *e = &v->v[v->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* A dense slot for a new block: one given back before (in an earlier window, with
 * several threads), else the next unused one.  0 when there are too many live. */
static uint32_t dense_new(struct hl_plan_builder *b)
{
    if (b->nfreed)
        return b->freed[--b->nfreed];
    if (b->hi > MAX_DENSE)
        return 0;
    b->ds = grow(b->ds, &b->dscap, b->hi + 1, sizeof *b->ds);
    uint64_t c = b->freedcap;
    b->freed = grow(b->freed, &c, b->hi + 1, sizeof *b->freed);
    b->freedcap = c;
    c = b->pendcap;
    b->pend = grow(b->pend, &c, b->hi + 1, sizeof *b->pend);
    b->pendcap = c;
    return (uint32_t)b->hi++;
}

/* Dense slot d's block is given back by an event of thread t. */
static void dense_free(struct hl_plan_builder *b, uint32_t d, uint32_t t, struct hl_rp_ev *r)
{
    struct dslot *x = &b->ds[d];
    if (!b->serial && x->thread != t && x->win == b->win) {
        r->flags |= HL_RF_WAIT;
        b->thr[x->thread].v[x->idx].flags |= HL_RF_PUBLISH;
        b->cross++;
    }
    b->live -= x->bytes;
    if (b->serial)
        b->freed[b->nfreed++] = d;
    else
        b->pend[b->npend++] = d;
}

static int aligned_op(int op)
{
    return op == HL_OP_POSIX_MEMALIGN || op == HL_OP_ALIGNED_ALLOC || op == HL_OP_MEMALIGN;
}

/* A serial event into the window's compact stream: a word, or an escape. */
static void emit_compact(struct hl_plan_builder *b, const struct hl_rp_ev *r)
{
    b->cw = grow(b->cw, &b->cwcap, b->ncw + 1, sizeof *b->cw);
    if (r->op == HL_OP_FREE) {
        b->cw[b->ncw++] = HL_CEV_WORD(0, r->slot, HL_CEV_FREE);
    } else if (r->op == HL_OP_MALLOC && r->size < HL_CEV_MAX_SIZE && !(r->flags & HL_RF_PAGES)) {
        b->cw[b->ncw++] = HL_CEV_WORD(r->size, r->slot, HL_CEV_MALLOC);
    } else if (r->op == HL_OP_REALLOC && r->slot && r->slot == r->old_slot &&
               r->size < HL_CEV_MAX_SIZE) {
        b->cw[b->ncw++] = HL_CEV_WORD(r->size, r->slot, HL_CEV_OTHER);
    } else {
        b->cw[b->ncw++] = HL_CEV_OTHER;
        b->cx = grow(b->cx, &b->cxcap, b->ncx + 1, sizeof *b->cx);
        b->cx[b->ncx] = *r;
        b->cx[b->ncx++].flags = r->flags & HL_RF_PAGES;
    }
}

int hl_plan_pages(struct hl_plan_builder *b, const struct hl_pages *pg, size_t n)
{
    if (!n)
        return 0;
    if (!b->pages && !(b->pages = hl_slotmap_new()))
        return -1;
    for (size_t k = 0; k < n; k++) /* a slot's last pair counts: put replaces */
        hl_slotmap_put(b->pages, key_of(pg[k].slot), pg[k].pages);
    b->pages_min = HL_PAGES_MIN_BYTES;
    return 0;
}

/* A malloc or calloc of a block the trace counted resident pages of: r touches that
 * many (HL_RF_PAGES), when they are fewer than the block's.  Returns the bytes the
 * block holds resident, as the live bytes count it: those pages, else all its bytes. */
static uint64_t touch_pages(struct hl_plan_builder *b, const struct hl_event *e,
                            struct hl_rp_ev *r, uint64_t bytes)
{
    if (!b->pages)
        return bytes;
    uint64_t pages = hl_slotmap_take(b->pages, key_of(e->slot));
    uint64_t pg = b->page_size;
    if (pages == HL_NO_SLOT || pages >= (bytes + pg - 1) / pg || pages > UINT32_MAX)
        return bytes;
    r->flags |= HL_RF_PAGES;
    r->size = bytes;
    r->aux = (uint32_t)pages;
    b->paged++;
    return pages * pg;
}

/* The timeline point and the window's end after an event is planned. */
static inline void planned(struct hl_plan_builder *b, struct hl_rp_ev *r, uint32_t t)
{
    uint64_t opi = b->ops++;
    if (opi == b->next_sample) {
        b->next_sample = b->every > UINT64_MAX - opi ? UINT64_MAX : opi + b->every;
        r->flags |= HL_RF_SAMPLE;
        b->tl = grow(b->tl, &b->tlcap, b->ntl + 1, sizeof *b->tl);
        b->tl[b->ntl++] = (struct tlmark){opi, b->live, t};
    }
    if (++b->win_ev == b->window)
        flush_window(b);
}

/* The common events of a serial plan, planned in a tight loop: a malloc of a size the
 * compact stream holds into a slot number given back before, a free of a block the
 * ring holds, a realloc of one to such a size (in place: one word).  Stops before any
 * other event (hl_plan_add sees it, errors included), the next timeline point and the
 * window's end.  Returns the events planned, exactly
 * as hl_plan_add would have planned them. */
static uint64_t plan_run(struct hl_plan_builder *b, const struct hl_event *ev, uint64_t n)
{
    uint64_t lim = n;
    if (b->next_sample - b->ops < lim)
        lim = b->next_sample - b->ops;
    if (b->window - b->win_ev < lim)
        lim = b->window - b->win_ev;
    if (b->cwcap - b->ncw < lim)
        lim = b->cwcap - b->ncw;
    /* Locals: stores through the arrays would make the compiler reload fields of b. */
    uint32_t *const ring = b->ring, *const freed = b->freed;
    struct dslot *const ds = b->ds;
    uint64_t *const cw = b->cw + b->ncw;
    const uint64_t first = b->first_slot;
    const uint32_t nthreads = b->recorded_threads;
    uint64_t next = b->next_slot, nfreed = b->nfreed, live = b->live, peak = b->peak;
    uint64_t i = 0;
    for (; i < lim; i++) {
        const struct hl_event *e = &ev[i];
        if (e->thread >= nthreads || e->flags)
            break;
        if (e->op == HL_OP_FREE) {
            uint64_t s = e->slot;
            if (s >= next || s < first || next - s > RING_SLOTS)
                break;
            uint32_t *r = &ring[s & (RING_SLOTS - 1)];
            uint32_t d = *r;
            if (d == 0 || d == (uint32_t)SKIPPED_D)
                break;
            *r = 0;
            live -= ds[d].bytes;
            freed[nfreed++] = d;
            cw[i] = HL_CEV_WORD(0, d, HL_CEV_FREE);
        } else if (e->op == HL_OP_MALLOC) {
            uint64_t size = e->size;
            if (e->slot != next || size >= HL_CEV_MAX_SIZE || !nfreed || size >= b->pages_min)
                break;
            uint32_t d = freed[--nfreed];
            ring_put(ring, b->map, next++, d);
            ds[d].bytes = size;
            live += size;
            if (live > peak)
                peak = live;
            cw[i] = HL_CEV_WORD(size, d, HL_CEV_MALLOC);
        } else if (e->op == HL_OP_REALLOC) {
            /* of a block the ring holds: it keeps its dense slot (hl_plan_add's `same`) */
            const uint64_t s = e->old_slot, size = e->size;
            if (e->slot != next || size >= HL_CEV_MAX_SIZE || s >= next || s < first ||
                next - s > RING_SLOTS)
                break;
            uint32_t *o = &ring[s & (RING_SLOTS - 1)];
            const uint32_t d = *o;
            if (d == 0 || d == (uint32_t)SKIPPED_D)
                break;
            *o = 0;
            ring_put(ring, b->map, next++, d);
            live = live - ds[d].bytes + size;
            ds[d].bytes = size;
            if (live > peak)
                peak = live;
            cw[i] = HL_CEV_WORD(size, d, HL_CEV_OTHER);
        } else {
            break;
        }
    }
    b->next_slot = next;
    b->nfreed = nfreed;
    b->live = live;
    b->peak = peak;
    b->ncw += i;
    b->events += i;
    b->ops += i;
    b->win_ev += i;
    if (b->win_ev == b->window)
        flush_window(b);
    return i;
}

int hl_plan_add_events(struct hl_plan_builder *b, const struct hl_event *ev, uint64_t n,
                       struct hl_err *err)
{
    for (uint64_t i = 0; i < n; i++) {
        if (b->serial) {
            i += plan_run(b, ev + i, n - i);
            if (i == n)
                break;
        }
        if (hl_plan_add(b, &ev[i], err) != 0)
            return -1;
    }
    return 0;
}

int hl_plan_add(struct hl_plan_builder *b, const struct hl_event *e, struct hl_err *err)
{
    b->events++;
    if (e->thread >= MAX_THREADS) {
        snprintf(err->msg, sizeof err->msg, "event %llu: thread index %u out of range",
                 (unsigned long long)b->events - 1, e->thread);
        return -1;
    }
    if (b->single && e->thread != 0) {
        snprintf(err->msg, sizeof err->msg,
                 "corrupted trace: event %llu comes from thread %u of a one-thread section",
                 (unsigned long long)b->events - 1, e->thread);
        return -1;
    }
    if (e->thread + 1 > b->recorded_threads)
        b->recorded_threads = e->thread + 1;
    if (e->op == 0 || e->op >= HL_OP_COUNT_) {
        b->unknown++;
        return 0;
    }
    if (e->flags & HL_EV_FAILED) {
        b->failed++;
        return 0;
    }
    const uint32_t t = b->serial ? 0 : e->thread;
    const int allocates = hl_op_allocates(e->op);
    const int has_old = e->op == HL_OP_FREE || e->op == HL_OP_REALLOC ||
                        e->op == HL_OP_REALLOCARRAY;
    uint64_t old = HL_NO_SLOT; /* the dense slot given back, if any */

    if (allocates && e->slot == HL_NO_SLOT) { /* an allocation without a block */
        b->failed++;
        return 0;
    }
    if (has_old) {
        uint64_t s = e->op == HL_OP_FREE ? e->slot : e->old_slot;
        uint64_t d = s == HL_NO_SLOT ? HL_NO_SLOT : slot_take(b, s);
        if (d == SKIPPED_D) {
            /* the block was never replayed: neither is what gives it back */
            if (e->op == HL_OP_FREE) {
                b->failed++;
                return 0;
            }
        } else if (d != HL_NO_SLOT) {
            old = d;
        } else if (e->op == HL_OP_FREE && s == HL_NO_SLOT && !(e->flags & HL_EV_UNKNOWN)) {
            /* free(NULL): a real call, replayed as one */
        } else if (b->strict && s != HL_NO_SLOT && !(e->flags & HL_EV_UNKNOWN)) {
            snprintf(err->msg, sizeof err->msg,
                     "corrupted trace: event %llu gives back slot %llu, which is not live",
                     (unsigned long long)b->events - 1, (unsigned long long)s);
            return -1;
        } else if (e->op == HL_OP_FREE || s != HL_NO_SLOT || (e->flags & HL_EV_UNKNOWN)) {
            /* double free, foreign pointer: counted and dropped.  A realloc of one still
             * allocates; it is replayed as realloc(NULL, size). */
            b->unknown++;
            if (e->op == HL_OP_FREE)
                return 0;
        }
    }
    if (allocates && e->slot != b->next_slot) {
        snprintf(err->msg, sizeof err->msg,
                 "corrupted trace: event %llu allocates slot %llu, expected slot %llu",
                 (unsigned long long)b->events - 1, (unsigned long long)e->slot,
                 (unsigned long long)b->next_slot);
        return -1;
    }

    uint64_t bytes = 0;
    if (allocates) {
        b->next_slot++;
        bytes = hl_event_bytes(e);
        /* Calls the worker could not make as recorded (absurd sizes or alignments) are
         * not replayed; the block's later free is dropped with it. */
        if (bytes == UINT64_MAX || bytes > (1ull << 46) || (aligned_op(e->op) && e->aux > (1u << 30))) {
            slot_put(b, e->slot, (uint32_t)SKIPPED_D);
            b->failed++;
            if (old != HL_NO_SLOT) { /* the trace says realloc gave the old block back */
                struct hl_rp_ev dummy;
                memset(&dummy, 0, sizeof dummy);
                b->ds[old].win = UINT64_MAX; /* no event to wait on it */
                dense_free(b, (uint32_t)old, t, &dummy);
            }
            return 0;
        }
    }

    uint32_t idx = 0;
    struct hl_rp_ev *r = &b->one;
    if (b->serial)
        memset(r, 0, sizeof *r);
    else
        r = push(b, t, &idx);
    r->op = e->op == HL_OP_REALLOCARRAY ? HL_OP_REALLOC : e->op;
    if (e->op == HL_OP_FREE) {
        r->slot = old == HL_NO_SLOT ? 0 : (uint32_t)old;
        r->size = old == HL_NO_SLOT ? 0 : b->ds[old].bytes;
    } else {
        r->size = bytes;
        if (e->op == HL_OP_CALLOC) {
            if (e->aux <= UINT32_MAX && e->size <= (1ull << 46)) {
                r->size = e->size;
                r->aux = (uint32_t)e->aux;
            } else {
                r->size = bytes;
                r->aux = 1;
            }
        } else if (aligned_op(e->op)) {
            r->aux = (uint32_t)e->aux;
        }
        if (bytes >= b->pages_min && (e->op == HL_OP_MALLOC || e->op == HL_OP_CALLOC))
            bytes = touch_pages(b, e, r, bytes); /* from here on: the bytes held */
    }
    /* The new block's slot.  A serial realloc of a live block keeps its slot (the old
     * block dies as the new one is born, nothing runs in between), so that the compact
     * stream can hold it in one word; otherwise the new slot is taken before the old one
     * is given back, and a realloc never passes and receives the same slot. */
    const int same = b->serial && r->op == HL_OP_REALLOC && old != HL_NO_SLOT;
    if (same) {
        b->live -= b->ds[old].bytes;
        r->slot = r->old_slot = (uint32_t)old;
        slot_put(b, e->slot, (uint32_t)old);
        b->ds[old] = (struct dslot){bytes, b->win, t, idx};
        old = HL_NO_SLOT; /* not given back */
    } else if (allocates) {
        uint32_t d = dense_new(b);
        if (!d) {
            snprintf(err->msg, sizeof err->msg, "event %llu: more than %u blocks live at once",
                     (unsigned long long)b->events - 1, MAX_DENSE);
            return -1;
        }
        r->slot = d;
        if (r->op == HL_OP_REALLOC)
            r->old_slot = old == HL_NO_SLOT ? 0 : (uint32_t)old;
        slot_put(b, e->slot, d);
        b->ds[d] = (struct dslot){bytes, b->win, t, idx};
    }
    if (old != HL_NO_SLOT)
        dense_free(b, (uint32_t)old, t, r);
    if (allocates) {
        b->live += bytes;
        if (b->live > b->peak)
            b->peak = b->live;
    }
    if (b->serial)
        emit_compact(b, r);
    planned(b, r, t);
    return 0;
}

/* What the parent keeps of a plan: its file and its header's counts. */
static void info_of(const struct hl_plan_hdr *h, int fd, struct hl_plan_info *info)
{
    memset(info, 0, sizeof *info);
    info->fd = fd;
    info->events = h->events;
    info->ops = h->ops;
    info->skipped_unknown = h->skipped_unknown;
    info->skipped_failed = h->skipped_failed;
    info->peak_live = h->peak_live;
    info->ndense = h->ndense;
    info->paged = h->paged;
    info->bytes = h->total_bytes;
    info->threads = h->nthreads;
    info->recorded_threads = h->recorded_threads;
}

int hl_plan_finish(struct hl_plan_builder *b, struct hl_plan_info *info, struct hl_err *err)
{
    flush_window(b);
    uint32_t nthr = b->nthr ? b->nthr : 1;
    struct hl_plan_hdr h;
    memset(&h, 0, sizeof h);
    h.magic = HL_PLAN_MAGIC;
    h.version = HL_PLAN_VERSION;
    h.nthreads = nthr;
    h.serial = (uint32_t)b->serial;
    h.compact = (uint32_t)b->serial;
    h.window = b->window;
    h.nwin = b->nwin;
    h.win_off = HL_PLAN_HDR_BYTES;
    h.max_win_bytes = b->max_win;
    h.ndense = b->hi;
    h.events = b->events;
    h.ops = b->ops;
    h.skipped_unknown = b->unknown;
    h.skipped_failed = b->failed;
    h.peak_live = b->peak;
    h.recorded_threads = b->recorded_threads;
    h.cross_thread = (uint32_t)(b->cross > UINT32_MAX ? UINT32_MAX : b->cross);
    h.key_trace = b->opts.trace_key;
    h.key_every = b->opts.timeline_every;
    h.key_window = b->opts.window;
    h.key_section = b->opts.section;
    h.key_serial = (uint32_t)b->opts.serial;
    h.paged = b->paged;
    /* Timeline points, grouped per thread (a sort by thread keeps op order within). */
    uint64_t *per = calloc(nthr, sizeof *per);
    struct hl_rp_tlpoint *tp = calloc(b->ntl + 1, sizeof *tp);
    if (!per || !tp) {
        free(per);
        free(tp);
        snprintf(err->msg, sizeof err->msg, "out of memory building the replay plan");
        hl_plan_abort(b);
        return -1;
    }
    for (uint64_t k = 0; k < b->ntl; k++)
        per[b->tl[k].thread]++;
    uint64_t *at = calloc(nthr, sizeof *at);
    for (uint32_t i = 1; at && i < nthr; i++)
        at[i] = at[i - 1] + per[i - 1];
    for (uint64_t k = 0; at && k < b->ntl; k++)
        tp[at[b->tl[k].thread]++] = (struct hl_rp_tlpoint){b->tl[k].op_index, b->tl[k].live};
    h.tl_off = b->off;
    h.ntl = b->ntl;
    h.tl_thread_off = h.tl_off + b->ntl * sizeof *tp;
    h.total_bytes = h.tl_thread_off + nthr * sizeof(uint64_t);
    int bad = !at || b->werr || write_at(b->fd, tp, b->ntl * sizeof *tp, h.tl_off) != 0 ||
              write_at(b->fd, per, nthr * sizeof *per, h.tl_thread_off) != 0 ||
              write_at(b->fd, &h, sizeof h, 0) != 0;
    int e = b->werr ? b->werr : errno;
    free(at);
    free(per);
    free(tp);
    if (bad) {
        snprintf(err->msg, sizeof err->msg, "cannot write the replay plan: %s",
                 at ? strerror(e) : "out of memory");
        hl_plan_abort(b);
        return -1;
    }
    info_of(&h, b->fd, info);
    hl_plan_abort(b);
    return 0;
}

int hl_plan_file(const char *path, struct hl_err *err)
{
    char dir[4096];
    hl_dir_of(path, dir, sizeof dir);
    const char *tmp = getenv("TMPDIR");
    const char *cand[] = {dir, tmp && *tmp ? tmp : "/tmp", "/tmp"};
    for (int i = 0; i < 3; i++) {
        int fd = open(cand[i], O_TMPFILE | O_RDWR, 0600);
        if (fd >= 0)
            return fd;
    }
    snprintf(err->msg, sizeof err->msg, "cannot create the replay plan's file in %.200s or %.200s: %s",
             dir, cand[1], strerror(errno));
    return -1;
}

static void plan_progress(const char *path, uint64_t done, uint64_t total, int end);

/* Plan the section the reader stands at into a new file.  1 planned (info filled),
 * 0 the section has no events, -1 error (err says why). */
static int plan_section(struct hl_reader *r, const char *path, const struct hl_plan_opts *o,
                        const struct hl_process *p, int show, struct hl_plan_info *info,
                        struct hl_err *err)
{
    int fd = hl_plan_file(path, err);
    if (fd < 0)
        return -1;
    struct hl_plan_builder *b = hl_plan_begin(fd, o, p);
    if (!b) {
        close(fd);
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return -1;
    }
    b->strict = 1; /* the reader leaves the live slots to us (hl_plan_trace) */
    struct hl_pages *pg;
    ssize_t npg = hl_reader_pages(r, &pg, err);
    int pk = npg < 0 ? -1 : hl_plan_pages(b, pg, (size_t)npg);
    free(pg);
    if (pk < 0) {
        hl_plan_abort(b);
        close(fd);
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return -1;
    }
    const struct hl_event *ev;
    ssize_t n;
    uint64_t shown = 0;
    /* Decoded and planned on this one thread: a decoding thread handing batches over
     * (tried) made preparation twice as slow whenever the two threads' virtual CPUs
     * shared a core, and was no faster otherwise (HISTORY.md). */
    while ((n = hl_reader_events(r, &ev, err)) > 0) {
        if (hl_plan_add_events(b, ev, (uint64_t)n, err) != 0) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            snprintf(err->msg, sizeof err->msg, "%.200s: %.300s", path, why);
            hl_plan_abort(b);
            close(fd);
            return -1;
        }
        if (show && b->events >> 24 != shown) {
            shown = b->events >> 24;
            plan_progress(path, b->events, p->nevents, 0);
        }
    }
    if (shown)
        plan_progress(path, 0, 0, 1);
    if (n < 0 || b->events == 0) {
        hl_plan_abort(b);
        close(fd);
        return n < 0 ? -1 : 0;
    }
    /* The cache key: the trace's hash, computed beside the planning (hl_plan_trace). */
    b->opts.trace_key = strtoull(hl_reader_hash(r), NULL, 16);
    if (hl_plan_finish(b, info, err) != 0) {
        close(fd);
        return -1;
    }
    return 1;
}

/* A cached plan at cpath made from the same trace, section and options: 0 with its fd
 * and info, else -1 (none, or one that does not match: it will be rebuilt). */
static int cache_open(const char *cpath, const struct hl_plan_opts *o, struct hl_plan_info *info)
{
    int fd = open(cpath, O_RDONLY);
    if (fd < 0)
        return -1;
    struct hl_plan_hdr h;
    struct stat st;
    if (fstat(fd, &st) != 0 || pread(fd, &h, sizeof h, 0) != (ssize_t)sizeof h ||
        h.magic != HL_PLAN_MAGIC || h.version != HL_PLAN_VERSION ||
        h.total_bytes != (uint64_t)st.st_size || h.key_trace != o->trace_key ||
        h.key_section != o->section || h.key_serial != (uint32_t)o->serial ||
        h.key_every != o->timeline_every || h.key_window != o->window) {
        close(fd);
        return -1;
    }
    info_of(&h, fd, info);
    return 0;
}

/* Keep the finished plan in fd (an unlinked file) at cpath: linked under a temporary
 * name beside it, then renamed over it, so that cpath is always a whole plan.  Best
 * effort: where it cannot be kept, this replay still has its plan. */
static void cache_store(int fd, const char *cpath)
{
    char proc[64], tmp[4300];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", cpath, (int)getpid());
    if (fsync(fd) != 0 || linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0)
        return;
    if (rename(tmp, cpath) != 0)
        unlink(tmp);
}

/* Progress of a long preparation on a terminal: every 2^24 events. */
static void plan_progress(const char *path, uint64_t done, uint64_t total, int end)
{
    if (end)
        fprintf(stderr, "\r\033[K");
    else
        fprintf(stderr, "\r\033[Kreplay %s: preparing, %llu M of %llu M events", path,
                (unsigned long long)(done >> 20), (unsigned long long)(total >> 20));
    fflush(stderr);
}

int hl_plan_trace(const char *path, const struct hl_plan_opts *o, long pid,
                  struct hl_rp_row **rows, int *nrows, struct hl_err *err)
{
    const int show = isatty(2);
    struct hl_reader *r = hl_reader_open(path, err);
    if (!r)
        return -1;
    hl_reader_trust_slots(r); /* plan_section's builders refuse dead slots (strict) */
    hl_reader_skip_times(r);  /* a plan holds no times (--gaps reads them apart) */
    hl_reader_hash_begin(r);
    int first = *nrows, rc = -1;
    uint32_t section = 0;
    struct hl_process p;
    for (;;) {
        int k = hl_reader_next_process(r, &p, err);
        if (k < 0)
            goto out;
        if (k == 0)
            break;
        if (pid >= 0 && p.pid != (uint32_t)pid) {
            const struct hl_event *skip;
            ssize_t n;
            while ((n = hl_reader_events(r, &skip, err)) > 0)
                ;
            if (n < 0)
                goto out;
            continue;
        }
        struct hl_plan_opts so = *o;
        so.section = section++;
        struct hl_rp_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.file, sizeof row.file, "%s", path);
        row.pid = p.pid;
        char cpath[4200];
        snprintf(cpath, sizeof cpath, "%s.%u.plan", path, so.section);
        /* The trace's hash is waited for here only when a cached plan may be used;
         * otherwise it is computed while the section is planned. */
        int cached = 0;
        if (o->cache && access(cpath, F_OK) == 0) {
            so.trace_key = strtoull(hl_reader_hash(r), NULL, 16);
            cached = cache_open(cpath, &so, &row.plan) == 0;
        }
        if (!cached) {
            int k = plan_section(r, path, &so, &p, show, &row.plan, err);
            if (k < 0)
                goto out;
            if (k == 0)
                continue;
            if (o->cache)
                cache_store(row.plan.fd, cpath);
        }
        snprintf(row.hash, sizeof row.hash, "%s", hl_reader_hash(r));
        struct hl_rp_row *nr = realloc(*rows, (size_t)(*nrows + 1) * sizeof **rows);
        if (!nr) {
            close(row.plan.fd);
            snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
            goto out;
        }
        *rows = nr;
        (*rows)[(*nrows)++] = row;
    }
    if (*nrows == first) {
        if (pid >= 0)
            snprintf(err->msg, sizeof err->msg, "%.300s: no process %ld with events", path, pid);
        else
            snprintf(err->msg, sizeof err->msg, "%.300s: the trace holds no events", path);
        goto out;
    }
    int sections = *nrows - first;
    /* The display name: the file, qualified by pid when it has several processes. */
    const char *base = path;
    for (int i = first; i < *nrows; i++) {
        struct hl_rp_row *w = &(*rows)[i];
        /* exec keeps the pid: later images of one process are pid.2, pid.3, ... */
        int image = 1;
        for (int j = first; j < i; j++)
            image += (*rows)[j].pid == w->pid;
        if (image > 1)
            snprintf(w->name, sizeof w->name, "%s[%u.%d]", base, w->pid, image);
        else if (sections > 1 || pid >= 0)
            snprintf(w->name, sizeof w->name, "%s[%u]", base, w->pid);
        else
            snprintf(w->name, sizeof w->name, "%s", base);
    }
    rc = 0;
out:
    hl_reader_close(r);
    return rc;
}
