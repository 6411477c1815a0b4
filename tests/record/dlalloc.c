/* dlalloc.c: libdlalloc.so, which the attach tests' server loads with dlopen while
 * heaplab is attached: its own calls to malloc and free must be recorded too. */
#include <stdlib.h>

void dl_alloc(long n);

void dl_alloc(long n)
{
    for (long i = 0; i < n; i++) {
        char *p = malloc(7777);
        if (!p)
            abort();
        p[0] = 1;
        free(p);
    }
}
