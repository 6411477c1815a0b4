/*
 * analysis.c: the streaming trace analysis behind `heaplab stat` (see analysis.h for
 * the definitions of every figure).
 *
 * The hot path is hl_analysis_feed(): one switch per event, one hash-map insert or
 * delete for the block it touches, and two O(1) regression updates.  The only state
 * that grows is the live-block map (open addressing keyed by slot, linear probing with
 * backward-shift deletion, so no tombstones build up over millions of events), the
 * exact size table and the per-thread array.
 */
#include "analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const double hl_an_growth_bounds[HL_AN_GROWTH_BUCKETS] = {1.25, 1.5, 2.0, 4.0, 16.0, INFINITY};

#define MAX_THREADS (1u << 20)

/* ---- live blocks: slot -> where and when it was made ---- */

struct live {
    uint64_t slot; /* HL_NO_SLOT marks an empty cell */
    uint32_t thread;
    uint64_t size, idx, time;
};

struct livemap {
    struct live *t;
    size_t mask, n;
};

static inline size_t slot_hash(uint64_t slot, size_t mask)
{
    /* Fibonacci hashing: slots are dense and increasing, this spreads them evenly. */
    return (size_t)((slot * 0x9E3779B97F4A7C15ull) >> 32) & mask;
}

static int livemap_init(struct livemap *m, size_t cap)
{
    m->t = malloc(cap * sizeof *m->t);
    if (!m->t)
        return -1;
    for (size_t i = 0; i < cap; i++)
        m->t[i].slot = HL_NO_SLOT;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* Returns 1 (old record in *old) if the slot was already live: a damaged trace; the
 * newest record wins. */
static int livemap_insert_nogrow(struct livemap *m, const struct live *l, struct live *old)
{
    size_t i = slot_hash(l->slot, m->mask);
    while (m->t[i].slot != HL_NO_SLOT) {
        if (m->t[i].slot == l->slot) {
            *old = m->t[i];
            m->t[i] = *l;
            return 1;
        }
        i = (i + 1) & m->mask;
    }
    m->t[i] = *l;
    m->n++;
    return 0;
}

static int livemap_insert(struct livemap *m, const struct live *l, struct live *old)
{
    if ((m->n + 1) * 2 > m->mask + 1) { /* keep the load under one half */
        struct livemap bigger;
        if (livemap_init(&bigger, (m->mask + 1) * 2) < 0)
            return -1;
        for (size_t i = 0; i <= m->mask; i++)
            if (m->t[i].slot != HL_NO_SLOT)
                livemap_insert_nogrow(&bigger, &m->t[i], old);
        free(m->t);
        *m = bigger;
    }
    return livemap_insert_nogrow(m, l, old);
}

/* Remove slot, copying its record to *out.  Returns 1 if it was live. */
static int livemap_take(struct livemap *m, uint64_t slot, struct live *out)
{
    size_t i = slot_hash(slot, m->mask);
    for (;;) {
        if (m->t[i].slot == HL_NO_SLOT)
            return 0;
        if (m->t[i].slot == slot)
            break;
        i = (i + 1) & m->mask;
    }
    *out = m->t[i];
    /* Backward-shift deletion: pull later members of the probe run into the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & m->mask; m->t[j].slot != HL_NO_SLOT; j = (j + 1) & m->mask) {
        size_t home = slot_hash(m->t[j].slot, m->mask);
        /* j may move to hole if home is not cyclically in (hole, j] */
        if (((j - home) & m->mask) >= ((j - hole) & m->mask)) {
            m->t[hole] = m->t[j];
            hole = j;
        }
    }
    m->t[hole].slot = HL_NO_SLOT;
    m->n--;
    return 1;
}

/* ---- counts keyed by a 64-bit value (sizes) ---- */

struct countmap {
    struct hl_an_size *t; /* count == 0 marks an empty cell */
    size_t mask, n;
};

static inline size_t u64_hash(uint64_t v, size_t mask)
{
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdull;
    v ^= v >> 33;
    return (size_t)v & mask;
}

static int countmap_init(struct countmap *m, size_t cap)
{
    m->t = calloc(cap, sizeof *m->t);
    if (!m->t)
        return -1;
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* Add count to key.  Returns -1 if the key is new and the table is full (max entries)
 * or memory ran out. */
static int countmap_add(struct countmap *m, uint64_t key, uint64_t count, size_t max)
{
    size_t i = u64_hash(key, m->mask);
    while (m->t[i].count) {
        if (m->t[i].size == key) {
            m->t[i].count += count;
            return 0;
        }
        i = (i + 1) & m->mask;
    }
    if (m->n >= max)
        return -1;
    if ((m->n + 1) * 2 > m->mask + 1) {
        struct countmap bigger;
        if (countmap_init(&bigger, (m->mask + 1) * 2) < 0)
            return -1;
        for (size_t k = 0; k <= m->mask; k++)
            if (m->t[k].count)
                countmap_add(&bigger, m->t[k].size, m->t[k].count, SIZE_MAX);
        free(m->t);
        *m = bigger;
        return countmap_add(m, key, count, max);
    }
    m->t[i].size = key;
    m->t[i].count = count;
    m->n++;
    return 0;
}

static int by_count_desc(const void *pa, const void *pb)
{
    const struct hl_an_size *a = pa, *b = pb;
    if (a->count != b->count)
        return a->count < b->count ? 1 : -1;
    return a->size < b->size ? -1 : a->size > b->size;
}

static int by_bytes_desc(const void *pa, const void *pb)
{
    const struct hl_an_size *a = pa, *b = pb;
    /* bytes can overflow for absurd sizes; compare as long double */
    long double x = (long double)a->size * a->count, y = (long double)b->size * b->count;
    if (x != y)
        return x < y ? 1 : -1;
    return a->size < b->size ? -1 : a->size > b->size;
}

/* Move a countmap's entries into a sorted array (the map is freed). */
static struct hl_an_size *countmap_to_array(struct countmap *m, size_t *n,
                                           int (*cmp)(const void *, const void *))
{
    struct hl_an_size *out = malloc((m->n ? m->n : 1) * sizeof *out);
    size_t k = 0;
    if (out) {
        for (size_t i = 0; i <= m->mask; i++)
            if (m->t[i].count)
                out[k++] = m->t[i];
        qsort(out, k, sizeof *out, cmp);
    }
    free(m->t);
    m->t = NULL;
    *n = k;
    return out;
}

/* ---- regression ---- */

/* Merge a group (weight w, means mx/my, co-moments cxx, cxy = 0, cyy = 0 for a group
 * whose y is constant) into r: the pairwise update of Chan, Golub and LeVeque, which
 * stays accurate where the textbook sum-of-squares formulas cancel. */
static inline void reg_add(struct hl_an_reg *r, double w, double mx, double my, double cxx)
{
    double W = r->w + w;
    double dx = mx - r->mx, dy = my - r->my, f = w / W, c = r->w * f;
    r->cxx += cxx + dx * dx * c;
    r->cxy += dx * dy * c;
    r->cyy += dy * dy * c;
    r->mx += dx * f;
    r->my += dy * f;
    r->w = W;
}

static void reg_result(const struct hl_an_reg *r, double *slope, double *r2)
{
    *slope = NAN;
    *r2 = NAN;
    if (r->w <= 0 || !(r->cxx > 0))
        return;
    *slope = r->cxy / r->cxx;
    if (r->cyy > 0)
        *r2 = r->cxy * r->cxy / (r->cxx * r->cyy);
}

/* ---- the analysis ---- */

struct priv {
    struct livemap live;
    struct countmap sizes;
    uint32_t threads_cap;
    int have_prev;
    uint64_t prev_time; /* time of the previous event (the running maximum) */
};

uint64_t hl_an_pow2_lo(int k)
{
    return k == 0 ? 0 : (uint64_t)1 << (k - 1);
}

int hl_an_pow2_bucket(uint64_t v)
{
    return v ? 64 - __builtin_clzll(v) : 0;
}

static int decade_bucket(uint64_t ns)
{
    int k = 0;
    while (ns >= 10 && k < HL_AN_DECADE_BUCKETS - 1) {
        ns /= 10;
        k++;
    }
    return k;
}

struct hl_analysis *hl_analysis_new(void)
{
    struct hl_analysis *a = calloc(1, sizeof *a);
    struct priv *p = calloc(1, sizeof *p);
    if (!a || !p || livemap_init(&p->live, 1024) < 0 || countmap_init(&p->sizes, 256) < 0) {
        if (p) {
            free(p->live.t);
            free(p->sizes.t);
        }
        free(p);
        free(a);
        return NULL;
    }
    a->priv_ = p;
    a->slope_bytes_per_s = a->r2_time = NAN;
    a->slope_bytes_per_event = a->r2_event = NAN;
    return a;
}

static struct hl_an_thread *thread_of(struct hl_analysis *a, uint32_t t)
{
    struct priv *p = a->priv_;
    if (t >= MAX_THREADS)
        t = MAX_THREADS - 1; /* a damaged index; the reader should have refused it */
    if (t >= p->threads_cap) {
        uint32_t cap = p->threads_cap ? p->threads_cap : 8;
        while (cap <= t)
            cap *= 2;
        struct hl_an_thread *n = realloc(a->threads, cap * sizeof *n);
        if (!n)
            abort();
        for (uint32_t i = p->threads_cap; i < cap; i++) {
            memset(&n[i], 0, sizeof n[i]);
            n[i].last_alloc = HL_NO_SLOT;
        }
        a->threads = n;
        p->threads_cap = cap;
    }
    if (t >= a->nthreads)
        a->nthreads = t + 1;
    return &a->threads[t];
}

/* Give back a live block (free or moving realloc).  Returns 1 and its record if live. */
static int release(struct hl_analysis *a, const struct hl_event *e, uint64_t idx,
                   struct hl_an_thread *th, struct live *l)
{
    struct priv *p = a->priv_;
    if (!livemap_take(&p->live, e->op == HL_OP_FREE ? e->slot : e->old_slot, l))
        return 0;
    a->live_bytes -= l->size;
    a->live_blocks--;
    a->frees++;
    th->frees++;
    a->life_events_hist[hl_an_pow2_bucket(idx - l->idx)]++;
    a->life_ns_hist[decade_bucket(e->time_ns >= l->time ? e->time_ns - l->time : 0)]++;
    if (l->thread != e->thread) {
        a->cross_thread_frees++;
        th->cross_frees++;
    }
    return 1;
}

static void create(struct hl_analysis *a, const struct hl_event *e, uint64_t idx,
                   struct hl_an_thread *th, uint64_t bytes)
{
    struct priv *p = a->priv_;
    /* Live bytes saturate rather than wrap: only a damaged or crafted trace has 2^64
     * bytes live at once; the block then counts for what is left below that. */
    uint64_t live = bytes > UINT64_MAX - a->live_bytes ? UINT64_MAX - a->live_bytes : bytes;
    struct live l = {e->slot, e->thread, live, idx, e->time_ns}, old;
    int r = livemap_insert(&p->live, &l, &old);
    if (r < 0)
        abort(); /* out of memory: nothing sensible to report half-way */
    if (r > 0) { /* a slot allocated twice (the writer forbids it): the old block is gone */
        a->live_bytes -= old.size;
        a->live_blocks--;
        a->double_allocs++;
    }
    a->allocations++;
    a->bytes_requested += bytes;
    a->live_bytes += live;
    a->live_blocks++;
    th->allocs++;
    th->bytes += bytes;
    th->last_alloc = e->slot;
    int b = hl_an_pow2_bucket(bytes);
    a->size_hist[b]++;
    a->size_hist_bytes[b] += bytes;
    if (countmap_add(&p->sizes, bytes, 1, HL_AN_MAX_SIZES) < 0)
        a->sizes_untracked++;
    if (a->live_blocks > a->peak_blocks)
        a->peak_blocks = a->live_blocks;
}

void hl_analysis_feed(struct hl_analysis *a, const struct hl_event *ev, size_t n)
{
    struct priv *p = a->priv_;
    for (size_t k = 0; k < n; k++) {
        const struct hl_event *e = &ev[k];
        uint64_t idx = a->events++;

        /* Trend: the live value since the previous event held until this one. */
        if (!p->have_prev) {
            p->have_prev = 1;
            a->first_time_ns = p->prev_time = e->time_ns;
        } else if (e->time_ns > p->prev_time) {
            double t0 = (double)(p->prev_time - a->first_time_ns) * 1e-9;
            double t1 = (double)(e->time_ns - a->first_time_ns) * 1e-9;
            double dt = t1 - t0;
            reg_add(&a->reg_time, dt, 0.5 * (t0 + t1), (double)a->live_bytes,
                    dt * dt * dt / 12.0);
            p->prev_time = e->time_ns;
        }
        a->last_time_ns = p->prev_time;

        struct hl_an_thread *th = thread_of(a, e->thread);
        if (e->op == 0 || e->op >= HL_OP_COUNT_) {
            a->bad_ops++;
            goto next;
        }
        a->ops[e->op]++;
        struct live l;
        if (e->op == HL_OP_FREE) {
            if (e->flags & HL_EV_UNKNOWN)
                a->unknown_frees++;
            else if (e->slot == HL_NO_SLOT)
                a->null_frees++;
            else if (release(a, e, idx, th, &l)) {
                if (th->last_alloc == e->slot) {
                    a->temporary++;
                    th->temporary++;
                    th->last_alloc = HL_NO_SLOT;
                }
            } else
                a->double_frees++;
            goto next;
        }
        if (e->flags & HL_EV_FAILED) {
            a->failed[e->op]++;
            th->failed++;
            goto next;
        }
        uint64_t bytes = hl_event_bytes(e);
        if (e->op == HL_OP_REALLOC || e->op == HL_OP_REALLOCARRAY) {
            if (e->flags & HL_EV_UNKNOWN)
                a->unknown_frees++;
            else if (e->old_slot == HL_NO_SLOT)
                a->realloc_from_null++;
            else if (release(a, e, idx, th, &l)) {
                if (e->slot == HL_NO_SLOT)
                    a->realloc_to_zero++;
                else if (bytes > l.size) {
                    a->realloc_grow++;
                    double f = l.size ? (double)bytes / (double)l.size : INFINITY;
                    int b = 0;
                    while (f > hl_an_growth_bounds[b] && b < HL_AN_GROWTH_BUCKETS - 1)
                        b++;
                    a->growth_hist[b]++;
                    if (l.size) {
                        a->growth_log_sum += log(f);
                        a->growth_log_n++;
                    }
                } else if (bytes < l.size)
                    a->realloc_shrink++;
                else
                    a->realloc_same++;
            } else
                a->double_frees++;
        }
        if (e->slot != HL_NO_SLOT)
            create(a, e, idx, th, bytes);
        if (a->live_bytes > a->peak_live) {
            a->peak_live = a->live_bytes;
            a->peak_event = idx;
            a->peak_time_ns = e->time_ns;
        }
    next:
        reg_add(&a->reg_event, 1.0, (double)idx, (double)a->live_bytes, 0.0);
    }
}

void hl_analysis_finish(struct hl_analysis *a)
{
    struct priv *p = a->priv_;
    if (!p)
        return;
    struct countmap leaks;
    if (countmap_init(&leaks, 64) < 0)
        abort();
    for (size_t i = 0; i <= p->live.mask; i++) {
        const struct live *l = &p->live.t[i];
        if (l->slot == HL_NO_SLOT)
            continue;
        a->leaked_blocks++;
        a->leaked_bytes += l->size;
        countmap_add(&leaks, l->size, 1, SIZE_MAX);
    }
    free(p->live.t);
    a->leaks_by_size = countmap_to_array(&leaks, &a->nleak_sizes, by_bytes_desc);
    a->sizes = countmap_to_array(&p->sizes, &a->nsizes, by_count_desc);
    reg_result(&a->reg_time, &a->slope_bytes_per_s, &a->r2_time);
    reg_result(&a->reg_event, &a->slope_bytes_per_event, &a->r2_event);
    free(p);
    a->priv_ = NULL;
}

void hl_analysis_add_threads(struct hl_analysis *a, uint32_t n)
{
    if (n <= a->nthreads || n > MAX_THREADS || a->priv_)
        return;
    struct hl_an_thread *t = realloc(a->threads, n * sizeof *t);
    if (!t)
        abort();
    for (uint32_t i = a->nthreads; i < n; i++) {
        memset(&t[i], 0, sizeof t[i]);
        t[i].last_alloc = HL_NO_SLOT;
    }
    a->threads = t;
    a->nthreads = n;
}

/* Merge two (size, count) lists into *dst (re-sorted with cmp). */
static void merge_sizes(struct hl_an_size **dst, size_t *nd, const struct hl_an_size *src,
                        size_t ns, int (*cmp)(const void *, const void *))
{
    struct countmap m;
    if (countmap_init(&m, 64) < 0)
        abort();
    for (size_t i = 0; i < *nd; i++)
        countmap_add(&m, (*dst)[i].size, (*dst)[i].count, SIZE_MAX);
    for (size_t i = 0; i < ns; i++)
        countmap_add(&m, src[i].size, src[i].count, SIZE_MAX);
    free(*dst);
    *dst = countmap_to_array(&m, nd, cmp);
}

void hl_analysis_merge(struct hl_analysis *d, const struct hl_analysis *s)
{
    d->events += s->events;
    for (int i = 0; i < HL_OP_COUNT_; i++) {
        d->ops[i] += s->ops[i];
        d->failed[i] += s->failed[i];
    }
    d->bad_ops += s->bad_ops;
    d->allocations += s->allocations;
    d->frees += s->frees;
    d->bytes_requested += s->bytes_requested;
    d->unknown_frees += s->unknown_frees;
    d->double_frees += s->double_frees;
    d->null_frees += s->null_frees;
    d->double_allocs += s->double_allocs;
    d->cross_thread_frees += s->cross_thread_frees;
    d->temporary += s->temporary;
    /* Processes have separate heaps: the figure of the largest one is the one that was
     * actually reached (a sum would invent a moment nobody saw). */
    if (s->peak_live > d->peak_live) {
        d->peak_live = s->peak_live;
        d->peak_event = s->peak_event;
        d->peak_time_ns = s->peak_time_ns;
    }
    if (s->peak_blocks > d->peak_blocks)
        d->peak_blocks = s->peak_blocks;
    for (int i = 0; i < HL_AN_POW2_BUCKETS; i++) {
        d->size_hist[i] += s->size_hist[i];
        d->size_hist_bytes[i] += s->size_hist_bytes[i];
        d->life_events_hist[i] += s->life_events_hist[i];
    }
    for (int i = 0; i < HL_AN_DECADE_BUCKETS; i++)
        d->life_ns_hist[i] += s->life_ns_hist[i];
    d->realloc_grow += s->realloc_grow;
    d->realloc_shrink += s->realloc_shrink;
    d->realloc_same += s->realloc_same;
    d->realloc_from_null += s->realloc_from_null;
    d->realloc_to_zero += s->realloc_to_zero;
    for (int i = 0; i < HL_AN_GROWTH_BUCKETS; i++)
        d->growth_hist[i] += s->growth_hist[i];
    d->growth_log_sum += s->growth_log_sum;
    d->growth_log_n += s->growth_log_n;
    d->leaked_blocks += s->leaked_blocks;
    d->leaked_bytes += s->leaked_bytes;
    merge_sizes(&d->leaks_by_size, &d->nleak_sizes, s->leaks_by_size, s->nleak_sizes,
                by_bytes_desc);
    merge_sizes(&d->sizes, &d->nsizes, s->sizes, s->nsizes, by_count_desc);
    d->sizes_untracked += s->sizes_untracked;
    if (s->nthreads) {
        struct hl_an_thread *n = realloc(d->threads, (d->nthreads + s->nthreads) * sizeof *n);
        if (!n)
            abort();
        memcpy(n + d->nthreads, s->threads, s->nthreads * sizeof *n);
        d->threads = n;
        d->nthreads += s->nthreads;
    }
}

void hl_analysis_free(struct hl_analysis *a)
{
    if (!a)
        return;
    struct priv *p = a->priv_;
    if (p) {
        free(p->live.t);
        free(p->sizes.t);
        free(p);
    }
    free(a->threads);
    free(a->sizes);
    free(a->leaks_by_size);
    free(a);
}
