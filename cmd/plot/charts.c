/*
 * charts.c: the charts of `heaplab plot`.
 *
 * For each chart this writes a data file and a small preamble of gnuplot variables into
 * OUTDIR/data/, then runs `gnuplot -e 'fmt=...; outfile=...' PREAMBLE TEMPLATE` once per
 * output format.  All drawing code lives in the templates (scripts/gnuplot/); this
 * file only decides what is drawn: which metrics have data, units, log or linear axis,
 * normalisation, label rotation, image size, and the colour of each allocator.
 *
 * Nothing unmeasured is drawn as zero: a missing value is NaN in the data file (no bar),
 * and a metric with no value at all is not drawn; its chart records why, for the report.
 */
#include "plot.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

const struct hl_metric hl_metrics[] = {
    {"time", "Replay time per operation",
     "wall time of the replay loop divided by the events replayed (median of the runs, "
     "error bars from the fastest to the slowest run); lower is better",
     HL_RES_TIME_NS, HL_RES_TIME_NS_MIN, HL_RES_TIME_NS_MAX, 1, 0, 0, 1},
    {"alloc-time", "Time in allocator calls per operation",
     "the part of the replay time spent inside malloc, free, realloc and the others, "
     "without touching the memory or the replay's own work (split by the cycles measured "
     "on sampled events); lower is better",
     HL_RES_ALLOC_TIME_NS, HL_NCOLS, HL_NCOLS, 1, 0, 0, 1},
    {"peak-rss", "Peak RSS",
     "peak resident memory of the replay worker above the harness's own, the allocator's "
     "start-up memory included as a program pays it (median of the runs, error bars min "
     "to max); lower is better",
     HL_RES_PEAK_RSS, HL_RES_PEAK_RSS_MIN, HL_RES_PEAK_RSS_MAX, 0, 1, 0, 1},
    {"fragmentation", "Fragmentation (peak RSS / peak live bytes)",
     "peak RSS less the allocator's start-up memory, divided by the largest number of "
     "requested bytes alive at once; 1.0 means no overhead; lower is better",
     HL_RES_FRAGMENTATION, HL_RES_PEAK_RSS_MIN, HL_RES_PEAK_RSS_MAX, 0, 0, 0, 1},
    {"instructions", "Instructions per operation",
     "instructions executed in the replay loop divided by the events replayed; lower is "
     "better",
     HL_RES_INSTRUCTIONS, HL_NCOLS, HL_NCOLS, 1, 0, 1, 1},
    {"l1d-misses", "L1 data cache misses per operation",
     "L1d misses in the replay loop divided by the events replayed; lower is better",
     HL_RES_L1D_MISSES, HL_NCOLS, HL_NCOLS, 1, 0, 1, 1},
    {"llc-misses", "Last-level cache misses per operation",
     "LLC misses in the replay loop divided by the events replayed; lower is better",
     HL_RES_LLC_MISSES, HL_NCOLS, HL_NCOLS, 1, 0, 1, 1},
    {"dtlb-misses", "dTLB misses per operation",
     "data TLB misses in the replay loop divided by the events replayed; lower is better",
     HL_RES_DTLB_MISSES, HL_NCOLS, HL_NCOLS, 1, 0, 1, 1},
    {"minor-faults", "Minor page faults",
     "minor page faults of the worker during the replay (getrusage); lower is better",
     HL_RES_MINOR_FAULTS, HL_NCOLS, HL_NCOLS, 0, 0, 0, 1},
    {"major-faults", "Major page faults",
     "major page faults (I/O) of the worker during the replay; lower is better",
     HL_RES_MAJOR_FAULTS, HL_NCOLS, HL_NCOLS, 0, 0, 0, 1},
};
const int hl_nmetrics = sizeof hl_metrics / sizeof hl_metrics[0];

/* A fixed palette, assigned by allocator name order, so one allocator has one colour
 * in every chart of a report.  Okabe-Ito colours first: told apart with the common
 * forms of colour blindness. */
static const char *const palette[] = {
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#5E3C99", "#8C6D00",
    "#000000", "#56B4E9", "#11A579", "#B2182B", "#F0E442",
};

const char *hl_alloc_color(int a)
{
    return palette[(a < 0 ? 0 : a) % (int)(sizeof palette / sizeof palette[0])];
}

void hl_file_stem(char *out, size_t n, const char *label)
{
    size_t k = 0;
    for (const char *p = label; *p && k + 1 < n; p++) {
        char ch = *p;
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
        if (!keep)
            ch = '-';
        if (ch == '-' && (k == 0 || out[k - 1] == '-'))
            continue;
        if (ch == '.' && k == 0)
            continue;
        out[k++] = ch;
    }
    while (k > 0 && out[k - 1] == '-')
        k--;
    if (k == 0 && n > 6)
        k = (size_t)snprintf(out, n, "trace");
    out[k] = 0;
}

double hl_metric_value(const struct hl_metric *m, const struct hl_row *row, double *lo,
                       double *hi)
{
    double v = hl_row_num(row, m->col);
    double l = m->col_min < HL_NCOLS ? hl_row_num(row, m->col_min) : NAN;
    double h = m->col_max < HL_NCOLS ? hl_row_num(row, m->col_max) : NAN;
    if (m->col == HL_RES_TIME_NS && isnan(v)) /* older rows: only ns/op */
        v = hl_row_num(row, HL_RES_NS_PER_OP) * hl_row_num(row, HL_RES_OPS);
    if (m->col == HL_RES_FRAGMENTATION) {
        double live = hl_row_num(row, HL_RES_PEAK_LIVE);
        if (isnan(v))
            v = hl_row_num(row, HL_RES_PEAK_RSS) / live;
        l = live > 0 ? l / live : NAN;
        h = live > 0 ? h / live : NAN;
    }
    if (m->per_op) {
        double ops = hl_row_num(row, HL_RES_OPS);
        if (!(ops > 0)) {
            v = l = h = NAN;
            if (m->col == HL_RES_TIME_NS)
                v = hl_row_num(row, HL_RES_NS_PER_OP);
        } else {
            v /= ops;
            l /= ops;
            h /= ops;
        }
    }
    if (!isfinite(v))
        v = NAN;
    if (lo)
        *lo = isfinite(l) ? l : NAN;
    if (hi)
        *hi = isfinite(h) ? h : NAN;
    return v;
}

/* ---------------------------------------------------------------- running gnuplot */

FILE *hl_plot_open(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        hl_die("%s: %s", path, strerror(errno));
    return f;
}

void hl_plot_close(FILE *f, const char *path)
{
    if (ferror(f) | fclose(f))
        hl_die("%s: write error", path);
}

/* A gnuplot string literal: single quotes, where only '' needs escaping (a newline is
 * spliced in as a double-quoted "\n"). */
static void gp_str(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        if (*s == '\n')
            fputs("' . \"\\n\" . '", f); /* single quotes do not know \n */
        else
            fputc(*s, f);
    }
    fputc('\'', f);
}

void hl_gp_set(FILE *f, const char *name, const char *value)
{
    fprintf(f, "%s = ", name);
    gp_str(f, value);
    fputc('\n', f);
}

void hl_gp_array(FILE *f, const char *name, const char *const *v, int n)
{
    fprintf(f, "array %s[%d]\n", name, n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        fprintf(f, "%s[%d] = ", name, i + 1);
        gp_str(f, v[i]);
        fputc('\n', f);
    }
}

/* The last non-empty line of a log file, for the one-line error. */
static void last_line(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    char line[512];
    out[0] = 0;
    if (!f)
        return;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        char *p = line;
        while (*p == ' ' || *p == '^')
            p++;
        if (*p)
            snprintf(out, n, "%s", p);
    }
    fclose(f);
}

void hl_gp_run(const struct hl_chart_opts *o, const char *tpl, const char *pre,
                        const char *stem)
{
    for (int k = 0; k < 2; k++) {
        const char *fmt = k == 0 ? "png" : "svg";
        if (!(k == 0 ? o->png : o->svg))
            continue;
        char out[4096], log[4096], tplpath[4096], vars[8192];
        snprintf(out, sizeof out, "%s/%s.%s", o->outdir, stem, fmt);
        snprintf(log, sizeof log, "%s/%s.%s.log", o->datadir, stem, fmt);
        snprintf(tplpath, sizeof tplpath, "%s/%s", o->tpldir, tpl);
        FILE *mf = fmemopen(vars, sizeof vars, "w");
        if (!mf)
            hl_die("out of memory");
        hl_gp_set(mf, "fmt", fmt);
        hl_gp_set(mf, "outfile", out);
        fclose(mf);
        vars[sizeof vars - 1] = 0;
        for (char *p = vars; *p; p++)
            if (*p == '\n')
                *p = ';';
        unlink(out);
        pid_t pid = fork();
        if (pid < 0)
            hl_die("fork: %s", strerror(errno));
        if (pid == 0) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int nul = open("/dev/null", O_RDONLY);
            if (fd >= 0) {
                dup2(fd, 2);
                dup2(fd, 1);
            }
            if (nul >= 0)
                dup2(nul, 0);
            execl(o->gnuplot, "gnuplot", "-e", vars, pre, tplpath, (char *)NULL);
            fprintf(stderr, "cannot run %s: %s\n", o->gnuplot, strerror(errno));
            _exit(127);
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                hl_die("waitpid: %s", strerror(errno));
        struct stat sb;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || stat(out, &sb) < 0 || sb.st_size == 0) {
            char why[512];
            last_line(log, why, sizeof why);
            hl_die("gnuplot failed on %s for %s.%s: %s (log: %s)", tpl, stem, fmt,
                   why[0] ? why : "no message", log);
        }
        unlink(log);
    }
}

/* The preamble every chart shares: size, template folder. */
FILE *hl_gp_preamble(const struct hl_chart_opts *o, const char *stem, char *path, size_t n,
                      long width, long height)
{
    snprintf(path, n, "%s/%s.gp", o->datadir, stem);
    FILE *f = hl_plot_open(path);
    fprintf(f, "# Variables for one heaplab chart, written by `heaplab plot`; run as\n"
               "#   gnuplot -e \"fmt='png'; outfile='%s.png'\" %s.gp TEMPLATE\n",
            stem, stem);
    hl_gp_set(f, "tpldir", o->tpldir);
    fprintf(f, "width = %ld\nheight = %ld\n", o->width ? o->width : width,
            o->height ? o->height : height);
    return f;
}

struct hl_chart *hl_chart_new(struct hl_charts *out)
{
    out->c = realloc(out->c, (size_t)(out->n + 1) * sizeof *out->c);
    if (!out->c)
        hl_die("out of memory");
    struct hl_chart *c = &out->c[out->n++];
    memset(c, 0, sizeof *c);
    c->group = -1;
    return c;
}

/* Bytes in a unit that keeps the largest value readable. */
void hl_byte_unit(double max, const char **unit, double *div)
{
    if (max >= 10.0 * (1 << 30)) {
        *unit = "GiB";
        *div = 1 << 30;
    } else if (max >= 10.0 * (1 << 20)) {
        *unit = "MiB";
        *div = 1 << 20;
    } else {
        *unit = "KiB";
        *div = 1 << 10;
    }
}

static size_t longest_group(const struct hl_results *r)
{
    size_t m = 0;
    for (int g = 0; g < r->ngroups; g++)
        if (strlen(r->label[g]) > m)
            m = strlen(r->label[g]);
    return m;
}

/* The counters' origin for a title: "simulated (callgrind)", "hardware counters". */
static const char *counter_origin(const struct hl_results *r)
{
    int sim = 0, perf = 0;
    for (int i = 0; i < r->nrows; i++) {
        const char *s = r->rows[i].v[HL_RES_COUNTERS_SOURCE];
        if (s && strcmp(s, "sim") == 0)
            sim = 1;
        else if (s && strcmp(s, "perf") == 0)
            perf = 1;
    }
    return sim && perf ? "hardware and simulated counters"
           : sim       ? "simulated by callgrind"
           : perf      ? "hardware counters"
                       : NULL;
}

/* Why a metric has no value: the counters_source reason when there is one. */
static void missing_reason(const struct hl_results *r, const struct hl_metric *m, char *out,
                           size_t n)
{
    if (m->is_counter)
        for (int i = 0; i < r->nrows; i++) {
            const char *s = r->rows[i].v[HL_RES_COUNTERS_SOURCE];
            if (s && strncmp(s, "n/a", 3) == 0) {
                snprintf(out, n, "not measured (%s)", s);
                return;
            }
        }
    if (m->col == HL_RES_ALLOC_TIME_NS) {
        snprintf(out, n, "not in these results (replay writes it to JSON only, as time_split)");
        return;
    }
    if (m->col == HL_RES_DTLB_MISSES && counter_origin(r) &&
        strcmp(counter_origin(r), "simulated by callgrind") == 0) {
        snprintf(out, n, "not measured (the cache simulator has no TLB model)");
        return;
    }
    snprintf(out, n, "not measured in any result");
}

/* Name an allocator or trace left out of a chart for having no value. */
static void note_missing(struct hl_chart *c, const char *name)
{
    size_t n = strlen(c->missing);
    if (n + strlen(name) + 8 >= sizeof c->missing) {
        if (!strstr(c->missing, "..."))
            snprintf(c->missing + n, sizeof c->missing - n, ", ...");
        return;
    }
    snprintf(c->missing + n, sizeof c->missing - n, "%s%s", n ? ", " : "", name);
}

static void bar_chart(struct hl_charts *out, const struct hl_results *r,
                      const struct hl_metric *m, const struct hl_chart_opts *o)
{
    struct hl_chart *c = hl_chart_new(out);
    c->metric = m;
    snprintf(c->id, sizeof c->id, "%s", m->id);
    int ng = r->ngroups, na = r->nallocs;
    double *v = calloc((size_t)(ng * na * 3), sizeof *v);
    if (!v)
        hl_die("out of memory");
    int any = 0, nonzero = 0, have_range = 0, any_bad = 0;
    double vmin = INFINITY, vmax = 0;
    for (int g = 0; g < ng; g++) {
        const struct hl_row *ref = o->normalise ? hl_results_find(r, g, o->norm_index) : NULL;
        double refv = ref ? hl_metric_value(m, ref, NULL, NULL) : NAN;
        for (int a = 0; a < na; a++) {
            double *x = &v[(g * na + a) * 3];
            const struct hl_row *row = hl_results_find(r, g, a);
            x[0] = x[1] = x[2] = NAN;
            if (row)
                x[0] = hl_metric_value(m, row, &x[1], &x[2]);
            if (!isnan(x[0])) {
                any = 1;
                nonzero |= x[0] != 0;
            }
            if (o->normalise) {
                for (int k = 0; k < 3; k++)
                    x[k] = refv > 0 ? x[k] / refv : NAN;
            }
            if (isnan(x[1]) || isnan(x[2])) {
                x[1] = x[2] = x[0];
            } else {
                have_range = 1;
            }
            for (int k = 0; k < 3; k++)
                if (!isnan(x[k]) && x[k] > 0) {
                    vmin = x[k] < vmin ? x[k] : vmin;
                    vmax = x[k] > vmax ? x[k] : vmax;
                }
        }
    }
    const char *origin = m->is_counter ? counter_origin(r) : NULL;
    snprintf(c->title, sizeof c->title, "%s%s%s%s", m->title, origin ? " (" : "",
             origin ? origin : "", origin ? ")" : "");
    if (!any) {
        missing_reason(r, m, c->note, sizeof c->note);
        free(v);
        return;
    }
    if (!nonzero) {
        snprintf(c->note, sizeof c->note, "0 in every result, so not charted");
        free(v);
        return;
    }
    if (o->normalise && !(vmax > 0)) {
        snprintf(c->note, sizeof c->note, "no trace has a value for %s to normalise to",
                 o->normalise);
        free(v);
        return;
    }

    /* Leave out the allocators and traces with no value at all here (heaplab's policy
     * variants without simulated counters, a trace too large for the simulator): they
     * would only be rows of "n/a".  Colours stay those of the whole report. */
    int *gi = malloc((size_t)ng * sizeof *gi), *ai = malloc((size_t)na * sizeof *ai);
    int ngk = 0, nak = 0;
    if (!gi || !ai)
        hl_die("out of memory");
    for (int a = 0; a < na; a++) {
        int has = 0;
        for (int g = 0; g < ng; g++)
            has |= !isnan(v[(g * na + a) * 3]);
        if (has)
            ai[nak++] = a;
        else
            note_missing(c, r->alloc[a]);
    }
    for (int g = 0; g < ng; g++) {
        int has = 0;
        for (int a = 0; a < na; a++)
            has |= !isnan(v[(g * na + a) * 3]);
        if (has)
            gi[ngk++] = g;
        else
            note_missing(c, r->label[g]);
    }

    /* Units and axis. */
    const char *unit = NULL;
    double div = 1;
    char ylabel[256];
    if (o->normalise) {
        snprintf(ylabel, sizeof ylabel, "relative to %s (1.0 = %s, %s)", o->normalise,
                 o->normalise, m->lower_is_better ? "lower is better" : "higher is better");
    } else if (m->bytes) {
        hl_byte_unit(vmax, &unit, &div);
        snprintf(ylabel, sizeof ylabel, "%s (%s)", m->title, unit);
    } else if (m->col == HL_RES_TIME_NS || m->col == HL_RES_ALLOC_TIME_NS) {
        snprintf(ylabel, sizeof ylabel, "nanoseconds per operation");
    } else if (m->col == HL_RES_FRAGMENTATION) {
        snprintf(ylabel, sizeof ylabel, "peak RSS / peak live bytes");
    } else if (m->per_op) {
        snprintf(ylabel, sizeof ylabel, "%s", m->title);
        char *p = strstr(ylabel, " per operation");
        snprintf(p ? p : ylabel + strlen(ylabel), 32, " per operation");
    } else {
        snprintf(ylabel, sizeof ylabel, "%s (count)", m->title);
    }
    /* A log axis once values span orders of magnitude (ratios: one order). */
    int logscale = vmin > 0 && vmax / vmin > (o->normalise ? 10 : 100);
    if (logscale)
        strncat(ylabel, ", log scale", sizeof ylabel - strlen(ylabel) - 1);

    char data[4096], pre[4096];
    snprintf(data, sizeof data, "%s/%s.dat", o->datadir, m->id);
    FILE *f = hl_plot_open(data);
    fprintf(f, "# %s: one row per trace; per allocator: value low high bad\n# trace",
            c->title);
    for (int ak = 0; ak < nak; ak++) {
        const char *n = r->alloc[ai[ak]];
        fprintf(f, " %s %s.low %s.high %s.bad", n, n, n, n);
    }
    fputc('\n', f);
    for (int gk = 0; gk < ngk; gk++) {
        int g = gi[gk];
        fputc('"', f);
        for (const char *p = r->label[g]; *p; p++)
            fputc(*p == '"' ? '\'' : *p, f);
        fputc('"', f);
        for (int ak = 0; ak < nak; ak++) {
            int a = ai[ak];
            for (int k = 0; k < 3; k++) {
                double x = v[(g * na + a) * 3 + k];
                if (isnan(x))
                    fprintf(f, " NaN");
                else
                    fprintf(f, " %.6g", x / div);
            }
            int bad = hl_row_num(hl_results_find(r, g, a), HL_RES_VIOLATIONS) > 0;
            any_bad |= bad;
            fprintf(f, " %d", bad);
        }
        fputc('\n', f);
    }
    hl_plot_close(f, data);

    /* At most about 40 bars per panel (18 px each), more panels stacked when there are
     * many traces and allocators; wide enough for the bars and the legend. */
    ng = ngk;
    na = nak;
    int per_panel = 40 / (na + 1) > 0 ? 40 / (na + 1) : 1;
    int npanels = (ng + per_panel - 1) / per_panel;
    per_panel = (ng + npanels - 1) / npanels; /* balance: 5,5,4 rather than 6,6,2 */
    long width = 140 + (long)(per_panel * (na + 1.5) * 18) + 190;
    width = width < 900 ? 900 : width > 2400 ? 2400 : width;
    long per_group = ((o->width ? o->width : width) - 330) / per_panel;
    int rotate = (long)longest_group(r) * 7 > per_group ? 30 : 0;
    long panel_h = 360 + (rotate ? (long)(longest_group(r) * 3.5) : 0);
    long height = 100 + npanels * (panel_h > 560 ? 560 : panel_h);
    height = height > 2400 ? 2400 : height;
    /* One y range for all panels. */
    double ymin = 0, ymax = vmax / div * 1.08;
    if (logscale) {
        ymin = pow(10, floor(log10(vmin / div)));
        ymax = pow(10, ceil(log10(vmax / div * 1.01)));
    }
    f = hl_gp_preamble(o, m->id, pre, sizeof pre, width, height);
    hl_gp_set(f, "datafile", data);
    char title[400];
    snprintf(title, sizeof title, "%s%s%s%s", c->title,
             o->normalise ? ", relative to " : "", o->normalise ? o->normalise : "",
             any_bad ? "\n(! = the allocator broke the malloc contract on that trace)" : "");
    hl_gp_set(f, "chart_title", title);
    hl_gp_set(f, "ylabel", ylabel);
    fprintf(f, "nalloc = %d\nntraces = %d\nnpanels = %d\nper_panel = %d\n", na, ng, npanels,
            per_panel);
    fprintf(f, "ymin = %.6g\nymax = %.6g\n", ymin, ymax);
    const char **names = malloc((size_t)(na ? na : 1) * sizeof *names);
    const char **colors = malloc((size_t)(na ? na : 1) * sizeof *colors);
    for (int ak = 0; ak < na; ak++) {
        names[ak] = r->alloc[ai[ak]];
        colors[ak] = hl_alloc_color(ai[ak]);
    }
    hl_gp_array(f, "alloc_name", names, na);
    hl_gp_array(f, "alloc_color", colors, na);
    free(names);
    free(colors);
    fprintf(f, "errorbars = %d\nlogscale = %d\nxrotate = %d\n", have_range, logscale,
            rotate);
    hl_gp_set(f, "yformat", vmin / div >= 1 ? "%.0s%c" : "%g");
    fprintf(f, "na_y = %.6g\n", logscale ? ymin : 0.0);
    if (o->normalise)
        fprintf(f, "refline = 1.0\n");
    else if (m->col == HL_RES_FRAGMENTATION)
        fprintf(f, "refline = 1.0\n");
    else
        fprintf(f, "refline = NaN\n");
    hl_plot_close(f, pre);
    hl_gp_run(o, "bars.gp", pre, m->id);
    c->drawn = 1;
    free(v);
    free(gi);
    free(ai);
}

/* ---------------------------------------------------------------- memory over time */

static int cmp_tl(const void *a, const void *b)
{
    const struct hl_timeline *x = *(const struct hl_timeline *const *)a;
    const struct hl_timeline *y = *(const struct hl_timeline *const *)b;
    return strcmp(x->alloc, y->alloc);
}

/* qsort has no context argument: the times being sorted by. */
static const double *sort_time;

static int cmp_by_time(const void *a, const void *b)
{
    double x = sort_time[*(const size_t *)a], y = sort_time[*(const size_t *)b];
    if (x != y)
        return x < y ? -1 : 1;
    return *(const size_t *)a < *(const size_t *)b ? -1 : 1;
}

static void timeline_charts(struct hl_charts *out, const struct hl_results *r,
                            const struct hl_timelines *tl, const struct hl_chart_opts *o)
{
    for (int i = 0; i < tl->n; i++) {
        const char *trace = tl->t[i].trace;
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= strcmp(tl->t[k].trace, trace) == 0;
        if (seen)
            continue;
        /* This trace's series, in allocator name order. */
        const struct hl_timeline **s = malloc((size_t)tl->n * sizeof *s);
        int ns = 0;
        double maxv = 0, maxev = 0;
        for (int k = i; k < tl->n; k++)
            if (strcmp(tl->t[k].trace, trace) == 0) {
                s[ns++] = &tl->t[k];
                for (size_t p = 0; p < tl->t[k].n; p++) {
                    if (tl->t[k].rss[p] > maxv)
                        maxv = tl->t[k].rss[p];
                    if (tl->t[k].live[p] > maxv)
                        maxv = tl->t[k].live[p];
                    if (tl->t[k].event[p] > maxev)
                        maxev = tl->t[k].event[p];
                }
            }
        qsort(s, (size_t)ns, sizeof *s, cmp_tl);

        struct hl_chart *c = hl_chart_new(out);
        char label[512], stem[80];
        hl_trace_label(label, sizeof label, trace);
        for (int g = 0; g < r->ngroups; g++) /* the same label as in the bar charts */
            if (strcmp(r->group[g], trace) == 0)
                snprintf(label, sizeof label, "%s", r->label[g]);
        hl_file_stem(stem, sizeof stem, label);
        snprintf(c->id, sizeof c->id, "memory-%s", stem);
        for (int k = 0; k < out->n - 1; k++) /* two traces with the same stem */
            if (strcmp(out->c[k].id, c->id) == 0)
                if (snprintf(c->id, sizeof c->id, "memory-%s-%d", stem, i) >= (int)sizeof c->id)
                    hl_die("%s: trace name too long", trace);
        if (snprintf(c->title, sizeof c->title, "Memory over time: %s", label) >=
            (int)sizeof c->title)
            hl_die("%s: trace name too long", trace);
        for (int g = 0; g < r->ngroups; g++)
            if (strcmp(r->group[g], trace) == 0)
                c->group = g;

        const char *unit;
        double div, xdiv = 1;
        const char *xunit = "events";
        hl_byte_unit(maxv, &unit, &div);
        if (maxev >= 1e7) {
            xdiv = 1e6;
            xunit = "millions of events";
        } else if (maxev >= 1e4) {
            xdiv = 1e3;
            xunit = "thousands of events";
        }
        char data[4096], pre[4096];
        snprintf(data, sizeof data, "%s/%s.dat", o->datadir, c->id);
        FILE *f = hl_plot_open(data);
        /* index 0: the trace's live bytes (from the first series: it is the trace's, the
         * same for every allocator); index k: allocator k's RSS. */
        fprintf(f, "# live bytes of trace %s (%s)\n", trace, unit);
        for (size_t p = 0; p < s[0]->n; p++)
            fprintf(f, "%.6g %.6g\n", s[0]->event[p] / xdiv, s[0]->live[p] / div);
        const char **names = malloc((size_t)ns * sizeof *names);
        const char **colors = malloc((size_t)ns * sizeof *colors);
        for (int k = 0; k < ns; k++) {
            /* RSS belongs to the process, and with several replay threads the samples
             * of one event number are taken at different moments; so the line follows
             * wall time, at the furthest event any thread had reached by then. */
            size_t n = s[k]->n, *ord = malloc((n ? n : 1) * sizeof *ord);
            if (!ord)
                hl_die("out of memory");
            for (size_t p = 0; p < n; p++)
                ord[p] = p;
            sort_time = s[k]->time;
            if (n && !isnan(s[k]->time[0]))
                qsort(ord, n, sizeof *ord, cmp_by_time);
            fprintf(f, "\n\n# RSS with %s, run %ld (%s)\n", s[k]->alloc, s[k]->run, unit);
            double reached = 0;
            for (size_t p = 0; p < n; p++) {
                size_t q = ord[p];
                reached = s[k]->event[q] > reached ? s[k]->event[q] : reached;
                if (!isnan(s[k]->rss[q]))
                    fprintf(f, "%.6g %.6g\n", reached / xdiv, s[k]->rss[q] / div);
            }
            free(ord);
            names[k] = s[k]->alloc;
            colors[k] = hl_alloc_color(hl_results_alloc(r, s[k]->alloc));
        }
        hl_plot_close(f, data);
        f = hl_gp_preamble(o, c->id, pre, sizeof pre, 1000, 520);
        hl_gp_set(f, "datafile", data);
        hl_gp_set(f, "chart_title", c->title);
        hl_gp_set(f, "unit", unit);
        hl_gp_set(f, "xunit", xunit);
        fprintf(f, "nseries = %d\n", ns);
        hl_gp_array(f, "series_name", names, ns);
        hl_gp_array(f, "series_color", colors, ns);
        hl_plot_close(f, pre);
        hl_gp_run(o, "timeline.gp", pre, c->id);
        c->drawn = 1;
        free(names);
        free(colors);
        free(s);
    }
}

/* ---------------------------------------------------------------- latency */

static void latency_charts(struct hl_charts *out, const struct hl_results *r,
                           const struct hl_chart_opts *o)
{
    static const enum hl_col cols[2][4] = {
        {HL_RES_LAT_MALLOC_P50, HL_RES_LAT_MALLOC_P99, HL_RES_LAT_MALLOC_P999,
         HL_RES_LAT_MALLOC_MAX},
        {HL_RES_LAT_FREE_P50, HL_RES_LAT_FREE_P99, HL_RES_LAT_FREE_P999, HL_RES_LAT_FREE_MAX}};
    static const char *const pct[4] = {"p50", "p99", "p99.9", "max"};
    int *ai = malloc((size_t)r->nallocs * sizeof *ai);
    const char **names = malloc((size_t)r->nallocs * sizeof *names);
    const char **colors = malloc((size_t)r->nallocs * sizeof *colors);
    if (!ai || !names || !colors)
        hl_die("out of memory");
    for (int g = 0; g < r->ngroups; g++) {
        /* Only the allocators with samples on this trace, in their report colours. */
        int have[2] = {0, 0}, na = 0;
        for (int a = 0; a < r->nallocs; a++) {
            int any = 0;
            for (int op = 0; op < 2; op++)
                for (int p = 0; p < 4; p++)
                    if (!isnan(hl_row_num(hl_results_find(r, g, a), cols[op][p]))) {
                        have[op] = 1;
                        any = 1;
                    }
            if (any) {
                names[na] = r->alloc[a];
                colors[na] = hl_alloc_color(a);
                ai[na++] = a;
            }
        }
        struct hl_chart *c = hl_chart_new(out);
        char stem[80];
        hl_file_stem(stem, sizeof stem, r->label[g]);
        snprintf(c->id, sizeof c->id, "latency-%s", stem);
        for (int k = 0; k < out->n - 1; k++)
            if (strcmp(out->c[k].id, c->id) == 0)
                if (snprintf(c->id, sizeof c->id, "latency-%s-%d", stem, g) >= (int)sizeof c->id)
                    hl_die("%s: trace name too long", r->label[g]);
        snprintf(c->title, sizeof c->title, "Call latency: %s", r->label[g]);
        c->group = g;
        if (!have[0]) {
            snprintf(c->note, sizeof c->note, "no latency samples for %s", r->label[g]);
            continue;
        }
        char data[4096], pre[4096];
        snprintf(data, sizeof data, "%s/%s.dat", o->datadir, c->id);
        FILE *f = hl_plot_open(data);
        for (int op = 0; op < 2; op++) {
            fprintf(f, "%s# %s latency in CPU cycles; columns: percentile", op ? "\n\n" : "",
                    op ? "free" : "malloc");
            for (int k = 0; k < na; k++)
                fprintf(f, " %s", names[k]);
            fputc('\n', f);
            for (int p = 0; p < 4; p++) {
                fprintf(f, "\"%s\"", pct[p]);
                for (int k = 0; k < na; k++) {
                    int a = ai[k];
                    /* 0 cycles cannot sit on a log axis; it means "below the timer's
                     * resolution", drawn as 1. */
                    double x = hl_row_num(hl_results_find(r, g, a), cols[op][p]);
                    if (isnan(x))
                        fprintf(f, " NaN");
                    else
                        fprintf(f, " %.6g", x < 1 ? 1 : x);
                }
                fputc('\n', f);
            }
        }
        hl_plot_close(f, data);
        f = hl_gp_preamble(o, c->id, pre, sizeof pre, have[1] ? 1100 : 800, 480);
        hl_gp_set(f, "datafile", data);
        hl_gp_set(f, "chart_title", c->title);
        fprintf(f, "nalloc = %d\nhas_free = %d\n", na, have[1]);
        /* One y range for both panels, whole decades, so that malloc and free compare. */
        double lo = INFINITY, hi = 1;
        for (int a = 0; a < r->nallocs; a++)
            for (int op = 0; op < 2; op++)
                for (int p = 0; p < 4; p++) {
                    double x = hl_row_num(hl_results_find(r, g, a), cols[op][p]);
                    if (x > 0 && x < lo)
                        lo = x;
                    if (x > hi)
                        hi = x;
                }
        lo = isfinite(lo) && lo >= 1 ? pow(10, floor(log10(lo))) : 1;
        fprintf(f, "ymin = %.6g\nymax = %.6g\n", lo, pow(10, ceil(log10(hi * 1.01))));
        hl_gp_array(f, "alloc_name", names, na);
        hl_gp_array(f, "alloc_color", colors, na);
        hl_plot_close(f, pre);
        hl_gp_run(o, "latency.gp", pre, c->id);
        c->drawn = 1;
    }
    free(ai);
    free(names);
    free(colors);
}

void hl_charts_draw(struct hl_charts *out, const struct hl_results *r,
                    const struct hl_timelines *tl, const struct hl_chart_opts *o)
{
    memset(out, 0, sizeof *out);
    for (int i = 0; i < hl_nmetrics; i++)
        bar_chart(out, r, &hl_metrics[i], o);
    timeline_charts(out, r, tl, o);
    latency_charts(out, r, o);
}
