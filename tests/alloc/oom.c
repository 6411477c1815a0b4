/*
 * oom.c: running out of memory.  Under an address-space limit (RLIMIT_AS, 96 MiB above
 * what the process maps at start), allocating blocks of one size until the allocator
 * refuses must end in NULL with errno ENOMEM, never a crash; after everything is freed,
 * allocation works again.  Small, medium and large sizes, and calloc and realloc too.
 * Usage: oom LIBRARY.so
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "preload.h"
#include "tap.h"

static size_t mapped_now(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    if (f) {
        if (fscanf(f, "%lu", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    return pages * (size_t)sysconf(_SC_PAGESIZE);
}

static void **keep;
static size_t cap;

/* Allocate with fn until it fails; returns the number of blocks; *err gets errno. */
static size_t exhaust(int fn, size_t size, int *err)
{
    size_t n = 0;
    errno = 0;
    for (;;) {
        void *p = fn == 0 ? malloc(size) : fn == 1 ? calloc(1, size) : realloc(NULL, size);
        if (!p) {
            *err = errno;
            break;
        }
        memset(p, 1, size < 64 ? size : 64);
        if (n == cap) {
            free(p);
            *err = -1;   /* the table is full: the limit was not reached */
            break;
        }
        keep[n++] = p;
    }
    for (size_t i = 0; i < n; i++)
        free(keep[i]);
    return n;
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    cap = 8u << 20;
    keep = calloc(cap, sizeof *keep);   /* 64 MiB of table, touched only as used */
    if (!keep)
        return 1;
    struct rlimit rl = {mapped_now() + (96u << 20), RLIM_INFINITY};
    rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    tap_diag("allocator library: %s", lib);
    static const size_t sizes[] = {24, 1000, 20000, 100000, 1 << 20};
    static const char *fns[] = {"malloc", "calloc", "realloc(NULL)"};
    for (int fn = 0; fn < 3; fn++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            int err = 0;
            size_t n = exhaust(fn, sizes[k], &err);
            void *again = malloc(100);
            TAP_CHECK(n > 0 && err == ENOMEM && again != NULL,
                      "%s(%zu) runs out with ENOMEM after %zu blocks, and works again after free",
                      fns[fn], sizes[k], n);
            free(again);
        }
    return tap_done();
}
