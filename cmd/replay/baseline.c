/*
 * baseline.c: which of the worker's resident memory at the baseline is the harness's
 * and which the allocator's start-up (baseline.h).
 *
 * A program pays for its allocator's start-up: the library's own pages (its code, its
 * data and bss), the libraries it pulls in that the program would not otherwise load
 * (libstdc++ for jemalloc and tcmalloc), and the arenas, caches and metadata it sets
 * up before the first block is handed out ([heap] and anonymous mappings).  The
 * worker's peak RSS is therefore counted above the harness's own memory only: the
 * heaplab executable and the objects it needs (its DT_NEEDED closure, the dynamic
 * loader included), the stack, vdso and vvar, and every range the worker mapped for
 * itself (registered with hl_bl_own).  Everything else resident at the baseline is the
 * allocator's.
 *
 * Runs in the worker, with the allocator under test preloaded: no malloc here, only
 * static storage, open/read, mincore and dl_iterate_phdr.
 */
#include "baseline.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BL_MAX_OBJ 128
#define BL_MAX_NEEDED 32

static struct {
    uintptr_t lo, hi;
} own[HL_BL_MAX_OWN];
static int nown;

int hl_bl_own(const void *p, size_t n)
{
    if (nown >= HL_BL_MAX_OWN)
        return -1;
    own[nown++] = (typeof(own[0])){(uintptr_t)p, (uintptr_t)p + n};
    return 0;
}

/* A loaded object: the addresses its PT_LOAD segments cover (bss included), its file's
 * base name, the sonames it needs, and whether it is the harness's. */
struct obj {
    uintptr_t lo, hi;
    const char *base;
    const char *needed[BL_MAX_NEEDED];
    int nneeded, harness;
};
static struct obj objs[BL_MAX_OBJ];
static int nobj;

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    if (nobj >= BL_MAX_OBJ)
        return 1;
    struct obj *o = &objs[nobj];
    *o = (struct obj){UINTPTR_MAX, 0, base_name(info->dlpi_name), {0}, 0, nobj == 0};
    const ElfW(Dyn) *dyn = NULL;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        o->lo = lo < o->lo ? lo : o->lo;
        o->hi = hi > o->hi ? hi : o->hi;
    }
    /* The loader has relocated DT_STRTAB to an address on this platform; an object
     * whose table still holds an offset (the vdso on some kernels) is rebased. */
    uintptr_t strtab = 0;
    for (const ElfW(Dyn) *d = dyn; d && d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_STRTAB)
            strtab = d->d_un.d_ptr < o->lo ? info->dlpi_addr + d->d_un.d_ptr : d->d_un.d_ptr;
    for (const ElfW(Dyn) *d = dyn; strtab && d && d->d_tag != DT_NULL; d++)
        if (d->d_tag == DT_NEEDED && o->nneeded < BL_MAX_NEEDED)
            o->needed[o->nneeded++] = (const char *)(strtab + d->d_un.d_val);
    const uintptr_t pg = (uintptr_t)getpagesize();
    o->lo &= ~(pg - 1); /* the mappings that hold the segments */
    o->hi = (o->hi + pg - 1) & ~(pg - 1);
    if (o->lo < o->hi)
        nobj++;
    return 0;
}

/* Mark the executable's DT_NEEDED closure as the harness's. */
static void mark_harness(void)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < nobj; i++) {
            if (!objs[i].harness)
                continue;
            for (int k = 0; k < objs[i].nneeded; k++)
                for (int j = 0; j < nobj; j++)
                    if (!objs[j].harness && strcmp(objs[j].base, objs[i].needed[k]) == 0)
                        objs[j].harness = changed = 1;
        }
    }
}

/* 1 if [lo, hi) overlaps a range the worker mapped for itself. */
static int overlaps_own(uintptr_t lo, uintptr_t hi)
{
    for (int i = 0; i < nown; i++)
        if (lo < own[i].hi && own[i].lo < hi)
            return 1;
    return 0;
}

/* Resident KiB of the pages of [lo, hi) outside the worker's own ranges (mincore).
 * The kernel merges adjacent anonymous mappings with the same protection into one
 * VMA, so one smaps entry can hold both the worker's tables and memory the allocator
 * mapped at start-up next to them; its Rss line cannot be split, its pages can. */
static uint64_t resident_kb_not_own(uintptr_t lo, uintptr_t hi)
{
    static unsigned char vec[1 << 14];
    const uintptr_t pg = (uintptr_t)getpagesize();
    uint64_t pages = 0;
    for (uintptr_t a = lo; a < hi;) {
        uintptr_t n = (hi - a) / pg < sizeof vec ? (hi - a) / pg : sizeof vec;
        if (mincore((void *)a, n * pg, vec) != 0)
            return 0;
        for (uintptr_t k = 0; k < n; k++)
            pages += (vec[k] & 1) && !overlaps_own(a + k * pg, a + (k + 1) * pg);
        a += n * pg;
    }
    return pages * (pg / 1024);
}

/* 1 if the mapping [lo, hi) named name (NULL: anonymous) is the harness's. */
static int harness_mapping(uintptr_t lo, uintptr_t hi, const char *name)
{
    if (overlaps_own(lo, hi))
        return 1;
    /* [stack], [vdso], [vvar], [vsyscall] are the harness's; [heap] and named
     * anonymous memory ([anon:...]) the allocator's, unless the worker made it. */
    if (name && name[0] == '[')
        return strcmp(name, "[heap]") != 0 && strncmp(name, "[anon:", 6) != 0;
    for (int i = 0; i < nobj; i++)
        if (lo >= objs[i].lo && hi <= objs[i].hi)
            return objs[i].harness;
    /* An anonymous mapping nobody of the harness made is the allocator's; a file no
     * loaded object covers (locale data) the harness's. */
    return name != NULL;
}

uint64_t hl_bl_allocator_rss(void)
{
    nobj = 0;
    dl_iterate_phdr(collect, NULL);
    mark_harness();
    int fd = open("/proc/self/smaps", O_RDONLY);
    if (fd < 0)
        return 0;
    static char buf[1 << 16];
    size_t have = 0;
    uint64_t kb = 0;
    int cur_alloc = 0; /* the current mapping is the allocator's */
    for (;;) {
        ssize_t n = read(fd, buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = 0;
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = 0;
            if ((*line >= '0' && *line <= '9') || (*line >= 'a' && *line <= 'f')) {
                /* start-end perms offset dev inode [name] */
                char *end;
                uintptr_t lo = (uintptr_t)strtoull(line, &end, 16);
                uintptr_t hi = (uintptr_t)strtoull(end + 1, &end, 16);
                const char *name = end;
                for (int f = 0; f < 4 && *name; f++) {
                    while (*name == ' ')
                        name++;
                    while (*name && *name != ' ')
                        name++;
                }
                while (*name == ' ')
                    name++;
                cur_alloc = !harness_mapping(lo, hi, *name ? name : NULL);
                if (!cur_alloc && !*name && overlaps_own(lo, hi))
                    kb += resident_kb_not_own(lo, hi); /* merged with the worker's */
            } else if (cur_alloc && strncmp(line, "Rss:", 4) == 0) {
                kb += strtoull(line + 4, NULL, 10);
            }
            line = nl + 1;
        }
        have = (size_t)(buf + have - line);
        memmove(buf, line, have);
        if (have == sizeof buf - 1) /* a line longer than the buffer: not smaps */
            break;
    }
    close(fd);
    return kb * 1024;
}
