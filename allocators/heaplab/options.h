/*
 * options.h: the settings of heaplab's own allocators, one table: identifier, the
 * HEAPLAB_* environment variable that sets it, its default and what it does.
 *
 * Only macros, so that both the allocator (options.c, enum hlm_opt in hlm.h) and the
 * registry's settings table (allocators/settings.c: `-a heaplab:retain=1m`, `heaplab
 * allocators --settings heaplab`) are built from it.  Values are numbers with an
 * optional k, m or g suffix (KiB, MiB, GiB).
 */
#ifndef HEAPLAB_HLM_OPTIONS_H
#define HEAPLAB_HLM_OPTIONS_H

/* X(ID, ENV, DEFAULT, HELP) */
#define HLM_OPTIONS(X)                                                                      \
    X(STATS, "HEAPLAB_STATS", 0, "print allocator statistics to stderr at exit (2: spans too)")         \
    X(MMAP_THRESHOLD, "HEAPLAB_MMAP_THRESHOLD", 4 * 1024 * 1024,                           \
      "blocks this large get their own mmap (fixed if set, else adaptive)")                \
    X(TRIM_THRESHOLD, "HEAPLAB_TRIM_THRESHOLD", 512 * 1024,                                 \
      "free bytes at the top of the sbrk heap kept before trimming")                       \
    X(RETAIN, "HEAPLAB_RETAIN", 4 * 1024 * 1024,                                            \
      "free dirty bytes kept before they are purged with madvise")                         \
    X(TCACHE, "HEAPLAB_TCACHE", 1, "0 turns the per-thread caches off")                     \
    X(COLD, "HEAPLAB_COLD", 1024 * 1024,                                                    \
      "small blocks are tag-heap chunks until this many bytes of them are out (0: slabs at once)")

#endif
