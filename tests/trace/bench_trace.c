/*
 * bench_trace.c: encode/decode speed and size of the trace format, on the synthetic
 * stream of synth.h (realistic size mix, LIFO-ish frees).  Run by scripts/bench-trace;
 * prints figures, asserts nothing.
 *   bench_trace [EVENTS] [THREADS] [DIR]     synthetic: size, encode and decode speed
 *   bench_trace --decode TRACE...             existing traces: size and decode speed
 */
#include "synth.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Decode a trace file `reps` times; print its size per event and the best speed. */
static int decode_file(const char *file, int reps)
{
    struct hl_err err;
    double best = 1e9;
    uint64_t events = 0;
    for (int rep = 0; rep < reps; rep++) {
        double a = now();
        struct hl_reader *r = hl_reader_open(file, &err);
        if (!r) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        struct hl_process q;
        int more;
        events = 0;
        while ((more = hl_reader_next_process(r, &q, &err)) > 0) {
            const struct hl_event *ev;
            ssize_t k;
            while ((k = hl_reader_events(r, &ev, &err)) > 0)
                events += (uint64_t)k;
            if (k < 0)
                more = -1;
            if (more < 0)
                break;
        }
        hl_reader_close(r);
        if (more < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        double b = now() - a;
        if (b < best)
            best = b;
    }
    struct stat st;
    stat(file, &st);
    printf("%-40s %9llu events  %6.3f bytes/event  decode %6.1f M events/s\n", file,
           (unsigned long long)events, events ? (double)st.st_size / (double)events : 0.0,
           (double)events / best / 1e6);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--decode") == 0) {
        int rc = 0;
        for (int i = 2; i < argc; i++)
            rc |= decode_file(argv[i], 5);
        return rc;
    }
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 5000000;
    uint32_t threads = argc > 2 ? (uint32_t)atoi(argv[2]) : 1;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    char file[512];
    snprintf(file, sizeof file, "%s/bench-trace-%d.hlt", dir, (int)getpid());
    struct hl_event *e = malloc(n * sizeof *e);
    struct synth s;
    synth_init(&s, 42, threads);
    for (size_t i = 0; i < n; i++)
        synth_next(&s, &e[i]);
    synth_done(&s);

    struct hl_err err;
    struct hl_process p = {.pid = 1, .page_size = 4096};
    double t0 = now();
    struct hl_writer *w = hl_writer_open(file, &err);
    if (!w || hl_writer_begin_process(w, &p, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (hl_writer_event(w, &e[i], &err) < 0) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
    if (hl_writer_close(w, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double t1 = now();
    struct stat st;
    stat(file, &st);

    double best = 1e9;
    size_t got = 0;
    for (int rep = 0; rep < 3; rep++) {
        double a = now();
        struct hl_reader *r = hl_reader_open(file, &err);
        struct hl_process q;
        hl_reader_next_process(r, &q, &err);
        const struct hl_event *ev;
        ssize_t k;
        uint64_t sum = 0;
        got = 0;
        while ((k = hl_reader_events(r, &ev, &err)) > 0) {
            got += (size_t)k;
            sum += ev[k - 1].size;
        }
        hl_reader_close(r);
        double b = now() - a;
        if (b < best)
            best = b;
        if (sum == 42)
            printf(" ");
    }
    unlink(file);
    printf("events           %zu (threads %u)\n", n, threads);
    printf("bytes per event  %.3f\n", (double)st.st_size / (double)n);
    printf("encode           %.1f M events/s\n", (double)n / (t1 - t0) / 1e6);
    printf("decode           %.1f M events/s%s\n", (double)got / best / 1e6,
           got == n ? "" : "  (EVENT COUNT MISMATCH)");
    free(e);
    return got == n ? 0 : 1;
}
