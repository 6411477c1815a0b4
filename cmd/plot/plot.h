/*
 * plot.h: the data model of `heaplab plot` and its three parts.
 *
 *   results.c  reads replay's results (CSV or JSON, one schema) and timelines (CSV)
 *              into the tables below, with one-line "FILE:LINE: what" errors;
 *   charts.c   writes the charts' data files and a preamble per chart, and runs gnuplot
 *              on the templates in scripts/gnuplot/ (it holds no gnuplot code itself);
 *   report.c   writes report.md: provenance, tables and the embedded charts;
 *   stats.c    the other input: `heaplab stat --json` output, drawn as size and
 *              lifetime histograms per trace (and per process), with stat-report.md.
 *
 * Every value is kept as the text it was read as (NULL when unmeasured), so the report
 * prints what replay wrote; numbers are taken with hl_row_num() when needed.
 */
#ifndef HEAPLAB_PLOT_H
#define HEAPLAB_PLOT_H

#include <stddef.h>
#include <stdio.h>

/* The results schema's columns (the order of replay's CSV header). */
#define HL_RESULT_COLUMNS(X)                                                          \
    X(TRACE, "trace", 0) X(TRACE_HASH, "trace_hash", 0) X(PROCESS, "process", 0)       \
    X(ALLOCATOR, "allocator", 0) X(ALLOCATOR_VERSION, "allocator_version", 0)          \
    X(ALLOCATOR_PATH, "allocator_path", 0) X(RUNS, "runs", 1) X(OPS, "ops", 1)         \
    X(TIME_NS, "time_ns", 1) X(TIME_NS_MIN, "time_ns_min", 1)                          \
    X(TIME_NS_MAX, "time_ns_max", 1) X(NS_PER_OP, "ns_per_op", 1)                      \
    X(OPS_PER_S, "ops_per_s", 1) X(PEAK_RSS, "peak_rss_bytes", 1)                      \
    X(PEAK_RSS_MIN, "peak_rss_min", 1) X(PEAK_RSS_MAX, "peak_rss_max", 1)              \
    X(PEAK_LIVE, "peak_live_bytes", 1) X(FRAGMENTATION, "fragmentation", 1)            \
    X(USER_NS, "user_ns", 1) X(SYS_NS, "sys_ns", 1) X(MINOR_FAULTS, "minor_faults", 1) \
    X(MAJOR_FAULTS, "major_faults", 1) X(INSTRUCTIONS, "instructions", 1)              \
    X(L1D_MISSES, "l1d_misses", 1) X(LLC_MISSES, "llc_misses", 1)                      \
    X(DTLB_MISSES, "dtlb_misses", 1) X(COUNTERS_SOURCE, "counters_source", 0)          \
    X(LAT_MALLOC_P50, "lat_malloc_p50", 1) X(LAT_MALLOC_P99, "lat_malloc_p99", 1)      \
    X(LAT_MALLOC_P999, "lat_malloc_p999", 1) X(LAT_MALLOC_MAX, "lat_malloc_max", 1)    \
    X(LAT_FREE_P50, "lat_free_p50", 1) X(LAT_FREE_P99, "lat_free_p99", 1)              \
    X(LAT_FREE_P999, "lat_free_p999", 1) X(LAT_FREE_MAX, "lat_free_max", 1)            \
    X(VIOLATIONS, "violations", 1) X(THREADS_MODE, "threads_mode", 0)                  \
    X(TOUCH, "touch", 0) X(TUNABLES, "tunables", 0)                                    \
    X(HEAPLAB_VERSION, "heaplab_version", 0) X(CPU, "cpu", 0) X(KERNEL, "kernel", 0)   \
    X(DATE, "date", 0) X(SETTINGS, "settings", 0) X(HOST, "host", 0)                   \
    X(CORES, "cores", 1) X(LIBC, "libc", 0)                                            \
    /* Not in the CSV schema: from the JSON's time_split.allocator_ns (the time inside \
     * the allocator's calls, without touching memory or the harness). */             \
    X(ALLOC_TIME_NS, "alloc_time_ns", 1)                                               \
    /* Not in the CSV schema either: the JSON's recorded_threads (threads of the trace). */ \
    X(RECORDED_THREADS, "recorded_threads", 1)

enum hl_col {
#define HL_RES_ENUM(id, name, numeric) HL_RES_##id,
    HL_RESULT_COLUMNS(HL_RES_ENUM)
#undef HL_RES_ENUM
    HL_NCOLS
};

struct hl_col_info {
    const char *name;
    int numeric; /* 1: the value must parse as a number (or be empty / "n/a...") */
};
extern const struct hl_col_info hl_cols[HL_NCOLS];

/* One result row: one trace (process) replayed against one allocator. */
struct hl_row {
    char *v[HL_NCOLS]; /* text as read; NULL when unmeasured */
    int line;          /* where it was read (for messages) */
};

struct hl_results {
    const char *file;
    struct hl_row *rows;
    int nrows;
    /* Groups on the x axis: one per distinct trace (or trace and process when a trace
     * holds several processes), in order of first appearance. */
    char **group;       /* key of each group: the trace as replay names it (a path) */
    char **label;       /* its label in charts: the file name without .hlt, or the key
                         * where two traces would get the same label */
    int *row_group;     /* rows[i] belongs to group[row_group[i]] */
    int ngroups;
    /* Allocators, sorted by name: the palette is assigned in this order. */
    char **alloc;
    int nallocs;
};

/* Memory over time for one trace and allocator (the lowest run number read). */
struct hl_timeline {
    char *trace, *alloc;
    long run;
    double *event, *live, *rss, *time; /* sorted by event; time NaN if not given */
    size_t n, cap;
};

struct hl_timelines {
    struct hl_timeline *t;
    int n;
};

/* Read results from a .csv or .json file (by content: JSON starts with '{').
 * Dies with "heaplab: FILE:LINE: what is wrong" on malformed input. */
void hl_results_read(struct hl_results *r, const char *path);
/* Append a timeline CSV's series (dies on malformed input). */
void hl_timelines_read(struct hl_timelines *t, const char *path);

void hl_results_free(struct hl_results *r);
void hl_timelines_free(struct hl_timelines *t);

/* The numeric value of a column, NaN when unmeasured. */
double hl_row_num(const struct hl_row *row, enum hl_col col);
/* The row of group g and allocator a, or NULL. */
const struct hl_row *hl_results_find(const struct hl_results *r, int g, int a);
/* Index of allocator name, or -1. */
int hl_results_alloc(const struct hl_results *r, const char *name);

/* ---- charts ---- */

/* A metric drawn as grouped bars; see the table in charts.c. */
struct hl_metric {
    const char *id;      /* file name stem: "time" -> time.png */
    const char *title;   /* chart and section title */
    const char *what;    /* one sentence for the report: definition, better direction */
    enum hl_col col, col_min, col_max; /* HL_NCOLS for none */
    int per_op;          /* divide by ops */
    int bytes;           /* a size in bytes (scaled to KiB/MiB/GiB) */
    int is_counter;      /* a hardware or simulated counter (title says which) */
    int lower_is_better;
};

struct hl_chart_opts {
    const char *outdir;
    const char *datadir;   /* outdir/data */
    const char *tpldir;    /* where the templates are */
    const char *gnuplot;   /* the gnuplot executable */
    int png, svg;
    long width, height;    /* 0: chosen from the data */
    const char *normalise; /* allocator name, or NULL */
    int norm_index;
};

/* One chart's outcome, for the report. */
struct hl_chart {
    char id[96];       /* file stem, e.g. "time", "memory-python-json" */
    char title[256];
    int drawn;         /* 0: skipped, see note */
    char note[256];
    char missing[512]; /* allocators and traces left out of a drawn chart (no value) */
    const struct hl_metric *metric; /* bar charts only */
    int group;         /* timeline and latency charts: the group (trace) */
};

struct hl_charts {
    struct hl_chart *c;
    int n;
};

extern const struct hl_metric hl_metrics[];
extern const int hl_nmetrics;

/* The palette colour of allocator index a (by name order). */
const char *hl_alloc_color(int a);
/* The metric value of a row (per op, ratio...), NaN when unmeasured; lo/hi may be NULL. */
double hl_metric_value(const struct hl_metric *m, const struct hl_row *row, double *lo,
                       double *hi);

void hl_charts_draw(struct hl_charts *out, const struct hl_results *r,
                    const struct hl_timelines *tl, const struct hl_chart_opts *o);

/* Chart plumbing shared by charts.c and stats.c: files that die on error, gnuplot
 * variables, the per-chart preamble (size, template folder) and running gnuplot on a
 * template once per output format (dies with the last line of gnuplot's log). */
FILE *hl_plot_open(const char *path);
void hl_plot_close(FILE *f, const char *path);
void hl_gp_set(FILE *f, const char *name, const char *value);
void hl_gp_array(FILE *f, const char *name, const char *const *v, int n);
FILE *hl_gp_preamble(const struct hl_chart_opts *o, const char *stem, char *path, size_t n,
                     long width, long height);
void hl_gp_run(const struct hl_chart_opts *o, const char *tpl, const char *pre,
               const char *stem);
struct hl_chart *hl_chart_new(struct hl_charts *out);
/* Bytes in a unit that keeps the largest value readable (KiB, MiB or GiB). */
void hl_byte_unit(double max, const char **unit, double *div);

/* ---- report ---- */
/* A Markdown table cell, escaped; NULL or "" writes empty instead (stats.c). */
void hl_md_cell(FILE *f, const char *s, const char *empty);
void hl_report_write(const char *path, const struct hl_results *r,
                     const struct hl_timelines *tl, const struct hl_charts *charts,
                     const struct hl_chart_opts *o, const char *input);

/* A trace's name for charts: "traces/corpus/sort.hlt" -> "sort". */
void hl_trace_label(char *out, size_t n, const char *trace);

/* Safe file-name stem of a label ("gcc -O2" -> "gcc-O2"). */
void hl_file_stem(char *out, size_t n, const char *label);

/* ---- `heaplab stat --json` input (stats.c) ---- */

/* 1 if the JSON document is stat output: an object with a size histogram, or an array
 * (stat's form for several files). */
struct hl_json;
int hl_stats_is_stat(const struct hl_json *doc);
/* Read stat output into the traces and processes to draw; dies with "FILE:LINE: what"
 * on a document that is not well-formed stat output (before anything is written). */
struct hl_stats;
struct hl_stats *hl_stats_read(const struct hl_json *doc, const char *input);
/* Draw the histograms of every trace (and of each sizeable process) and write
 * OUTDIR/stat-report.md (its path into report); returns the number of charts drawn. */
int hl_stats_plot(struct hl_stats *s, const struct hl_chart_opts *o, char *report,
                  size_t report_n);
void hl_stats_free(struct hl_stats *s);

/* ---- several result sets (merge.c, diff.c) ---- */

/* Join result files (shards, machines) into one results CSV on out; dies with one line
 * on files that do not fit together (rules in merge.c). */
void hl_results_merge(FILE *out, const char *const *paths, int nfiles);

/* A --fail-on rule of `heaplab diff`: ALLOC:METRIC>PCT%. */
struct hl_diff_rule {
    char alloc[160];
    int metric; /* hl_diff_metric() */
    double pct;
};
/* A metric's index by name, or -1; the names, for help and messages. */
int hl_diff_metric(const char *name);
const char *hl_diff_metric_names(void);
/* Parse ALLOC:METRIC>PCT%.  Returns 0 or -1. */
int hl_diff_rule_parse(const char *s, struct hl_diff_rule *out);
/* Compare cell by cell and print the changes (every compared value with all) of the
 * metrics in metric_mask (bit = metric index).  Returns 1 when a rule failed, else 0. */
int hl_results_diff(FILE *out, const struct hl_results *base, const struct hl_results *new,
                    const struct hl_diff_rule *rules, int nrules, unsigned metric_mask, int all);

#endif
