/*
 * import.c: `heaplab import [--format text|mtrace] FILE -o OUT`: make a trace from the
 * text form (`heaplab export`, or written by hand; see traces/text.h) or from a glibc
 * mtrace log.
 */
#include "cmd.h"
#include "mtrace.h"
#include "options.h"
#include "text.h"
#include "util.h"

#include <string.h>

static const char *const usage[] = {
    "heaplab import [--format text|mtrace] -o OUT FILE",
    "Make the trace OUT from FILE: heaplab's text form (what 'heaplab export' writes,",
    "or written by hand; see traces/text.h) or a glibc mtrace log (MALLOC_TRACE).",
    "FILE may be - for stdin.",
    NULL};

int cmd_import(int argc, char **argv)
{
    const char *out = NULL, *format = "text";
    struct hl_option opts[] = {
        HL_OPT_STRING('f', "format", &format, "FORMAT", "input format: text (default) or mtrace"),
        HL_OPT_STRING('o', "output", &out, "OUT", "the trace to write (required)"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, 0);
    if (argc - i != 1)
        hl_usage_die("import takes one input file (see 'heaplab import --help')");
    if (!out)
        hl_usage_die("import needs -o OUT (the trace to write)");
    struct hl_err err;
    int rc;
    if (strcmp(format, "text") == 0)
        rc = hl_text_import(argv[i], out, &err);
    else if (strcmp(format, "mtrace") == 0)
        rc = hl_mtrace_import(argv[i], out, &err);
    else
        hl_usage_die("unknown format '%s' (text or mtrace)", format);
    if (rc < 0)
        hl_die("%s", err.msg);
    return 0;
}
