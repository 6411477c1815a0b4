/*
 * unrecorded.c: what a capture did not record, for the finaliser (finalise_int.h).
 *
 *   - Processes and images that left no raw file.  The interposer announces every
 *     fork child, posix_spawn child and exec in its raw file (raw.h: PROCESS CHUNKS);
 *     an announced process with no raw file of its own (a fork child: same pid, its
 *     parent's pid as ppid; an exec: same pid, started after the announcement) could
 *     not be recorded.  So could the processes `heaplab record` reaped that left no raw
 *     file (hl_finaliser_add_unrecorded).  Each becomes a section of zero events
 *     flagged HL_PROC_UNRECORDED, with its reason: for a program that was exec'd or
 *     spawned, what its file says (statically linked: an ELF file with no program
 *     interpreter; set-user-ID or set-group-ID), for a fork child that the interposer
 *     ran in but could not create its file.  They come after the recorded sections,
 *     in the order they started.
 *   - What a recorded process lost: events dropped when its capture file could not
 *     grow, calls made while a wrapper ran (the header's counts, rewritten at its end).
 *
 * Announcements in the part of a raw file a checkpoint gave back to the disk are kept
 * in the checkpoint (checkpoint.c), so that finalising going on from it still has them.
 */
#include "finalise_int.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Room in *v (capacity *cap elements of `size` bytes, n used) for one more.  0 or -1. */
static int room(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? 2 * *cap : 8;
    void *p = realloc(*v, c * size);
    if (!p)
        return -1;
    *v = p;
    *cap = c;
    return 0;
}

int unrec_note(struct rawfile *f, const uint64_t *w, size_t nw, uint64_t mono_ns, uint64_t off)
{
    if (nw < 4 || w[0] < HL_RAW_PEV_FORK || w[0] > HL_RAW_PEV_EXEC_FAILED || w[1] == 0 ||
        w[1] > INT32_MAX || w[2] >= PATH_MAX || w[2] > (nw - 3) * 8 - 1)
        return 0; /* not one the interposer writes: ignored */
    return unrec_push(f, (unsigned)w[0], (uint32_t)w[1], mono_ns, off, (const char *)(w + 3),
                      (size_t)w[2]);
}

int unrec_push(struct rawfile *f, unsigned kind, uint32_t pid, uint64_t mono_ns, uint64_t off,
               const char *path, size_t len)
{
    if (room((void **)&f->pev, &f->pevcap, f->npev, sizeof *f->pev) != 0)
        return -1;
    struct pev *e = &f->pev[f->npev];
    e->path = malloc(len + 1);
    if (!e->path)
        return -1;
    memcpy(e->path, path, len);
    e->path[len] = 0;
    e->path[strcspn(e->path, "\n")] = 0; /* one line wherever it is shown */
    e->kind = kind;
    e->pid = pid;
    e->mono_ns = mono_ns;
    e->off = off;
    f->npev++;
    return 0;
}

void unrec_free(struct rawfile *f)
{
    if (!f->pev)
        return;
    for (size_t i = 0; i < f->npev; i++)
        free(f->pev[i].path);
    free(f->pev);
    f->pev = NULL;
    f->npev = f->pevcap = 0;
}

/* Why the program at path cannot be preloaded, as far as its file tells. */
static unsigned classify(const char *path)
{
    char found[PATH_MAX];
    if (!strchr(path, '/')) { /* execvp, posix_spawnp: the first in PATH */
        const char *dirs = getenv("PATH");
        found[0] = 0;
        while (dirs && *dirs && !found[0]) {
            size_t k = strcspn(dirs, ":");
            snprintf(found, sizeof found, "%.*s/%s", (int)k, dirs, path);
            if (access(found, X_OK) != 0)
                found[0] = 0;
            dirs += k + (dirs[k] == ':');
        }
        if (!found[0])
            return HL_UNREC_UNKNOWN;
        path = found;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    struct stat sb;
    if (fd < 0)
        return HL_UNREC_UNKNOWN;
    unsigned why = HL_UNREC_UNKNOWN;
    Elf64_Ehdr eh;
    if (fstat(fd, &sb) == 0 && (sb.st_mode & (S_ISUID | S_ISGID))) {
        why = HL_UNREC_SETUID;
    } else if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh &&
               memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
               eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 4096) {
        int interp = 0;
        for (unsigned i = 0; i < eh.e_phnum && !interp; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
                break;
            interp = ph.p_type == PT_INTERP;
        }
        if (!interp)
            why = HL_UNREC_STATIC;
    }
    close(fd);
    return why;
}

unsigned hl_program_unrecordable(const char *path)
{
    return classify(path);
}

/* Is there a raw file of pid, with ppid (if not 0) as its parent, started at or after
 * mono_ns (if not 0)? */
static int has_image(struct rawfile *const *fs, size_t n, uint32_t pid, uint32_t ppid,
                     uint64_t mono_ns)
{
    for (size_t i = 0; i < n; i++)
        if (fs[i]->hdr == 1 && fs[i]->h.pid == pid && (!ppid || fs[i]->h.ppid == ppid) &&
            fs[i]->h.start_mono_ns >= mono_ns)
            return 1;
    return 0;
}

static int add(struct unrec_list *u, const struct hl_process *p, uint64_t mono_ns)
{
    for (size_t i = 0; i < u->n; i++)
        if (u->v[i].p.pid == p->pid && strcmp(u->v[i].p.exe, p->exe) == 0)
            return 0;
    if (room((void **)&u->v, &u->cap, u->n, sizeof *u->v) != 0)
        return -1;
    u->v[u->n].p = *p;
    u->v[u->n].mono_ns = mono_ns;
    u->n++;
    return 0;
}

int unrec_add(struct unrec_list *u, uint32_t pid, uint32_t ppid, uint64_t realtime_ns,
              unsigned why, const char *exe, const char *cmdline)
{
    struct hl_process p;
    memset(&p, 0, sizeof p);
    p.pid = pid;
    p.ppid = ppid;
    p.page_size = (uint32_t)sysconf(_SC_PAGESIZE);
    p.start_realtime_ns = realtime_ns;
    p.flags = HL_PROC_UNRECORDED | (why < HL_UNREC_COUNT_ ? why : 0) << HL_PROC_WHY_SHIFT;
    snprintf(p.exe, sizeof p.exe, "%s", exe ? exe : "");
    snprintf(p.cmdline, sizeof p.cmdline, "%s", cmdline ? cmdline : "");
    return add(u, &p, UINT64_MAX);
}

/* The unrecorded processes f's announcements name, into u. */
static int from_file(struct rawfile *const *fs, size_t n, const struct rawfile *f,
                     struct unrec_list *u)
{
    for (size_t i = 0; i < f->npev; i++) {
        const struct pev *e = &f->pev[i];
        struct hl_process p;
        memset(&p, 0, sizeof p);
        p.pid = e->pid;
        p.ppid = f->h.pid;
        p.page_size = f->h.page_size;
        p.start_realtime_ns = f->h.start_realtime_ns +
                              (e->mono_ns > f->h.start_mono_ns ? e->mono_ns - f->h.start_mono_ns : 0);
        unsigned why;
        if (e->kind == HL_RAW_PEV_FORK) {
            if (has_image(fs, n, e->pid, f->h.pid, 0))
                continue;
            why = HL_UNREC_NO_FILE;
            snprintf(p.exe, sizeof p.exe, "%s", f->h.exe);
            snprintf(p.cmdline, sizeof p.cmdline, "%s", f->h.cmdline);
        } else if (e->kind == HL_RAW_PEV_SPAWN || e->kind == HL_RAW_PEV_EXEC) {
            int failed = 0; /* an exec that returned */
            for (size_t j = i + 1; j < f->npev && !failed; j++)
                failed = f->pev[j].kind == HL_RAW_PEV_EXEC_FAILED && f->pev[j].pid == e->pid;
            if (failed || (e->kind == HL_RAW_PEV_SPAWN && has_image(fs, n, e->pid, f->h.pid, 0)) ||
                (e->kind == HL_RAW_PEV_EXEC && has_image(fs, n, e->pid, 0, e->mono_ns)))
                continue;
            why = e->path[0] ? classify(e->path) : HL_UNREC_UNKNOWN;
            if (e->kind == HL_RAW_PEV_EXEC && e->pid == f->h.pid)
                p.ppid = f->h.ppid;
            snprintf(p.exe, sizeof p.exe, "%s", e->path);
            snprintf(p.cmdline, sizeof p.cmdline, "%s", e->path);
        } else {
            continue;
        }
        p.flags = HL_PROC_UNRECORDED | why << HL_PROC_WHY_SHIFT;
        if (add(u, &p, e->mono_ns) != 0)
            return -1;
    }
    return 0;
}

static int cmp_mono(const void *a, const void *b)
{
    const struct unrec *x = a, *y = b;
    return x->mono_ns < y->mono_ns ? -1 : x->mono_ns > y->mono_ns;
}

int unrec_gather(struct rawfile *const *fs, size_t n, struct unrec_list *u, struct hl_err *err)
{
    /* The ones heaplab reaped (u already) that did leave a file were recorded. */
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++)
        if (!has_image(fs, n, u->v[i].p.pid, 0, 0))
            u->v[k++] = u->v[i];
    u->n = k;
    for (size_t i = 0; i < n; i++)
        if (fs[i]->hdr == 1 && from_file(fs, n, fs[i], u) != 0)
            return fz_fail(err, "out of memory");
    if (u->n > 1)
        qsort(u->v, u->n, sizeof *u->v, cmp_mono);
    return 0;
}

int unrec_write(const struct unrec_list *u, struct hl_writer *w, struct hl_finalise_stats *st,
                struct hl_err *err)
{
    for (size_t i = 0; i < u->n; i++) {
        const struct hl_process *p = &u->v[i].p;
        if (hl_writer_begin_process(w, p, err) != 0 || hl_writer_end_process(w, err) != 0)
            return -1;
    }
    unrec_count(u, st);
    return 0;
}

void unrec_count(const struct unrec_list *u, struct hl_finalise_stats *st)
{
    for (size_t i = 0; i < u->n; i++) {
        const struct hl_process *p = &u->v[i].p;
        if (st->unrecorded < HL_FINALISE_NAMED) {
            struct hl_unrecorded_proc *q = &st->unrec[st->unrecorded];
            q->pid = p->pid;
            q->ppid = p->ppid;
            q->why = hl_proc_why(p->flags);
            snprintf(q->exe, sizeof q->exe, "%s", p->exe);
        }
        st->unrecorded++;
    }
}

int unrec_losses(struct rawfile *f)
{
    struct hl_raw_header h;
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = pread(fd, &h, sizeof h, 0);
    close(fd);
    uint64_t want = h.checksum;
    h.checksum = 0;
    if (k != (ssize_t)sizeof h || h.version < 4 || h.version > HL_RAW_VERSION ||
        memcmp(h.magic, HL_RAW_MAGIC, 8) != 0 || h.header_bytes != sizeof h ||
        hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8) != want)
        return 0;
    f->h.flags = h.flags;
    f->h.dropped = h.dropped;
    f->h.missed = h.missed;
    f->h.big_untracked = h.version >= 5 ? h.big_untracked : 0;
    f->h.held = h.version >= 6 ? h.held : 0;
    f->h.held_ns = h.version >= 6 ? h.held_ns : 0;
    f->h.cut_errno = h.flags & HL_RAW_HDR_CUT ? (h.cut_errno ? h.cut_errno : ENOSPC) : 0;
    return !!(h.flags & HL_RAW_HDR_CUT);
}
