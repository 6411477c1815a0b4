/*
 * test_gen.c: the synthetic workload generators: each writes a valid trace (the writer
 * enforces the slot rule; the analysis finds no unknown or double free, so every free
 * follows its allocation) with the structure its workload promises, and the same seed
 * gives the same bytes.
 */
#include "analysis.h"
#include "gen.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/heaplab-test-gen.XXXXXX";

static const char *path(const char *name)
{
    static char buf[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

/* Generate WORKLOAD with "name=value" overrides into file; returns 0 on success. */
static int gen(const char *wl, uint64_t seed, const char *file, const char *const *kv)
{
    const struct hl_workload *w = hl_workload_find(wl);
    if (!w)
        return -1;
    uint64_t v[HL_GEN_MAX_PARAMS];
    int n = 0;
    for (const struct hl_gen_param *p = w->params; p->name; p++)
        v[n++] = p->def;
    for (; kv && *kv; kv++) {
        const char *eq = strchr(*kv, '=');
        for (int i = 0; i < n; i++)
            if (strncmp(w->params[i].name, *kv, (size_t)(eq - *kv)) == 0 &&
                w->params[i].name[eq - *kv] == 0)
                v[i] = strtoull(eq + 1, NULL, 10);
    }
    struct hl_err err;
    struct hl_gen_result res;
    if (hl_gen_run(w, v, seed, file, "test", &res, &err) < 0) {
        tap_diag("%s", err.msg);
        return -1;
    }
    return 0;
}

static struct hl_analysis *analyse(const char *file)
{
    struct hl_err err;
    struct hl_reader *r = hl_reader_open(file, &err);
    if (!r) {
        tap_diag("%s", err.msg);
        return NULL;
    }
    struct hl_process p;
    struct hl_analysis *a = NULL;
    if (hl_reader_next_process(r, &p, &err) == 1) {
        a = hl_analysis_new();
        const struct hl_event *ev;
        ssize_t n;
        while ((n = hl_reader_events(r, &ev, &err)) > 0)
            hl_analysis_feed(a, ev, (size_t)n);
        hl_analysis_finish(a);
        if (n < 0) { /* a trace the reader refuses is not a valid trace */
            tap_diag("%s", err.msg);
            hl_analysis_free(a);
            a = NULL;
        }
    }
    hl_reader_close(r);
    return a;
}

static int clean(const struct hl_analysis *a)
{
    return a && a->unknown_frees == 0 && a->double_frees == 0 && a->null_frees == 0 &&
           a->bad_ops == 0;
}

static char *slurp(const char *file, size_t *n)
{
    *n = 0;
    FILE *f = fopen(file, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = len < 0 ? NULL : malloc((size_t)len + 1);
    if (b)
        *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

static int same_bytes(const char *x, const char *y)
{
    size_t nx, ny;
    char *a = slurp(x, &nx), *b = slurp(y, &ny);
    int same = a && b && nx == ny && memcmp(a, b, nx) == 0;
    free(a);
    free(b);
    return same;
}

static void test_determinism(void)
{
    static const char *const kv[] = {"steps=3000", NULL};
    for (int i = 0; hl_workloads[i]; i++) {
        const char *wl = hl_workloads[i]->name;
        /* small runs: the defaults are sized for a one-second replay */
        static const char *const small[][3] = {
            {"steps=2000", NULL}, {"iterations=3", "objects=300", NULL}, {"blocks=5000", NULL},
            {"iterations=2000", NULL}, {"rounds=20", "blocks=200", NULL}, {"events=20000", NULL}};
        const char *const *p = i < 6 ? small[i] : kv;
        int ok = gen(wl, 7, path("a.hlt"), p) == 0 && gen(wl, 7, path("b.hlt"), p) == 0 &&
                 gen(wl, 8, path("c.hlt"), p) == 0;
        TAP_CHECK(ok && same_bytes(path("a.hlt"), path("b.hlt")),
                  "%s: the same seed gives identical bytes", wl);
        TAP_CHECK(ok && !same_bytes(path("a.hlt"), path("c.hlt")),
                  "%s: another seed gives another trace", wl);
    }
}

static void test_larson(void)
{
    static const char *const kv[] = {"threads=3", "blocks=50", "steps=2000", "round=100", NULL};
    struct hl_analysis *a = gen("larson", 1, path("l.hlt"), kv) == 0 ? analyse(path("l.hlt")) : NULL;
    TAP_CHECK(clean(a), "larson: a valid trace, every free after its allocation");
    TAP_CHECK(a && a->nthreads == 3, "larson: threads as requested");
    TAP_CHECK(a && a->events == 3 * 50 * 2 + 3 * 2000 * 2, "larson: blocks + 2 events per step");
    TAP_CHECK(a && a->cross_thread_frees > 0, "larson: has cross-thread frees");
    TAP_CHECK(a && a->leaked_blocks == 0 && a->peak_blocks == 150, "larson: flat, no leak");
    TAP_CHECK(a && a->size_hist[0] + a->size_hist[1] + a->size_hist[2] + a->size_hist[3] +
                           a->size_hist[4] == 0 && a->size_hist[11] == 0,
              "larson: sizes within [min, max] = [16, 512]");
    TAP_CHECK(a && a->last_time_ns > a->first_time_ns, "larson: timestamps advance");
    hl_analysis_free(a);
}

static void test_threadtest(void)
{
    static const char *const kv[] = {"threads=3", "iterations=4", "objects=100", "size=48", NULL};
    struct hl_analysis *a = gen("threadtest", 1, path("t.hlt"), kv) == 0 ? analyse(path("t.hlt")) : NULL;
    TAP_CHECK(clean(a), "threadtest: a valid trace");
    TAP_CHECK(a && a->nthreads == 3 && a->events == 3 * 4 * 100 * 2, "threadtest: threads and events");
    TAP_CHECK(a && a->cross_thread_frees == 0, "threadtest: no block crosses threads");
    TAP_CHECK(a && a->nsizes == 1 && a->sizes[0].size == 48, "threadtest: one object size");
    TAP_CHECK(a && a->peak_blocks <= 300 && a->leaked_blocks == 0, "threadtest: batches, no leak");
    hl_analysis_free(a);
    static const char *const kr[] = {"threads=2", "iterations=3", "objects=50", "resize=5", NULL};
    a = gen("threadtest", 1, path("tr.hlt"), kr) == 0 ? analyse(path("tr.hlt")) : NULL;
    TAP_CHECK(clean(a), "threadtest resize=5: a valid trace");
    TAP_CHECK(a && a->events == 2 * 3 * 50 * 7 && a->allocations == 2 * 3 * 50 * 6 &&
                  a->ops[HL_OP_REALLOC] == 2 * 3 * 50 * 5,
              "threadtest resize=5: each object reallocated 5 times, a new block each time");
    TAP_CHECK(a && a->realloc_grow == 2 * 3 * 50 * 3 && a->realloc_shrink == 2 * 3 * 50 * 2,
              "threadtest resize=5: to twice the size and back");
    TAP_CHECK(a && a->peak_blocks <= 100 && a->leaked_blocks == 0, "threadtest resize=5: no leak");
    hl_analysis_free(a);
}

static void test_xmalloc(void)
{
    static const char *const kv[] = {"producers=2", "consumers=3", "blocks=5000", "queue=64", NULL};
    struct hl_analysis *a = gen("xmalloc", 1, path("x.hlt"), kv) == 0 ? analyse(path("x.hlt")) : NULL;
    TAP_CHECK(clean(a), "xmalloc: a valid trace");
    TAP_CHECK(a && a->nthreads == 5 && a->events == 10000, "xmalloc: threads and events");
    TAP_CHECK(a && a->cross_thread_frees == 5000, "xmalloc: every free is cross-thread");
    TAP_CHECK(a && a->peak_blocks <= 64, "xmalloc: the queue bounds the live blocks");
    TAP_CHECK(a && a->nthreads == 5 && a->threads[0].frees == 0 && a->threads[1].frees == 0 &&
                  a->threads[2].allocs == 0 && a->threads[4].allocs == 0 &&
                  a->threads[2].frees + a->threads[3].frees + a->threads[4].frees == 5000,
              "xmalloc: producers only allocate, consumers only free");
    hl_analysis_free(a);
}

static void test_cache_scratch(void)
{
    static const char *const kv[] = {"threads=3", "iterations=1000", "size=8", NULL};
    struct hl_analysis *a =
        gen("cache-scratch", 1, path("c.hlt"), kv) == 0 ? analyse(path("c.hlt")) : NULL;
    TAP_CHECK(clean(a), "cache-scratch: a valid trace");
    TAP_CHECK(a && a->nthreads == 4 && a->events == 6 + 3 * 1000 * 2,
              "cache-scratch: main + workers, events");
    TAP_CHECK(a && a->cross_thread_frees == 3, "cache-scratch: each worker frees main's object");
    TAP_CHECK(a && a->temporary == 3000, "cache-scratch: worker churn is all temporary");
    hl_analysis_free(a);
}

static void test_fragmenter(void)
{
    static const char *const kv[] = {"rounds=20", "blocks=100", "min=16", "max=2048", "keep=3", NULL};
    struct hl_analysis *a =
        gen("fragmenter", 1, path("f.hlt"), kv) == 0 ? analyse(path("f.hlt")) : NULL;
    TAP_CHECK(clean(a), "fragmenter: a valid trace");
    TAP_CHECK(a && a->nthreads == 1 && a->events == 4000 && a->leaked_blocks == 0,
              "fragmenter: one thread, all freed");
    TAP_CHECK(a && a->size_hist[5] > 0 && a->size_hist[12] > 0,
              "fragmenter: sizes grow from 16 B to 2 KiB");
    TAP_CHECK(a && a->peak_blocks <= 4 * 50 + 50 && a->peak_blocks >= 3 * 50,
              "fragmenter: long-lived blocks of `keep` rounds stay live");
    /* short-lived blocks die at their round's end, long-lived ones `keep` rounds later */
    uint64_t shortl = 0, longl = 0;
    for (int k = 0; a && k < HL_AN_POW2_BUCKETS; k++) {
        if (k <= 7)
            shortl += a->life_events_hist[k];
        if (k >= 10)
            longl += a->life_events_hist[k];
    }
    /* 20 rounds of 50 short-lived blocks living < 128 events (a round is 200 events);
     * the long-lived ones of rounds 0..16 die 3 rounds later, >= 512 events on */
    TAP_CHECK(shortl == 20 * 50 && longl >= 17 * 50,
              "fragmenter: short-lived blocks die within their round, long-lived ones rounds later");
    hl_analysis_free(a);
}

static void test_phases(void)
{
    static const char *const kv[] = {"events=40000", "plateau=1048576", "peak=3145728", NULL};
    struct hl_analysis *a = gen("phases", 1, path("p.hlt"), kv) == 0 ? analyse(path("p.hlt")) : NULL;
    TAP_CHECK(clean(a), "phases: a valid trace");
    TAP_CHECK(a && a->peak_live >= 3145728 - 4096 && a->peak_live <= 3145728 * 1.1,
              "phases: the peak reaches `peak` bytes");
    TAP_CHECK(a && a->ops[HL_OP_REALLOC] > 0 && a->ops[HL_OP_CALLOC] > 0,
              "phases: reallocs and callocs mixed in");
    TAP_CHECK(a && a->leaked_blocks == 0, "phases: no leak by default");
    hl_analysis_free(a);
    static const char *const leak[] = {"events=40000", "plateau=1048576", "peak=3145728",
                                       "leak=20", NULL};
    a = gen("phases", 1, path("p2.hlt"), leak) == 0 ? analyse(path("p2.hlt")) : NULL;
    TAP_CHECK(a && clean(a) && a->leaked_blocks > 0, "phases leak=20: blocks leak");
    hl_analysis_free(a);
}

static void test_bad_output(void)
{
    uint64_t v[HL_GEN_MAX_PARAMS];
    const struct hl_workload *w = hl_workload_find("threadtest");
    int n = 0;
    for (const struct hl_gen_param *p = w->params; p->name; p++)
        v[n++] = p->def;
    struct hl_err err;
    int rc = hl_gen_run(w, v, 1, "/nonexistent-dir/x.hlt", "test", NULL, &err);
    TAP_CHECK(rc < 0 && strstr(err.msg, "/nonexistent-dir/x.hlt"),
              "an unwritable output fails with a message naming it");
    TAP_CHECK(hl_workload_find("no-such") == NULL, "unknown workloads are not found");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_determinism();
    test_larson();
    test_threadtest();
    test_xmalloc();
    test_cache_scratch();
    test_fragmenter();
    test_phases();
    test_bad_output();
    const char *names[] = {"a.hlt", "b.hlt", "c.hlt", "l.hlt", "t.hlt", "x.hlt", "f.hlt", "p.hlt", "p2.hlt"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(path(names[i]));
    rmdir(dir);
    return tap_done();
}
