/*
 * tap.h: a tiny TAP producer for heaplab's C tests.
 *
 * Each check prints "ok N - name" or "not ok N - name"; tap_done() prints the plan and
 * returns the exit status.  meson runs the tests with protocol 'tap', and scripts/test
 * counts the individual results.
 *
 *   TAP_CHECK(x == 3, "three blocks recorded");
 *   TAP_EQ_U(got, 42, "42 events");
 *   return tap_done();
 */
#ifndef HEAPLAB_TAP_H
#define HEAPLAB_TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_n, tap_failed;

__attribute__((format(printf, 2, 3), unused)) static int tap_check(int cond, const char *fmt, ...)
{
    va_list ap;
    printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    if (!cond)
        tap_failed++;
    return cond;
}

__attribute__((format(printf, 1, 2), unused)) static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

__attribute__((unused)) static int tap_done(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#define TAP_CHECK(cond, ...) tap_check(!!(cond), __VA_ARGS__)
#define TAP_EQ_U(got, want, name)                                                           \
    do {                                                                                    \
        unsigned long long g_ = (unsigned long long)(got), w_ = (unsigned long long)(want); \
        if (!tap_check(g_ == w_, "%s", name))                                               \
            tap_diag("  got %llu, want %llu", g_, w_);                                      \
    } while (0)

#endif
