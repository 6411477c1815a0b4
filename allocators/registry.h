/*
 * registry.h: the allocators replay can load, by name.
 *
 * An allocator is a name and the shared library that replaces malloc when preloaded
 * (none for glibc, the system's own).  The built-in names are glibc, jemalloc and
 * mimalloc (located at build time, see meson.build) and heaplab's own libraries
 * (heaplab, heaplab-firstfit, heaplab-bestfit, heaplab-buddy, found through
 * hl_find_lib); any other library is given as NAME=/path/lib.so.  The registry only
 * says where a library is; whether it really replaces malloc is checked by a worker
 * process that preloads it (cmd/replay/worker.c).
 */
#ifndef HEAPLAB_REGISTRY_H
#define HEAPLAB_REGISTRY_H

#include <limits.h>

#define HL_ALLOC_MAXENV 16

struct hl_alloc {
    char name[160];       /* a variant's name carries its settings: glibc:arena_max=1 */
    char path[PATH_MAX];  /* "" for glibc: nothing is preloaded */
    char version[64];     /* "" until known */
    int available;        /* the library exists (glibc: always) */
    char why[256];        /* when not available: why not */
    /* A variant's settings (allocators/settings.h): as given, and the environment
     * variables that carry them, set in this allocator's workers only. */
    char settings[256];
    char env[HL_ALLOC_MAXENV][320];
    int nenv;
};

/* Every built-in allocator, available or not, in a fixed order.  Returns the count. */
int hl_registry_list(struct hl_alloc *out, int max);

/* Resolve one -a item: a built-in NAME or NAME=/path/lib.so, either followed by
 * :SETTINGS (a variant, allocators/settings.h; sweeps already expanded).  Returns 0, or -1 with a
 * one-line reason in why (unknown name, library missing). */
int hl_registry_resolve(const char *spec, struct hl_alloc *out, char *why, int whylen);

/* Best-effort version from outside the library: glibc's own, heaplab's, or the Debian
 * package owning the file (dpkg-query).  Leaves a->version alone when nothing is known. */
void hl_registry_static_version(struct hl_alloc *a);

#endif
