/*
 * export.c: `heaplab export TRACE [-o FILE]`: write a trace as text, one event a line
 * (the form is documented in traces/text.h; `heaplab import` reads it back).
 */
#include "cmd.h"
#include "options.h"
#include "text.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const usage[] = {
    "heaplab export [-o FILE] TRACE",
    "Write TRACE as text, one event a line, to FILE or stdout: readable, diffable,",
    "and read back losslessly by 'heaplab import'.  The form is described in",
    "traces/text.h.",
    NULL};

int cmd_export(int argc, char **argv)
{
    const char *out = NULL;
    struct hl_option opts[] = {
        HL_OPT_STRING('o', "output", &out, "FILE", "write to FILE instead of stdout"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, 0);
    if (argc - i != 1)
        hl_usage_die("export takes one trace (see 'heaplab export --help')");
    FILE *f = stdout;
    if (out && !(f = fopen(out, "w")))
        hl_die("%s: cannot create: %s", out, strerror(errno));
    struct hl_err err;
    int rc = hl_text_export(argv[i], f, out ? out : "<stdout>", &err);
    if (out && fclose(f) != 0 && rc == 0) {
        snprintf(err.msg, sizeof err.msg, "%s: write failed: %s", out, strerror(errno));
        rc = -1;
    }
    if (rc < 0) {
        if (out)
            unlink(out);
        hl_die("%s", err.msg);
    }
    return 0;
}
