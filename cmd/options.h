/*
 * options.h: the one way heaplab's subcommands declare and parse options.
 *
 * A command declares a table of struct hl_option and a usage block; hl_parse_options()
 * parses argv against the table, and --help output is generated from the same table,
 * so help never drifts from behaviour (the idea of git's parse-options).
 *
 *   static const char *const usage[] = {
 *       "heaplab stat [--json] TRACE...",          first line: synopsis
 *       "Print a summary of what a trace holds.",  further lines: description
 *       NULL };
 *   int json = 0;
 *   struct hl_option opts[] = {
 *       HL_OPT_FLAG('j', "json", &json, "print a JSON object"),
 *       HL_OPT_END() };
 *   int i = hl_parse_options(argc, argv, opts, usage, 0);
 *   (argv[i..argc) are the positional arguments)
 *
 * Errors (unknown option, missing or malformed value) print one line to stderr and
 * exit with status 2.  --help / -h prints the usage and exits 0.
 */
#ifndef HEAPLAB_OPTIONS_H
#define HEAPLAB_OPTIONS_H

#include <stdint.h>

enum hl_opt_type {
    HL_OPTT_END = 0,
    HL_OPTT_FLAG,    /* int *: set to 1 */
    HL_OPTT_STRING,  /* const char **: the argument */
    HL_OPTT_INT,     /* long *: a decimal integer */
    HL_OPTT_SIZE,    /* uint64_t *: a size, with optional k/M/G suffix (powers of 1024) */
    HL_OPTT_LIST,    /* struct hl_strlist *: repeatable string option */
};

struct hl_strlist {
    int n;
    const char *items[64];
};

struct hl_option {
    enum hl_opt_type type;
    char short_name;       /* 0 for none */
    const char *long_name; /* NULL for none */
    void *value;
    const char *argh;      /* name of the argument in help, e.g. "FILE" */
    const char *help;
};

#define HL_STR_(x) #x
#define HL_STR(x) HL_STR_(x) /* a constant in a help text */

#define HL_OPT_FLAG(s, l, v, h)         { HL_OPTT_FLAG, (s), (l), (v), NULL, (h) }
#define HL_OPT_STRING(s, l, v, a, h)    { HL_OPTT_STRING, (s), (l), (v), (a), (h) }
#define HL_OPT_INT(s, l, v, a, h)       { HL_OPTT_INT, (s), (l), (v), (a), (h) }
#define HL_OPT_SIZE(s, l, v, a, h)      { HL_OPTT_SIZE, (s), (l), (v), (a), (h) }
#define HL_OPT_LIST(s, l, v, a, h)      { HL_OPTT_LIST, (s), (l), (v), (a), (h) }
#define HL_OPT_END()                    { HL_OPTT_END, 0, NULL, NULL, NULL, NULL }

/* Stop at the first positional argument (for `record PROGRAM ARGS...`); otherwise
 * options and positionals may be mixed and positionals are moved to the end.
 * "--" always ends option parsing. */
#define HL_PARSE_STOP_AT_NON_OPTION 1

/* Returns the index in argv of the first positional argument (argv is permuted so that
 * all positionals come last). */
int hl_parse_options(int argc, char **argv, const struct hl_option *opts,
                     const char *const *usage, int flags);

/* Print the generated help for a command to stdout. */
void hl_print_usage(const struct hl_option *opts, const char *const *usage);

/* Parse "64k", "2M", "1G", "123" (powers of 1024).  Returns 0 on success. */
int hl_parse_size(const char *s, uint64_t *out);

#endif
