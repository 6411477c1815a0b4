/*
 * plan.c: turning a trace section into a replay plan (see replay.h).
 *
 * Everything the timed loop reads is decided here, before any allocator runs: which
 * events are replayed (frees of unknown or already-freed blocks and failed calls are
 * counted and dropped), which replay thread runs each event, where a thread must wait
 * for a block another thread allocates, the live-bytes curve and the timeline sample
 * points.  The result is one flat memfd that workers map read-only.
 */
#include "replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_THREADS 65536
#define TL_TARGET 512 /* adaptive timeline: between TL_TARGET and 2*TL_TARGET points */

enum { SLOT_NONE, SLOT_LIVE, SLOT_DEAD, SLOT_SKIPPED };

struct evvec {
    struct hl_rp_ev *v;
    uint64_t n, cap;
};

struct tlmark {
    uint64_t op_index, live;
    uint32_t thread;
    uint64_t idx;
};

struct hl_plan_builder {
    int serial;
    uint64_t every;   /* current timeline interval; UINT64_MAX: no timeline */
    int adaptive;
    struct evvec *thr;
    uint32_t nthr, thrcap;
    uint32_t recorded_threads;
    /* per slot */
    uint64_t *slot_bytes;
    uint8_t *slot_state;
    uint32_t *slot_thread;
    uint64_t *slot_idx;
    uint64_t nslots, slotcap;
    uint64_t events, ops, unknown, failed, live, peak, cross;
    struct tlmark *tl;
    uint64_t ntl, tlcap;
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

struct hl_plan_builder *hl_plan_begin(int serial, uint64_t timeline_every)
{
    struct hl_plan_builder *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->serial = serial;
    b->adaptive = timeline_every == 0;
    b->every = timeline_every ? timeline_every : 1;
    return b;
}

void hl_plan_abort(struct hl_plan_builder *b)
{
    if (!b)
        return;
    for (uint32_t i = 0; i < b->nthr; i++)
        free(b->thr[i].v);
    free(b->thr);
    free(b->slot_bytes);
    free(b->slot_state);
    free(b->slot_thread);
    free(b->slot_idx);
    free(b->tl);
    free(b);
}

static struct hl_rp_ev *push(struct hl_plan_builder *b, uint32_t t, uint64_t *idx)
{
    if (t >= b->nthr) {
        uint64_t cap = b->thrcap;
        b->thr = grow(b->thr, &cap, (uint64_t)t + 1, sizeof *b->thr);
        memset(b->thr + b->thrcap, 0, (cap - b->thrcap) * sizeof *b->thr);
        b->thrcap = (uint32_t)cap;
        b->nthr = t + 1;
    }
    struct evvec *v = &b->thr[t];
    v->v = grow(v->v, &v->cap, v->n + 1, sizeof *v->v);
    *idx = v->n;
    struct hl_rp_ev *e = &v->v[v->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* Thin the timeline marks to every 2*every-th op once there are too many. */
static void tl_thin(struct hl_plan_builder *b)
{
    b->every *= 2;
    uint64_t k = 0;
    for (uint64_t i = 0; i < b->ntl; i++) {
        struct tlmark *m = &b->tl[i];
        if (m->op_index % b->every == 0)
            b->tl[k++] = *m;
        else
            b->thr[m->thread].v[m->idx].flags &= (uint8_t)~HL_RF_SAMPLE;
    }
    b->ntl = k;
}

/* The plan's own "no block" (its events carry 32-bit slots). */
#define NO_SLOT UINT32_MAX

static int slot_usable(struct hl_plan_builder *b, uint64_t s)
{
    return s != HL_NO_SLOT && s < b->nslots && b->slot_state[s] == SLOT_LIVE;
}

int hl_plan_add(struct hl_plan_builder *b, const struct hl_event *e, struct hl_err *err)
{
    b->events++;
    if (e->thread >= MAX_THREADS) {
        snprintf(err->msg, sizeof err->msg, "event %llu: thread index %u out of range",
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
    uint32_t t = b->serial ? 0 : e->thread;
    int allocates = hl_op_allocates(e->op);
    int has_old = e->op == HL_OP_FREE || e->op == HL_OP_REALLOC || e->op == HL_OP_REALLOCARRAY;
    uint32_t old = NO_SLOT;

    if (allocates && e->slot == HL_NO_SLOT) { /* an allocation without a block */
        b->failed++;
        return 0;
    }
    if (has_old) {
        uint64_t s = e->op == HL_OP_FREE ? e->slot : e->old_slot;
        if (s != HL_NO_SLOT && s < b->nslots && b->slot_state[s] == SLOT_SKIPPED) {
            /* the block was never replayed: neither is what gives it back */
            b->slot_state[s] = SLOT_DEAD;
            if (e->op == HL_OP_FREE) {
                b->failed++;
                return 0;
            }
        } else if (slot_usable(b, s)) {
            old = (uint32_t)s;
        } else if (e->op == HL_OP_FREE && s == HL_NO_SLOT && !(e->flags & HL_EV_UNKNOWN)) {
            /* free(NULL): a real call, replayed as one */
        } else if (e->op == HL_OP_FREE || s != HL_NO_SLOT || (e->flags & HL_EV_UNKNOWN)) {
            /* double free, foreign pointer: counted and dropped.  A realloc of one still
             * allocates; it is replayed as realloc(NULL, size). */
            b->unknown++;
            if (e->op == HL_OP_FREE)
                return 0;
        }
    }
    if (allocates) {
        if (e->slot != b->nslots || b->nslots >= UINT32_MAX - 1) {
            snprintf(err->msg, sizeof err->msg,
                     "corrupted trace: event %llu allocates slot %llu, expected slot %llu",
                     (unsigned long long)b->events - 1, (unsigned long long)e->slot,
                     (unsigned long long)b->nslots);
            return -1;
        }
        uint64_t cap = b->slotcap;
        b->slot_bytes = grow(b->slot_bytes, &cap, b->nslots + 1, sizeof *b->slot_bytes);
        cap = b->slotcap;
        b->slot_state = grow(b->slot_state, &cap, b->nslots + 1, 1);
        cap = b->slotcap;
        b->slot_thread = grow(b->slot_thread, &cap, b->nslots + 1, sizeof *b->slot_thread);
        cap = b->slotcap;
        b->slot_idx = grow(b->slot_idx, &cap, b->nslots + 1, sizeof *b->slot_idx);
        b->slotcap = cap;
        b->nslots++;
    }

    uint64_t bytes = allocates ? hl_event_bytes(e) : 0;
    if (allocates) {
        int aligned = e->op == HL_OP_POSIX_MEMALIGN || e->op == HL_OP_ALIGNED_ALLOC ||
                      e->op == HL_OP_MEMALIGN;
        /* Calls the worker could not make as recorded (absurd sizes or alignments) are
         * not replayed; the block's later free is dropped with it. */
        if (bytes == UINT64_MAX || bytes > (1ull << 46) || (aligned && e->aux > (1u << 30))) {
            b->slot_state[e->slot] = SLOT_SKIPPED;
            b->slot_bytes[e->slot] = 0;
            b->failed++;
            if (old != NO_SLOT) { /* the trace says realloc gave the old block back */
                b->slot_state[old] = SLOT_DEAD;
                b->live -= b->slot_bytes[old];
            }
            return 0;
        }
    }

    uint64_t idx;
    struct hl_rp_ev *r = push(b, t, &idx);
    r->op = e->op == HL_OP_REALLOCARRAY ? HL_OP_REALLOC : e->op;
    r->slot = NO_SLOT;
    r->old_slot = NO_SLOT;
    if (e->op == HL_OP_FREE) {
        r->slot = old;
        r->size = old == NO_SLOT ? 0 : b->slot_bytes[old];
    } else {
        r->slot = (uint32_t)e->slot;
        r->old_slot = old;
        r->size = bytes;
        if (e->op == HL_OP_CALLOC) {
            if (e->aux <= UINT32_MAX && e->size <= (1ull << 46)) {
                r->size = e->size;
                r->aux = (uint32_t)e->aux;
            } else {
                r->size = bytes;
                r->aux = 1;
            }
        } else if (e->op == HL_OP_POSIX_MEMALIGN || e->op == HL_OP_ALIGNED_ALLOC ||
                   e->op == HL_OP_MEMALIGN) {
            r->aux = (uint32_t)e->aux;
        }
    }
    if (old != NO_SLOT) {
        if (!b->serial && b->slot_thread[old] != t) {
            r->flags |= HL_RF_WAIT;
            b->thr[b->slot_thread[old]].v[b->slot_idx[old]].flags |= HL_RF_PUBLISH;
            b->cross++;
        }
        b->slot_state[old] = SLOT_DEAD;
        b->live -= b->slot_bytes[old];
    }
    if (allocates) {
        b->slot_state[e->slot] = SLOT_LIVE;
        b->slot_bytes[e->slot] = bytes;
        b->slot_thread[e->slot] = t;
        b->slot_idx[e->slot] = idx;
        b->live += bytes;
        if (b->live > b->peak)
            b->peak = b->live;
    }
    uint64_t opi = b->ops++;
    if (b->every != UINT64_MAX && opi % b->every == 0) {
        r->flags |= HL_RF_SAMPLE;
        b->tl = grow(b->tl, &b->tlcap, b->ntl + 1, sizeof *b->tl);
        b->tl[b->ntl++] = (struct tlmark){opi, b->live, t, idx};
        if (b->adaptive && b->ntl >= 2 * TL_TARGET)
            tl_thin(b);
    }
    return 0;
}

static uint64_t align64(uint64_t x)
{
    return (x + 63) & ~63ull;
}

/* Whether an event has a compact word of its own (else it escapes; replay.h). */
static int cev_compact(const struct hl_rp_ev *e)
{
    return e->op == HL_OP_FREE || (e->op == HL_OP_MALLOC && e->size < HL_CEV_MAX_SIZE);
}

/* Write the compact stream of the n events src (final: "no block" is the slot
 * b->nslots) into cw and its escapes into cx, renumbering the blocks' slots densely: a
 * new block takes the dense slot most recently given back (a stack), else the next
 * unused one; dense slot 0 is "no block".  The slot table the loop touches is then
 * about as large as the most blocks live at once, not the trace's allocation count. */
static int cev_build(struct hl_plan_builder *b, const struct hl_rp_ev *src, uint64_t n,
                     uint64_t *cw, struct hl_rp_ev *cx, uint64_t *ndense)
{
    uint32_t *dense = calloc(b->nslots + 1, sizeof *dense); /* trace slot -> dense */
    uint32_t *stack = malloc((b->nslots + 1) * sizeof *stack);
    if (!dense || !stack) {
        free(dense);
        free(stack);
        return -1;
    }
    uint64_t top = 0, hi = 1;
    for (uint64_t k = 0; k < n; k++) {
        const struct hl_rp_ev *e = &src[k];
        if (e->op == HL_OP_FREE) {
            uint32_t d = dense[e->slot];
            cw[k] = ((uint64_t)d << 2) | HL_CEV_FREE;
            if (d)
                stack[top++] = d;
            continue;
        }
        /* the new block's slot before the old one is given back (realloc): a realloc
         * never passes and receives the same dense slot */
        uint32_t d = top ? stack[--top] : (uint32_t)hi++;
        dense[e->slot] = d;
        if (cev_compact(e)) {
            cw[k] = ((uint64_t)e->size << HL_CEV_SIZE_SHIFT) | ((uint64_t)d << 2) | HL_CEV_MALLOC;
        } else {
            cw[k] = HL_CEV_OTHER;
            *cx = *e;
            cx->slot = d;
            if (e->op == HL_OP_REALLOC) {
                uint32_t od = dense[e->old_slot];
                cx->old_slot = od;
                if (od)
                    stack[top++] = od;
            }
            cx++;
        }
    }
    *ndense = hi;
    free(dense);
    free(stack);
    return 0;
}

int hl_plan_finish(struct hl_plan_builder *b, struct hl_plan_info *info, struct hl_err *err)
{
    uint32_t nthr = b->nthr ? b->nthr : 1;
    uint64_t off = align64(sizeof(struct hl_plan_hdr) + nthr * sizeof(struct hl_rp_thread));
    uint64_t ev_off = off;
    for (uint32_t i = 0; i < b->nthr; i++)
        off = align64(off + b->thr[i].n * sizeof(struct hl_rp_ev));
    uint64_t tl_off = off;
    off = align64(off + b->ntl * sizeof(struct hl_rp_tlpoint));
    uint64_t sb_off = off;
    off = align64(off + (b->nslots + 1) * sizeof(uint64_t));
    /* One replay thread: the compact stream too (replay.h), and its escapes. */
    uint64_t ncev = 0, ncx = 0, cev_off = 0, cx_off = 0;
    if (nthr == 1 && b->nthr == 1) {
        const struct evvec *v = &b->thr[0];
        for (uint64_t k = 0; k < v->n; k++)
            ncx += !cev_compact(&v->v[k]);
        ncev = v->n;
        cev_off = off;
        off = align64(off + ncev * sizeof(uint64_t));
        cx_off = off;
        off = align64(off + ncx * sizeof(struct hl_rp_ev));
    }

    int fd = memfd_create("heaplab-plan", 0);
    if (fd < 0 || ftruncate(fd, (off_t)off) != 0) {
        snprintf(err->msg, sizeof err->msg, "cannot create the replay plan: %s",
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        hl_plan_abort(b);
        return -1;
    }
    char *m = mmap(NULL, off, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        snprintf(err->msg, sizeof err->msg, "cannot map the replay plan: %s", strerror(errno));
        close(fd);
        hl_plan_abort(b);
        return -1;
    }
    struct hl_plan_hdr *h = (struct hl_plan_hdr *)m;
    h->magic = HL_PLAN_MAGIC;
    h->total_bytes = off;
    h->nthreads = nthr;
    h->serial = (uint32_t)b->serial;
    h->nslots = b->nslots;
    h->slot_bytes_off = sb_off;
    h->events = b->events;
    h->ops = b->ops;
    h->skipped_unknown = b->unknown;
    h->skipped_failed = b->failed;
    h->peak_live = b->peak;
    h->ntl = b->ntl;
    h->recorded_threads = b->recorded_threads;
    h->cross_thread = (uint32_t)(b->cross > UINT32_MAX ? UINT32_MAX : b->cross);
    /* Timeline points are grouped per thread, each group in op order, which is the
     * order that thread meets its sample flags. */
    uint64_t eo = ev_off, to = tl_off;
    for (uint32_t i = 0; i < nthr; i++) {
        struct hl_rp_thread *th = &h->thr[i];
        uint64_t n = i < b->nthr ? b->thr[i].n : 0;
        th->ev_off = eo;
        th->nev = n;
        struct hl_rp_ev *dst = (struct hl_rp_ev *)(m + eo);
        if (n)
            memcpy(dst, b->thr[i].v, n * sizeof(struct hl_rp_ev));
        /* "No block" (free(NULL), realloc(NULL, n)) becomes the extra slot nslots, which
         * always holds NULL: the loop then never tests for it. */
        for (uint64_t k = 0; k < n; k++) {
            if (dst[k].slot == NO_SLOT)
                dst[k].slot = (uint32_t)b->nslots;
            if (dst[k].op == HL_OP_REALLOC && dst[k].old_slot == NO_SLOT)
                dst[k].old_slot = (uint32_t)b->nslots;
        }
        eo = align64(eo + n * sizeof(struct hl_rp_ev));
        th->tl_off = to;
        th->ntl = 0;
        struct hl_rp_tlpoint *tp = (struct hl_rp_tlpoint *)(m + to);
        for (uint64_t k = 0; k < b->ntl; k++)
            if (b->tl[k].thread == i)
                tp[th->ntl++] = (struct hl_rp_tlpoint){b->tl[k].op_index, b->tl[k].live};
        to += th->ntl * sizeof(struct hl_rp_tlpoint);
    }
    h->cev_off = cev_off;
    h->ncev = ncev;
    h->cx_off = cx_off;
    h->ncx = ncx;
    h->ndense = 1;
    if (ncev && cev_build(b, (const struct hl_rp_ev *)(m + h->thr[0].ev_off), ncev,
                          (uint64_t *)(m + cev_off), (struct hl_rp_ev *)(m + cx_off),
                          &h->ndense) != 0) {
        snprintf(err->msg, sizeof err->msg, "out of memory building the replay plan");
        munmap(m, off);
        close(fd);
        hl_plan_abort(b);
        return -1;
    }
    if (b->nslots)
        memcpy(m + sb_off, b->slot_bytes, b->nslots * sizeof(uint64_t));
    ((uint64_t *)(m + sb_off))[b->nslots] = 0;
    munmap(m, off);

    memset(info, 0, sizeof *info);
    info->fd = fd;
    info->events = b->events;
    info->ops = b->ops;
    info->skipped_unknown = b->unknown;
    info->skipped_failed = b->failed;
    info->peak_live = b->peak;
    info->nslots = b->nslots;
    info->threads = nthr;
    info->recorded_threads = b->recorded_threads;
    hl_plan_abort(b);
    return 0;
}

int hl_plan_trace(const char *path, int serial, uint64_t timeline_every, long pid,
                  struct hl_rp_row **rows, int *nrows, struct hl_err *err)
{
    struct hl_reader *r = hl_reader_open(path, err);
    if (!r)
        return -1;
    int first = *nrows, rc = -1;
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
        struct hl_plan_builder *b = hl_plan_begin(serial, timeline_every);
        if (!b) {
            snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
            goto out;
        }
        const struct hl_event *ev;
        ssize_t n;
        while ((n = hl_reader_events(r, &ev, err)) > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (hl_plan_add(b, &ev[i], err) != 0) {
                    char why[sizeof err->msg];
                    snprintf(why, sizeof why, "%s", err->msg);
                    snprintf(err->msg, sizeof err->msg, "%.200s: %.300s", path, why);
                    hl_plan_abort(b);
                    goto out;
                }
            }
        }
        if (n < 0) {
            hl_plan_abort(b);
            goto out;
        }
        if (b->events == 0) {
            hl_plan_abort(b);
            continue;
        }
        struct hl_rp_row row;
        memset(&row, 0, sizeof row);
        snprintf(row.file, sizeof row.file, "%s", path);
        snprintf(row.hash, sizeof row.hash, "%s", hl_reader_hash(r));
        row.pid = p.pid;
        if (hl_plan_finish(b, &row.plan, err) != 0)
            goto out;
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
