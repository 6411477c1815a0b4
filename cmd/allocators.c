/*
 * allocators.c: `heaplab allocators`: the allocators replay can load.
 *
 * Each available library is probed in a fresh worker process (the same check replay
 * makes: it loads, and malloc really comes from it), which also asks it for its
 * version.  Exit status 0 even when some are unavailable: the list says why.
 */
#include "cmd.h"
#include "options.h"
#include "util.h"
#include "replay/spawn.h"
#include "allocators/settings.h"

#include <stdio.h>
#include <string.h>

static const char *const usage[] = {
    "heaplab allocators [--format table|csv] [-a NAME=/path/lib.so]...",
    "heaplab allocators --settings NAME[=/path/lib.so]",
    "List the allocators 'heaplab replay' can load: name, version, library path, and",
    "whether it is available (and why not).  -a adds a library given by path, checked",
    "the same way (e.g. -a tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4).",
    "--settings lists the settings an allocator takes in a variant (replay -a",
    "NAME:KEY=VALUE), how they reach it, and their defaults where the allocator tells.",
    NULL};

#define MAXA 64

int cmd_allocators(int argc, char **argv)
{
    const char *format = "table", *settings = NULL;
    struct hl_strlist extra = {0};
    struct hl_option opts[] = {
        HL_OPT_STRING(0, "format", &format, "FMT", "table (default) or csv"),
        HL_OPT_LIST('a', "allocator", &extra, "NAME=PATH", "also check this library"),
        HL_OPT_STRING(0, "settings", &settings, "NAME",
                      "list the settings NAME takes (and their defaults)"),
        HL_OPT_END()};
    int first = hl_parse_options(argc, argv, opts, usage, 0);
    if (first < argc)
        hl_usage_die("allocators: unexpected argument '%s'", argv[first]);
    char why[1024];
    if (settings) {
        static struct hl_alloc one;
        if (hl_registry_resolve(settings, &one, why, sizeof why) != 0 ||
            hl_settings_list(&one, why, sizeof why) != 0)
            hl_die("%s", why);
        return 0;
    }
    int csv = strcmp(format, "csv") == 0;
    if (!csv && strcmp(format, "table") != 0)
        hl_usage_die("--format: unknown value '%s'", format);

    static struct hl_alloc a[MAXA];
    int n = hl_registry_list(a, MAXA);
    for (int i = 0; i < extra.n && n < MAXA; i++) {
        if (hl_registry_resolve(extra.items[i], &a[n], why, sizeof why) != 0)
            hl_die("%s", why);
        n++;
    }
    for (int i = 0; i < n; i++) {
        if (!a[i].available)
            continue;
        if (hl_rp_probe(&a[i], why, sizeof why) != 0) {
            a[i].available = 0;
            snprintf(a[i].why, sizeof a[i].why, "%.255s", why);
        }
    }
    if (csv) {
        printf("name,version,path,status\n");
        for (int i = 0; i < n; i++)
            printf("%s,%s,%s,\"%s\"\n", a[i].name, a[i].version, a[i].path,
                   a[i].available ? "available" : a[i].why);
        return 0;
    }
    int wn = 4, wv = 7, wp = 4;
    for (int i = 0; i < n; i++) {
        int l = (int)strlen(a[i].name);
        wn = l > wn ? l : wn;
        l = (int)strlen(a[i].version);
        wv = l > wv ? l : wv;
        l = (int)strlen(a[i].path[0] ? a[i].path : "(system)");
        if (!a[i].available)
            l = (int)strlen(a[i].path[0] ? a[i].path : "-");
        wp = l > wp ? l : wp;
    }
    printf("%-*s  %-*s  %-*s  %s\n", wn, "name", wv, "version", wp, "path", "status");
    for (int i = 0; i < n; i++)
        printf("%-*s  %-*s  %-*s  %s\n", wn, a[i].name, wv, a[i].version[0] ? a[i].version : "-",
               wp, a[i].path[0] ? a[i].path : a[i].available ? "(system)" : "-",
               a[i].available ? "available" : a[i].why);
    return 0;
}
