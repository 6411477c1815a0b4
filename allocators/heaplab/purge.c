/*
 * purge.c: when and how the page heap gives free pages back to the kernel.  A span whose
 * objects are all free returns its pages to its segment, dirty (segments.c); once more
 * than HEAPLAB_RETAIN bytes of pages (or a quarter of the segments) were freed since the
 * last pass, the free dirty pages are purged with madvise, but for the first
 * 1/HLM_PURGE_KEEP_DIV of the segments' pages (at least HLM_PURGE_MIN_PAGES) that the
 * next spans would take again, and beyond that twice the most purged pages the program
 * ever took back between two passes (hlm_pg.keep_more).  malloc_trim purges all of them.
 *
 * Invariant: a purged page is free and not dirty; a segment's purged_pages marks the
 * pages purged and not taken since; hlm_pg.freed_pages counts the pages freed since the
 * last pass and hlm_pg.retaken the purged pages taken since.  Under hlm_pages_lock.
 */
#include "small.h"


/* Purge free pages: all of them (force), or only those already dirty at the previous
 * pass (aged, as the tag heap does).  Spans take dirty pages first (hlm_pages_alloc), so the
 * page heap purges all at each pass: measured, aging here only raised peak RSS
 * (python trace 16.3 -> 20.9 MiB). */
/* Purge the free dirty pages but the first keep that hlm_pages_alloc would take again. */
void hlm_pages_purge(size_t keep)
{
    for (struct hlm_segment *s = hlm_pg.segments; s; s = s->next) {
        uint64_t d = s->dirty_pages;
        while (d && keep) {
            d &= d - 1;
            keep--;
        }
        s->dirty_pages &= ~d;
        s->purged_pages |= d;
        hlm_pg.dirty_pages -= (size_t)__builtin_popcountll(d);
        while (d) {
            unsigned i = (unsigned)__builtin_ctzll(d);
            unsigned len = (unsigned)__builtin_ctzll(~(d >> i));   /* d >> i has a 0 on top */
            hlm_os_purge((char *)s + ((size_t)i << HLM_PAGE_SHIFT), (size_t)len << HLM_PAGE_SHIFT);
            d &= ~((((uint64_t)1 << len) - 1) << i);
        }
    }
    hlm_pg.freed_pages = 0;
}

/* After hlm_pages_free: a pass after every HEAPLAB_RETAIN bytes of pages freed, or a
 * quarter of the segments if that is more: spans freed and soon made again cost no
 * syscalls. */
void hlm_pages_purge_maybe(void)
{
    size_t quarter = hlm_pg.nsegments * HLM_SEG_SIZE / 4, retain = hlm_opt(HLM_OPT_RETAIN);
    if ((hlm_pg.freed_pages << HLM_PAGE_SHIFT) > (quarter > retain ? quarter : retain)) {
        /* Spans given back and soon taken again (threads freeing and refilling a
         * round of blocks) count as freed but leave few free pages dirty: no pass for
         * those (madvise under the pages lock made threadtest's threads queue on it). */
        size_t keep = hlm_pg.nsegments * (HLM_SEG_PAGES - 1) / HLM_PURGE_KEEP_DIV;
        keep = keep > HLM_PURGE_MIN_PAGES ? keep : HLM_PURGE_MIN_PAGES;
        /* Purged pages that spans took again since the last pass were faulted in again:
         * from then on a pass keeps twice as many more (as glibc's trim threshold rises
         * to twice a trim the heap grew back into), so that a program freeing a structure
         * and building another of its size does not fault the same pages in round after
         * round.  It never falls: malloc_trim still purges every free page. */
        if (2 * hlm_pg.retaken > hlm_pg.keep_more)
            hlm_pg.keep_more = 2 * hlm_pg.retaken;
        hlm_pg.retaken = 0;
        keep += hlm_pg.keep_more;
        if (hlm_pg.dirty_pages > keep)
            hlm_pages_purge(keep);
        else
            hlm_pg.freed_pages = 0;
    }
}

int hlm_pages_trim(void)
{
    hlm_lock(&hlm_pages_lock);
    int released = hlm_pg.dirty_pages > 0;
    hlm_pages_purge(0);
    hlm_unlock(&hlm_pages_lock);
    return released;
}
