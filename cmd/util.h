/*
 * util.h: error reporting and small helpers shared by the subcommands.
 *
 * Every error a user sees is one line on stderr, "heaplab: <what>: <why>", followed by
 * a non-zero exit.  Commands call hl_die() for fatal errors and hl_warn() otherwise.
 */
#ifndef HEAPLAB_UTIL_H
#define HEAPLAB_UTIL_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

__attribute__((format(printf, 1, 2), noreturn)) void hl_die(const char *fmt, ...);
__attribute__((format(printf, 1, 2))) void hl_warn(const char *fmt, ...);
/* Like hl_die but exits with status 2 (usage error). */
__attribute__((format(printf, 1, 2), noreturn)) void hl_usage_die(const char *fmt, ...);

/* Allocation that cannot fail: out of memory is a one-line error and exit 1.
 * hl_xrealloc(p, 0) returns a 1-byte block, never NULL. */
void *hl_xrealloc(void *p, size_t n);
char *hl_xstrdup(const char *s);

/* Human units: "1.5 MiB", "12.3 ms", "4.2 M".  Write into buf, return buf. */
char *hl_fmt_bytes(char *buf, size_t n, double bytes);
char *hl_fmt_ns(char *buf, size_t n, double ns);
char *hl_fmt_count(char *buf, size_t n, double count);

/* A CSV field: as is, or quoted (quotes doubled) when it holds a comma, quote or
 * line break. */
void hl_csv_str(FILE *f, const char *s);

/* Path of the running heaplab executable (/proc/self/exe). */
const char *hl_self_exe(void);

/* Monotonic clock in nanoseconds. */
uint64_t hl_now_ns(void);

/* True if fd is a terminal (for progress lines). */
int hl_isatty(int fd);

#endif
