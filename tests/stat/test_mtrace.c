/*
 * test_mtrace.c: the glibc mtrace importer on hand-written logs covering every line
 * form glibc writes (see traces/mtrace.h), and its one-line errors on bad input.
 */
#include "mtrace.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/heaplab-test-mtrace.XXXXXX";
static char in[300], out[300];

static int import(const char *log, struct hl_err *err)
{
    FILE *f = fopen(in, "w");
    fputs(log, f);
    fclose(f);
    return hl_mtrace_import(in, out, err);
}

static size_t read_back(struct hl_event **ev)
{
    struct hl_err err;
    struct hl_reader *r = hl_reader_open(out, &err);
    struct hl_process p;
    size_t n = 0;
    *ev = NULL;
    if (r && hl_reader_next_process(r, &p, &err) == 1 && hl_reader_read_all(r, ev, &n, &err) == 0) {
        hl_reader_close(r);
        return n;
    }
    tap_diag("%s", err.msg);
    if (r)
        hl_reader_close(r);
    return 0;
}

#define N HL_NO_SLOT

static int is(const struct hl_event *e, int op, uint64_t size, uint64_t slot, uint64_t old, int flags)
{
    return e->op == op && e->size == size && e->slot == slot && e->old_slot == old &&
           e->flags == flags && e->thread == 0;
}

static void test_all_forms(void)
{
    static const char log[] =
        "= Start\n"
        "@ ./prog:[0x4005d4] + 0x1000 0x40\n"            /* 0 malloc 64 -> #0 */
        "@ ./prog:(main+0x1c)[0x4005d4] + 0x2000 0x10\n" /* 1 malloc 16 -> #1 */
        "@ [0x7f0000001234] < 0x1000\n"                  /* realloc #0 ... */
        "@ [0x7f0000001234] > 0x3000 0x80\n"             /* 2 ... 128 -> #2 */
        "- 0x2000\n"                                     /* 3 free #1 (no caller) */
        "@ ./prog:[0x400600] ! 0x3000 0x100000000\n"     /* 4 failed realloc of #2 */
        "@ ./prog:[0x400610] + (nil) 0x7fffffffffff\n"   /* 5 failed malloc */
        "@ ./prog:[0x400620] - 0x9999\n"                 /* 6 unknown free */
        "@ ./prog:[0x400630] + 0x3000 0x20\n"            /* #2 still live: 7 free #2, 8 malloc -> #3 */
        "@ ./prog:[0x400640] - 0x3000\n"                 /* 9 free #3 */
        "@ ./prog:[0x400650] + 0x4000 0\n"               /* 10 malloc 0 -> #4 (leaked) */
        "= End\n";
    struct hl_err err;
    int rc = import(log, &err);
    TAP_CHECK(rc == 0, "a log with every line form imports");
    if (rc)
        tap_diag("%s", err.msg);
    struct hl_event *e;
    size_t n = read_back(&e);
    TAP_EQ_U(n, 11, "11 events");
    if (n == 11) {
        TAP_CHECK(is(&e[0], HL_OP_MALLOC, 64, 0, N, 0) && is(&e[1], HL_OP_MALLOC, 16, 1, N, 0),
                  "'+' lines are mallocs, callers skipped in both forms");
        TAP_CHECK(is(&e[2], HL_OP_REALLOC, 128, 2, 0, 0), "a '<' '>' pair is one realloc");
        TAP_CHECK(is(&e[3], HL_OP_FREE, 0, 1, N, 0), "'-' is a free of the block's slot");
        TAP_CHECK(is(&e[4], HL_OP_REALLOC, 0x100000000, N, 2, HL_EV_FAILED),
                  "'!' is a failed realloc that leaves the block live");
        TAP_CHECK(is(&e[5], HL_OP_MALLOC, 0x7fffffffffff, N, N, HL_EV_FAILED),
                  "'+ (nil)' is a failed malloc");
        TAP_CHECK(is(&e[6], HL_OP_FREE, 0, N, N, HL_EV_UNKNOWN), "a free of an unknown address is flagged");
        TAP_CHECK(is(&e[7], HL_OP_FREE, 0, 2, N, 0) && is(&e[8], HL_OP_MALLOC, 32, 3, N, 0),
                  "an allocation at a live address adds the lost free first");
        TAP_CHECK(is(&e[9], HL_OP_FREE, 0, 3, N, 0) && is(&e[10], HL_OP_MALLOC, 0, 4, N, 0),
                  "an address reused after its free maps to the new slot");
        int ordered = 1;
        for (size_t i = 0; i < n; i++)
            ordered &= e[i].time_ns == i;
        TAP_CHECK(ordered, "no timestamps: time is the event index");
    }
    free(e);
}

static void test_lone_realloc_halves(void)
{
    struct hl_err err;
    int rc = import("+ 0x10 0x8\n< 0x10\n+ 0x20 0x8\n> 0x30 0x18\n", &err);
    struct hl_event *e;
    size_t n = rc == 0 ? read_back(&e) : 0;
    TAP_CHECK(n == 4 && is(&e[1], HL_OP_FREE, 0, 0, N, 0) && is(&e[2], HL_OP_MALLOC, 8, 1, N, 0) &&
                  is(&e[3], HL_OP_REALLOC, 24, 2, N, 0),
              "a '<' without its '>' is a free; a '>' alone a realloc(NULL)");
    if (rc == 0)
        free(e);
}

static void test_errors(void)
{
    struct hl_err err;
    unlink(out);
    TAP_CHECK(import("= Start\n+ 0x10 0x8\nhello world\n", &err) < 0 && strstr(err.msg, in) &&
                  strstr(err.msg, "line 3"),
              "a line that is not mtrace is an error naming the file and line");
    TAP_CHECK(access(out, F_OK) != 0, "a failed import leaves no trace behind");
    TAP_CHECK(import("+ 0xzz 0x8\n", &err) < 0 && strstr(err.msg, "line 1"), "a bad address is an error");
    TAP_CHECK(import("+ 0x10\n", &err) < 0, "a malloc line without a size is an error");
    TAP_CHECK(import("", &err) < 0 && strstr(err.msg, in), "an empty file is an error");
    TAP_CHECK(hl_mtrace_import("/nonexistent/log", out, &err) < 0 && strstr(err.msg, "/nonexistent/log"),
              "a missing file is an error naming it");
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    snprintf(in, sizeof in, "%s/log", dir);
    snprintf(out, sizeof out, "%s/out.hlt", dir);
    test_all_forms();
    test_lone_realloc_halves();
    test_errors();
    unlink(in);
    unlink(out);
    rmdir(dir);
    return tap_done();
}
