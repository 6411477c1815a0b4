/*
 * fuzz_plot.c: fuzz target for what `heaplab plot` reads (cmd/plot/results.c and
 * json.c): the same bytes as a results file (CSV or JSON, chosen by content) and as a
 * timeline CSV.  Each must be read or refused with one line naming the file; never a
 * crash, a hang or a leak.
 *
 * The readers end the program on bad input (hl_die).  Here hl_die and the allocation
 * helpers of cmd/util.h are the target's own: hl_die jumps back to the target, which
 * frees what the reader had allocated.  So that it knows what that is, the readers are
 * compiled for this target with free() renamed to fuzz_free() (tests/fuzz/meson.build),
 * and every block they own is in a table: a block left in it after a successful read
 * and the matching *_free() is a leak.
 */
#include "fuzz.h"
#include "plot.h"
#include "util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void fuzz_free(void *p);

static char dir[256], path[300];
static jmp_buf on_die;

/* ---- the blocks the readers own: an open-addressing set of pointers, and the same
 * pointers in a dense array, so that freeing them all after an error costs the blocks
 * there are, not the table's size ---- */

#define LIVE_CAP (1u << 16)
static struct ent {
    void *p;
    size_t di; /* its index in dense[] */
} live[LIVE_CAP];
static void *dense[LIVE_CAP / 2];
static size_t nlive;

static size_t slot_of(void *p)
{
    size_t h = ((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull >> 48;
    while (live[h].p && live[h].p != p)
        h = (h + 1) & (LIVE_CAP - 1);
    return h;
}

static void track(void *p)
{
    if (nlive >= LIVE_CAP / 2)
        abort(); /* more blocks than any small input needs */
    live[slot_of(p)] = (struct ent){p, nlive};
    dense[nlive++] = p;
}

static void untrack(void *p)
{
    size_t h = slot_of(p);
    if (!live[h].p)
        abort(); /* freeing a block the readers never allocated */
    size_t di = live[h].di;
    live[h].p = NULL;
    /* Re-insert the rest of the cluster, so that lookups stay right. */
    for (size_t i = (h + 1) & (LIVE_CAP - 1); live[i].p; i = (i + 1) & (LIVE_CAP - 1)) {
        struct ent e = live[i];
        live[i].p = NULL;
        live[slot_of(e.p)] = e;
    }
    /* The last of dense[] fills the hole. */
    void *last = dense[--nlive];
    if (di != nlive) {
        dense[di] = last;
        live[slot_of(last)].di = di;
    }
}

static void free_all(void)
{
    while (nlive) {
        void *p = dense[nlive - 1];
        untrack(p);
        free(p);
    }
}

void fuzz_free(void *p)
{
    if (p) {
        untrack(p);
        free(p);
    }
}

void *hl_xrealloc(void *p, size_t n)
{
    if (p)
        untrack(p);
    p = realloc(p, n ? n : 1);
    if (!p)
        abort();
    track(p);
    return p;
}

char *hl_xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(hl_xrealloc(NULL, n), s, n);
}

/* ---- the error exits ---- */

__attribute__((noreturn)) static void die(const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (strchr(msg, '\n') || strncmp(msg, path, strlen(path)) != 0) {
        fprintf(stderr, "not one line naming the file: %s\n", msg);
        abort();
    }
    free_all();
    longjmp(on_die, 1);
}

void hl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    die(fmt, ap);
}

void hl_usage_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    die(fmt, ap);
}

void hl_warn(const char *fmt, ...)
{
    (void)fmt;
}

/* ---- the target ---- */

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
}

static void check_released(const char *what)
{
    if (nlive) {
        fprintf(stderr, "%s left %zu blocks allocated\n", what, nlive);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        fuzz_scratch(dir, sizeof dir, "plot");
        snprintf(path, sizeof path, "%s/results", dir);
        atexit(cleanup);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();

    static struct hl_results r;
    if (setjmp(on_die) == 0) {
        hl_results_read(&r, path);
        /* What plot does next with the rows must hold too: every row has its group
         * and its allocator, and is the one found for them. */
        for (int i = 0; i < r.nrows; i++) {
            int g = r.row_group[i], a = hl_results_alloc(&r, r.rows[i].v[HL_RES_ALLOCATOR]);
            if (g < 0 || g >= r.ngroups || a < 0 || hl_results_find(&r, g, a) != &r.rows[i])
                abort();
            for (int c = 0; c < HL_NCOLS; c++)
                (void)hl_row_num(&r.rows[i], (enum hl_col)c);
        }
        hl_results_free(&r);
        check_released("hl_results_read");
    }
    static struct hl_timelines t;
    if (setjmp(on_die) == 0) {
        memset(&t, 0, sizeof t);
        hl_timelines_read(&t, path);
        for (int i = 0; i < t.n; i++)
            for (size_t k = 1; k < t.t[i].n; k++)
                if (t.t[i].event[k] < t.t[i].event[k - 1])
                    abort(); /* series are sorted by event */
        hl_timelines_free(&t);
        check_released("hl_timelines_read");
    }
    nlive = 0;
    return 0;
}
