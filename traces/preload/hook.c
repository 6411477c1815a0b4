/*
 * hook.c: the part of libheaplab-record.so that attaches it to a program already running
 * (`heaplab record -p PID`; cmd/record_attach.c loads the library with dlopen and calls
 * heaplab_attach, later heaplab_detach).
 *
 * A library loaded with dlopen does not interpose: the program's calls stay bound to the
 * allocator they were resolved to.  So heaplab_attach rewrites the GOT slots that point
 * at the wrapped API, in every object of the base namespace (the program, its
 * libraries, libc itself, whose own calls to malloc go through its GOT), and remembers
 * what each held.  Both relocation kinds that fill such slots are handled: JUMP_SLOT
 * (calls through the PLT) and GLOB_DAT (-fno-plt calls and functions whose address is
 * taken).  RELRO pages are made writable for the store and read-only again.
 *
 * Besides the allocation API, pthread_create is redirected (the interposer numbers
 * records with an atomic add once a thread starts), and dlopen/dlmopen: an object
 * loaded later is patched as soon as its loader returns.  What its constructors
 * allocate before that is not recorded.  A wrapper of dlopen would change the caller
 * the dynamic linker sees, whose RPATH/RUNPATH it searches, so the wrapper looks a bare
 * file name up in the caller's RUNPATH (or RPATH) itself first ($ORIGIN expanded).
 *
 * The real functions are the program's global definitions (dlsym(RTLD_DEFAULT)): an
 * allocator the program preloads (jemalloc, tcmalloc) is recorded like glibc's.  Before
 * anything is written, every slot already bound is checked against them: a slot bound
 * elsewhere (an allocator reached through its own symbol version, say) would mix two
 * heaps under one set of wrappers, and the attach is refused with the object's name,
 * leaving the program untouched.  Objects in other namespaces (dlmopen) have their own
 * libc and are left alone.
 *
 * heaplab_detach puts back every slot that still points at a wrapper, in objects still
 * loaded, then flushes the capture and stops recording.  If heaplab is killed instead,
 * the interposer stops writing at its next flush (nobody reads the capture) and the
 * slots stay until the next attach, which takes them over.  The library stays loaded:
 * another thread may still be inside a wrapper, and a second attach reuses it.  Slot
 * stores are single aligned words, so running threads see either the old or the new
 * function, never a torn pointer.
 */
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

int hl_attach_begin(const char *dir, void *const *fns, pid_t watcher);
void hl_attach_end(void);

#if defined(__x86_64__)
#define R_SLOT R_X86_64_JUMP_SLOT
#define R_GDAT R_X86_64_GLOB_DAT
#elif defined(__aarch64__)
#define R_SLOT R_AARCH64_JUMP_SLOT
#define R_GDAT R_AARCH64_GLOB_DAT
#else
#error "GOT hooking knows x86-64 and AArch64 relocations only"
#endif

/* The redirected functions: the allocation API (checked against the global
 * definitions), then the ones that keep the hooks complete. */
static const char *const hooked[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
    "pthread_create", "dlopen", "dlmopen"};
enum { N_HOOKED = sizeof hooked / sizeof hooked[0], N_ALLOC = 11, H_DLOPEN = 12, H_DLMOPEN = 13 };

static void *wrapper[N_HOOKED]; /* what the slots are pointed at */
static void *global[N_HOOKED];  /* the program's own definitions */
static void *canon[N_HOOKED];   /* a non-PIE program's PLT entry standing for one, or NULL */

/* One rewritten slot. */
struct slot {
    void **got;
    void *old;
    uint32_t fn;   /* index in hooked[] */
    uint32_t ro;   /* the page is read-only outside the store */
};
#define MAX_SLOTS 16384
static struct slot *g_slots; /* mmap'ed: the allocator is not called from here */
static size_t g_nslots;

/* Loaded objects, collected by dl_iterate_phdr and examined outside its lock (the
 * dynamic linker's own lock order forbids calling dladdr inside it). */
struct object {
    ElfW(Addr) base;
    const ElfW(Phdr) *phdr;
    ElfW(Half) phnum;
    const char *name;
};
#define MAX_OBJECTS 4096
static struct object *g_objs;

static int g_lock;  /* serialises attach, detach and the dlopen wrappers */
static int g_hooks; /* slots are pointed at the wrappers */
static ElfW(Addr) g_self_base;
static char g_self_path[PATH_MAX];

static void lock(void)
{
    while (__atomic_exchange_n(&g_lock, 1, __ATOMIC_ACQUIRE))
        sched_yield();
}

static void unlock(void)
{
    __atomic_store_n(&g_lock, 0, __ATOMIC_RELEASE);
}

static void *map_array(size_t bytes)
{
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return m == MAP_FAILED ? NULL : m;
}

static int collect_one(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    size_t *n = arg;
    if (*n < MAX_OBJECTS)
        g_objs[(*n)++] = (struct object){info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum,
                                         info->dlpi_name};
    return 0;
}

static size_t collect(void)
{
    size_t n = 0;
    dl_iterate_phdr(collect_one, &n);
    return n;
}

/* Is p inside one of o's segments?  Sets *ro when that segment is read-only or
 * RELRO (made read-only after relocation). */
static int inside(const struct object *o, const void *p, uint32_t *ro)
{
    ElfW(Addr) a = (ElfW(Addr))p;
    int found = 0;
    uint32_t r = 0;
    for (ElfW(Half) i = 0; i < o->phnum; i++) {
        const ElfW(Phdr) *ph = &o->phdr[i];
        ElfW(Addr) lo = o->base + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (a < lo || a >= hi)
            continue;
        if (ph->p_type == PT_LOAD) {
            found = 1;
            r |= !(ph->p_flags & PF_W);
        } else if (ph->p_type == PT_GNU_RELRO) {
            r = 1;
        }
    }
    if (ro)
        *ro = r;
    return found;
}

static const ElfW(Dyn) *dynamic_of(const struct object *o)
{
    for (ElfW(Half) i = 0; i < o->phnum; i++)
        if (o->phdr[i].p_type == PT_DYNAMIC)
            return (const ElfW(Dyn) *)(o->base + o->phdr[i].p_vaddr);
    return NULL;
}

/* Only the program, its libraries and what it dlopen'ed in the base namespace. */
static int hookable(const struct object *o, const ElfW(Dyn) *dyn)
{
    if (!dyn || o->base == g_self_base || !o->name || strstr(o->name, "linux-vdso") ||
        strstr(o->name, "linux-gate"))
        return 0;
    Dl_info di;
    struct link_map *lm = NULL;
    Lmid_t ns = LM_ID_BASE;
    if (dladdr1(dyn, &di, (void **)&lm, RTLD_DL_LINKMAP) && lm)
        dlinfo(lm, RTLD_DI_LMID, &ns);
    return ns == LM_ID_BASE;
}

/* The dynamic linker rebases most d_ptr entries in place; the vdso's are not. */
static ElfW(Addr) dptr(const struct object *o, ElfW(Addr) v)
{
    return v < o->base ? v + o->base : v;
}

static int set_slot(void **got, void *v, uint32_t ro)
{
    long pg = sysconf(_SC_PAGESIZE);
    void *page = (void *)((uintptr_t)got & ~(uintptr_t)(pg - 1));
    if (ro && mprotect(page, (size_t)pg, PROT_READ | PROT_WRITE) != 0)
        return -1;
    __atomic_store_n(got, v, __ATOMIC_RELAXED);
    if (ro)
        mprotect(page, (size_t)pg, PROT_READ);
    return 0;
}

/* Does a function symbol start at p (a definition, not a PLT stub)? */
static int is_function(const void *p)
{
    Dl_info di;
    return dladdr(p, &di) && di.dli_saddr == p;
}

/* The definition of name that the program's calls reach.  A non-PIE program that
 * takes a function's address exports its PLT entry under the function's name
 * (undefined, with a value): dlsym returns that, and a wrapper calling it would come
 * back to itself once the program's GOT is rewritten.  Then the definition is the
 * first one in the objects after the program (*plt gets the PLT entry). */
static void *definition(const char *name, void **plt)
{
    void *p = dlsym(RTLD_DEFAULT, name);
    Dl_info di;
    const ElfW(Sym) *sym = NULL;
    *plt = NULL;
    if (!p || !dladdr1(p, &di, (void **)&sym, RTLD_DL_SYMENT) || !sym ||
        sym->st_shndx != SHN_UNDEF)
        return p;
    *plt = p;
    for (struct link_map *lm = _r_debug.r_map ? _r_debug.r_map->l_next : NULL; lm;
         lm = lm->l_next) {
        /* A handle of its own (an initial object's link map has no search list). */
        void *h = lm->l_name && *lm->l_name ? dlopen(lm->l_name, RTLD_LAZY | RTLD_NOLOAD)
                                             : NULL;
        void *q = h ? dlsym(h, name) : NULL;
        const ElfW(Sym) *qs = NULL;
        int defined = q && dladdr1(q, &di, (void **)&qs, RTLD_DL_SYMENT) && qs &&
                      qs->st_shndx != SHN_UNDEF;
        if (h)
            dlclose(h);
        if (defined)
            return q;
    }
    return NULL;
}

static int hooked_index(const char *name)
{
    for (int i = 0; i < N_HOOKED; i++)
        if (name[0] == hooked[i][0] && strcmp(name, hooked[i]) == 0)
            return i;
    return -1;
}

/* Look at (check: 1) or rewrite (check: 0) the slots of one object.  Returns 0, or -1
 * with why set. */
static int visit(const struct object *o, int check, char *why, size_t whylen)
{
    const ElfW(Dyn) *dyn = dynamic_of(o);
    if (!hookable(o, dyn))
        return 0;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    const ElfW(Rela) *tabs[2] = {NULL, NULL};
    size_t sizes[2] = {0, 0};
    int rela = 1;
    for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++) {
        switch (d->d_tag) {
        case DT_SYMTAB: symtab = (const ElfW(Sym) *)dptr(o, d->d_un.d_ptr); break;
        case DT_STRTAB: strtab = (const char *)dptr(o, d->d_un.d_ptr); break;
        case DT_JMPREL: tabs[0] = (const ElfW(Rela) *)dptr(o, d->d_un.d_ptr); break;
        case DT_PLTRELSZ: sizes[0] = d->d_un.d_val; break;
        case DT_RELA: tabs[1] = (const ElfW(Rela) *)dptr(o, d->d_un.d_ptr); break;
        case DT_RELASZ: sizes[1] = d->d_un.d_val; break;
        case DT_PLTREL: rela = d->d_un.d_val == DT_RELA; break;
        }
    }
    if (!symtab || !strtab || !rela)
        return 0;
    const char *oname = o->name && *o->name ? o->name : "the program";
    for (int t = 0; t < 2; t++) {
        for (size_t k = 0; tabs[t] && k < sizes[t] / sizeof(ElfW(Rela)); k++) {
            const ElfW(Rela) *r = &tabs[t][k];
            unsigned type = (unsigned)ELF64_R_TYPE(r->r_info);
            if (type != R_SLOT && type != R_GDAT)
                continue;
            int fn = hooked_index(strtab + symtab[ELF64_R_SYM(r->r_info)].st_name);
            if (fn < 0)
                continue;
            void **got = (void **)(o->base + r->r_offset);
            void *cur = __atomic_load_n(got, __ATOMIC_RELAXED);
            uint32_t ro = 0;
            if (!inside(o, got, &ro))
                continue;
            if (check) {
                /* Bound to the program's definition, or not bound yet: a lazy
                 * JUMP_SLOT still points into its own object's PLT, which no symbol
                 * starts at. */
                if (fn < N_ALLOC && cur != global[fn] && cur != wrapper[fn] && cur != canon[fn] &&
                    (type == R_GDAT || !inside(o, cur, NULL) || is_function(cur))) {
                    Dl_info di, dg;
                    const char *where = dladdr(cur, &di) && di.dli_fname ? di.dli_fname : "?";
                    const char *glob = dladdr(global[fn], &dg) && dg.dli_fname ? dg.dli_fname
                                                                               : "?";
                    snprintf(why, whylen,
                             "%s calls the %s of %s, the program that of %s (two allocators, "
                             "one reached through its own symbol version): the hooks cannot "
                             "reach both",
                             oname, hooked[fn], where, glob);
                    return -1;
                }
                continue;
            }
            if (cur == wrapper[fn] || !wrapper[fn])
                continue;
            if (g_nslots == MAX_SLOTS) {
                snprintf(why, whylen, "more than %d GOT slots to rewrite", MAX_SLOTS);
                return -1;
            }
            if (set_slot(got, wrapper[fn], ro) != 0) {
                snprintf(why, whylen, "cannot make the GOT of %s writable: %s", oname,
                         strerror(errno));
                return -1;
            }
            g_slots[g_nslots++] = (struct slot){got, cur, (uint32_t)fn, ro};
        }
    }
    return 0;
}

static int visit_all(int check, char *why, size_t whylen)
{
    size_t n = collect();
    for (size_t i = 0; i < n; i++)
        if (visit(&g_objs[i], check, why, whylen) != 0)
            return -1;
    return 0;
}

/* Put back every slot that still points at a wrapper, in objects still loaded. */
static void restore_all(void)
{
    size_t n = collect();
    for (size_t k = g_nslots; k-- > 0;) {
        struct slot *s = &g_slots[k];
        for (size_t i = 0; i < n; i++) {
            uint32_t ro;
            if (!inside(&g_objs[i], s->got, &ro))
                continue;
            if (__atomic_load_n(s->got, __ATOMIC_RELAXED) == wrapper[s->fn])
                set_slot(s->got, s->old, ro);
            break;
        }
    }
    g_nslots = 0;
}

/* ---- dlopen and dlmopen ---- */

/* Where the dynamic linker would find a bare file name through the RUNPATH (else
 * RPATH) of the object containing `caller`: a path in buf, or file itself. */
static const char *caller_path(const char *file, const void *caller, char *buf, size_t len)
{
    Dl_info di;
    struct link_map *lm = NULL;
    if (!file || strchr(file, '/') || !dladdr1(caller, &di, (void **)&lm, RTLD_DL_LINKMAP) ||
        !lm || !lm->l_ld)
        return file;
    const char *strtab = NULL;
    ElfW(Addr) runpath = 0, rpath = 0;
    int has_run = 0, has_r = 0;
    for (const ElfW(Dyn) *d = lm->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_STRTAB)
            strtab = (const char *)(d->d_un.d_ptr < lm->l_addr ? d->d_un.d_ptr + lm->l_addr
                                                                : d->d_un.d_ptr);
        else if (d->d_tag == DT_RUNPATH)
            runpath = d->d_un.d_val, has_run = 1;
        else if (d->d_tag == DT_RPATH)
            rpath = d->d_un.d_val, has_r = 1;
    }
    if (!strtab || (!has_run && !has_r))
        return file;
    const char *list = strtab + (has_run ? runpath : rpath);
    char origin[PATH_MAX];
    if (lm->l_name && *lm->l_name) {
        snprintf(origin, sizeof origin, "%s", lm->l_name);
    } else {
        ssize_t k = readlink("/proc/self/exe", origin, sizeof origin - 1);
        origin[k > 0 ? k : 0] = 0;
    }
    char *slash = strrchr(origin, '/');
    if (slash)
        *slash = 0;
    while (*list) {
        size_t n = strcspn(list, ":");
        const char *rest = list;
        size_t rn = n;
        const char *pre = "";
        if (n >= 7 && strncmp(list, "$ORIGIN", 7) == 0)
            pre = origin, rest = list + 7, rn = n - 7;
        else if (n >= 9 && strncmp(list, "${ORIGIN}", 9) == 0)
            pre = origin, rest = list + 9, rn = n - 9;
        int w = snprintf(buf, len, "%s%.*s/%s", pre, (int)rn, rest, file);
        if (w > 0 && (size_t)w < len && access(buf, F_OK) == 0)
            return buf;
        list += n;
        if (*list == ':')
            list++;
    }
    return file;
}

static void after_load(void)
{
    char why[256];
    lock();
    if (g_hooks)
        visit_all(0, why, sizeof why); /* a full table leaves the newcomer unrecorded */
    unlock();
}

static void *hook_dlopen(const char *file, int mode)
{
    char buf[PATH_MAX];
    void *h = ((void *(*)(const char *, int))global[H_DLOPEN])(
        caller_path(file, __builtin_return_address(0), buf, sizeof buf), mode);
    if (h)
        after_load();
    return h;
}

static void *hook_dlmopen(Lmid_t ns, const char *file, int mode)
{
    char buf[PATH_MAX];
    void *h = ((void *(*)(Lmid_t, const char *, int))global[H_DLMOPEN])(
        ns, caller_path(file, __builtin_return_address(0), buf, sizeof buf), mode);
    if (h)
        after_load();
    return h;
}

/* ---- the entry points ---- */

/* The refusal's one line goes to dir/refused for heaplab to print. */
static int refuse(const char *dir, const char *fmt, ...)
{
    char path[PATH_MAX], line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if ((size_t)n > sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    snprintf(path, sizeof path, "%s/refused", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        if (write(fd, line, (size_t)n) < 0) {
            /* nothing more to say */
        }
        close(fd);
    }
    return 1;
}

static int find_self(void)
{
    Dl_info di;
    if (!dladdr((void *)&find_self, &di) || !di.dli_fname ||
        strlen(di.dli_fname) >= sizeof g_self_path)
        return -1;
    g_self_base = (ElfW(Addr))di.dli_fbase;
    strcpy(g_self_path, di.dli_fname);
    /* The library's own handle: its definitions come first in its local scope. */
    void *self = dlopen(g_self_path, RTLD_NOW | RTLD_NOLOAD);
    if (!self)
        return -1;
    for (int i = 0; i < N_HOOKED; i++) {
        global[i] = definition(hooked[i], &canon[i]);
        wrapper[i] = i < H_DLOPEN ? dlsym(self, hooked[i]) : NULL;
    }
    wrapper[H_DLOPEN] = global[H_DLOPEN] ? (void *)hook_dlopen : NULL;
    wrapper[H_DLMOPEN] = global[H_DLMOPEN] ? (void *)hook_dlmopen : NULL;
    dlclose(self);
    return 0;
}

static pid_t g_watcher; /* the heaplab attached */

/* Start recording into the capture directory dir for the heaplab process watcher.
 * Returns 0, or 1 with the reason in dir/refused and the program as it was.  Hooks
 * left by a heaplab that was killed are taken over. */
EXPORT int heaplab_attach(const char *dir, int watcher)
{
    char why[384];
    lock();
    int r = 0;
    if (g_hooks && kill(g_watcher, 0) != 0 && errno == ESRCH) {
        restore_all();
        g_hooks = 0;
        hl_attach_end();
    }
    if (g_hooks) {
        r = refuse(dir, "heaplab PID %d is attached to it already", (int)g_watcher);
    } else if ((!g_slots && !(g_slots = map_array(MAX_SLOTS * sizeof *g_slots))) ||
               (!g_objs && !(g_objs = map_array(MAX_OBJECTS * sizeof *g_objs)))) {
        r = refuse(dir, "out of memory");
    } else if (find_self() != 0) {
        r = refuse(dir, "the recording library cannot find itself");
    } else if (!global[0] || !wrapper[0]) {
        r = refuse(dir, "the program has no malloc to hook");
    } else if (!is_function(global[0]) || !is_function(global[1])) {
        r = refuse(dir, "its malloc is not a function the hooks can call");
    } else if (visit_all(1, why, sizeof why) != 0) {
        r = refuse(dir, "%s", why);
    } else if ((r = hl_attach_begin(dir, global, (pid_t)watcher)) != 0) {
        r = r == -2 ? refuse(dir, "it is being recorded from its start already (heaplab "
                                  "record -- PROGRAM)")
                    : refuse(dir, "cannot start a capture in %s (can the program's user "
                                  "write there?)", dir);
    } else {
        g_nslots = 0;
        if (visit_all(0, why, sizeof why) != 0) {
            restore_all();
            hl_attach_end();
            r = refuse(dir, "%s", why);
        } else {
            g_hooks = 1;
            g_watcher = (pid_t)watcher;
        }
    }
    unlock();
    return r;
}

/* Give the program its own functions back, write what is buffered and stop. */
EXPORT int heaplab_detach(void)
{
    lock();
    int was = g_hooks;
    if (was) {
        restore_all();
        g_hooks = 0;
    }
    unlock();
    if (was)
        hl_attach_end();
    return was ? 0 : 1;
}
