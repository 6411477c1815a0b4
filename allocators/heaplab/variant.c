/*
 * variant.c: the back end of the policy variants.  Everything below the mmap threshold
 * comes from arenas, each a heap of the variant's one policy behind its own lock: the
 * boundary-tag heap with first fit or best fit (tag.c built with HLM_TAG_POLICY), or the
 * binary buddy heap (buddy.c, HLM_CORE_BUDDY).  Large blocks are large.c's, as in the
 * default allocator.  Fragmentation is the point of these libraries, not speed; arenas
 * only keep threads from queueing on one lock.
 *
 * Arenas.  A thread takes an arena at its first allocation and gives it back when it
 * exits (a pthread key destructor): the arena a thread left last if one is free, else a
 * new one, up to HLM_VAR_ARENAS_PER_CPU per online CPU (at most HLM_VAR_ARENAS); past
 * that, threads share arenas in turn.  Arena 0's heap is the one a single-threaded
 * program has always had (tag.c's, grown with sbrk; buddy.c's first): the first thread
 * gets it, so a single-threaded program's placements are the policy's alone, as before.
 * Each other arena's heap maps its memory in grains of VAR_GRAIN bytes aligned to their
 * size (the buddy's superblocks are exactly that), and a two-level map records grain ->
 * arena; free() reads a block's arena from its address.
 * Grains the map does not name are arena 0's (its sbrk heap, its mmap'd regions).
 *
 * Frees.  A block freed by the thread using its arena goes back under the arena's lock.
 * Freed by another thread: under the arena's lock if it is free at once (trylock), else
 * pushed onto the arena's remote stack (lock-free: a compare-and-swap push, the link in
 * the block's first word; the whole stack is taken at once, so no ABA), which whoever
 * next holds the lock frees into the heap (drain).  So each arena runs its policy over its
 * own blocks exactly as one heap would; a remote free only takes effect a little later.
 *
 * Thread exit: the arena's remote stack is drained and its heap releases free memory
 * (hlm_tag_release_in: a purge pass, which gives back what was already free at the pass
 * before, and everything if more than HEAPLAB_RETAIN bytes were freed since; buddy: every
 * free block's pages), then the arena waits for the next thread.  Blocks still live in it
 * stay valid: whoever frees them frees them into it.  After its destructor a thread
 * allocates from arena 0.
 *
 * fork: the arena list's lock and every arena's lock are taken before, so the child
 * inherits consistent heaps; in the child every arena but the forking thread's is free
 * for the next threads, with the blocks they hold.
 *
 * Alignments the core cannot give directly are views: a block of n + align bytes and,
 * inside it, the aligned pointer whose head word says how far back the block starts
 * (HLM_OFFSET, see hlm.h).
 */
#include "hlm.h"
#include "tunables.h"

#include <pthread.h>
#include <sys/sysinfo.h>

#define VAR_GRAIN_SHIFT 22      /* 4 MiB: the buddy superblock */
#define VAR_GRAIN ((size_t)1 << VAR_GRAIN_SHIFT)
_Static_assert(HLM_VAR_ARENAS <= 256, "arena ids are bytes in the grain map");
#define LEAF_BITS 12            /* a leaf of the map: one page of ids, 16 GiB of grains */
#define MAP_TOP ((size_t)1 << (HLM_ADDR_BITS - VAR_GRAIN_SHIFT - LEAF_BITS))

#ifdef HLM_CORE_BUDDY
const char *hlm_name = "heaplab-buddy";
typedef struct hlm_buddy_heap core_t;
#define core_heap0 hlm_buddy_heap0
#define core_malloc hlm_buddy_malloc
#define core_free hlm_buddy_free
#define core_usable hlm_buddy_usable
#define core_resize(h, p, n) ((void)(h), hlm_buddy_resize(p, n))
#define core_trim hlm_buddy_trim
#define core_release hlm_buddy_release
#define core_info hlm_buddy_info
#define CORE_MAX HLM_BUDDY_MAX_REQUEST
#else
#if HLM_TAG_POLICY == HLM_TAG_FIRSTFIT
const char *hlm_name = "heaplab-firstfit";
#else
const char *hlm_name = "heaplab-bestfit";
#endif
typedef struct hlm_tag_heap core_t;
#define core_heap0 hlm_tag_heap0
#define core_malloc hlm_tag_malloc_in
#define core_free hlm_tag_free_in
#define core_usable hlm_tag_usable
#define core_resize hlm_tag_resize_in
#define core_trim hlm_tag_trim_in
#define core_release hlm_tag_release_in
#define core_info hlm_tag_info_in
#define CORE_MAX ((size_t)PTRDIFF_MAX)
#endif

struct arena {
    hlm_lock_t lock;
    core_t *heap;
    void *remote;                /* blocks other threads freed while the lock was taken */
    size_t nmalloc, nfree;       /* under lock */
    unsigned users;              /* threads attached; under arenas_lock */
    struct arena *next_idle;     /* on the idle stack; under arenas_lock */
} __attribute__((aligned(64)));

static struct arena arenas[HLM_VAR_ARENAS];
static unsigned narenas;         /* made so far; grows under arenas_lock, read atomically */
static unsigned max_arenas;      /* HLM_VAR_ARENAS_PER_CPU per CPU, at most HLM_VAR_ARENAS */
static unsigned turn;            /* the next shared arena, past HLM_VAR_ARENAS threads */
static struct arena *idle;       /* arenas no thread uses, the last left first */
static hlm_lock_t arenas_lock = HLM_LOCK_INIT;
static HLM_TLS struct arena *self;
static HLM_TLS bool exited;      /* this thread's destructor gave its arena back */
static pthread_key_t exit_key;
static bool exit_key_ok;
static size_t large_nmalloc, large_nfree;   /* atomically */
static uint8_t *grain_map[MAP_TOP];         /* grain -> arena id, leaves made on demand */
static bool inited;

/* ---- which arena a block is in ---------------------------------------------------------- */

/* mapped() of every heap but tag.c's sbrk one: record the grains [base, base + len). */
static bool grain_record(void *base, size_t len, void *arg)
{
    uintptr_t g = (uintptr_t)base >> VAR_GRAIN_SHIFT;
    uintptr_t end = ((uintptr_t)base + len) >> VAR_GRAIN_SHIFT;
    for (; g < end; g++) {
        if ((g >> LEAF_BITS) >= MAP_TOP)
            return false;
        uint8_t **slot = &grain_map[g >> LEAF_BITS];
        uint8_t *leaf = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
        if (!leaf) {
            uint8_t *mine = hlm_os_map((size_t)1 << LEAF_BITS);
            if (!mine)
                return false;
            if (__atomic_compare_exchange_n(slot, &leaf, mine, 0, __ATOMIC_ACQ_REL,
                                            __ATOMIC_ACQUIRE))
                leaf = mine;
            else
                hlm_os_unmap(mine, (size_t)1 << LEAF_BITS);
        }
        __atomic_store_n(&leaf[g & (((uintptr_t)1 << LEAF_BITS) - 1)], (uint8_t)(uintptr_t)arg,
                         __ATOMIC_RELEASE);
    }
    return true;
}

static inline struct arena *arena_of(const void *p)
{
    uintptr_t g = (uintptr_t)p >> VAR_GRAIN_SHIFT;
    if ((g >> LEAF_BITS) >= MAP_TOP)
        return &arenas[0];
    uint8_t *leaf = __atomic_load_n(&grain_map[g >> LEAF_BITS], __ATOMIC_ACQUIRE);
    if (!leaf)
        return &arenas[0];
    return &arenas[__atomic_load_n(&leaf[g & (((uintptr_t)1 << LEAF_BITS) - 1)], __ATOMIC_ACQUIRE)];
}

static core_t *core_new(unsigned id)
{
#ifdef HLM_CORE_BUDDY
    core_t *h = hlm_buddy_new();
    if (h)
        hlm_buddy_report(h, grain_record, (void *)(uintptr_t)id);
    return h;
#else
    return hlm_tag_new(VAR_GRAIN, grain_record, (void *)(uintptr_t)id);
#endif
}

/* ---- arenas and threads ------------------------------------------------------------------ */

static inline bool lock_try(hlm_lock_t *l)   /* hlm_lock's contract (hlm.h), without waiting */
{
    if (__libc_single_threaded)
        return true;
    int z = 0;
    return __atomic_compare_exchange_n(&l->v, &z, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

/* Free the blocks other threads left on the remote stack; under a->lock. */
static inline void drain(struct arena *a)
{
    if (hlm_likely(!__atomic_load_n(&a->remote, __ATOMIC_RELAXED)))
        return;
    void *q = __atomic_exchange_n(&a->remote, NULL, __ATOMIC_ACQUIRE);
    while (q) {
        void *next = *(void **)q;
        core_free(a->heap, q);
        a->nfree++;
        q = next;
    }
}

static void remote_push(struct arena *a, void *p)
{
    void *old = __atomic_load_n(&a->remote, __ATOMIC_RELAXED);
    do
        *(void **)p = old;
    while (!__atomic_compare_exchange_n(&a->remote, &old, p, 1, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
}

static void thread_exit(void *arg)
{
    struct arena *a = arg;
    hlm_lock(&a->lock);
    drain(a);
    core_release(a->heap);
    hlm_unlock(&a->lock);
    hlm_lock(&arenas_lock);
    if (--a->users == 0) {
        a->next_idle = idle;
        idle = a;
    }
    hlm_unlock(&arenas_lock);
    self = NULL;
    exited = true;
}

static HLM_NOINLINE struct arena *attach(void)
{
    if (exited)   /* in a later key destructor: no arena of its own any more */
        return &arenas[0];
    hlm_lock(&arenas_lock);
    struct arena *a = idle;
    core_t *h;
    if (a)
        idle = a->next_idle;
    else if (narenas < max_arenas && (h = core_new(narenas))) {
        a = &arenas[narenas];
        a->heap = h;
        __atomic_store_n(&narenas, narenas + 1, __ATOMIC_RELEASE);
    } else
        a = &arenas[turn++ % narenas];
    a->users++;
    hlm_unlock(&arenas_lock);
    self = a;   /* before setspecific, which may allocate and come back here */
    if (exit_key_ok)
        pthread_setspecific(exit_key, a);
    return a;
}

static inline struct arena *mine(void)
{
    struct arena *a = self;
    return hlm_likely(a != NULL) ? a : attach();
}

void hlm_init(void)
{
    if (__atomic_load_n(&inited, __ATOMIC_ACQUIRE))
        return;
    hlm_lock(&arenas_lock);
    if (!inited) {
        hlm_os_init();
        hlm_options_read();
        arenas[0].heap = core_heap0();
#ifdef HLM_CORE_BUDDY
        hlm_buddy_report(arenas[0].heap, grain_record, (void *)0);   /* superblocks get unmapped */
#endif
        idle = &arenas[0];
        narenas = 1;
        /* (get_nprocs reads sysfs into a buffer of its own: glibc's malloc calls it too) */
        int cpus = get_nprocs();
        size_t want = (size_t)(cpus > 0 ? cpus : 1) * HLM_VAR_ARENAS_PER_CPU;
        max_arenas = want < HLM_VAR_ARENAS ? (unsigned)want : HLM_VAR_ARENAS;
        /* glibc's pthread_key_create takes a slot in a static table: no allocation. */
        exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
        __atomic_store_n(&inited, true, __ATOMIC_RELEASE);
    }
    hlm_unlock(&arenas_lock);
}

/* ---- the entry points -------------------------------------------------------------------- */

static void *large(size_t n, size_t align)
{
    __atomic_add_fetch(&large_nmalloc, 1, __ATOMIC_RELAXED);
    return hlm_large_malloc(n, align);
}

static void *malloc_try(size_t n);

/* Out of memory: give back what the heap keeps and try once more (see hlm.h). */
void *hlm_malloc(size_t n)
{
    return hlm_malloc_retry(malloc_try(n), malloc_try, n);
}

static void *malloc_try(size_t n)
{
    hlm_init();
    if (n >= __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED) || n > CORE_MAX)
        return large(n, HLM_ALIGN);
    struct arena *a = mine();
    hlm_lock(&a->lock);
    drain(a);
    void *p = core_malloc(a->heap, n);
    a->nmalloc++;
    hlm_unlock(&a->lock);
    return p ? p : hlm_large_malloc(n, HLM_ALIGN);
}

static inline void *view_base(const void *p, size_t *off)
{
    *off = hlm_head(p) >> 4;
    return (char *)p - *off;
}

void hlm_free(void *p)
{
    if (!p)
        return;
    int saved = errno;
    size_t off;
    if (hlm_head(p) & HLM_OFFSET)
        p = view_base(p, &off);
    if (hlm_large_is(p)) {
        __atomic_add_fetch(&large_nfree, 1, __ATOMIC_RELAXED);
        hlm_large_free(p);
        errno = saved;
        return;
    }
    struct arena *a = arena_of(p);
    if (a == self)
        hlm_lock(&a->lock);
    else if (!lock_try(&a->lock)) {
        remote_push(a, p);
        errno = saved;
        return;
    }
    drain(a);
    a->nfree++;
    core_free(a->heap, p);
    hlm_unlock(&a->lock);
    errno = saved;
}

size_t hlm_usable_size(const void *p)
{
    size_t off = 0;
    if (hlm_head(p) & HLM_OFFSET)
        p = view_base(p, &off);
    return (hlm_large_is(p) ? hlm_large_usable(p) : core_usable(p)) - off;
}

void *hlm_calloc(size_t n)
{
    void *p;
    if (n >= HLM_CALLOC_MAP_MIN && (p = hlm_large_calloc(n)) != NULL)
        return p;
    p = hlm_malloc(n);
    if (p && !hlm_large_is(p))
        memset(p, 0, n);
    return p;
}

void *hlm_realloc(void *p, size_t n)
{
    size_t old = hlm_usable_size(p);
    if (hlm_head(p) & HLM_OFFSET)
        return hlm_realloc_move(p, old, n, 0);
    if (hlm_large_is(p)) {
        void *q = hlm_large_realloc(p, n);
        return q ? q : hlm_realloc_move(p, old, n, 0);
    }
    if (n <= CORE_MAX) {
        struct arena *a = arena_of(p);
        hlm_lock(&a->lock);
        bool ok = core_resize(a->heap, p, n);
        hlm_unlock(&a->lock);
        if (ok)
            return p;
    }
    return hlm_realloc_move(p, old, n, 0);
}

void *hlm_memalign(size_t align, size_t n)
{
    hlm_init();
    if (n + align >= __atomic_load_n(&hlm_mmap_threshold, __ATOMIC_RELAXED) || n + align > CORE_MAX)
        return large(n, align);
#ifndef HLM_CORE_BUDDY
    struct arena *a = mine();
    hlm_lock(&a->lock);
    void *p = hlm_tag_memalign_in(a->heap, align, n);
    a->nmalloc++;
    hlm_unlock(&a->lock);
    if (p)
        return p;
    return large(n, align);
#else
    char *b = hlm_malloc(n + align);
    if (!b || ((uintptr_t)b & (align - 1)) == 0)
        return b;
    char *q = (char *)hlm_align_up((uintptr_t)b, align);
    *hlm_headp(q) = ((size_t)(q - b) << 4) | HLM_OFFSET;
    return q;
#endif
}

int hlm_trim(size_t pad)
{
    hlm_init();
    int r = 0;
    for (unsigned i = 0; i < __atomic_load_n(&narenas, __ATOMIC_ACQUIRE); i++) {
        struct arena *a = &arenas[i];
        hlm_lock(&a->lock);
        drain(a);
        r |= core_trim(a->heap, pad);
        hlm_unlock(&a->lock);
    }
    hlm_large_pass(0);
    return r;
}

void hlm_info(size_t *arena, size_t *in_use, size_t *free_bytes, size_t *free_chunks)
{
    hlm_init();
    *arena = *free_bytes = *free_chunks = 0;
    for (unsigned i = 0; i < __atomic_load_n(&narenas, __ATOMIC_ACQUIRE); i++) {
        struct arena *a = &arenas[i];
        size_t ar, fb, fc;
        hlm_lock(&a->lock);
        drain(a);
        core_info(a->heap, &ar, &fb, &fc);
        hlm_unlock(&a->lock);
        *arena += ar;
        *free_bytes += fb;
        *free_chunks += fc;
    }
    *in_use = *arena - *free_bytes;
}

void hlm_stats_calls(size_t *m, size_t *f)
{
    *m = __atomic_load_n(&large_nmalloc, __ATOMIC_RELAXED);
    *f = __atomic_load_n(&large_nfree, __ATOMIC_RELAXED);
    for (unsigned i = 0; i < __atomic_load_n(&narenas, __ATOMIC_ACQUIRE); i++) {
        *m += __atomic_load_n(&arenas[i].nmalloc, __ATOMIC_RELAXED);
        *f += __atomic_load_n(&arenas[i].nfree, __ATOMIC_RELAXED);
    }
}

/* fork: the list's lock, then every arena's in order (attach and thread_exit never hold
 * an arena's lock while they take the list's). */
void hlm_fork_prepare(void)
{
    hlm_lock(&arenas_lock);
    for (unsigned i = 0; i < narenas; i++)
        hlm_lock(&arenas[i].lock);
}

void hlm_fork_parent(void)
{
    for (unsigned i = narenas; i-- > 0;)
        hlm_unlock(&arenas[i].lock);
    hlm_unlock(&arenas_lock);
}

void hlm_fork_child(void)
{
    idle = NULL;
    for (unsigned i = narenas; i-- > 0;) {
        struct arena *a = &arenas[i];
        hlm_lock_reinit(&a->lock);
        a->users = a == self;
        if (!a->users) {
            a->next_idle = idle;
            idle = a;
        }
    }
    hlm_lock_reinit(&arenas_lock);
}
