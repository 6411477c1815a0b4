/*
 * merge.c: several result files, from shards of one comparison or from several
 * machines, joined into one results table (`heaplab merge`, plot.h).
 *
 * Rules, checked before anything is written:
 *   - one heaplab major version (the results schema may change between them);
 *   - a trace is one trace: the same trace (file name without its folder, and process)
 *     must have the same hash in every file, else they are different traces;
 *   - a cell (trace, process, allocator) held by two files is either two machines'
 *     measurements -- then every allocator is renamed ALLOCATOR@MACHINE, so that one
 *     chart shows allocator x machine -- or, from one machine, an overlap (two shards
 *     that ran the same cell): refused.
 * Cells held once (shards) keep their allocator names.  A machine is its host, CPU,
 * cores, kernel and C library as the results record them; it is labelled by its host
 * (host#2... when two differ only in the rest).  The output is CSV in replay's column
 * order; a trace is named as the first file names it.
 */
#include "plot.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

static const char *val(const struct hl_row *row, enum hl_col c)
{
    return row->v[c] ? row->v[c] : "";
}

/* "label#process": what identifies a trace across machines (folders differ). */
static void trace_key(char *out, size_t n, const struct hl_row *row)
{
    char label[512];
    hl_trace_label(label, sizeof label, val(row, HL_RES_TRACE));
    snprintf(out, n, "%s#%s", label, val(row, HL_RES_PROCESS));
}

static void machine_key(char *out, size_t n, const struct hl_row *row)
{
    snprintf(out, n, "%s|%s|%s|%s|%s", val(row, HL_RES_HOST), val(row, HL_RES_CPU),
             val(row, HL_RES_CORES), val(row, HL_RES_KERNEL), val(row, HL_RES_LIBC));
}

static int major_of(const char *v)
{
    return v && *v ? atoi(v) : -1;
}

struct cellref {
    int file, row;
};

void hl_results_merge(FILE *out, const char *const *paths, int nfiles)
{
    struct hl_results *r = hl_xrealloc(NULL, (size_t)nfiles * sizeof *r);
    for (int i = 0; i < nfiles; i++)
        hl_results_read(&r[i], paths[i]);

    /* Versions and trace hashes. */
    int major = major_of(r[0].rows[0].v[HL_RES_HEAPLAB_VERSION]);
    for (int i = 0; i < nfiles; i++)
        for (int k = 0; k < r[i].nrows; k++) {
            const struct hl_row *row = &r[i].rows[k];
            if (major_of(row->v[HL_RES_HEAPLAB_VERSION]) != major)
                hl_die("%s:%d: results of heaplab %s, %s has heaplab %s: different major "
                       "versions do not merge", paths[i], row->line,
                       val(row, HL_RES_HEAPLAB_VERSION), paths[0],
                       val(&r[0].rows[0], HL_RES_HEAPLAB_VERSION));
            char key[600];
            trace_key(key, sizeof key, row);
            for (int j = 0; j <= i; j++)
                for (int m = 0; m < (j == i ? k : r[j].nrows); m++) {
                    const struct hl_row *o = &r[j].rows[m];
                    char okey[600];
                    trace_key(okey, sizeof okey, o);
                    if (strcmp(key, okey) == 0 && row->v[HL_RES_TRACE_HASH] &&
                        o->v[HL_RES_TRACE_HASH] &&
                        strcmp(row->v[HL_RES_TRACE_HASH], o->v[HL_RES_TRACE_HASH]) != 0)
                        hl_die("%s:%d: trace %s has hash %s, in %s it has %s: not the same "
                               "trace, results do not merge", paths[i], row->line,
                               val(row, HL_RES_TRACE), row->v[HL_RES_TRACE_HASH], paths[j],
                               o->v[HL_RES_TRACE_HASH]);
                }
        }

    /* Machines, and cells held twice. */
    char (*machines)[1400] = NULL;
    int nmach = 0, by_machine = 0;
    int total = 0;
    for (int i = 0; i < nfiles; i++)
        total += r[i].nrows;
    int *mach_of = hl_xrealloc(NULL, (size_t)total * sizeof *mach_of);
    struct cellref *cells = hl_xrealloc(NULL, (size_t)total * sizeof *cells);
    int t = 0;
    for (int i = 0; i < nfiles; i++)
        for (int k = 0; k < r[i].nrows; k++, t++) {
            char mk[1400];
            machine_key(mk, sizeof mk, &r[i].rows[k]);
            int m;
            for (m = 0; m < nmach && strcmp(machines[m], mk) != 0; m++)
                ;
            if (m == nmach) {
                machines = hl_xrealloc(machines, (size_t)(nmach + 1) * sizeof *machines);
                memcpy(machines[nmach++], mk, sizeof mk);
            }
            mach_of[t] = m;
            cells[t] = (struct cellref){i, k};
        }
    for (int a = 0; a < total; a++)
        for (int b = 0; b < a; b++) {
            const struct hl_row *x = &r[cells[a].file].rows[cells[a].row];
            const struct hl_row *y = &r[cells[b].file].rows[cells[b].row];
            char kx[600], ky[600];
            trace_key(kx, sizeof kx, x);
            trace_key(ky, sizeof ky, y);
            if (cells[a].file == cells[b].file || strcmp(kx, ky) != 0 ||
                strcmp(val(x, HL_RES_ALLOCATOR), val(y, HL_RES_ALLOCATOR)) != 0)
                continue;
            if (mach_of[a] == mach_of[b])
                hl_die("%s:%d: trace %s, allocator %s is also in %s (line %d), from the same "
                       "machine: overlapping shards do not merge", paths[cells[a].file],
                       x->line, val(x, HL_RES_TRACE), val(x, HL_RES_ALLOCATOR),
                       paths[cells[b].file], y->line);
            by_machine = 1;
        }

    /* Machine labels: the host, numbered where two machines share one. */
    char (*mlabel)[300] = hl_xrealloc(NULL, (size_t)(nmach ? nmach : 1) * sizeof *mlabel);
    for (int m = 0; m < nmach; m++) {
        int same = 0, index = 0;
        size_t hl = strcspn(machines[m], "|");
        for (int o = 0; o < nmach; o++)
            if (strncmp(machines[o], machines[m], hl) == 0 && machines[o][hl] == '|') {
                same++;
                if (o < m)
                    index++;
            }
        if (same > 1)
            snprintf(mlabel[m], sizeof mlabel[m], "%.*s#%d", (int)hl, machines[m], index + 1);
        else
            snprintf(mlabel[m], sizeof mlabel[m], "%.*s", (int)(hl ? hl : 7),
                     hl ? machines[m] : "unknown");
    }

    /* Out: replay's columns, then the rows, traces named as first seen. */
    for (int c = 0; c < HL_NCOLS; c++)
        fprintf(out, "%s%s", c ? "," : "", hl_cols[c].name);
    fputc('\n', out);
    for (int a = 0; a < total; a++) {
        const struct hl_row *row = &r[cells[a].file].rows[cells[a].row];
        char key[600];
        trace_key(key, sizeof key, row);
        const char *trace = val(row, HL_RES_TRACE);
        for (int b = 0; b < a; b++) {
            const struct hl_row *o = &r[cells[b].file].rows[cells[b].row];
            char okey[600];
            trace_key(okey, sizeof okey, o);
            if (strcmp(key, okey) == 0) {
                trace = val(o, HL_RES_TRACE);
                break;
            }
        }
        for (int c = 0; c < HL_NCOLS; c++) {
            if (c)
                fputc(',', out);
            if (c == HL_RES_TRACE) {
                hl_csv_str(out, trace);
            } else if (c == HL_RES_ALLOCATOR && by_machine) {
                char name[600];
                snprintf(name, sizeof name, "%s@%s", val(row, c), mlabel[mach_of[a]]);
                hl_csv_str(out, name);
            } else {
                hl_csv_str(out, val(row, c));
            }
        }
        fputc('\n', out);
    }
    free(mlabel);
    free(machines);
    free(mach_of);
    free(cells);
    for (int i = 0; i < nfiles; i++)
        hl_results_free(&r[i]);
    free(r);
}
