/*
 * allocs.c: a test program with an exactly known allocation sequence, one call of
 * every wrapped function, the failing calls and realloc's edge cases (tests/record/
 * record.sh checks the recorded trace against allocs.expected).
 *
 * It uses no stdio and nothing else that allocates, so the calls below are the only
 * ones in its trace.  Results go into a volatile sink so the compiler keeps every call.
 */
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile sink;
/* Through volatiles, so the compiler neither turns realloc(NULL, n) into malloc(n)
 * nor complains about the sizes meant to fail. */
static void *volatile null_ptr;
static volatile size_t huge = SIZE_MAX, half = SIZE_MAX / 2;

static void *keep(void *p)
{
    sink = p;
    return p;
}

int main(void)
{
    void *p1 = keep(malloc(100));
    void *p2 = keep(calloc(10, 24));
    void *p3 = keep(realloc(p1, 200));         /* moves or not: a new slot either way */
    void *p4 = keep(realloc(null_ptr, 50));        /* realloc(NULL, n) */
    keep(realloc(p4, 0));                      /* glibc: frees p4, returns NULL */
    void *p5 = keep(reallocarray(null_ptr, 8, 16));
    p5 = keep(reallocarray(p5, 16, 16));
    void *p6 = NULL;
    if (posix_memalign(&p6, 64, 1000) != 0)
        return 10;
    void *p7 = keep(aligned_alloc(4096, 8192));
    void *p8 = keep(memalign(128, 300));
    void *p9 = keep(valloc(5000));
    void *p10 = keep(pvalloc(5000));
    if (malloc_usable_size(p2) < 240)          /* not an event */
        return 11;
    void *big = keep(malloc(100000));          /* a size too big for the compact field */

    /* Calls that fail: recorded, flagged failed, no new block. */
    void *x;
    keep(malloc(huge));
    keep(calloc(half, 4));             /* nmemb * size overflows */
    if (realloc(p2, huge) != NULL)         /* fails; p2 stays live */
        return 12;
    if (reallocarray(p2, half, 4) != NULL)
        return 13;
    if (posix_memalign(&x, 3, 10) == 0)        /* alignment not a power of two */
        return 14;
    keep(aligned_alloc(64, huge - 4096));

    free(NULL);                                /* not recorded */
    free(p2);
    free(p3);
    free(p5);
    free(p6);
    free(p7);
    free(p8);
    free(p9);
    free(p10);
    free(big);
    return write(1, "done\n", 5) == 5 ? 0 : 1;
}
