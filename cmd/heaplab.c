/*
 * heaplab.c: the heaplab executable's entry point.
 *
 * main() only handles the global options (--help, --version) and dispatches to a
 * subcommand through the table below; each subcommand parses its own options.
 */
#include "cmd.h"
#include "config.h"

#include <stdio.h>
#include <string.h>

struct subcommand {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand commands[] = {
    {"record", cmd_record, "run a program and record its malloc/free calls into a trace"},
    {"stat", cmd_stat, "summarise a trace: counts, sizes, lifetimes, threads, peak, leaks"},
    {"replay", cmd_replay, "replay traces against allocators and measure them"},
    {"allocators", cmd_allocators, "list the allocators replay can load, with versions"},
    {"plot", cmd_plot, "turn replay results into gnuplot charts and a report"},
    {"merge", cmd_merge, "join result files of shards or machines into one, for plot"},
    {"diff", cmd_diff, "compare two result sets; fail on a regression (--fail-on)"},
    {"gen", cmd_gen, "generate a synthetic workload trace (larson, xmalloc, ...)"},
    {"export", cmd_export, "write a trace as text, one event a line"},
    {"import", cmd_import, "make a trace from text (heaplab export) or a glibc mtrace log"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f)
{
    fprintf(f, "usage: heaplab [--version] [--help] COMMAND [ARGS...]\n\n"
               "A lab for heap allocators: record malloc/free traces from live programs,\n"
               "replay them against allocators, and compare time, latency, cache misses,\n"
               "peak RSS and fragmentation.\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n'heaplab help COMMAND' or 'heaplab COMMAND --help' describes a command.\n");
}

static const struct subcommand *find(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("heaplab %s\n", HEAPLAB_VERSION);
        return 0;
    }
    if (strcmp(name, "__worker") == 0)
        return cmd_worker(argc - 1, argv + 1);
    if (strcmp(name, "help") == 0) {
        if (argc < 3) {
            usage(stdout);
            return 0;
        }
        const struct subcommand *c = find(argv[2]);
        if (!c) {
            fprintf(stderr, "heaplab: unknown command '%s' (see 'heaplab --help')\n", argv[2]);
            return 2;
        }
        char *hargv[] = {(char *)c->name, "--help", NULL};
        return c->fn(2, hargv);
    }
    const struct subcommand *c = find(name);
    if (!c) {
        fprintf(stderr, "heaplab: unknown command '%s' (see 'heaplab --help')\n", name);
        return 2;
    }
    return c->fn(argc - 1, argv + 1);
}
