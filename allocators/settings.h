/*
 * settings.h: allocator variants: an allocator with settings, and how each allocator
 * takes them.
 *
 * A variant is written NAME[=PATH]:KEY=VALUE[,KEY=VALUE...], e.g.
 * glibc:trim_threshold=128k or jemalloc:dirty_decay_ms=0,narenas=1, and names its
 * result rows.  A value may be a sweep {A,B,C}: the variant expands to one variant per
 * value (several sweeps: every combination, the first one varying slowest).
 *
 * How the settings reach the allocator is one table in settings.c, by family:
 *   glibc     GLIBC_TUNABLES=glibc.malloc.KEY=V:...  names and ranges from ld.so
 *             --list-tunables (a short KEY means glibc.malloc.KEY)
 *   jemalloc  MALLOC_CONF=KEY:V,...  names and defaults from jemalloc's own
 *             stats_print; a bad pair is whatever jemalloc complains about on stderr
 *   mimalloc  MIMALLOC_KEY=V  names and defaults from MIMALLOC_VERBOSE=1; a bad value
 *             is what mimalloc warns about
 *   tcmalloc  TCMALLOC_KEY=V  gperftools' documented names (it cannot list them)
 *   heaplab   HEAPLAB_KEY=V  allocators/heaplab/options.h (and its policy variants)
 * The family is the allocator's name (glibc, jemalloc, ...; a prefix: tcmalloc2=...)
 * or, for NAME=PATH, the library's file name (libjemalloc*, libtcmalloc*, ...).
 * A size value with a k, m or g suffix (KiB, MiB, GiB) is passed on in bytes.  The
 * variables are set in that allocator's worker processes only.
 */
#ifndef HEAPLAB_SETTINGS_H
#define HEAPLAB_SETTINGS_H

#include <stddef.h>

struct hl_alloc;

/* Split a -a list at the commas that separate variants (not those inside {...} nor
 * those separating a variant's settings: a KEY=VALUE whose VALUE has no '/' continues
 * the variant before it when that one has settings) and expand the sweeps.  Appends to
 * out[*n] (each at most outlen bytes), at most max.  Returns 0, or -1 with one line in
 * why. */
int hl_variants_expand(const char *list, char *out, size_t outlen, int *n, int max, char *why,
                       size_t whylen);

/* Apply the settings text (after the ':') to a resolved allocator: check every name
 * and value against what the allocator accepts, fill a->settings (canonical KEY=VALUE
 * list) and a->env (the variables its workers get).  Returns 0, or -1 with one line. */
int hl_settings_apply(struct hl_alloc *a, const char *settings, char *why, size_t whylen);

/* Print what allocator a accepts: name, default where known, range or note, one a
 * line, to stdout.  Returns 0, or -1 with one line in why (no settings known). */
int hl_settings_list(const struct hl_alloc *a, char *why, size_t whylen);

#endif
