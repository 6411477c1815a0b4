/*
 * preload.h: run a test under the allocator library named on its command line.
 * hlm_test_preload(argv) re-executes the program with LD_PRELOAD set to argv[1] unless it
 * already is, so that meson can register one test per library with the library's path
 * as the only argument.  hlm_test_rss() is the process's resident memory now,
 * hlm_test_minflt() its minor faults so far, hlm_test_stat() a figure of the allocator's
 * malloc_stats() report.
 */
#ifndef HLM_TEST_PRELOAD_H
#define HLM_TEST_PRELOAD_H

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static inline const char *hlm_test_preload(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIBRARY.so\n", argv[0]);
        exit(2);
    }
    const char *cur = getenv("LD_PRELOAD");
    if (!cur || strcmp(cur, argv[1]) != 0) {
        if (access(argv[1], R_OK) != 0) {
            fprintf(stderr, "heaplab: %s: no such library\n", argv[1]);
            exit(2);
        }
        setenv("LD_PRELOAD", argv[1], 1);
        execv("/proc/self/exe", argv);
        perror("execv");
        exit(2);
    }
    const char *base = strrchr(argv[1], '/');
    return base ? base + 1 : argv[1];
}

/* Resident bytes now (/proc/self/statm), 0 if unreadable. */
static inline size_t hlm_test_rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &res) != 2)
            res = 0;
        fclose(f);
    }
    return res * (size_t)sysconf(_SC_PAGESIZE);
}

/* Minor faults so far (getrusage). */
static inline long hlm_test_minflt(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

/* The number after "LABEL: " in malloc_stats()'s report (written to fd 2), or -1. */
static inline long hlm_test_stat(const char *label)
{
    char path[] = "/tmp/heaplab-stat-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -1;
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    char buf[4096];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    const char *at = strstr(buf, label);
    size_t len = strlen(label);
    return at && at[len] == ':' ? atol(at + len + 1) : -1;
}

#endif
