/*
 * test_results.c: plot's readers of replay results (cmd/plot/results.c), as a unit test
 * that the sanitizer build also runs.
 *
 * First what a user relies on when plotting: the sample CSV and JSON (tests/plot/data/,
 * in replay's schema) read into the same rows, quoted fields with commas intact, null
 * and empty as unmeasured, labels shortened, allocators in name order.  Then robustness:
 * thousands of deterministic corruptions of each sample (flipped, inserted, deleted and
 * truncated bytes) must each give either a result or one line "heaplab: ..." and exit 1,
 * never a crash, a hang or a sanitizer report.  The readers end bad input with hl_die(),
 * so each corrupted input is read in a child process.
 */
#include "json.h"
#include "plot.h"
#include "tap.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/heaplab-test-results.XXXXXX";

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || fread(buf, 1, (size_t)len, f) != (size_t)len)
        exit(1);
    buf[len] = 0;
    fclose(f);
    *n = (size_t)len;
    return buf;
}

static const char *src_file(const char *rel)
{
    static char path[4096];
    const char *src = getenv("HEAPLAB_SRC");
    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    return path;
}

static void write_file(const char *path, const char *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f))
        exit(1);
}

static void write_str(const char *path, const char *s)
{
    write_file(path, s, strlen(s));
}

/* Read `path` in a child.  Returns 0 if it was read, 1 if it was refused with exactly
 * one "heaplab: " line on stderr, -1 otherwise (crash, other exit, bad message). */
static int read_in_child(const char *path, int timeline, char *msg, size_t msgn);

/* What `heaplab plot` does with a JSON file: stat output goes to the stat reader,
 * anything else to the results reader. */
static void read_stat_or_results(const char *path)
{
    size_t len;
    char *text = hl_plot_slurp(path, &len);
    const char *p = text + strspn(text, " \t\r\n");
    if (*p == '{' || *p == '[') {
        struct hl_json *doc = hl_json_parse(path, p);
        if (hl_stats_is_stat(doc)) {
            hl_stats_free(hl_stats_read(doc, path));
            hl_json_free(doc);
            free(text);
            return;
        }
        hl_json_free(doc);
    }
    free(text);
    struct hl_results r;
    hl_results_read(&r, path);
    hl_results_free(&r);
}

/* LeakSanitizer's switch, present only in sanitizer builds: a reader that refuses its
 * input ends the process with hl_die() and leaves what it had read allocated, as every
 * command does; that is not a leak, and whether LSan reports it depends on what the
 * stack still points to, which made the corruption checks flaky under ASan. */
extern void __lsan_disable(void) __attribute__((weak));

/* timeline: 0 results, 1 timeline, 2 stat JSON (or results, as plot decides). */
static int read_in_child(const char *path, int timeline, char *msg, size_t msgn)
{
    int fds[2];
    if (pipe(fds))
        exit(1);
    fflush(stdout); /* a child that exits must not print the parent's TAP lines again */
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 2);
        close(fds[0]);
        alarm(10); /* a hang is a failure, not a stuck test */
        if (__lsan_disable)
            __lsan_disable();
        if (timeline == 2) {
            read_stat_or_results(path);
        } else if (timeline) {
            struct hl_timelines t = {0};
            hl_timelines_read(&t, path);
        } else {
            struct hl_results r;
            hl_results_read(&r, path);
        }
        _exit(0);
    }
    close(fds[1]);
    char buf[4096];
    size_t n = 0;
    ssize_t k;
    while ((k = read(fds[0], buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    close(fds[0]);
    buf[n] = 0;
    int st;
    waitpid(pid, &st, 0);
    snprintf(msg, msgn, "%.*s", (int)strcspn(buf, "\n"), buf);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0 && n == 0)
        return 0;
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += buf[i] == '\n';
    if (WIFEXITED(st) && WEXITSTATUS(st) == 1 && lines == 1 &&
        strncmp(buf, "heaplab: ", 9) == 0)
        return 1;
    if (WIFSIGNALED(st) && snprintf(msg, msgn, "killed by signal %d: %.200s", WTERMSIG(st),
                                    buf) < 0)
        msg[0] = 0;
    return -1;
}

/* xorshift: the same corruptions on every run. */
static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static size_t mutate(char *out, const char *in, size_t n, size_t cap)
{
    static const char special[] = "\",\n{}[]:\\0-e.9 \r\x01\xff";
    memcpy(out, in, n);
    int edits = 1 + (int)rnd(4);
    for (int e = 0; e < edits && n > 0; e++) {
        size_t at = rnd((unsigned)n);
        switch (rnd(5)) {
        case 0: /* flip */
            out[at] = (char)(out[at] ^ (1 << rnd(8)));
            break;
        case 1: /* overwrite with a character that matters to CSV or JSON */
            out[at] = special[rnd(sizeof special - 1)];
            break;
        case 2: /* insert */
            if (n + 1 < cap) {
                memmove(out + at + 1, out + at, n - at);
                out[at] = special[rnd(sizeof special - 1)];
                n++;
            }
            break;
        case 3: { /* delete a run */
            size_t len = 1 + rnd(40);
            if (at + len > n)
                len = n - at;
            memmove(out + at, out + at + len, n - at - len);
            n -= len;
            break;
        }
        case 4: /* truncate */
            n = at;
            break;
        }
    }
    return n;
}

static void corruptions(const char *name, const char *seedfile, const char *ext, int timeline,
                        int count)
{
    size_t n;
    char *seed = slurp(src_file(seedfile), &n);
    size_t cap = n + 64;
    char *buf = malloc(cap);
    char path[256], msg[4096];
    snprintf(path, sizeof path, "%s/input.%s", tmpdir, ext);
    int bad = 0, refused = 0;
    for (int i = 0; i < count; i++) {
        size_t m = mutate(buf, seed, n, cap);
        write_file(path, buf, m);
        int r = read_in_child(path, timeline, msg, sizeof msg);
        if (r < 0 && bad++ < 3) {
            char keep[300];
            snprintf(keep, sizeof keep, "%s/bad-%s-%d.%s", tmpdir, name, i, ext);
            write_file(keep, buf, m);
            tap_diag("corruption %d: %s (input kept in %s)", i, msg, keep);
        }
        refused += r == 1;
    }
    TAP_CHECK(bad == 0, "%d corruptions of %s each give a result or a one-line error",
              count, name);
    TAP_CHECK(refused > count / 4, "most corruptions of %s are refused (%d of %d)", name,
              refused, count);
    free(seed);
    free(buf);
}

static const struct hl_row *row_of(const struct hl_results *r, const char *trace,
                                   const char *alloc)
{
    for (int i = 0; i < r->nrows; i++)
        if (strcmp(r->rows[i].v[HL_RES_TRACE], trace) == 0 &&
            strcmp(r->rows[i].v[HL_RES_ALLOCATOR], alloc) == 0)
            return &r->rows[i];
    return NULL;
}

/* Corruptions per sample.  Under ASan each fork copies the page tables of its shadow
 * memory (tens of milliseconds), so the sanitizer build reads fewer; the libFuzzer
 * target of these readers (tests/fuzz, fuzz_plot.c) and its corpus, which the
 * sanitizer build also runs, cover far more inputs. */
#ifdef __SANITIZE_ADDRESS__
#define CORRUPTIONS 200
#else
#define CORRUPTIONS 1000
#endif

int main(int argc, char **argv)
{
    int count = argc > 1 ? atoi(argv[1]) : CORRUPTIONS;
    if (!mkdtemp(tmpdir))
        return 1;

    struct hl_results c, j;
    hl_results_read(&c, src_file("tests/plot/data/results.csv"));
    hl_results_read(&j, src_file("tests/plot/data/results.json"));
    TAP_EQ_U(c.nrows, 19, "the sample CSV has 19 rows (5 traces x 4 allocators, one missing)");
    TAP_EQ_U(c.ngroups, 5, "rows are grouped into 5 traces");
    TAP_CHECK(c.nallocs == 4 && strcmp(c.alloc[0], "glibc") == 0 &&
                  strcmp(c.alloc[1], "heaplab") == 0 && strcmp(c.alloc[3], "mimalloc") == 0,
              "allocators are in name order (the palette follows it)");
    const struct hl_row *cr = row_of(&c, "python-json", "jemalloc");
    const struct hl_row *jr = row_of(&j, "python-json", "jemalloc");
    TAP_CHECK(cr && strcmp(cr->v[HL_RES_CPU], "Intel(R) Xeon(R) CPU @ 2.20GHz, 2 cores") == 0,
              "a quoted CSV field keeps its comma");
    TAP_CHECK(cr && strcmp(cr->v[HL_RES_TUNABLES],
                           "MALLOC_CONF=background_thread:false,narenas:2") == 0,
              "tunables with commas survive");
    TAP_CHECK(cr && !cr->v[HL_RES_DTLB_MISSES] && isnan(hl_row_num(cr, HL_RES_DTLB_MISSES)),
              "an empty CSV field is unmeasured, not 0");
    TAP_CHECK(jr && !jr->v[HL_RES_DTLB_MISSES], "a JSON null is unmeasured, not 0");
    TAP_CHECK(jr && hl_row_num(jr, HL_RES_LAT_FREE_P999) == hl_row_num(cr, HL_RES_LAT_FREE_P999) &&
                  hl_row_num(jr, HL_RES_LAT_MALLOC_P50) == hl_row_num(cr, HL_RES_LAT_MALLOC_P50),
              "JSON latency.free.p999 and latency.malloc.p50 map onto the CSV columns");
    TAP_CHECK(jr && cr && hl_row_num(jr, HL_RES_ALLOC_TIME_NS) ==
                              floor(hl_row_num(cr, HL_RES_TIME_NS) * 0.55) &&
                          !cr->v[HL_RES_ALLOC_TIME_NS],
              "JSON time_split.allocator_ns is read (the CSV has no such column)");
    TAP_CHECK(jr && jr->v[HL_RES_CPU] && strcmp(jr->v[HL_RES_CPU], cr->v[HL_RES_CPU]) == 0,
              "JSON rows take the document's provenance");
    int same = c.nrows == j.nrows;
    for (int i = 0; same && i < c.nrows; i++)
        for (int k = 0; k < HL_NCOLS; k++) {
            if (k == HL_RES_ALLOC_TIME_NS)
                continue; /* JSON only */
            const char *a = c.rows[i].v[k], *b = j.rows[i].v[k];
            if (hl_cols[k].numeric ? hl_row_num(&c.rows[i], (enum hl_col)k) !=
                                             hl_row_num(&j.rows[i], (enum hl_col)k) &&
                                         !(isnan(hl_row_num(&c.rows[i], (enum hl_col)k)) &&
                                           isnan(hl_row_num(&j.rows[i], (enum hl_col)k)))
                                   : (!a != !b || (a && strcmp(a, b) != 0))) {
                tap_diag("row %d column %s: '%s' vs '%s'", i, hl_cols[k].name, a ? a : "",
                         b ? b : "");
                same = 0;
            }
        }
    TAP_CHECK(same, "the CSV and the JSON of the same results read the same");

    char label[128];
    hl_trace_label(label, sizeof label, "traces/corpus/gcc.hlt[2267]");
    TAP_CHECK(strcmp(label, "gcc[2267]") == 0, "a trace path is labelled by its file name, "
              "process kept (got '%s')", label);
    hl_trace_label(label, sizeof label, "larson");
    TAP_CHECK(strcmp(label, "larson") == 0, "a plain trace name is its own label");

    struct hl_timelines t = {0};
    hl_timelines_read(&t, src_file("tests/plot/data/timeline.csv"));
    int sorted = t.n == 12, run1 = 1;
    for (int i = 0; i < t.n; i++) {
        run1 &= t.t[i].run == 1;
        for (size_t p = 1; p < t.t[i].n; p++)
            sorted &= t.t[i].event[p] >= t.t[i].event[p - 1];
    }
    TAP_CHECK(sorted, "the sample timeline gives 12 series in event order");
    TAP_CHECK(run1, "a timeline keeps the first run of each trace and allocator");
    hl_timelines_free(&t);
    hl_results_free(&c);
    hl_results_free(&j);

    /* Messages name the file and line. */
    char path[256], msg[4096];
    snprintf(path, sizeof path, "%s/bad.csv", tmpdir);
    write_str(path, "trace,allocator,ops\na,glibc,1\nb,glibc,x\n");
    TAP_CHECK(read_in_child(path, 0, msg, sizeof msg) == 1 && strstr(msg, "bad.csv:3: ops"),
              "a bad number is reported at its line: %.80s", msg);
    snprintf(path, sizeof path, "%s/bad.json", tmpdir);
    write_str(path, "{\"results\": [\n{\"trace\": \"a\",\n \"allocator\": 3,,\n}]}");
    TAP_CHECK(read_in_child(path, 0, msg, sizeof msg) == 1 && strstr(msg, "bad.json:3:"),
              "a JSON syntax error is reported at its line: %.80s", msg);
    snprintf(path, sizeof path, "%s/dup.csv", tmpdir);
    write_str(path, "trace,allocator\na,glibc\na,glibc\n");
    TAP_CHECK(read_in_child(path, 0, msg, sizeof msg) == 1 && strstr(msg, "dup.csv:3:"),
              "a second row for the same trace and allocator is refused: %.80s", msg);

    corruptions("results.csv", "tests/plot/data/results.csv", "csv", 0, count);
    corruptions("results.json", "tests/plot/data/results.json", "json", 0, count);
    corruptions("timeline.csv", "tests/plot/data/timeline.csv", "csv", 1, count / 3);

    /* `heaplab stat --json` output (data/make-stat-sample): read as stat, and robust. */
    snprintf(path, sizeof path, "%s", src_file("tests/plot/data/stat.json"));
    TAP_CHECK(read_in_child(path, 2, msg, sizeof msg) == 0,
              "the sample stat JSON is read as stat output: %.80s", msg);
    snprintf(path, sizeof path, "%s/hist.json", tmpdir);
    write_str(path, "{\"file\": \"a.hlt\", \"events\": 1, \"allocations\": 1,\n"
                    "\"peak_live_bytes\": 1, \"leaked_blocks\": 0, \"leaked_bytes\": 0,\n"
                    "\"size_histogram\": [{\"lo\": 1, \"count\": 1, \"bytes\": 1},\n"
                    " {\"lo\": 1267650600228229401496703205376, \"count\": 1, \"bytes\": 1}],\n"
                    "\"lifetime_events_histogram\": [], \"lifetime_ns_histogram\": []}\n");
    TAP_CHECK(read_in_child(path, 2, msg, sizeof msg) == 1 && strstr(msg, "hist.json:3:"),
              "size buckets too far apart to draw are refused at their line: %.80s", msg);
    corruptions("stat.json", "tests/plot/data/stat.json", "json", 2, count);

    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (tap_failed == 0 && system(cmd) != 0)
        tap_diag("could not remove %s", tmpdir);
    return tap_done();
}
