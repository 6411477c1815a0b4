/*
 * merge.c: `heaplab merge`: join result files (shards of one comparison, or the same
 * comparison on several machines) into one, for `heaplab plot`.  The rules are in
 * cmd/plot/merge.c.
 */
#include "cmd.h"
#include "options.h"
#include "plot/plot.h"
#include "util.h"

#include <stdio.h>

static const char *const usage[] = {
    "heaplab merge -o OUT.csv RESULTS...",
    "Join replay results (CSV or JSON) into one results CSV that 'heaplab plot' draws.",
    "Shards ('replay --shard I/N', each cell in one file) join as one comparison.  The",
    "same cells from several machines (host, CPU, cores, kernel, C library as recorded)",
    "join as allocator x machine: every allocator is renamed ALLOCATOR@HOST.",
    "Refused, with one line naming the files: results of different heaplab major",
    "versions; a trace (file name and process) whose hash differs between files;",
    "the same cell twice from one machine (overlapping shards).",
    NULL};

int cmd_merge(int argc, char **argv)
{
    const char *out_path = NULL;
    struct hl_option opts[] = {
        HL_OPT_STRING('o', "output", &out_path, "FILE", "write the merged CSV to FILE (required)"),
        HL_OPT_END()};
    int first = hl_parse_options(argc, argv, opts, usage, 0);
    if (!out_path)
        hl_usage_die("merge: -o OUT.csv is required (see 'heaplab merge --help')");
    if (first >= argc)
        hl_usage_die("merge: no results given");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        hl_die("%s: cannot write: %m", tmp);
    hl_results_merge(f, (const char *const *)argv + first, argc - first);
    if (fclose(f) != 0 || rename(tmp, out_path) != 0)
        hl_die("%s: write error: %m", out_path);
    return 0;
}
