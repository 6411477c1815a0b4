/*
 * gen.c: `heaplab gen WORKLOAD [-o FILE] [--seed N] [NAME=VALUE...]`: write a synthetic
 * workload as a trace.  The workloads, their parameters and the emitter live in
 * traces/gen/; this file parses the command line and reports.
 */
#include "cmd.h"
#include "gen/gen.h"
#include "options.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void list(void)
{
    for (int i = 0; hl_workloads[i]; i++) {
        const struct hl_workload *w = hl_workloads[i];
        printf("%s: %s\n", w->name, w->summary);
        for (const char *s = w->details; *s;) {
            const char *nl = strchr(s, '\n');
            int n = nl ? (int)(nl - s) : (int)strlen(s);
            printf("    %.*s\n", n, s);
            s += n + (nl ? 1 : 0);
        }
        printf("  parameters (default):\n");
        for (const struct hl_gen_param *p = w->params; p->name; p++) {
            /* sizes as they would be typed: 16M rather than 16777216 */
            char def[32];
            uint64_t d = p->def;
            static const char *const units[] = {"", "k", "M", "G"};
            int u = 0;
            while (u < 3 && d >= 1024 && d % 1024 == 0) {
                d /= 1024;
                u++;
            }
            snprintf(def, sizeof def, "%llu%s", (unsigned long long)d, units[u]);
            printf("    %-11s %-10s %s\n", p->name, def, p->help);
        }
        if (hl_workloads[i + 1])
            printf("\n");
    }
}

int cmd_gen(int argc, char **argv)
{
    static const char *const usage[] = {
        "heaplab gen WORKLOAD [-o FILE] [--seed N] [NAME=VALUE...]",
        "Write a synthetic workload as a trace: larson, threadtest, xmalloc,",
        "cache-scratch, fragmenter, phases ('heaplab gen --list' describes them and their",
        "parameters).  NAME=VALUE sets a parameter (sizes take k/M/G suffixes).  The same",
        "workload, parameters and seed always give the same bytes.",
        NULL};
    const char *out = NULL;
    long seed = 1;
    int do_list = 0;
    struct hl_option opts[] = {
        HL_OPT_STRING('o', "output", &out, "FILE", "trace to write (default WORKLOAD.hlt)"),
        HL_OPT_INT('s', "seed", &seed, "N", "seed of the pseudo-random generator (default 1)"),
        HL_OPT_FLAG('l', "list", &do_list, "describe the workloads and their parameters"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, 0);
    if (do_list) {
        list();
        return 0;
    }
    if (i >= argc)
        hl_usage_die("gen: no workload given (see 'heaplab gen --list')");
    const struct hl_workload *w = hl_workload_find(argv[i]);
    if (!w)
        hl_usage_die("gen: unknown workload '%s' (see 'heaplab gen --list')", argv[i]);

    uint64_t v[HL_GEN_MAX_PARAMS];
    int np = 0;
    for (const struct hl_gen_param *p = w->params; p->name; p++)
        v[np++] = p->def;
    for (int k = i + 1; k < argc; k++) {
        const char *eq = strchr(argv[k], '=');
        if (!eq)
            hl_usage_die("gen: '%s' is not NAME=VALUE", argv[k]);
        int j = 0;
        while (j < np && (strlen(w->params[j].name) != (size_t)(eq - argv[k]) ||
                          strncmp(w->params[j].name, argv[k], (size_t)(eq - argv[k])) != 0))
            j++;
        if (j == np)
            hl_usage_die("gen: %s has no parameter '%.*s' (see 'heaplab gen --list')", w->name,
                         (int)(eq - argv[k]), argv[k]);
        const struct hl_gen_param *p = &w->params[j];
        if (hl_parse_size(eq + 1, &v[j]) < 0 || v[j] < p->min || v[j] > p->max)
            hl_usage_die("gen: %s: %s must be a number from %llu to %llu", w->name, p->name,
                         (unsigned long long)p->min, (unsigned long long)p->max);
    }

    char defout[256];
    if (!out) {
        snprintf(defout, sizeof defout, "%s.hlt", w->name);
        out = defout;
    }
    /* The header records how the trace was made (and nothing else that could vary). */
    char cmdline[1024];
    int n = snprintf(cmdline, sizeof cmdline, "heaplab gen %s --seed %ld", w->name, seed);
    for (int j = 0; j < np && n < (int)sizeof cmdline; j++)
        n += snprintf(cmdline + n, sizeof cmdline - (size_t)n, " %s=%llu", w->params[j].name,
                      (unsigned long long)v[j]);

    struct hl_gen_result res;
    struct hl_err err;
    if (hl_gen_run(w, v, (uint64_t)seed, out, cmdline, &res, &err) < 0)
        hl_die("%s", err.msg);
    char a[32], b[32];
    fprintf(stderr, "wrote %s: %s events, %llu threads, %s requested\n", out,
            hl_fmt_count(a, sizeof a, (double)res.events), (unsigned long long)res.threads,
            hl_fmt_bytes(b, sizeof b, (double)res.bytes));
    return 0;
}
