/*
 * diff.c: `heaplab diff BASE NEW`: what changed between two result sets, and a gate
 * for CI (--fail-on).  The comparison and the spread rule are in cmd/plot/diff.c.
 */
#include "cmd.h"
#include "options.h"
#include "plot/plot.h"
#include "util.h"

#include <stdio.h>
#include <string.h>

static const char *const usage[] = {
    "heaplab diff [options] BASE NEW",
    "Compare two replay result sets (CSV or JSON; a folder means its results.json) cell by",
    "cell -- trace (by hash), process, allocator -- and print the values that changed",
    "beyond their run-to-run spread, with the ratio new/base.  The spread rule: time and",
    "rss are medians of several runs with min..max; they changed when the two ranges do",
    "not overlap.  instructions, l1d, llc and faults are single values: any difference",
    "counts (simulated counts, --counters=sim, repeat exactly on single-threaded traces,",
    "which makes them the metric for a gate that must not flake).  Counts of cells",
    "replayed with several threads move by a few percent from run to run (waiting",
    "threads spin): they are printed, marked 'not gated', and no rule judges them.",
    "--fail-on ALLOC:METRIC>PCT% (repeatable): exit status 1 when a cell of ALLOC got",
    "worse on METRIC beyond the spread and by more than PCT percent, or when no cell of",
    "ALLOC has METRIC in both sets.  E.g. --fail-on 'heaplab:instructions>2%'.",
    "Metrics: time, rss, faults, instructions, l1d, llc.  Exit status: 0 no rule failed,",
    "1 a rule failed (or unreadable input), 2 usage.",
    NULL};

/* A results folder (as scripts/compare writes) stands for its results.json. */
static const char *results_path(const char *p, char *buf, size_t n)
{
    size_t l = strlen(p);
    if (l && p[l - 1] == '/')
        l--;
    snprintf(buf, n, "%.*s/results.json", (int)l, p);
    FILE *f = fopen(buf, "r");
    if (!f)
        return p;
    fclose(f);
    return buf;
}

int cmd_diff(int argc, char **argv)
{
    struct hl_strlist fail_on = {0};
    const char *metrics = NULL;
    int all = 0;
    struct hl_option opts[] = {
        HL_OPT_LIST(0, "fail-on", &fail_on, "RULE",
                    "ALLOC:METRIC>PCT%: exit 1 when ALLOC's METRIC got worse by more"),
        HL_OPT_STRING(0, "metrics", &metrics, "LIST",
                      "metrics to print, comma-separated (default: all; rules check theirs)"),
        HL_OPT_FLAG(0, "all", &all, "print every compared value, not only the changes"),
        HL_OPT_END()};
    int first = hl_parse_options(argc, argv, opts, usage, 0);
    if (argc - first != 2)
        hl_usage_die("diff: expected BASE and NEW (see 'heaplab diff --help')");
    struct hl_diff_rule rules[64];
    for (int i = 0; i < fail_on.n; i++)
        if (hl_diff_rule_parse(fail_on.items[i], &rules[i]) != 0)
            hl_usage_die("--fail-on: expected ALLOC:METRIC>PCT%% with METRIC one of %s, not '%s'",
                         hl_diff_metric_names(), fail_on.items[i]);
    unsigned mask = ~0u;
    if (metrics) {
        mask = 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", metrics);
        for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
            int m = hl_diff_metric(t);
            if (m < 0)
                hl_usage_die("--metrics: unknown metric '%s' (%s)", t, hl_diff_metric_names());
            mask |= 1u << m;
        }
    }
    char b1[4200], b2[4200];
    struct hl_results base, new;
    hl_results_read(&base, results_path(argv[first], b1, sizeof b1));
    hl_results_read(&new, results_path(argv[first + 1], b2, sizeof b2));
    int failed = hl_results_diff(stdout, &base, &new, rules, fail_on.n, mask, all);
    fflush(stdout);
    if (failed)
        fprintf(stderr, "heaplab: diff: a --fail-on rule failed (lines marked FAIL)\n");
    hl_results_free(&base);
    hl_results_free(&new);
    return failed;
}
