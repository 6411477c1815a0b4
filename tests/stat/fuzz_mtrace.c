/*
 * fuzz_mtrace.c: fuzz target for the glibc mtrace importer (traces/mtrace.c): any bytes
 * must import or be refused with a one-line error naming the file; what imports must
 * read back, and `stat`'s analysis of it must hold together.
 */
#include "analysis.h"
#include "fuzz.h"
#include "mtrace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256], in[300], out[300];

static void cleanup(void)
{
    unlink(in);
    unlink(out);
    rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        fuzz_scratch(dir, sizeof dir, "mtrace");
        snprintf(in, sizeof in, "%s/in.log", dir);
        snprintf(out, sizeof out, "%s/out.hlt", dir);
        atexit(cleanup);
    }
    FILE *f = fopen(in, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct hl_err err;
    if (hl_mtrace_import(in, out, &err) != 0) {
        if (!strstr(err.msg, in) || strchr(err.msg, '\n'))
            abort(); /* errors are one line naming the input */
        return 0;
    }
    struct hl_reader *r = hl_reader_open(out, &err);
    struct hl_process p;
    if (!r || hl_reader_next_process(r, &p, &err) != 1) {
        fprintf(stderr, "an imported trace does not read back: %s\n", err.msg);
        abort();
    }
    struct hl_analysis *a = hl_analysis_new();
    const struct hl_event *ev;
    ssize_t n;
    while ((n = hl_reader_events(r, &ev, &err)) > 0)
        hl_analysis_feed(a, ev, (size_t)n);
    if (n < 0) {
        fprintf(stderr, "an imported trace does not read back: %s\n", err.msg);
        abort();
    }
    hl_analysis_finish(a);
    /* the importer keeps the slot rule: nothing freed twice, nothing allocated twice */
    if (a->double_frees || a->double_allocs || a->allocations - a->frees != a->leaked_blocks)
        abort();
    hl_analysis_free(a);
    hl_reader_close(r);
    return 0;
}
