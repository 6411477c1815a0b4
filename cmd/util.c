/*
 * util.c: error reporting, human units and paths shared by the subcommands.
 */
#include "util.h"
#include "config.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vmsg(const char *prefix, const char *fmt, va_list ap)
{
    fflush(stdout);
    fprintf(stderr, "heaplab: %s", prefix);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void hl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    exit(1);
}

void hl_usage_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("", fmt, ap);
    va_end(ap);
    exit(2);
}

void hl_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg("warning: ", fmt, ap);
    va_end(ap);
}

/* Not inlined: callers compute sizes from ints and GCC then warns about impossible
 * ranges. */
__attribute__((noinline)) void *hl_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        hl_die("out of memory");
    return p;
}

char *hl_xstrdup(const char *s)
{
    char *d = strdup(s);
    if (!d)
        hl_die("out of memory");
    return d;
}

static char *fmt_scaled(char *buf, size_t n, double v, double base, const char *const *units,
                        int nunits)
{
    int u = 0;
    double a = v < 0 ? -v : v;
    while (a >= base && u < nunits - 1) {
        a /= base;
        v /= base;
        u++;
    }
    if (u == 0)
        snprintf(buf, n, "%.0f%s%s", v, units[0][0] ? " " : "", units[0]);
    else
        snprintf(buf, n, a < 10 ? "%.2f %s" : a < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

char *hl_fmt_bytes(char *buf, size_t n, double bytes)
{
    static const char *const u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    return fmt_scaled(buf, n, bytes, 1024, u, 5);
}

char *hl_fmt_count(char *buf, size_t n, double count)
{
    static const char *const u[] = {"", "k", "M", "G", "T"};
    return fmt_scaled(buf, n, count, 1000, u, 5);
}

char *hl_fmt_ns(char *buf, size_t n, double ns)
{
    static const char *const u[] = {"ns", "us", "ms", "s"};
    if (ns >= 1e9 * 1000)
        snprintf(buf, n, "%.0f s", ns / 1e9);
    else
        fmt_scaled(buf, n, ns, 1000, u, 4);
    return buf;
}

const char *hl_self_exe(void)
{
    static char path[PATH_MAX];
    if (!path[0]) {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n <= 0)
            hl_die("cannot read /proc/self/exe");
        path[n] = 0;
    }
    return path;
}

uint64_t hl_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int hl_isatty(int fd)
{
    return isatty(fd);
}

void hl_csv_str(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}
