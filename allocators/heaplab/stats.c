/*
 * stats.c: statistics kept by the allocator itself, printed at exit when HEAPLAB_STATS
 * is set (and by malloc_stats()).  Counters that several threads touch are updated with
 * relaxed atomics on slow paths only; per-call counts live in the thread caches and are
 * summed by the back end.  Printing formats into a stack buffer and write(2)s it: no
 * allocation, no stdio.
 */
#include "hlm.h"

struct hlm_stats hlm_stats;

struct out {
    char buf[4096];
    size_t n;
};

static void put(struct out *o, const char *s)
{
    while (*s && o->n < sizeof o->buf - 1)
        o->buf[o->n++] = *s++;
}

static void put_num(struct out *o, size_t v)
{
    char tmp[24];
    int i = 0;
    do
        tmp[i++] = (char)('0' + v % 10);
    while ((v /= 10) && i < 24);
    while (i && o->n < sizeof o->buf - 1)
        o->buf[o->n++] = tmp[--i];
}

/* Bytes as "123456 (1.2 MiB)". */
static void put_bytes(struct out *o, size_t v)
{
    put_num(o, v);
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    size_t whole = v, tenth = 0;
    while (whole >= 1024 && u < 4) {
        tenth = (whole % 1024) * 10 / 1024;
        whole /= 1024;
        u++;
    }
    put(o, " (");
    put_num(o, whole);
    if (u) {
        put(o, ".");
        put_num(o, tenth);
    }
    put(o, " ");
    put(o, unit[u]);
    put(o, ")");
}

static void line_bytes(struct out *o, const char *name, size_t v)
{
    put(o, "  ");
    put(o, name);
    put(o, ": ");
    put_bytes(o, v);
    put(o, "\n");
}

static void line_num(struct out *o, const char *name, size_t v)
{
    put(o, "  ");
    put(o, name);
    put(o, ": ");
    put_num(o, v);
    put(o, "\n");
}

void hlm_stats_print(int fd)
{
    struct out o = {.n = 0};
    struct hlm_stats *s = &hlm_stats;
    size_t nmalloc = 0, nfree = 0, arena = 0, in_use = 0, free_bytes = 0, chunks = 0;
    hlm_stats_calls(&nmalloc, &nfree);
    hlm_info(&arena, &in_use, &free_bytes, &chunks);
    put(&o, hlm_name);
    put(&o, " allocator statistics:\n");
    line_num(&o, "malloc-family calls", nmalloc);
    line_num(&o, "free calls", nfree);
    line_bytes(&o, "memory from the OS now", s->os_mapped);
    line_bytes(&o, "memory from the OS, peak", s->os_mapped_peak);
    line_bytes(&o, "sbrk heap now", s->sbrk_bytes);
    line_bytes(&o, "sbrk heap, peak", s->sbrk_peak);
    line_bytes(&o, "heap arena (not large blocks)", arena);
    line_bytes(&o, "free in the arena", free_bytes);
    line_num(&o, "free chunks or spans", chunks);
    line_num(&o, "large mmap'd blocks now", s->large_count);
    line_bytes(&o, "large mmap'd bytes now", s->large_bytes);
    line_bytes(&o, "large mmap'd bytes, peak", s->large_peak);
    line_num(&o, "large mmap'd blocks in total", s->large_total);
    line_bytes(&o, "mmap threshold now", hlm_mmap_threshold);
    line_num(&o, "slab segments now", s->segments);
    line_num(&o, "slab segments, peak", s->segments_peak);
    line_num(&o, "slab spans made", s->spans);
    line_num(&o, "thread cache refills", s->refills);
    line_num(&o, "thread cache flushes", s->flushes);
    line_num(&o, "threads that had a cache", s->threads);
    line_bytes(&o, "purged with madvise", s->purged_bytes);
    line_num(&o, "madvise calls", s->purge_calls);
    line_num(&o, "heap top trims", s->trims);
    line_bytes(&o, "trimmed", s->trimmed_bytes);
    hlm_os_write(fd, o.buf, o.n);
}
