#!/bin/bash
# The fan-out engines: .github/workflows/compare.yml parsed (python3-yaml) and its shard
# and merge jobs run in sequence as GitHub Actions would (tests/fanout/run_workflow.py);
# scripts/fanout-parallel (GNU parallel) on local cores giving the charts of one
# process's run: same charts, same rows and columns, same simulated counts.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
H=$HEAPLAB
export HEAPLAB=$H
"$H" gen phases -o "$T/phases.hlt" events=5000 >/dev/null 2>&1
"$H" gen larson -o "$T/larson.hlt" threads=1 steps=4000 blocks=200 >/dev/null 2>&1
export FANOUT_TRACES="$T/phases.hlt $T/larson.hlt $HEAPLAB_SRC/traces/corpus/sqlite.hlt"
export FANOUT_FORMATS=png
# cells FILE: "trace allocator" per result row, sorted.
cells() { python3 -c 'import csv,json,sys
f = sys.argv[1]
rows = json.load(open(f))["results"] if f.endswith(".json") else csv.DictReader(open(f))
for r in rows: print(r["trace"], r["allocator"])' "$1" | sort; }

# ---- the GitHub Actions workflow ----
if ! python3 -c 'import yaml' 2>/dev/null; then
    skip "workflow runs as CI would" "no python3-yaml (apt-get install python3-yaml)"
else
    ok "workflow's shard and merge jobs run in sequence" env FANOUT_ALLOCATORS=glibc,heaplab,jemalloc \
        python3 "$HEAPLAB_SRC/tests/fanout/run_workflow.py" "$HEAPLAB_SRC/.github/workflows/compare.yml" \
        "$HEAPLAB_SRC" "$T/wf"
    check "each of the 4 shards and the report uploaded as artifacts" \
        '[ "$(ls "$T/wf/artifacts" | paste -sd" ")" = "report shard-1 shard-2 shard-3 shard-4" ]'
    check "the merge job drew the charts and report.md" \
        '[ -s "$T/wf/merge/report/report.md" ] && [ -s "$T/wf/merge/report/time.png" ]'
    check "report.md published to the job summary" 'grep -q "Allocator comparison" "$T/wf/step-summary.md"'
    "$H" replay -q $FANOUT_TRACES -n 1 -a glibc,heaplab,jemalloc --counters=none --format json \
        -o "$T/wf-single.json"
    eq "the merged results hold every cell of a single run once" \
        "$(cells "$T/wf/merge/report/results.csv")" "$(cells "$T/wf-single.json")"
fi

# ---- GNU parallel on local cores, against one process ----
if ! command -v parallel >/dev/null; then
    skip "GNU parallel fan-out" "no GNU parallel (apt-get install parallel)"
else
    # Allocators whose simulated counts repeat exactly (jemalloc reads the clock).
    export FANOUT_ALLOCATORS='glibc,heaplab,heaplab:tcache=0' FANOUT_RUNS=1 FANOUT_COUNTERS=sim
    ok "scripts/fanout-parallel: 3 shards on local cores" \
        "$HEAPLAB_SRC/scripts/fanout-parallel" -j 2 3 "$T/par"
    check "three shard files" '[ "$(ls "$T"/par/shards/shard-*.json | wc -l)" -eq 3 ]'
    ok "the same comparison in one process" "$H" replay -q $FANOUT_TRACES -a "$FANOUT_ALLOCATORS" -n 1 \
        --counters=sim --format json -o "$T/one.json" --timeline "$T/one.tl.csv"
    ok "plot of the single run" "$H" plot "$T/one.json" --timeline "$T/one.tl.csv" -o "$T/one" --format png
    eq "the same cells" "$(cells "$T/par/results.csv")" "$(cells "$T/one.json")"
    eq "the same charts" "$(cd "$T/par" && ls *.png)" "$(cd "$T/one" && ls *.png)"
    same_shape=1
    for d in "$T"/one/data/*.dat; do
        b=$(basename "$d")
        # every chart: the same header (series) and the same rows (traces or samples' keys)
        [ "$(grep '^#' "$d")" = "$(grep '^#' "$T/par/data/$b")" ] || { echo "# $b: header differs"; same_shape=0; }
        [ "$(cut -d' ' -f1 "$d")" = "$(cut -d' ' -f1 "$T/par/data/$b")" ] || { echo "# $b: rows differ"; same_shape=0; }
    done
    check "every chart's data has the same series and rows" '[ "$same_shape" = 1 ]'
    ok "the simulated instruction counts are identical" cmp "$T/one/data/instructions.dat" "$T/par/data/instructions.dat"
fi
done_testing
