/*
 * plot.c: `heaplab plot`, replay results (or `heaplab stat --json` output) to gnuplot
 * charts and a Markdown report.
 *
 * Orchestration only: tell the input apart by its content (stat output is JSON with a
 * size_histogram, or an array of such objects), read it (plot/results.c for results and
 * timelines, plot/stats.c for stat), check that gnuplot and the chart templates are
 * there, draw (plot/charts.c, plot/stats.c; templates in scripts/gnuplot/) and write
 * report.md (plot/report.c) or stat-report.md.  The input files are only read, and bad
 * input is refused before anything is written.
 */
#include "cmd.h"
#include "config.h"
#include "plot/json.h"
#include "options.h"
#include "plot/plot.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const usage[] = {
    "heaplab plot RESULTS.csv|RESULTS.json|STAT.json [--timeline FILE]... -o DIR [options]",
    "Draw replay results as charts (gnuplot, PNG and SVG) and write DIR/report.md that",
    "embeds them with tables and provenance: grouped bars per metric (time per operation,",
    "peak RSS, fragmentation, cache misses, page faults) with allocators side by side for",
    "each trace and error bars from the runs' min and max; memory over time per trace",
    "(from `heaplab replay --timeline FILE`); call latency percentiles per trace.",
    "Metrics that were not measured are listed in the report, not drawn as zeros.",
    "",
    "Given STAT.json, the output of `heaplab stat --json` (one trace, or an array of",
    "them; told apart from results by its fields), draw each trace's size histogram",
    "(blocks and bytes per power-of-two bucket) and lifetime histograms (in events and",
    "in time, with the blocks never freed), also per process for traces of several",
    "processes (processes with few allocations are only listed), and write",
    "DIR/stat-report.md with the key figures: events, peak live bytes, leaks and the",
    "leak trend.  --timeline and --normalise do not apply to it.",
    "",
    "Needs gnuplot (apt-get install gnuplot-nox).  The chart data and gnuplot variables",
    "are kept in DIR/data/ so a chart can be redrawn by hand.",
    NULL};

/* mkdir -p */
static void make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        hl_die("%s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) < 0 && errno != EEXIST)
                hl_die("%s: %s", buf, strerror(errno));
            *p = c;
            if (!c)
                break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) < 0 || !S_ISDIR(sb.st_mode))
        hl_die("%s: not a directory", path);
}

/* The gnuplot executable: $HEAPLAB_GNUPLOT, else `gnuplot` on PATH. */
static const char *find_gnuplot(void)
{
    static char out[PATH_MAX];
    const char *env = getenv("HEAPLAB_GNUPLOT");
    if (env && *env) {
        if (access(env, X_OK) == 0)
            return env;
        hl_die("%s (HEAPLAB_GNUPLOT): not an executable", env);
    }
    const char *path = getenv("PATH");
    if (path) {
        const char *p = path;
        while (*p) {
            size_t n = strcspn(p, ":");
            if (n > 0 && n < sizeof out - 9) {
                snprintf(out, sizeof out, "%.*s/gnuplot", (int)n, p);
                struct stat sb;
                if (stat(out, &sb) == 0 && S_ISREG(sb.st_mode) && access(out, X_OK) == 0)
                    return out;
            }
            p += n;
            if (*p == ':')
                p++;
        }
    }
    hl_die("gnuplot not found: install it with 'apt-get install gnuplot-nox' "
           "(the results file is unchanged and usable as it is)");
}

static int has_templates(const char *dir)
{
    char p[PATH_MAX];
    if (snprintf(p, sizeof p, "%s/bars.gp", dir) >= (int)sizeof p)
        return 0;
    return access(p, R_OK) == 0;
}

/* The chart templates: $HEAPLAB_DATADIR/gnuplot, the source tree when heaplab runs from
 * its build tree, the installed datadir, and the source tree as a last resort. */
static const char *find_templates(void)
{
    static char out[PATH_MAX];
    const char *env = getenv("HEAPLAB_DATADIR");
    if (env && *env) {
        snprintf(out, sizeof out, "%s/gnuplot", env);
        if (has_templates(out))
            return out;
        snprintf(out, sizeof out, "%s", env);
        if (has_templates(out))
            return out;
        hl_die("%s (HEAPLAB_DATADIR): no gnuplot templates (gnuplot/bars.gp) there", env);
    }
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s", hl_self_exe());
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    char build[PATH_MAX];
    if (!realpath(HEAPLAB_BUILD_DIR, build))
        snprintf(build, sizeof build, "%s", HEAPLAB_BUILD_DIR);
    const char *order[3] = {HEAPLAB_DATADIR "/gnuplot", HEAPLAB_SOURCE_DIR "/scripts/gnuplot",
                            NULL};
    if (strcmp(exe, build) == 0) {
        order[0] = HEAPLAB_SOURCE_DIR "/scripts/gnuplot";
        order[1] = HEAPLAB_DATADIR "/gnuplot";
    }
    for (int i = 0; order[i]; i++)
        if (has_templates(order[i])) {
            snprintf(out, sizeof out, "%s", order[i]);
            return out;
        }
    hl_die("gnuplot templates not found in %s/gnuplot or %s/scripts/gnuplot "
           "(set HEAPLAB_DATADIR to the folder that holds gnuplot/bars.gp)",
           HEAPLAB_DATADIR, HEAPLAB_SOURCE_DIR);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Make DIR and DIR/data/ and find gnuplot and the templates (dies when one is missing). */
static void prepare(struct hl_chart_opts *o, const char *outdir, char *datadir, size_t n)
{
    o->gnuplot = find_gnuplot();
    o->tpldir = find_templates();
    if (snprintf(datadir, n, "%s/data", outdir) >= (int)n)
        hl_die("%s: path too long", outdir);
    make_dirs(outdir);
    make_dirs(datadir);
    o->datadir = datadir;
}

static int plot_stats(struct hl_stats *st, struct hl_chart_opts *o, const char *outdir)
{
    char datadir[PATH_MAX], report[PATH_MAX];
    prepare(o, outdir, datadir, sizeof datadir);
    int drawn = hl_stats_plot(st, o, report, sizeof report);
    printf("wrote %s (%d charts)\n", report, drawn);
    return drawn;
}

int cmd_plot(int argc, char **argv)
{
    const char *outdir = NULL, *normalise = NULL, *formats = "png,svg", *size = NULL;
    struct hl_strlist timelines = {0};
    struct hl_option opts[] = {
        HL_OPT_STRING('o', "output", &outdir, "DIR", "write the charts and report.md (stat-report.md for stat JSON) here"),
        HL_OPT_LIST('t', "timeline", &timelines, "FILE",
                    "memory-over-time samples from `heaplab replay --timeline` (repeatable)"),
        HL_OPT_STRING('n', "normalise", &normalise, "ALLOC",
                      "bar charts relative to this allocator (e.g. glibc = 1.0)"),
        HL_OPT_STRING('f', "format", &formats, "LIST", "png, svg or png,svg (the default)"),
        HL_OPT_STRING('s', "size", &size, "WxH",
                      "every chart's size in pixels (default: chosen from the data)"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, 0);
    if (argc - i != 1)
        hl_usage_die("plot: give one results file (CSV or JSON) or stat JSON (see 'heaplab plot --help')");
    if (!outdir)
        hl_usage_die("plot: give the output folder with -o DIR (see 'heaplab plot --help')");
    const char *input = argv[i];

    struct hl_chart_opts o = {.outdir = outdir, .normalise = normalise};
    for (const char *p = formats; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "png", 3) == 0)
            o.png = 1;
        else if (n == 3 && strncmp(p, "svg", 3) == 0)
            o.svg = 1;
        else
            hl_usage_die("plot: --format: unknown format '%.*s' (png, svg or png,svg)",
                         (int)n, p);
        p += n;
        if (*p == ',')
            p++;
    }
    if (!o.png && !o.svg)
        hl_usage_die("plot: --format: give png, svg or png,svg");
    if (size) {
        char *end;
        o.width = strtol(size, &end, 10);
        if (*end == 'x')
            o.height = strtol(end + 1, &end, 10);
        if (*end || o.width < 200 || o.height < 150 || o.width > 10000 || o.height > 10000)
            hl_usage_die("plot: --size: want WIDTHxHEIGHT in pixels, e.g. 1200x600 "
                         "(200x150 to 10000x10000)");
    }

    /* stat output or replay results?  Only JSON can be stat output. */
    size_t len;
    char *text = hl_plot_slurp(input, &len);
    const char *p = text;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    p += strspn(p, " \t\r\n");
    if (*p == '{' || *p == '[') {
        struct hl_json *doc = hl_json_parse(input, p);
        if (hl_stats_is_stat(doc)) {
            if (timelines.n)
                hl_usage_die("plot: --timeline goes with replay results; %s is `heaplab "
                             "stat` output", input);
            if (normalise)
                hl_usage_die("plot: --normalise goes with replay results; %s is `heaplab "
                             "stat` output", input);
            struct hl_stats *st = hl_stats_read(doc, input);
            int drawn = plot_stats(st, &o, outdir);
            hl_stats_free(st);
            hl_json_free(doc);
            free(text);
            return drawn >= 0 ? 0 : 1;
        }
        hl_json_free(doc);
    }
    free(text);

    struct hl_results r;
    hl_results_read(&r, input);
    struct hl_timelines tl = {0};
    for (int k = 0; k < timelines.n; k++)
        hl_timelines_read(&tl, timelines.items[k]);
    /* Allocators seen only in timelines still get their own colour. */
    for (int k = 0; k < tl.n; k++)
        if (hl_results_alloc(&r, tl.t[k].alloc) < 0) {
            r.alloc = realloc(r.alloc, (size_t)(r.nallocs + 1) * sizeof *r.alloc);
            if (!r.alloc)
                hl_die("out of memory");
            r.alloc[r.nallocs++] = tl.t[k].alloc;
            qsort(r.alloc, (size_t)r.nallocs, sizeof *r.alloc, cmp_name);
        }
    if (normalise) {
        o.norm_index = hl_results_alloc(&r, normalise);
        if (o.norm_index < 0)
            hl_usage_die("plot: --normalise: no allocator '%s' in %s", normalise, input);
    }

    char datadir[PATH_MAX];
    prepare(&o, outdir, datadir, sizeof datadir);

    struct hl_charts charts;
    hl_charts_draw(&charts, &r, &tl, &o);
    char report[PATH_MAX];
    snprintf(report, sizeof report, "%s/report.md", outdir);
    hl_report_write(report, &r, &tl, &charts, &o, input);

    int drawn = 0;
    for (int k = 0; k < charts.n; k++)
        drawn += charts.c[k].drawn;
    printf("wrote %s (%d charts, %d not charted)\n", report, drawn, charts.n - drawn);
    return 0;
}
