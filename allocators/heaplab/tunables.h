/*
 * tunables.h: every compile-time tunable of heaplab's allocators, in one place, under one
 * prefix (HLM_).  Each can be overridden with -DNAME=value; the default below is the one
 * the measurements behind it chose (the allocator's history file has the figures).  The
 * comment on each line says what it bounds and why that default.
 *
 * Included after hlm.h (HLM_TAG_SEGFIT, HLM_NCLASSES) by the files that use them.
 */
#ifndef HLM_TUNABLES_H
#define HLM_TUNABLES_H

/* ---- thread caches (alloc.c) ---------------------------------------------------------- */

/* A bin's starting cap in objects: a class a thread barely uses holds few objects. */
#ifndef HLM_TBIN_START
#define HLM_TBIN_START 8
#endif
/* Bytes a thread's bin holds per class before flushing half: more kept blocks other
 * threads' spans cannot reuse (RSS) against more trips to the spans (time); 8 KiB balanced
 * larson's RSS and time. */
#ifndef HLM_TBIN_BYTES
#define HLM_TBIN_BYTES (8 * 1024)
#endif
/* Objects a bin holds at most, whatever the class size: bounds a flush of tiny objects. */
#ifndef HLM_TBIN_OBJS
#define HLM_TBIN_OBJS 256
#endif
/* Bytes a thread's cache holds over all classes before a scavenge: the cache's share of
 * RSS per thread (128 KiB with 8 KiB per class, chosen with HLM_TBIN_BYTES). */
#ifndef HLM_TCACHE_BYTES
#define HLM_TCACHE_BYTES (128 * 1024)
#endif
/* Refills and flushes between two scavenges of a cache: how soon an idle class drains. */
#ifndef HLM_TC_GC_EVERY
#define HLM_TC_GC_EVERY 64
#endif

/* ---- size classes (classes.c; the class table's own layout is in hlm.h) ------------- */

/* Classes per doubling from 128 bytes to HLM_FINE_FROM that malloc uses once the process
 * has a second thread (8: all of them, as with one thread).  Each thread owns a span per
 * class it uses, so fewer classes mean fewer partly used spans per thread (prodcons at 64
 * threads: less time and RSS); with one thread the finer classes waste less of each block,
 * so single-threaded programs keep them (figures in HISTORY.md). */
#ifndef HLM_COARSE_STEPS
#define HLM_COARSE_STEPS 4
#endif
_Static_assert(HLM_COARSE_STEPS == 2 || HLM_COARSE_STEPS == 4 || HLM_COARSE_STEPS == 8,
               "HLM_COARSE_STEPS: 2, 4 or 8");

/* ---- cold start (alloc.c) ------------------------------------------------------------- */

/* The largest block the cold start serves as a class's chunk and counts in its budget;
 * larger ones are tag chunks of their own while cold, as any block above the slab classes
 * is: counted, a few blocks of 32-48 KiB spent the budget and sent small programs (awk's
 * and python's traces) warm early (HISTORY.md). */
#define HLM_COLD_MAX 32768u
/* The slab classes above HLM_COLD_MAX take a block only once the program has kept more
 * than this many blocks of their sizes live at once as tag chunks (then for good): a
 * program with many such blocks whose first page alone it writes (the fragmenter) gets
 * fixed slots whose written pages repeat; one with a few at a time (the minimiser's
 * 32,776-byte cube families, python's buffers) keeps them packed in the tag heap, where
 * the classes from the start cost the minimiser memory (HISTORY.md). */
#ifndef HLM_BIG_SLAB_LIVE
#define HLM_BIG_SLAB_LIVE 256
#endif

/* Bytes a cold bin holds per class: small caches while small blocks are tag-heap chunks
 * (bigger kept awk's chunks apart and raised its RSS). */
#ifndef HLM_COLD_BIN_BYTES
#define HLM_COLD_BIN_BYTES 8192
#endif
/* While cold, a block above this size is a tag chunk of exactly its size, not of its
 * class (classes up there are 25% apart); exact below it cost awk and sqlite tag calls. */
#ifndef HLM_COLD_EXACT
#define HLM_COLD_EXACT 4096
#endif
/* Overflowing cold bins before a churning process turns warm: high enough that small
 * programs stay cold, low enough that a churning one stops paying the tag heap. */
#ifndef HLM_COLD_FLUSH_MAX
#define HLM_COLD_FLUSH_MAX 4096
#endif
/* Overflowing cold bins of one class before that class alone turns warm (its blocks from
 * a slab, the rest of the process still cold): a program that churns one or two classes
 * (the minimiser's 16- and 32-byte cubes) pays a span for those, not one in every class
 * it uses.  HLM_COLD_FLUSH_MAX counts these flushes too. */
#ifndef HLM_COLD_CLASS_FLUSH_MAX
#define HLM_COLD_CLASS_FLUSH_MAX 512
#endif
/* Classes turned warm on their own before the whole process does: churn spread over
 * many classes (the fragmenter's) is served faster by slabs in all of them (HISTORY.md). */
#ifndef HLM_COLD_WARM_CLASSES
#define HLM_COLD_WARM_CLASSES 4
#endif

/* ---- pages, spans, stash (small.h) ---------------------------------------------------- */

/* Bytes of remote-freed objects a class's lock-free stack holds per shard before flushes
 * take the lock: bounds what an owner has to take back at once. */
#ifndef HLM_REMOTE_BYTES
#define HLM_REMOTE_BYTES (8 * 1024)
#endif
/* Free dirty pages a purge pass leaves alone at least: a program allocating a page after
 * each purge does not fault it in every time. */
#ifndef HLM_PURGE_MIN_PAGES
#define HLM_PURGE_MIN_PAGES 4
#endif
/* A purge keeps 1/HLM_PURGE_KEEP_DIV of the segments' pages dirty for reuse: RSS given
 * back against pages faulted in again.  A quarter: with an eighth, rounds that free a
 * scattered part of the heap and fill the holes with other sizes (fragment) faulted back
 * in pages each purge had just given back; a quarter kept their peak RSS under glibc's
 * (figures in HISTORY.md). */
#ifndef HLM_PURGE_KEEP_DIV
#define HLM_PURGE_KEEP_DIV 4
#endif
/* Bytes of empty spans a churning thread stashes for its next refill (per thread), and
 * in all threads: threadtest's rounds reuse spans without the pages lock, at its footprint. */
#ifndef HLM_STASH_BYTES
#define HLM_STASH_BYTES (128 * 1024)
#endif
#ifndef HLM_STASH_TOTAL
#define HLM_STASH_TOTAL (128 * 1024)
#endif
/* Bytes malloc's fast path carves from a span between two looks for given-back objects:
 * at least a refill's worth, small enough that freed objects are reused first. */
#ifndef HLM_CARVE_BYTES
#define HLM_CARVE_BYTES 4096
#endif
/* Classes from HLM_REUSE_FIRST_MIN to below HLM_REUSE_FIRST_MAX bytes take the
 * given-back objects of the next span on the owner's list (HLM_CARVE_BYTES of them at
 * least) before carving more of the current one: a 64 KiB span holds 64-256 of their
 * objects, and a class whose live count hovers around a span's worth carved two spans
 * whole and kept both half used (churn's peak RSS).  The other classes fill one span in
 * address order before the next, which keeps a generation of blocks together so that its
 * spans empty when it is freed: reusing first cost the python trace's 32-128-byte classes
 * and sqlite's 1032-byte blocks their peak RSS (HISTORY.md). */
#ifndef HLM_REUSE_FIRST_MIN
#define HLM_REUSE_FIRST_MIN 256
#endif
#ifndef HLM_REUSE_FIRST_MAX
#define HLM_REUSE_FIRST_MAX 1024
#endif

/* ---- boundary-tag heap (tag.c) -------------------------------------------------------- */

/* The tag heap's policy (hlm.h's HLM_TAG_FIRSTFIT, _BESTFIT, _SEGFIT); meson sets it per
 * library, segregated fit is the default allocator's. */
#ifndef HLM_TAG_POLICY
#define HLM_TAG_POLICY HLM_TAG_SEGFIT
#endif
/* Bins per doubling from 1 KiB to 1 MiB (a power of two): narrow bins keep first fit
 * within a bin from scanning past chunks a little too small. */
#ifndef HLM_TAG_STEPS
#define HLM_TAG_STEPS 32
#endif
/* Chunks segregated fit looks at in a ranged bin for the smallest that fits: bounds the
 * search, and 32 keeps big chunks for big requests (tests/alloc/medium.c). */
#ifndef HLM_TAG_SCAN
#define HLM_TAG_SCAN 32
#endif
/* Largest request the designated victim serves; 0 (off) because it raised RSS for no
 * measurable time. */
#ifndef HLM_TAG_DV_MAX
#define HLM_TAG_DV_MAX 0
#endif

/* Purge passes (one per half the heap freed) a free chunk or the top of the sbrk tag heap
 * stays free through before a pass purges its pages (trims the top); at most 7 (three
 * footer bits).  A hole of a heap whose blocks are replaced at random waits longer than a
 * pass for its next block: purging after one pass gave it back and faulted it in again
 * (hlm-bench-growth; figures in HISTORY.md). */
#ifndef HLM_TAG_PURGE_AGE
#define HLM_TAG_PURGE_AGE 3
#endif
/* The program has shrunk when all but 1/HLM_TAG_SHRUNK_DIV of the sbrk tag heap is free:
 * a pass then purges every free chunk, also those just freed, and passes follow every
 * HEAPLAB_RETAIN bytes freed.  Not three quarters: a program whose live blocks dip to a
 * quarter of its heap and come back (hlm-bench-growth) faulted it all in again. */
#ifndef HLM_TAG_SHRUNK_DIV
#define HLM_TAG_SHRUNK_DIV 8
#endif
/* The slab's growth purges the sbrk tag heap's holes (hlm_tag_slab_grew): once the slab
 * has taken this many fresh bytes and the tag heap freed this many since its last pass,
 * its free chunks of this size or more go back at once.  The program's memory moved from
 * the one to the other (sqlite's sort after its realloc chains), and only tag chunks
 * could reuse those holes; smaller ones are left to the aged passes (purging them too
 * faulted gcc's and python's back in). */
#ifndef HLM_TAG_SLAB_PURGE_MIN
#define HLM_TAG_SLAB_PURGE_MIN (256 * 1024)
#endif
/* A tag chunk a realloc moves away from is purged before it is freed from this size:
 * the copy left nothing in it to read (hlm_realloc_move). */
#ifndef HLM_TAG_DEAD_PURGE
#define HLM_TAG_DEAD_PURGE (128 * 1024)
#endif

/* A tag chunk that a realloc grows to this size or more, and cannot grow in place, moves
 * to a mapping of its own whatever the mmap threshold has adapted to (hlm_realloc: later
 * growth is mremap, or the kept mapping of large.c).  Lower, hlm-bench-growth's strings
 * left the tag heap and its peak RSS rose (HISTORY.md). */
#ifndef HLM_REALLOC_MAP_MIN
#define HLM_REALLOC_MAP_MIN (256 * 1024)
#endif

/* calloc of this size or more takes a fresh mapping while the adaptive mmap threshold
 * is at its start (no mapped block freed yet): zero already, so nothing is written, and
 * its pages stay out of RSS until the program touches them, as with the threshold's
 * former 256 KiB start (hlm_large_calloc).  From the heap it would be written whole. */
#ifndef HLM_CALLOC_MAP_MIN
#define HLM_CALLOC_MAP_MIN (256 * 1024)
#endif

/* When the sbrk heap grows back, a second time, after its top was trimmed of at least
 * HLM_TRIM_ADAPT_MIN, the trim threshold rises to twice the trim, at most to
 * HLM_TRIM_THRESHOLD_MAX, and a top within it stays (tag.c, top_regrowth): a scratch
 * buffer freed and taken again each round is not faulted in each round.  Below the
 * minimum, keeping the top cost small programs more RSS than their faults cost time
 * (HISTORY.md). */
#ifndef HLM_TRIM_ADAPT_MIN
#define HLM_TRIM_ADAPT_MIN (1024 * 1024)
#endif
#ifndef HLM_TRIM_THRESHOLD_MAX
#define HLM_TRIM_THRESHOLD_MAX (64 * 1024 * 1024)
#endif

/* Freeing a mapped block raises the adaptive mmap threshold to this many times its size
 * (hlm_large_free; the start is HEAPLAB_MMAP_THRESHOLD's default in options.h). */
#ifndef HLM_MMAP_THRESHOLD_RAISE
#define HLM_MMAP_THRESHOLD_RAISE 2
#endif

/* ---- the policy variants' arenas (variant.c) ------------------------------------------- */

/* Arenas at most (ids fit a byte), and per online CPU: one per thread up to the smaller,
 * then threads share them in turn.  Each arena keeps its own free memory, so more cost
 * RSS and faults; with fewer, running threads meet on a lock more often. */
#ifndef HLM_VAR_ARENAS
#define HLM_VAR_ARENAS 64
#endif
#ifndef HLM_VAR_ARENAS_PER_CPU
#define HLM_VAR_ARENAS_PER_CPU 4
#endif

#endif
