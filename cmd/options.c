/*
 * options.c: table-driven option parsing and generated help (see options.h).
 *
 * Supports -x, -xVALUE, -x VALUE, --long, --long=VALUE, --long VALUE and "--".
 * Positional arguments may be mixed with options unless HL_PARSE_STOP_AT_NON_OPTION.
 */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *cmd_name(const char *const *usage)
{
    /* "heaplab stat [...]" -> "heaplab stat" for error messages */
    static char name[64];
    const char *s = usage && usage[0] ? usage[0] : "heaplab";
    size_t n = 0;
    int words = 0;
    while (s[n] && n < sizeof name - 1) {
        if (s[n] == ' ' && ++words == 2)
            break;
        n++;
    }
    memcpy(name, s, n);
    name[n] = 0;
    return name;
}

__attribute__((noreturn)) static void opt_fail(const char *const *usage, const char *fmt,
                                               const char *what)
{
    fprintf(stderr, "%s: ", cmd_name(usage));
    fprintf(stderr, fmt, what);
    fprintf(stderr, " (see '%s --help')\n", cmd_name(usage));
    exit(2);
}

int hl_parse_size(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-')
        return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    default: return -1;
    }
    if (*end == 'i' && end[-1] != 0)
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end)
        return -1;
    if (shift && v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static void set_value(const struct hl_option *o, const char *arg, const char *const *usage,
                      const char *spelled)
{
    switch (o->type) {
    case HL_OPTT_FLAG:
        *(int *)o->value = 1;
        break;
    case HL_OPTT_STRING:
        *(const char **)o->value = arg;
        break;
    case HL_OPTT_INT: {
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end)
            opt_fail(usage, "option '%s' wants an integer", spelled);
        *(long *)o->value = v;
        break;
    }
    case HL_OPTT_SIZE:
        if (hl_parse_size(arg, (uint64_t *)o->value))
            opt_fail(usage, "option '%s' wants a size like 4096, 64k, 2M or 1G", spelled);
        break;
    case HL_OPTT_LIST: {
        struct hl_strlist *l = o->value;
        if (l->n >= (int)(sizeof l->items / sizeof l->items[0]))
            opt_fail(usage, "option '%s' given too many times", spelled);
        l->items[l->n++] = arg;
        break;
    }
    case HL_OPTT_END:
        break;
    }
}

static int takes_arg(const struct hl_option *o)
{
    return o->type != HL_OPTT_FLAG;
}

int hl_parse_options(int argc, char **argv, const struct hl_option *opts,
                     const char *const *usage, int flags)
{
    /* Positionals are collected and moved behind the options at the end. */
    char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos = 0, i = 1;
    char spelled[128];
    if (!pos) {
        fprintf(stderr, "heaplab: out of memory\n");
        exit(1);
    }
    while (i < argc) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (flags & HL_PARSE_STOP_AT_NON_OPTION)
                break;
            pos[npos++] = a;
            i++;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            hl_print_usage(opts, usage);
            exit(0);
        }
        const struct hl_option *o = NULL;
        const char *arg = NULL;
        if (a[1] == '-') {
            const char *name = a + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            for (const struct hl_option *p = opts; p->type != HL_OPTT_END; p++)
                if (p->long_name && strlen(p->long_name) == len &&
                    memcmp(p->long_name, name, len) == 0)
                    o = p;
            snprintf(spelled, sizeof spelled, "--%.*s", (int)len, name);
            if (!o)
                opt_fail(usage, "unknown option '%s'", spelled);
            if (eq) {
                if (!takes_arg(o))
                    opt_fail(usage, "option '%s' takes no value", spelled);
                arg = eq + 1;
            }
            i++;
        } else {
            for (const struct hl_option *p = opts; p->type != HL_OPTT_END; p++)
                if (p->short_name && p->short_name == a[1])
                    o = p;
            snprintf(spelled, sizeof spelled, "-%c", a[1]);
            if (!o)
                opt_fail(usage, "unknown option '%s'", spelled);
            if (a[2]) {
                if (!takes_arg(o))
                    opt_fail(usage, "option '%s' takes no value (flags cannot be bundled)",
                             spelled);
                arg = a + 2;
            }
            i++;
        }
        if (takes_arg(o) && !arg) {
            if (i >= argc)
                opt_fail(usage, "option '%s' needs a value", spelled);
            arg = argv[i++];
        }
        set_value(o, arg, usage, spelled);
    }
    /* Rebuild argv: the positionals seen so far go right before argv[i..argc) (what
     * followed "--", or the first positional in stop mode), which stays in place. */
    int first = i - npos;
    memcpy(argv + first, pos, (size_t)npos * sizeof *argv);
    for (int k = 1; k < first; k++)
        argv[k] = NULL;
    free(pos);
    return first;
}

void hl_print_usage(const struct hl_option *opts, const char *const *usage)
{
    printf("usage: %s\n", usage[0]);
    for (int i = 1; usage[i]; i++)
        printf("%s%s\n", i == 1 ? "\n" : "", usage[i]);
    int any = 0;
    for (const struct hl_option *o = opts; o && o->type != HL_OPTT_END; o++) {
        char left[96];
        int n = 0;
        if (!any++)
            printf("\noptions:\n");
        if (o->short_name && o->long_name)
            n = snprintf(left, sizeof left, "-%c, --%s", o->short_name, o->long_name);
        else if (o->short_name)
            n = snprintf(left, sizeof left, "-%c", o->short_name);
        else
            n = snprintf(left, sizeof left, "    --%s", o->long_name);
        if (o->argh && n > 0 && (size_t)n < sizeof left)
            snprintf(left + n, sizeof left - (size_t)n, "%s%s",
                     o->long_name ? "=" : " ", o->argh);
        if (strlen(left) > 24)
            printf("  %s\n  %-24s  %s\n", left, "", o->help);
        else
            printf("  %-24s  %s\n", left, o->help);
    }
    printf("%s  %-24s  %s\n", any ? "" : "\noptions:\n", "-h, --help", "show this help");
}
