/*
 * buddy.c: a binary buddy heap (Knowlton's): 4 MiB superblocks, aligned to their size and
 * got with mmap, split in halves down to the order a request needs; a freed block merges
 * with its buddy (the block whose address differs in exactly bit k) while that buddy is
 * free and whole.  Every block, free or not, starts with a 16-byte header whose head word
 * (just before the user pointer) holds order << 8 and its state, so the buddy's state is
 * read from its address alone.  Internal fragmentation up to half a block is the price.
 *
 * Free memory goes back: free blocks of 8 KiB and more are purged once HEAPLAB_RETAIN
 * dirty bytes were freed, and a superblock that is wholly free again is unmapped (one is
 * kept per heap).  Callers hold the heap's arena lock (variant.c).
 */
#include "hlm.h"

#define MIN_ORDER 5                 /* 32 bytes: header and two links */
#define MAX_ORDER 22                /* the superblock */
#define SUPER ((size_t)1 << MAX_ORDER)
#define B_INUSE ((size_t)1)
#define B_FREE ((size_t)8)
#define B_CLEAN ((size_t)16)        /* free block whose pages past the first were purged */
#define MAGIC ((size_t)0x68656170627564ULL)

struct bblock {
    size_t magic;
    size_t head;   /* order << 8 | B_INUSE, or order << 8 | B_FREE [| B_CLEAN] */
    struct bblock *fd, *bk;
};

/* A heap: the default one (buddy_main) and one per further arena (hlm_buddy_new).  Each
 * reports the superblocks it maps to mapped(base, SUPER, arg), if set. */
struct hlm_buddy_heap {
    struct bblock *freelist[MAX_ORDER + 1];
    size_t arena, free_bytes, free_blocks, dirty, empty_supers;
    bool (*mapped)(void *base, size_t len, void *arg);
    void *mapped_arg;
};
static struct hlm_buddy_heap buddy_main;
#define freelist h->freelist
#define arena h->arena
#define free_bytes h->free_bytes
#define free_blocks h->free_blocks
#define dirty h->dirty
#define empty_supers h->empty_supers

static inline unsigned border(const struct bblock *b) { return (unsigned)(b->head >> 8); }
static inline bool bfree_of(const struct bblock *b, unsigned k)
{
    return (b->head & ~B_CLEAN) == (((size_t)k << 8) | B_FREE);
}

static void push(struct hlm_buddy_heap *h, struct bblock *b, unsigned k, size_t clean)
{
    b->magic = MAGIC;
    b->head = ((size_t)k << 8) | B_FREE | clean;
    b->bk = NULL;
    b->fd = freelist[k];
    if (b->fd)
        b->fd->bk = b;
    freelist[k] = b;
    free_bytes += (size_t)1 << k;
    free_blocks++;
}

static void unlink_block(struct hlm_buddy_heap *h, struct bblock *b, unsigned k)
{
    if (b->fd)
        b->fd->bk = b->bk;
    if (b->bk)
        b->bk->fd = b->fd;
    else
        freelist[k] = b->fd;
    free_bytes -= (size_t)1 << k;
    free_blocks--;
}

static unsigned order_for(size_t n)
{
    size_t need = n + HLM_HDR;
    unsigned k = need <= 1 ? 0 : 64u - (unsigned)__builtin_clzl(need - 1);
    return k < MIN_ORDER ? MIN_ORDER : k;
}

static void purge_free(struct hlm_buddy_heap *h)
{
    for (unsigned k = 13; k <= MAX_ORDER; k++)
        for (struct bblock *b = freelist[k]; b; b = b->fd)
            if (!(b->head & B_CLEAN)) {
                hlm_os_purge((char *)b + hlm_page_size, ((size_t)1 << k) - hlm_page_size);
                b->head |= B_CLEAN;
            }
    dirty = 0;
}

void *hlm_buddy_malloc(struct hlm_buddy_heap *h, size_t n)
{
    if (n > HLM_BUDDY_MAX_REQUEST)
        return NULL;
    unsigned k = order_for(n), j = k;
    while (j <= MAX_ORDER && !freelist[j])
        j++;
    if (j > MAX_ORDER) {
        struct bblock *s = hlm_os_map_aligned(SUPER, SUPER);
        if (!s)
            return NULL;
        if (h->mapped && !h->mapped(s, SUPER, h->mapped_arg)) {
            hlm_os_unmap(s, SUPER);
            return NULL;
        }
        arena += SUPER;
        empty_supers++;
        push(h, s, MAX_ORDER, B_CLEAN);
        j = MAX_ORDER;
    }
    struct bblock *b = freelist[j];
    size_t clean = b->head & B_CLEAN;
    unlink_block(h, b, j);
    if (j == MAX_ORDER)
        empty_supers--;
    while (j > k) {   /* keep the lower half, file the upper one */
        j--;
        push(h, (struct bblock *)((char *)b + ((size_t)1 << j)), j, clean);
    }
    b->magic = MAGIC;
    b->head = ((size_t)k << 8) | B_INUSE;
    return (char *)b + HLM_HDR;
}

void hlm_buddy_free(struct hlm_buddy_heap *h, void *p)
{
    struct bblock *b = (struct bblock *)((char *)p - HLM_HDR);
    hlm_check(b->magic == MAGIC && (b->head & 0xff) == B_INUSE && border(b) >= MIN_ORDER &&
              border(b) <= MAX_ORDER, "free(): invalid pointer or double free", p);
    unsigned k = border(b);
    dirty += (size_t)1 << k;
    char *base = (char *)((uintptr_t)b & ~(uintptr_t)(SUPER - 1));
    while (k < MAX_ORDER) {
        struct bblock *bud = (struct bblock *)(base + (((char *)b - base) ^ ((size_t)1 << k)));
        if (!bfree_of(bud, k))
            break;
        unlink_block(h, bud, k);
        if (bud < b)
            b = bud;
        k++;
    }
    if (k == MAX_ORDER && ++empty_supers > 1) {
        empty_supers--;
        arena -= SUPER;
        hlm_os_unmap(b, SUPER);
        return;
    }
    push(h, b, k, 0);
    if (dirty > hlm_opt(HLM_OPT_RETAIN))
        purge_free(h);
}

/* The heap's thread left (variant.c): its free blocks' pages go back. */
void hlm_buddy_release(struct hlm_buddy_heap *h)
{
    if (dirty)
        purge_free(h);
}

size_t hlm_buddy_usable(const void *p)
{
    const struct bblock *b = (const struct bblock *)((const char *)p - HLM_HDR);
    return ((size_t)1 << border(b)) - HLM_HDR;
}

bool hlm_buddy_resize(void *p, size_t n)
{
    size_t have = hlm_buddy_usable(p);
    return n <= have && n > have / 4;   /* much smaller: move, to give the rest back */
}

int hlm_buddy_trim(struct hlm_buddy_heap *h, size_t pad)
{
    (void)pad;
    size_t before = hlm_stats.purged_bytes;
    purge_free(h);
    return hlm_stats.purged_bytes != before;
}

void hlm_buddy_info(struct hlm_buddy_heap *h, size_t *a, size_t *f, size_t *c)
{
    *a = arena;
    *f = free_bytes;
    *c = free_blocks;
}

struct hlm_buddy_heap *hlm_buddy_heap0(void) { return &buddy_main; }

struct hlm_buddy_heap *hlm_buddy_new(void)
{
    return hlm_os_map(hlm_align_up(sizeof(struct hlm_buddy_heap), hlm_page_size));
}

void hlm_buddy_report(struct hlm_buddy_heap *h, bool (*mapped)(void *, size_t, void *), void *arg)
{
    h->mapped = mapped;
    h->mapped_arg = arg;
}
