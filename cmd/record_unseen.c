/*
 * record_unseen.c: the processes of a recording that the interposer could not see.
 *
 * A statically linked or setuid program, or one that cleared LD_PRELOAD before it
 * exec'd, runs without libheaplab-record.so and leaves no raw file.  heaplab record is
 * the subreaper of the program's tree, so it reaps the program itself and every
 * process orphaned in it: just before reaping one (waitid with WNOWAIT), it notes its
 * pid, parent and command name, and at the end hands them to the finaliser, which
 * writes a section for each that left no raw file (traces/unrecorded.c; the processes
 * reaped by their own parents inside the tree, the finaliser finds from what the
 * interposer announced).  Then every such section is named on stderr.
 */
#include "record.h"
#include "finalise.h"
#include "util.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hl_unseen {
    struct seen {
        pid_t pid, ppid;
        uint64_t seen_ns; /* CLOCK_REALTIME when it was seen to end */
        char comm[32];
    } *v;
    size_t n, cap;
};

struct hl_unseen *hl_unseen_new(void)
{
    return calloc(1, sizeof(struct hl_unseen));
}

void hl_unseen_free(struct hl_unseen *u)
{
    if (u)
        free(u->v);
    free(u);
}

void hl_unseen_note(struct hl_unseen *u, pid_t pid)
{
    if (!u || (u->n == u->cap && !(u->v = realloc(u->v, (u->cap = u->cap ? 2 * u->cap : 64) *
                                                           sizeof *u->v))))
        return;
    struct seen *s = &u->v[u->n++];
    s->pid = pid;
    s->ppid = 0;
    s->comm[0] = 0;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    s->seen_ns = (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
    /* /proc/PID/stat: "pid (comm) state ppid ...", comm may hold anything. */
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t k = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    buf[k > 0 ? k : 0] = 0;
    char *open_p = strchr(buf, '('), *close_p = strrchr(buf, ')');
    if (open_p && close_p && close_p > open_p) {
        snprintf(s->comm, sizeof s->comm, "%.*s", (int)(close_p - open_p - 1), open_p + 1);
        int ppid;
        if (sscanf(close_p + 1, " %*c %d", &ppid) == 1)
            s->ppid = ppid;
    }
}

void hl_unseen_hand_over(const struct hl_unseen *u, struct hl_finaliser *fz, pid_t main,
                         const char *prog)
{
    for (size_t i = 0; u && fz && i < u->n; i++) {
        const struct seen *s = &u->v[i];
        int is_main = s->pid == main;
        unsigned why = is_main ? hl_program_unrecordable(prog) : HL_UNREC_UNKNOWN;
        hl_finaliser_add_unrecorded(fz, (uint32_t)s->pid, (uint32_t)s->ppid, s->seen_ns, why,
                                    is_main ? prog : s->comm, is_main ? prog : s->comm);
    }
}

void hl_unseen_warn(const struct hl_finalise_stats *st)
{
    for (uint32_t i = 0; i < st->unrecorded && i < HL_FINALISE_NAMED; i++) {
        const struct hl_unrecorded_proc *q = &st->unrec[i];
        hl_warn("process %u (%s, child of %u) was not recorded: %s", q->pid,
                q->exe[0] ? q->exe : "?", q->ppid, hl_unrecorded_name(q->why));
    }
    if (st->unrecorded > HL_FINALISE_NAMED)
        hl_warn("%u more processes were not recorded (heaplab stat lists them)",
                st->unrecorded - HL_FINALISE_NAMED);
}
