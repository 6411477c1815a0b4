/* ownalloc.c: libownalloc.so, an allocator exported under its own symbol version
 * (ownalloc.map), as a program bundling its own malloc might.  The program linked
 * against it calls malloc@OWNALLOC_1 while libc's own calls stay bound to glibc's
 * malloc: two heaps, which the attach hooks refuse to mix. */
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

void *malloc(size_t n)
{
    return __libc_malloc(n);
}

void free(void *p)
{
    __libc_free(p);
}

void *calloc(size_t n, size_t k)
{
    return __libc_calloc(n, k);
}

void *realloc(void *p, size_t n)
{
    return __libc_realloc(p, n);
}
