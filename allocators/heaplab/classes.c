/*
 * classes.c: the small size classes and the tables that map a request's size to its
 * class (hlm.h: hlm_class_of).
 *
 * Data model: classes 1..HLM_NCLASSES-1 in increasing size (class 0 means "not a slab
 * page"): 16-byte steps to 256, 8 per doubling to HLM_FINE_FROM, 16 per doubling to
 * 2048, HLM_UPPER_STEPS per doubling to HLM_SMALL_MAX (the last doubling cut there).
 * hlm_class_pages[c] is the length of a span of class c: the shortest with room for 8
 * objects that wastes at most 1/8 of itself.  Invariants: hlm_class16_fine[i] is the
 * smallest class of at least i * 16 bytes, hlm_classup[i] the smallest of at least i *
 * HLM_UPPER_GRAIN; both written once, before the first small block, by hlm_small_init.
 * hlm_class16[i], the map malloc reads, is a class of at least i * 16 bytes: the fine map's
 * until the process has a second thread, the coarse map's from then on.
 *
 * The coarse map skips classes from 128 bytes to HLM_FINE_FROM, keeping HLM_COARSE_STEPS
 * per doubling (hlm_classes_coarsen rewrites hlm_class16 once).  Each thread owns a span
 * per class it uses, so the classes per doubling multiply by the threads: a thread that
 * allocates every size up to 1 KiB holds a partly used span in each of them.  A thread
 * with the process to itself keeps the finer classes, which waste less of each block.  A
 * span of a class the coarse map skips stays valid: its blocks are freed and reused as
 * before.
 */
#include "small.h"

uint32_t hlm_class_size[HLM_NCLASSES];
uint8_t hlm_class_pages[HLM_NCLASSES];
uint8_t hlm_class16[2048 / 16 + 1];
uint8_t hlm_class16_fine[2048 / 16 + 1];
static uint8_t class16_coarse[2048 / 16 + 1];
uint8_t hlm_classup[HLM_SMALL_MAX / HLM_UPPER_GRAIN + 1];

/* Whether a class of size s is one the coarse map uses. */
static bool class_coarse(unsigned s)
{
    if (s <= 128 || s > HLM_FINE_FROM)
        return true;
    unsigned b = 128;
    while (2 * b < s)
        b *= 2;
    return (s - b) % (b / HLM_COARSE_STEPS) == 0;
}

void hlm_small_init(void)
{
    unsigned n = 0;
    for (unsigned s = 16; s <= 256; s += 16)
        hlm_class_size[++n] = s;
    /* From HLM_FINE_FROM to 2048, 16 per doubling: a common size just above a power of
     * two (sqlite's 1032-byte blocks) wasted up to 1/8 of each block. */
    for (unsigned b = 256; b < 2048; b *= 2) {
        unsigned step = b >= HLM_FINE_FROM ? b / 16 : b / 8;
        for (unsigned s = b + step; s <= 2 * b; s += step)
            hlm_class_size[++n] = s;
    }
    for (unsigned b = 2048; b < HLM_SMALL_MAX; b *= 2)
        for (unsigned s = b + b / HLM_UPPER_STEPS; s <= 2 * b && s <= HLM_SMALL_MAX;
             s += b / HLM_UPPER_STEPS)
            hlm_class_size[++n] = s;
    hlm_check(n == HLM_NCLASSES - 1, "size class table does not match HLM_NCLASSES", NULL);
    for (unsigned c = 1; c < HLM_NCLASSES; c++) {
        /* The shortest span with room for 8 objects that wastes at most 1/8 of itself. */
        unsigned np = 1, size = hlm_class_size[c];
        for (; np < HLM_SPAN_MAX_PAGES; np++) {
            size_t bytes = (size_t)np * HLM_PAGE, cap = bytes / size;
            if (cap >= 8 && (bytes - cap * size) * 8 <= bytes)
                break;
        }
        hlm_class_pages[c] = (uint8_t)np;
    }
    unsigned c = 1;
    for (unsigned i = 0; i <= 2048 / 16; i++) {
        while (hlm_class_size[c] < i * 16)
            c++;
        hlm_class16[i] = hlm_class16_fine[i] = (uint8_t)c;
    }
    /* The coarse map: from 128 bytes to HLM_FINE_FROM only sizes on a step of b /
     * HLM_COARSE_STEPS in the doubling above b (each of them a class of the fine map). */
    c = 1;
    for (unsigned i = 0; i <= 2048 / 16; i++) {
        while (hlm_class_size[c] < i * 16 || !class_coarse(hlm_class_size[c]))
            c++;
        class16_coarse[i] = (uint8_t)c;
    }
    c = 1;
    for (unsigned i = 0; i <= HLM_SMALL_MAX / HLM_UPPER_GRAIN; i++) {
        while (hlm_class_size[c] < i * HLM_UPPER_GRAIN)
            c++;
        hlm_classup[i] = (uint8_t)c;
    }
}

/* From now on malloc takes the coarse map (the process has a second thread).  Byte
 * stores: a thread reading the map meanwhile gets a class of either map, both of which
 * hold its size. */
void hlm_classes_coarsen(void)
{
    static bool done;   /* under the caches' lock (alloc.c) */
    if (done)
        return;
    done = true;
    for (unsigned i = 0; i <= 2048 / 16; i++)
        __atomic_store_n(&hlm_class16[i], class16_coarse[i], __ATOMIC_RELAXED);
}
