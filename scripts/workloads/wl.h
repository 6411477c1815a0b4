/*
 * wl.h: what the allocator benchmark programs of the direct-run suite share: a
 * deterministic random generator (each program seeds it the same way on every run, so
 * its output is the same under every allocator) and argument parsing that fails with one
 * line.  The programs print only values that do not depend on addresses or scheduling.
 */
#ifndef WL_H
#define WL_H

#include <stdio.h>
#include <stdlib.h>

static inline unsigned long wl_rnd(unsigned long *s)
{
    unsigned long x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* argv[i] as a positive integer no larger than max, or `def` when absent. */
static inline long wl_arg(int argc, char **argv, int i, long def, long max, const char *usage)
{
    if (i >= argc)
        return def;
    char *end;
    long v = strtol(argv[i], &end, 10);
    if (*argv[i] == '\0' || *end != '\0' || v < 1 || v > max) {
        fprintf(stderr, "%s: bad argument '%s' (usage: %s)\n", argv[0], argv[i], usage);
        exit(2);
    }
    return v;
}

static inline void *wl_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

#endif
