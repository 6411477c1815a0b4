/*
 * paths.h: where heaplab finds its own shared libraries.
 *
 * From a build tree (build/heaplab) the libraries sit in the build's subfolders
 * (build/traces/preload/, build/allocators/<name>/); from an install they sit in
 * <libdir>/heaplab.  HEAPLAB_LIBDIR in the environment overrides both.
 */
#ifndef HEAPLAB_PATHS_H
#define HEAPLAB_PATHS_H

/* Absolute path of heaplab's library `soname` (e.g. "libheaplab-record.so"), or NULL
 * if it cannot be found.  The returned string is static storage per call site use:
 * copy it if you need several at once. */
const char *hl_find_lib(const char *soname);

#endif
