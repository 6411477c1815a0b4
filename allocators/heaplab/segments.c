/*
 * segments.c: the page heap.  Small blocks live in 4 MiB segments got with mmap (aligned
 * to their size), cut into 64 KiB pages; page 0 holds the segment's header (struct
 * hlm_segment in hlm.h), the others are cut into spans of 1..HLM_SPAN_MAX_PAGES pages
 * holding objects of one class.
 *
 * Data model: every segment is on hlm_pg.segments; hlm_segmap has a byte per 4 MiB of
 * address space, 1 exactly for the segments (free() classifies a pointer with it).  In
 * a segment, free_pages has bit i set when page i belongs to no span, dirty_pages when
 * such a free page may still be resident; page_cls[i] and page_first[i] give the class
 * and first page of the span a used page belongs to (0: none).  Invariants, under
 * hlm_pages_lock: hlm_pg.dirty_pages is the sum of the segments' dirty_pages bits;
 * hlm_pg.empty_segments counts the segments without a span, at most one is kept (the
 * others are unmapped); a span takes dirty pages before clean ones (no new memory).
 * page_cls and page_first are written when a span is made and read by free() without a
 * lock: a live object's span cannot change under it.
 *
 * Kinds: a segment holds either one-page spans or multi-page ones (kind, set when its
 * first span is made; an empty segment takes either).  The objects of a multi-page span
 * are over 8 KiB (classes.c: a page holds 8 of anything smaller), and programs write
 * the first pages of such blocks, not all of them: pages given back by one kind and
 * taken by the other left the resident pages unused and faulted in new ones (the
 * fragmenter, HISTORY.md).  For the same reason a multi-page span takes first the dirty
 * pages a span of its own class began at (page_was, a hint kept when a span is freed):
 * its objects' first pages are the resident ones.
 */
#include "small.h"

#include <stdio.h>

uint8_t hlm_segmap[HLM_SEGMAP_BYTES];
hlm_lock_t hlm_pages_lock = HLM_LOCK_INIT;
struct hlm_page_heap hlm_pg;

static void segmap_set(struct hlm_segment *s, bool on)
{
    __atomic_store_n(&hlm_segmap[(uintptr_t)s >> HLM_SEG_SHIFT], (uint8_t)on, __ATOMIC_RELEASE);
}

static struct hlm_segment *segment_new(void)
{
    struct hlm_segment *s = hlm_os_map_aligned(HLM_SEG_SIZE, HLM_SEG_SIZE);
    if (!s)
        return NULL;
    if (((uintptr_t)s >> HLM_SEG_SHIFT) >= HLM_SEGMAP_BYTES) {
        hlm_os_unmap(s, HLM_SEG_SIZE);   /* beyond the map: cannot classify, do not use */
        return NULL;
    }
    s->free_pages = HLM_SEG_ALL_FREE;
    s->next = hlm_pg.segments;
    if (hlm_pg.segments)
        hlm_pg.segments->prev = s;
    hlm_pg.segments = s;
    hlm_pg.nsegments++;
    hlm_pg.empty_segments++;
    segmap_set(s, true);
    hlm_stat_add(segments, 1);
    hlm_stat_peak(&hlm_stats.segments_peak, hlm_stats.segments);
    return s;
}

static void segment_release(struct hlm_segment *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        hlm_pg.segments = s->next;
    if (s->next)
        s->next->prev = s->prev;
    hlm_pg.nsegments--;
    hlm_pg.empty_segments--;
    hlm_pg.dirty_pages -= (size_t)__builtin_popcountll(s->dirty_pages);
    segmap_set(s, false);
    hlm_stat_sub(segments, 1);
    hlm_os_unmap(s, HLM_SEG_SIZE);
}

struct hlm_span *hlm_pages_alloc(unsigned cls, unsigned shard)
{
    unsigned np = hlm_class_pages[cls], first = 0, kind = np > 1;
    struct hlm_segment *s = NULL;
    /* Pages still resident first (they cost no new memory): for a multi-page span, those
     * a span of its class left (its objects' written pages are resident already); then
     * any free run. */
    for (int pass = hlm_pg.dirty_pages >= np ? (kind ? 0 : 1) : 2; pass < 3 && !s; pass++) {
        for (s = hlm_pg.segments; s; s = s->next) {
            if (s->kind != kind && s->free_pages != HLM_SEG_ALL_FREE)
                continue;
            uint64_t avail = pass < 2 ? s->free_pages & s->dirty_pages : s->free_pages, m = avail;
            for (unsigned i = 1; i < np && m; i++)
                m &= avail >> i;
            if (pass == 0)
                for (uint64_t t = m; t; t &= t - 1)
                    if (s->page_was[__builtin_ctzll(t)] != cls)
                        m &= ~(t & -t);
            if (m) {
                first = (unsigned)__builtin_ctzll(m);
                break;
            }
        }
    }
    if (!s) {
        s = segment_new();
        if (!s)
            return NULL;
        first = 1;
    }
    if (s->free_pages == HLM_SEG_ALL_FREE)
        hlm_pg.empty_segments--;
    s->kind = (uint8_t)kind;
    uint64_t mask = (((uint64_t)1 << np) - 1) << first;
    hlm_assert((s->free_pages & mask) == mask && first + np <= HLM_SEG_PAGES);
    s->free_pages &= ~mask;
    const unsigned dirty = (unsigned)__builtin_popcountll(s->dirty_pages & mask);
    hlm_pg.dirty_pages -= dirty;
    s->dirty_pages &= ~mask;
    hlm_pg.retaken += (size_t)__builtin_popcountll(s->purged_pages & mask);
    s->purged_pages &= ~mask;
    hlm_stat_add(spans, 1);
    struct hlm_span *sp = &s->spans[first];
    uint32_t size = hlm_class_size[cls];
    sp->free = NULL;
    sp->cap = (uint32_t)(((size_t)np << HLM_PAGE_SHIFT) / size);
    sp->bump = (char *)s + ((size_t)first << HLM_PAGE_SHIFT);
    sp->end = sp->bump + (size_t)sp->cap * size;
    sp->used = 0;
    sp->cls = (uint8_t)cls;
    sp->npages = (uint8_t)np;
    sp->first = (uint8_t)first;
    sp->listed = 0;
    sp->shard = (uint8_t)shard;
    sp->full = sp->xlisted = sp->stashed = 0;
    hlm_span_set_owner(sp, NULL);
    sp->xfree = sp->xtail = NULL;
    sp->xcount = 0;
    for (unsigned i = first; i < first + np; i++) {
        s->page_first[i] = (uint8_t)first;
        s->page_span[i] = sp;
        __atomic_store_n(&s->page_cls[i], (uint8_t)cls, __ATOMIC_RELEASE);
    }
    if (dirty < np)
        hlm_tag_slab_grew((size_t)(np - dirty) << HLM_PAGE_SHIFT);
    return sp;
}

void hlm_pages_free(struct hlm_span *sp)
{
    struct hlm_segment *s = hlm_segment_of(sp);
    uint64_t mask = (((uint64_t)1 << sp->npages) - 1) << sp->first;
    for (unsigned i = sp->first; i < (unsigned)sp->first + sp->npages; i++)
        s->page_cls[i] = 0;
    s->page_was[sp->first] = sp->cls;
    sp->cls = 0;
    s->free_pages |= mask;
    s->dirty_pages |= mask;
    hlm_pg.dirty_pages += sp->npages;
    hlm_pg.freed_pages += sp->npages;
    if (s->free_pages == HLM_SEG_ALL_FREE && ++hlm_pg.empty_segments > 1) {
        segment_release(s);
        return;
    }
    hlm_pages_purge_maybe();
}

void hlm_small_info(size_t *mapped, size_t *free_bytes)
{
    size_t f = 0;
    hlm_lock(&hlm_pages_lock);
    for (struct hlm_segment *s = hlm_pg.segments; s; s = s->next)
        f += (size_t)__builtin_popcountll(s->free_pages) << HLM_PAGE_SHIFT;
    *mapped = hlm_pg.nsegments * HLM_SEG_SIZE;
    hlm_unlock(&hlm_pages_lock);
    *free_bytes = f;
}

/* HEAPLAB_STATS=2: one line per live span, to see where small-block memory sits. */
void hlm_small_dump(int fd)
{
    char line[160];
    hlm_lock(&hlm_pages_lock);
    for (struct hlm_segment *s = hlm_pg.segments; s; s = s->next) {
        int m = snprintf(line, sizeof line, "  segment %p: %d free pages, %d of them dirty\n", (void *)s,
                         __builtin_popcountll(s->free_pages), __builtin_popcountll(s->free_pages & s->dirty_pages));
        hlm_os_write(fd, line, m > 0 && (size_t)m < sizeof line ? (size_t)m : 0);
        for (unsigned i = 1; i < HLM_SEG_PAGES; i++) {
            struct hlm_span *sp = &s->spans[i];
            if (!s->page_cls[i] || s->page_first[i] != i)
                continue;
            int n = snprintf(line, sizeof line, "  span %p: class %u (%u B), %u pages, %u of %u used, %zu carved\n",
                             (void *)hlm_span_start(sp), sp->cls, hlm_class_size[sp->cls], sp->npages,
                             sp->used, sp->cap,
                             (size_t)(sp->bump - hlm_span_start(sp)) / hlm_class_size[sp->cls]);
            hlm_os_write(fd, line, n > 0 && (size_t)n < sizeof line ? (size_t)n : 0);
        }
    }
    hlm_unlock(&hlm_pages_lock);
}
