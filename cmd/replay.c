/*
 * replay.c: `heaplab replay`: replay traces against allocators and report.
 *
 * Orchestration only: resolve and probe the allocators, plan every trace once
 * (cmd/replay/plan.c), run the workers -- runs interleaved across allocators, A B C A
 * B C, so that drift on the machine hits all of them alike -- then aggregate (median
 * with min and max) and print.  The worker is cmd_worker (cmd/replay/worker.c).
 */
#include "cmd.h"
#include "config.h"
#include "options.h"
#include "util.h"
#include "allocators/heaplab/options.h"
#include "allocators/settings.h"
#include "replay/gaps.h"
#include "replay/output.h"
#include "replay/runs.h"
#include "replay/shard.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char *const usage[] = {
    "heaplab replay [options] TRACE...",
    "Replay traces against allocators and compare time, latency, peak RSS,",
    "fragmentation, page faults and cache misses.  Each allocator runs in a fresh",
    "worker process with its library preloaded; runs are interleaved across",
    "allocators and the median of RUNS is reported with min and max.",
    "",
    "Allocators: glibc, jemalloc, mimalloc, heaplab, heaplab-firstfit, heaplab-bestfit,",
    "heaplab-buddy (see 'heaplab allocators'), or NAME=/path/lib.so for any library",
    "that replaces malloc, e.g. tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4.",
    "The default is every available allocator.",
    "A variant adds settings, NAME[=PATH]:KEY=VALUE[,KEY=VALUE...], and names its rows:",
    "  -a 'glibc:trim_threshold=128k' -a 'jemalloc:dirty_decay_ms=0,narenas=1'",
    "  -a 'heaplab:retain=1m' -a 'tc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4:release_rate=0'",
    "They reach only that allocator's workers, through GLIBC_TUNABLES, MALLOC_CONF",
    "(jemalloc), MIMALLOC_*, TCMALLOC_* or HEAPLAB_*; a size takes k, m, g.  A sweep",
    "-a 'glibc:trim_threshold={128k,1m,16m}' expands to one variant per value.  Names and",
    "values are checked before anything runs: 'heaplab allocators --settings NAME' lists",
    "what NAME takes.  Results carry the variables in their settings field.",
    "--shard I/N splits the cells (trace x allocator) among N jobs without overlap;",
    "'heaplab merge' joins the shards' results (scripts/fanout-parallel, fanout-slurm,",
    "and .github/workflows/compare.yml run them).",
    "",
    "--counters=sim runs one extra replay per allocator under valgrind's callgrind",
    "(cache simulator, collection only around the replay loop): deterministic",
    "instruction counts and D1/LL misses where the machine has no hardware counters",
    "(simulated caches: 32 KiB 8-way L1, 8 MiB 16-way LL, 64-byte lines).  Counts",
    "repeat exactly for single-threaded traces or --threads=serial and allocators that",
    "do not read the clock (glibc); threads waiting on each other add spin loops.",
    "Latency (malloc p50, p99, p99.9, max; in cycles, with rdtsc) is taken on the timed",
    "events, one in 64 and the same ones for every allocator: max is the largest of those,",
    "not of every call; the percentiles are exact below 1024 cycles, within 1% above.",
    "Timed runs replay with no contract check: the checks (--check) run in one more",
    "run per allocator, after the timed ones, whose time is never reported; the cell",
    "takes its violations from it.",
    "peak RSS is what a program running under the allocator pays beyond its own memory:",
    "the worker's high-water mark less the harness's own resident memory (heaplab and",
    "the libraries it needs, its tables and stacks) at the start of the replay; the",
    "allocator's start-up memory (its library, libraries only it loads, what it set up",
    "before the first call) stays in it, and is also given alone (startup_rss_bytes).",
    "startup_ns (CSV, JSON) is what starting a process under the allocator took: from",
    "the fork of the worker to its first own instruction (exec, loading the allocator's",
    "library and what only it loads, its constructors), median of the runs.  It is not",
    "in the time, which covers the replay loop only; a program of many short processes",
    "pays it once per process (the harness's own share is the same for every allocator).",
    "fragmentation = (peak RSS - startup_rss_bytes) / replay_live_bytes, the live bytes",
    "the replay itself held at most: with one replay thread the recorded peak; with",
    "several, the most seen at the ends of windows, where every thread stands still",
    "(peak_live_bytes is the recorded program's).  A large block whose resident pages",
    "the trace counted (the program wrote only part of it) counts as those pages.  It",
    "can be below 1 only when live blocks are not resident (--touch=none or head: pages",
    "never written) or sit in memory that was resident before the replay started (the",
    "allocator's start-up memory).",
    "A trace recorded by attaching to a running program (record -p) starts mid-life: a",
    "free of a block allocated before the attach is skipped (counted in skipped_unknown),",
    "a realloc of one is replayed as an allocation of its new size.",
    "Each result has a status: ok, or why the cell was not measured (\"n/a: timed out",
    "after 5 s\", a crash); such a cell's measured fields are empty in CSV, null in JSON,",
    "and the other cells are still measured.  Every worker run has a time limit",
    "(--timeout; by default derived from the shortest run on the same trace).",
    "JSON also splits time_ns into parts that add up to it (time_split):",
    "  allocator_ns    inside the allocator's calls: one event in 64 is timed in",
    "                  cycles, less the timer's own cost, scaled to its 64 events (a",
    "                  window over 100 us, most likely the scheduler's, counts once)",
    "  touch_check_ns  touching new blocks, measured the same way",
    "  wait_ns         waiting for a block another replay thread allocates, or for the",
    "                  other threads at the end of a window, timed in full",
    "  gap_ns          --gaps: the program's time between calls, spent writing to its",
    "                  recent live blocks (timed in full)",
    "  rest_ns         the remainder: heaplab's own loop, its timers, timeline samples",
    "The parts are measured in the replay threads' time (thread_ns, their loop times",
    "summed; the wall time in serial mode) and scaled to the wall time; off_cpu_ns is",
    "how much of it the threads were not running (preempted, blocked, yielding), which",
    "overlaps the parts.  from_events: how many events were timed.",
    "--gaps replays serially and, after every " HL_STR(HL_GAP_EVENTS) " events, spends the program's",
    "recorded time over them (the trace's clock) writing one byte per cache line to the",
    "first " HL_STR(HL_GAP_BLOCK_BYTES) " bytes of the " HL_STR(HL_GAP_RECENT) " blocks allocated last that are still live,",
    HL_STR(HL_GAP_LINES_PER_US) " lines per microsecond of recorded time: the same work for every",
    "allocator, slower where it placed the blocks badly for the caches.  JSON gives",
    "gaps.recorded_ns and gaps.lines_written.",
    "--timeline FILE writes the median run's samples (live bytes from the trace, RSS",
    "counted as peak RSS is) as CSV: trace,allocator,run,event,time_ns,live_bytes,rss_bytes.",
    NULL};

struct choice {
    const char *name;
    int value;
};

static int pick(const char *opt, const char *v, const struct choice *c)
{
    for (; c->name; c++)
        if (strcmp(c->name, v) == 0)
            return c->value;
    hl_usage_die("--%s: unknown value '%s'", opt, v);
}

static const struct choice threads_c[] = {{"recorded", 0}, {"serial", 1}, {NULL, 0}};
static const struct choice touch_c[] = {
    {"page", HL_TOUCH_PAGE}, {"all", HL_TOUCH_ALL}, {"none", HL_TOUCH_NONE},
    {"head", HL_TOUCH_HEAD}, {NULL, 0}};
static const struct choice check_c[] = {
    {"cheap", HL_CHECK_CHEAP}, {"full", HL_CHECK_FULL}, {"none", HL_CHECK_NONE}, {NULL, 0}};
static const struct choice counters_c[] = {{"auto", HL_CNT_AUTO}, {"perf", HL_CNT_PERF},
                                           {"sim", HL_CNT_SIM}, {"none", HL_CNT_NONE},
                                           {NULL, 0}};
enum { FMT_TABLE, FMT_CSV, FMT_JSON, OUT_TIMELINE };
static const struct choice format_c[] = {
    {"table", FMT_TABLE}, {"csv", FMT_CSV}, {"json", FMT_JSON}, {NULL, 0}};

static void read_cpu(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            if (c) {
                c++;
                while (*c == ' ' || *c == '\t')
                    c++;
                c[strcspn(c, "\n")] = 0;
                snprintf(out, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

/* The environment variables that tune the allocators, as they reach every worker. */
static void read_tunables(char *out, size_t n)
{
    extern char **environ;
    static const char *const prefixes[] = {
        "GLIBC_TUNABLES=", "MALLOC_", "JE_MALLOC_CONF=", "MIMALLOC_", "TCMALLOC_",
    /* heaplab's own allocators (allocators/heaplab/options.h) */
#define HL_TUNABLE_VAR(id, env, dflt, help) env "=",
        HLM_OPTIONS(HL_TUNABLE_VAR)
#undef HL_TUNABLE_VAR
        NULL};
    size_t len = 0;
    out[0] = 0;
    for (char **e = environ; *e; e++)
        for (int i = 0; prefixes[i]; i++)
            if (strncmp(*e, prefixes[i], strlen(prefixes[i])) == 0) {
                int k = snprintf(out + len, n - len, "%s%s", len ? ";" : "", *e);
                if (k > 0 && len + (size_t)k < n)
                    len += (size_t)k;
                break;
            }
}

/* glibc's MALLOC_PERTURB_ (meson sets it for tests) makes glibc write every byte it
 * hands out and takes back: passed through to its workers like any tunable, but a cost
 * the program run without it does not have, so it is said out loud. */
static void warn_perturb(const struct hl_alloc *a, int n)
{
    const char *v = getenv("MALLOC_PERTURB_");
    if (!v || !*v || strtol(v, NULL, 0) == 0)
        return;
    for (int i = 0; i < n; i++)
        if (!a[i].path[0]) {
            hl_warn("MALLOC_PERTURB_=%s is set: glibc's workers write every byte they "
                    "allocate and free, which a program run without it does not", v);
            return;
        }
}

/* The progress line: which trace, run and allocator, and, once a worker has run for a
 * while, for how long (and against which --timeout), so that a slow allocator on a big
 * trace is visibly working, not stuck. */
static struct {
    int on;
    const char *trace, *alloc;
    int run, runs;
    long timeout_s;
} prog;

static void progress_show(long elapsed_s)
{
    fprintf(stderr, "\r\033[Kreplay %s: run %d/%d, %s", prog.trace, prog.run, prog.runs,
            prog.alloc);
    if (elapsed_s > 0) {
        fprintf(stderr, " (%ld s", elapsed_s);
        if (prog.timeout_s)
            fprintf(stderr, " of --timeout %ld", prog.timeout_s);
        fputc(')', stderr);
    }
    fflush(stderr);
}

static void progress_tick(void *arg, long elapsed_s)
{
    (void)arg;
    if (prog.on && prog.trace)
        progress_show(elapsed_s);
}

static int show_progress;

static void progress(const char *trace, int run, int runs, const char *alloc)
{
    prog.on = show_progress;
    prog.trace = trace;
    if (!prog.on)
        return;
    if (trace) {
        prog.run = run;
        prog.runs = runs;
        prog.alloc = alloc;
        progress_show(0);
    } else {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
    }
}

#define MAX_ALLOCS 32

static void check_writable(const char *path)
{
    if (!path)
        return;
    char dir[PATH_MAX];
    hl_dir_of(path, dir, sizeof dir);
    if (access(path, F_OK) == 0 ? access(path, W_OK) != 0 : access(dir, W_OK | X_OK) != 0)
        hl_die("%s: cannot write: %m", path);
}

/* Write the results in one form to path (stdout when NULL). */
static void emit(const char *path, int form, const struct hl_rp_cell *cells, int n,
                 const struct hl_rp_meta *meta)
{
    FILE *f = path ? fopen(path, "w") : stdout;
    if (!f)
        hl_die("%s: cannot write: %m", path);
    if (form == FMT_CSV)
        hl_rp_write_csv(f, cells, n, meta);
    else if (form == FMT_JSON)
        hl_rp_write_json(f, cells, n, meta);
    else if (form == OUT_TIMELINE)
        hl_rp_write_timeline(f, cells, n);
    else
        hl_rp_write_table(f, cells, n, meta);
    if (path ? fclose(f) != 0 : fflush(f) != 0)
        hl_die("%s: write error", path ? path : "standard output");
}

int cmd_replay(int argc, char **argv)
{
    struct hl_strlist alist = {0};
    long runs = 3;
    const char *threads = "recorded", *touch = "page", *check = "cheap", *counters = "auto",
               *format = "table", *out_path = NULL, *timeline_path = NULL, *csv_path = NULL,
               *json_path = NULL;
    uint64_t timeline_every = 0, window = 0;
    int quiet = 0, no_cache = 0, gaps = 0;
    long process = -1, timeout = 0;
    const char *shard_arg = NULL;
    struct hl_rp_shard shard = {1, 1};
    struct hl_option opts[] = {
        HL_OPT_LIST('a', "allocators", &alist, "LIST",
                    "allocators to compare, comma-separated: NAME, NAME=/path/lib.so, "
                    "either with :KEY=VALUE,... settings"),
        HL_OPT_INT('n', "runs", &runs, "RUNS", "runs per allocator (default 3)"),
        HL_OPT_STRING(0, "threads", &threads, "MODE",
                      "recorded (one thread per recorded thread, kept to the recorded "
                      "order at the grain of a --window, default) or serial"),
        HL_OPT_SIZE(0, "window", &window, "N",
                    "recorded threads: no thread runs more than N events of the recorded "
                    "order ahead of another (default " HL_STR(HL_PLAN_WINDOW_THREADS) ")"),
        HL_OPT_STRING(0, "touch", &touch, "HOW",
                      "write to new blocks: page (one byte per page, default; a calloc'd "
                      "block's pages read first; a block of 64 KiB or more only as many "
                      "pages as the program had resident in it, where the trace counted "
                      "them), all, none, head (one byte per page of the "
                      "first " HL_STR(HL_TOUCH_HEAD_KIB) " KiB)"),
        HL_OPT_STRING(0, "check", &check, "LEVEL",
                      "contract checks: cheap (default), full (overlaps, realloc contents), none"),
        HL_OPT_STRING(0, "counters", &counters, "SRC",
                      "auto (perf if it works, default), perf, sim (callgrind), none"),
        HL_OPT_STRING(0, "format", &format, "FMT", "table (default), csv or json"),
        HL_OPT_STRING('o', "output", &out_path, "FILE", "write the results to FILE"),
        HL_OPT_STRING(0, "csv", &csv_path, "FILE",
                      "also write the results as CSV to FILE (the table still prints)"),
        HL_OPT_STRING(0, "json", &json_path, "FILE",
                      "also write the results as JSON to FILE (the table still prints)"),
        HL_OPT_STRING(0, "timeline", &timeline_path, "FILE",
                      "write memory over time (median run) as CSV to FILE"),
        HL_OPT_SIZE(0, "timeline-every", &timeline_every, "N",
                    "sample every N events (default: about 500-1000 samples)"),
        HL_OPT_INT('p', "process", &process, "PID",
                   "replay only this process of each trace (default: every process)"),
        HL_OPT_INT(0, "timeout", &timeout, "SECONDS",
                   "give up on a worker run after SECONDS; its allocator's cell on that trace "
                   "is reported as n/a: timed out (default: " HL_STR(HL_RP_TIMEOUT_FACTOR)
                   "x the shortest run on the trace so far, at least "
                   HL_STR(HL_RP_TIMEOUT_MIN_S) " s, at most " HL_STR(HL_RP_TIMEOUT_CAP_S)
                   " s; before any run finished, " HL_STR(HL_RP_TIMEOUT_CAP_S) " s)"),
        HL_OPT_FLAG(0, "no-plan-cache", &no_cache,
                    "plan every trace afresh; by default plans are kept beside the trace "
                    "(TRACE.N.plan) and reused while the trace and options are the same"),
        HL_OPT_STRING(0, "shard", &shard_arg, "I/N",
                      "run only shard I of N: the (trace, allocator) cells whose number is I "
                      "modulo N (cells counted from 1, traces first), for fan-out"),
        HL_OPT_FLAG(0, "gaps", &gaps,
                    "spend the program's recorded time between calls writing to its recent "
                    "live blocks (serial threads; time then predicts the program's)"),
        HL_OPT_FLAG('q', "quiet", &quiet, "no progress line"),
        HL_OPT_END()};
    int first = hl_parse_options(argc, argv, opts, usage, 0);
    if (first >= argc)
        hl_usage_die("replay: no trace given (see 'heaplab replay --help')");
    if (runs < 1 || runs > 1000)
        hl_usage_die("--runs: must be between 1 and 1000");
    if (timeout < 0 || timeout > 1000000)
        hl_usage_die("--timeout: must be between 1 and 1000000 seconds (0: the default)");
    int serial = pick("threads", threads, threads_c);
    if (gaps)
        serial = 1; /* the gaps follow the trace's global order */
    struct hl_rp_wopts wo = {pick("touch", touch, touch_c), pick("check", check, check_c),
                             pick("counters", counters, counters_c), timeline_path != NULL,
                             -1, timeout, progress_tick, NULL};
    prog.timeout_s = timeout;
    int fmt = pick("format", format, format_c);
    if (shard_arg && hl_rp_shard_parse(shard_arg, &shard) != 0)
        hl_usage_die("--shard: expected I/N with 1 <= I <= N, not '%s'", shard_arg);

    /* Allocators: resolved and probed before any work, so a bad name fails fast. */
    static struct hl_alloc allocs[MAX_ALLOCS];
    int nalloc = 0;
    char why[1024];
    if (alist.n) {
        static char specs[MAX_ALLOCS][1024];
        int ns = 0;
        for (int i = 0; i < alist.n; i++)
            if (hl_variants_expand(alist.items[i], specs[0], sizeof specs[0], &ns, MAX_ALLOCS,
                                   why, sizeof why) != 0)
                hl_die("%s", why);
        for (int i = 0; i < ns; i++) {
            if (hl_registry_resolve(specs[i], &allocs[nalloc], why, sizeof why) != 0)
                hl_die("%s", why);
            for (int j = 0; j < nalloc; j++)
                if (strcmp(allocs[j].name, allocs[nalloc].name) == 0)
                    hl_usage_die("-a: allocator '%s' given twice", allocs[j].name);
            if (hl_rp_probe(&allocs[nalloc], why, sizeof why) != 0)
                hl_die("%s", why);
            nalloc++;
        }
    } else {
        struct hl_alloc all[MAX_ALLOCS];
        int n = hl_registry_list(all, MAX_ALLOCS);
        for (int i = 0; i < n; i++) {
            if (!all[i].available)
                continue;
            if (hl_rp_probe(&all[i], why, sizeof why) != 0) {
                hl_warn("skipping %s: %s", all[i].name, why);
                continue;
            }
            allocs[nalloc++] = all[i];
        }
    }
    if (nalloc == 0)
        hl_die("no allocator available");

    /* Plans, one per process section with events. */
    struct hl_rp_row *rows = NULL;
    int nrows = 0, *gap_fds = NULL;
    for (int i = first; i < argc; i++) {
        struct hl_err err;
        struct hl_plan_opts po = {serial, timeline_path ? timeline_every : UINT64_MAX, window,
                                  !no_cache, 0, 0};
        const int before = nrows;
        if (hl_plan_trace(argv[i], &po, process, &rows, &nrows, &err) != 0)
            hl_die("%s", err.msg);
        if (gaps && (!(gap_fds = realloc(gap_fds, (size_t)nrows * sizeof *gap_fds + 1)) ||
                     hl_gaps_trace(argv[i], process, rows + before, nrows - before,
                                   gap_fds + before, &err) != 0))
            hl_die("%s", gap_fds ? err.msg : "out of memory");
    }

    /* Output files are created only once there are results, so a failed replay leaves
     * nothing behind; whether they can be written is checked now, before the work. */
    check_writable(out_path);
    check_writable(timeline_path);
    check_writable(csv_path);
    check_writable(json_path);

    struct hl_rp_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.threads_mode = serial ? "serial" : "recorded";
    meta.touch = touch;
    meta.check = check;
    read_tunables(meta.tunables, sizeof meta.tunables);
    read_cpu(meta.cpu, sizeof meta.cpu);
    hl_rp_machine(&meta);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(meta.kernel, sizeof meta.kernel, "%s %s", u.sysname, u.release);
    time_t now = time(NULL);
    strftime(meta.date, sizeof meta.date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));

    int ncells = nrows * nalloc;
    struct hl_rp_cell *cells = calloc((size_t)ncells, sizeof *cells);
    if (!cells)
        hl_die("out of memory");
    show_progress = !quiet && hl_isatty(2);
    warn_perturb(allocs, nalloc); /* the input is good: about to run */
    struct hl_rp_runner rn = {allocs, nalloc, (int)runs, wo, progress, &shard, gap_fds};
    for (int r = 0; r < nrows; r++)
        hl_rp_run_row(&rn, &rows[r], r, &cells[r * nalloc]);
    progress(NULL, 0, 0, NULL);
    ncells = hl_rp_shard_compact(cells, ncells);

    emit(out_path, fmt, cells, ncells, &meta);
    /* --csv/--json: extra copies, so one run gives the table and the files. */
    if (csv_path)
        emit(csv_path, FMT_CSV, cells, ncells, &meta);
    if (json_path)
        emit(json_path, FMT_JSON, cells, ncells, &meta);
    if (timeline_path)
        emit(timeline_path, OUT_TIMELINE, cells, ncells, &meta);
    fflush(stdout);
    return 0;
}
