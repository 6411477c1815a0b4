/*
 * gaps.c: gap tables from a trace's timestamps (gaps.h).
 */
#include "gaps.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The gap table of the section the reader stands at, into a new file: its fd, -1 with
 * err set, or -2 when the section has no events. */
static int section_gaps(struct hl_reader *r, const char *path, struct hl_err *err)
{
    size_t n = 0, cap = 1024;
    uint32_t *g = calloc(cap, sizeof *g);
    if (!g) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return -1;
    }
    uint64_t idx = 0, prev = 0;
    int first = 1;
    const struct hl_event *ev;
    ssize_t k;
    while ((k = hl_reader_events(r, &ev, err)) > 0) {
        for (ssize_t i = 0; i < k; i++, idx++) {
            const size_t c = idx / HL_GAP_EVENTS;
            if (c >= cap) {
                uint32_t *ng = realloc(g, 2 * cap * sizeof *g);
                if (!ng) {
                    free(g);
                    snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
                    return -1;
                }
                memset(ng + cap, 0, cap * sizeof *g);
                g = ng;
                cap *= 2;
            }
            const uint64_t t = ev[i].time_ns;
            const uint64_t d = first || t < prev ? 0 : t - prev;
            g[c] = g[c] + d < g[c] || d > UINT32_MAX ? UINT32_MAX : g[c] + (uint32_t)d;
            prev = t;
            first = 0;
            n = c + 1;
        }
    }
    int fd = k < 0 ? -1 : idx == 0 ? -2 : hl_plan_file(path, err);
    if (fd >= 0 && write(fd, g, n * sizeof *g) != (ssize_t)(n * sizeof *g)) {
        snprintf(err->msg, sizeof err->msg, "%s: cannot write its gap table: %s", path,
                 strerror(errno));
        close(fd);
        fd = -1;
    }
    free(g);
    return fd;
}

int hl_gaps_trace(const char *path, long pid, const struct hl_rp_row *rows, int nrows,
                  int *fds, struct hl_err *err)
{
    struct hl_reader *r = hl_reader_open(path, err);
    if (!r)
        return -1;
    err->msg[0] = 0;
    int done = 0;
    struct hl_process p;
    while (done < nrows && hl_reader_next_process(r, &p, err) == 1) {
        if (pid >= 0 && p.pid != (uint32_t)pid) { /* a section with no row: skipped */
            const struct hl_event *skip;
            ssize_t n;
            while ((n = hl_reader_events(r, &skip, err)) > 0)
                ;
            if (n < 0)
                break;
            continue;
        }
        const int fd = section_gaps(r, path, err);
        if (fd == -2)
            continue; /* no events: no row either */
        if (fd < 0 || p.pid != rows[done].pid) {
            if (fd >= 0)
                close(fd);
            break;
        }
        fds[done++] = fd;
    }
    hl_reader_close(r);
    if (done < nrows) {
        if (err->msg[0] == 0)
            snprintf(err->msg, sizeof err->msg, "%s: its sections changed while replaying", path);
        return -1;
    }
    return 0;
}
