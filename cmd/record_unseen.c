/*
 * record_unseen.c: the processes of a recording that the interposer could not see.
 *
 * A statically linked or setuid program, or one that cleared LD_PRELOAD before it
 * exec'd, runs without libheaplab-record.so and leaves no raw file.  heaplab record is
 * the subreaper of the program's tree, so it reaps the program itself and every
 * process orphaned in it: just before reaping one (waitid with WNOWAIT), it notes its
 * pid and command name, and at the end names each one whose pid has no raw file.
 * Processes reaped by their own parents inside the tree, and a recorded process that
 * exec'd a program the interposer cannot enter, are not seen this way.
 */
#include "record.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct hl_unseen {
    struct seen {
        pid_t pid;
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
    s->comm[0] = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t k = read(fd, s->comm, sizeof s->comm - 1);
        close(fd);
        s->comm[k > 0 ? k : 0] = 0;
        s->comm[strcspn(s->comm, "\n")] = 0;
    }
}

/* Did any image of pid write a raw file into dir? */
static int recorded(const char *dir, pid_t pid)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int found = 0;
    char prefix[32];
    int pl = snprintf(prefix, sizeof prefix, "%d-", (int)pid);
    while (d && !found && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        found = strncmp(de->d_name, prefix, (size_t)pl) == 0 && len > 6 &&
                strcmp(de->d_name + len - 6, ".hlraw") == 0;
    }
    if (d)
        closedir(d);
    return found;
}

int hl_unseen_report(const struct hl_unseen *u, const char *dir)
{
    int n = 0;
    for (size_t i = 0; u && i < u->n; i++)
        if (!recorded(dir, u->v[i].pid)) {
            hl_warn("process %d (%s) was not recorded: a static or setuid program, or one "
                    "started without LD_PRELOAD", (int)u->v[i].pid,
                    u->v[i].comm[0] ? u->v[i].comm : "?");
            n++;
        }
    return n;
}
