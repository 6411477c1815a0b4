/*
 * assemble.c: the finish of a trace of several parts (finalise.c's finish), with the
 * disk holding the trace plus a window, not the trace twice.
 *
 * A trace of several process sections is its parts (one per process image, each a
 * trace of its own) one after the other, then a section for each unrecorded process.
 * Copying the parts into the output would hold every byte twice until the copy ends.
 * Instead the trace is assembled inside the capture folder, in ASM_FILE (written as
 * ASM_FILE.tmp, as every writer does), a window of ASM_WINDOW bytes at a time; once
 * the state file says a window is in the assembly, it is punched out of its part.
 * The whole assembly is then put in place as the output with a hard link
 * (hl_trace_place; copied when the output is on another file system), so a kept
 * capture holds the trace once, as the assembly.
 *
 * The state (ASM_STATE, written to a temporary and renamed over it) is one line:
 *     heaplab-assembly 1 N K FROM BYTES PROCESSES THREADS EVENTS GIVEN DONE
 * The trace has N parts; parts 0..K-1 (in start order) and bytes below FROM of part K
 * are the assembly's first BYTES bytes, and their bytes may be punched.  The parts
 * hold PROCESSES processes, THREADS threads and EVENTS events (counted before any was
 * punched, for the summary).  GIVEN is 1 once a part that was the only copy of its
 * section (its raw capture given back, finalise.c) was punched.  DONE is 1 once
 * ASM_FILE is whole: then it is the trace.
 *
 * A capture that stays after the finish (kept to be finalised again) keeps its only
 * copies whole; the parts it punches are written again from the raw capture.  Its
 * assembly and state are removed once the trace is in place, unless GIVEN: then the
 * finished assembly is what finalising it again gives.
 *
 * Going on after a failure or a kill (`record --from-capture`): the assembly is cut
 * back to BYTES and copying goes on from part K at FROM; parts below K are not read
 * again, and finalise.c does not count or rewrite them (asm_load).
 */
#include "finalise_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASM_FILE "assembly.hlt"
#define ASM_STATE "assembly.state"
#define ASM_MAGIC "heaplab-assembly 1"
/* Bytes copied between two states: what the disk holds beyond the trace meanwhile. */
#define ASM_WINDOW ((uint64_t)64 << 20)

static char *in_dir(const char *dir, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

int asm_load(const char *dir, struct asm_state *s, struct hl_err *err)
{
    memset(s, 0, sizeof *s);
    char *path = in_dir(dir, ASM_STATE);
    if (!path)
        return fz_fail(err, "out of memory");
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        free(path);
        return e == ENOENT ? 0 : fz_fail(err, "%s/%s: %s", dir, ASM_STATE, strerror(e));
    }
    char line[256];
    int given = -1, done = -1;
    int ok = fgets(line, sizeof line, f) != NULL &&
             strncmp(line, ASM_MAGIC " ", sizeof ASM_MAGIC) == 0 &&
             sscanf(line + sizeof ASM_MAGIC,
                    "%" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64 " %" SCNu64
                    " %" SCNu64 " %d %d",
                    &s->n, &s->k, &s->from, &s->bytes, &s->processes, &s->threads,
                    &s->events, &given, &done) == 9 &&
             s->k <= s->n && (given == 0 || given == 1) && (done == 0 || done == 1);
    fclose(f);
    free(path);
    if (!ok)
        return fz_fail(err, "%s/%s: damaged; remove it to assemble the trace again from the "
                       "parts (which fails, saying so, if a part was given back already)",
                       dir, ASM_STATE);
    s->given = given;
    s->done = done;
    s->have = 1;
    return 1;
}

static int asm_save(const char *dir, const struct asm_state *s, struct hl_err *err)
{
    char *path = in_dir(dir, ASM_STATE), *tmp = in_dir(dir, ASM_STATE ".tmp");
    FILE *f = path && tmp ? fopen(tmp, "w") : NULL;
    int ok = f && fprintf(f, ASM_MAGIC " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
                          " %" PRIu64 " %" PRIu64 " %" PRIu64 " %d %d\n",
                          s->n, s->k, s->from, s->bytes, s->processes, s->threads,
                          s->events, s->given, s->done) > 0;
    if (f && fclose(f) != 0)
        ok = 0;
    if (ok && rename(tmp, path) != 0)
        ok = 0;
    int e = errno;
    if (!ok && tmp)
        unlink(tmp);
    free(path);
    free(tmp);
    return ok ? 0 : fz_fail(err, "%s/%s: cannot write: %s", dir, ASM_STATE, strerror(e));
}

/* Give part's bytes [0, to) back to the disk (they are in the assembly).  Failing to
 * (a file system without holes) only costs disk, so it is not an error. */
static void punch_below(const char *part, uint64_t to)
{
    int fd = open(part, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)to);
    close(fd);
}

/* The writer on the assembly: new, or the one a stopped assembly left, cut back to
 * the bytes its state vouches for.  A kill between the writer's close (ASM_FILE.tmp
 * renamed to ASM_FILE) and the state's DONE leaves ASM_FILE: take it back. */
static struct hl_writer *asm_writer(const char *dir, struct asm_state *s, struct hl_err *err)
{
    char *path = in_dir(dir, ASM_FILE), *tmp = in_dir(dir, ASM_FILE ".tmp");
    struct hl_writer *w = NULL;
    if (!path || !tmp) {
        fz_fail(err, "out of memory");
    } else if (!s->have) {
        w = hl_writer_open(path, err);
        s->have = 1;
        s->bytes = w ? hl_writer_bytes(w) : 0;
    } else {
        if (access(tmp, F_OK) != 0 && access(path, F_OK) == 0)
            rename(path, tmp);
        w = hl_writer_reopen(path, s->bytes, err);
    }
    free(path);
    free(tmp);
    return w;
}

/* Parts K.. of s onto w, a window at a time, each punched out of its part once the
 * state says it is in the assembly (unless keep and the part is an only copy). */
static int copy_parts(const char *dir, const struct asm_part *parts, int keep,
                      struct hl_writer *w, struct asm_state *s, struct hl_err *err)
{
    uint64_t window = fz_env_u64(ENV_ASM_WINDOW, ASM_WINDOW);
    uint64_t fail_after = fz_env_u64(ENV_ASM_FAIL_AFTER, 0), windows = 0;
    if (window < 4096)
        window = 4096;
    for (; s->k < s->n; s->k++, s->from = 0) {
        int64_t got;
        const struct asm_part *p = &parts[s->k];
        int give = !(keep && p->only);
        while ((got = hl_writer_append_window(w, p->path, &s->from, window, err)) > 0) {
            s->bytes = hl_writer_bytes(w);
            s->given |= give && p->only;
            if (asm_save(dir, s, err) != 0)
                return -1;
            if (give)
                punch_below(p->path, s->from);
            if (++windows == fail_after)
                return fz_fail(err, "stopped after %" PRIu64 " windows of the assembly (%s)",
                               windows, ENV_ASM_FAIL_AFTER);
        }
        if (got < 0)
            return -1;
    }
    s->from = 0;
    return asm_save(dir, s, err);
}

/* The assembly and its state, once the trace is in place and a kept capture can be
 * finalised again without them. */
static void asm_remove(const char *dir)
{
    const char *names[] = {ASM_STATE, ASM_FILE};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *p = in_dir(dir, names[i]);
        if (p)
            unlink(p);
        free(p);
    }
}

int asm_trace(const char *dir, const char *out, const struct asm_part *parts, size_t n,
              const struct unrec_list *u, struct hl_finalise_stats *st, struct asm_state *s,
              int keep, struct hl_err *err)
{
    if (s->have && s->n != n)
        return fz_fail(err, "%s/%s: an assembly of %" PRIu64 " parts, but the capture has %zu",
                       dir, ASM_STATE, s->n, n);
    char *path = in_dir(dir, ASM_FILE);
    if (!path)
        return fz_fail(err, "out of memory");
    int rc = 0;
    if (s->have && s->done && access(path, F_OK) == 0) {
        unrec_count(u, st); /* their sections are in the assembly */
    } else {
        if (!s->have) {
            s->n = n;
            s->processes = st->processes;
            s->threads = st->threads;
            s->events = st->events;
        }
        struct hl_writer *w = asm_writer(dir, s, err);
        rc = w ? copy_parts(dir, parts, keep, w, s, err) : -1;
        if (rc == 0)
            rc = unrec_write(u, w, st, err);
        if (w) {
            if (rc == 0)
                rc = hl_writer_close(w, err);
            else
                hl_writer_stop(w); /* kept for going on */
        }
        if (rc == 0) {
            s->done = 1;
            rc = asm_save(dir, s, err);
        }
    }
    int placed = rc == 0 ? hl_trace_place(path, out, err) : -1;
    if (placed == 0) { /* another file system: copied */
        struct hl_writer *w = hl_writer_open(out, err);
        if (w && hl_writer_append(w, path, err) != 0) {
            hl_writer_abort(w);
            w = NULL;
        }
        rc = w ? hl_writer_close(w, err) : -1;
    } else if (placed < 0) {
        rc = -1;
    }
    if (rc == 0 && keep && !s->given)
        asm_remove(dir);
    free(path);
    return rc;
}
