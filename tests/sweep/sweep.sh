#!/bin/bash
# Allocator variants end to end: settings checked before anything runs, reaching the
# worker (and only that one), sweeps as rows with their settings in the results;
# allocators --settings; replay --shard covering every cell once; merge of shards and
# of two machines' files into one chart, and its refusals; diff's exit status.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
H=$HEAPLAB

# csvcol FILE COLUMN: a column's values, one per row.
csvcol() {
    python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])): print(r[sys.argv[2]])' "$1" "$2"
}

# Large blocks: 40 times malloc 1 MiB, touched, freed.  glibc's dynamic mmap threshold
# serves them from the heap after the first free; a fixed mmap_threshold below 1 MiB
# maps (and faults in) every one.
for i in $(seq 0 39); do
    echo "t0 malloc 1048576 -> #$i"
    echo "t0 free #$i"
done >"$T/large.txt"
"$H" import --format text "$T/large.txt" -o "$T/large.hlt" >/dev/null
"$H" gen phases -o "$T/small.hlt" events=5000 >/dev/null 2>&1

# ---- settings are checked before any run ----
fails_with_one_line "unknown glibc tunable refused" \
    "$H" replay "$T/large.hlt" -a 'glibc:trim_thresold=1' -o "$T/never.csv"
check "nothing written after a refused setting" '[ ! -e "$T/never.csv" ]'
fails_with_one_line "glibc tunable out of ld.so's range refused" "$H" replay "$T/large.hlt" -a 'glibc:perturb=300'
fails_with_one_line "glibc tunable with a non-number refused" "$H" replay "$T/large.hlt" -a 'glibc:mmap_threshold=lots'
fails_with_one_line "jemalloc's complaint about a bad value refused" "$H" replay "$T/large.hlt" -a 'jemalloc:narenas=x'
grep -q '<jemalloc>' "$T/.stderr"
check "the message is jemalloc's own" '[ $? -eq 0 ]'
fails_with_one_line "unknown jemalloc option refused" "$H" replay "$T/large.hlt" -a 'jemalloc:no_such_opt=1'
fails_with_one_line "unknown mimalloc option refused" "$H" replay "$T/large.hlt" -a 'mimalloc:no_such_option=0'
fails_with_one_line "mimalloc's warning about a bad value refused" "$H" replay "$T/large.hlt" -a 'mimalloc:eager_commit=abc'
fails_with_one_line "unknown heaplab setting refused" "$H" replay "$T/large.hlt" -a 'heaplab:retian=1m'
fails_with_one_line "heaplab setting with a bad size refused" "$H" replay "$T/large.hlt" -a 'heaplab:retain=1x'
fails_with_one_line "unknown tcmalloc setting refused" "$H" replay "$T/large.hlt" \
    -a 'tc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4:no_such=1'
fails_with_one_line "settings for an allocator of unknown family refused" "$H" replay "$T/large.hlt" \
    -a "bump=$HEAPLAB_BUILD/tests/replay/libhl-bump.so:x=1"
fails_with_one_line "malformed sweep refused" "$H" replay "$T/large.hlt" -a 'glibc:trim_threshold={1,'
fails_with_one_line "a setting without a value refused" "$H" replay "$T/large.hlt" -a 'glibc:trim_threshold'

# ---- settings reach the worker, and only that one ----
ok "replay of a sweep of glibc's mmap_threshold" "$H" replay -q "$T/large.hlt" -n 1 \
    -a 'glibc,glibc:mmap_threshold={64k,4m},trim_threshold=64m,jemalloc' --csv "$T/sweep.csv" -o "$T/sweep.txt"
eq "one row per variant, named after it" "$(csvcol "$T/sweep.csv" allocator | paste -sd' ')" \
    "glibc glibc:mmap_threshold=64k,trim_threshold=64m glibc:mmap_threshold=4m,trim_threshold=64m jemalloc"
eq "the settings in effect are in the results" "$(csvcol "$T/sweep.csv" settings | paste -sd'|')" \
    "|GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=67108864|GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=67108864|"
faults() { python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["allocator"] == sys.argv[2]: print(int(r["minor_faults"]))' "$T/sweep.csv" "$1"; }
f_def=$(faults glibc) f_64k=$(faults glibc:mmap_threshold=64k,trim_threshold=64m)
f_4m=$(faults glibc:mmap_threshold=4m,trim_threshold=64m)
check "mmap_threshold=64k maps every 1 MiB block: 5x the faults of the default ($f_64k vs $f_def)" \
    '[ "$f_64k" -gt $((5 * f_def)) ]'
check "mmap_threshold=4m (trim_threshold=64m) keeps them in the heap like the default ($f_4m vs $f_def)" \
    '[ "$f_4m" -lt $((2 * f_def + 64)) ]'
check "the table names the variants and what they ran with" \
    'grep -q "glibc:mmap_threshold=64k,trim_threshold=64m ran with GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536:" "$T/sweep.txt"'
ok "heaplab's mmap_threshold as a variant" "$H" replay -q "$T/large.hlt" -n 1 \
    -a 'heaplab,heaplab:mmap_threshold=64k' --csv "$T/hl.csv" -o /dev/null
h_def=$(python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["allocator"] == "heaplab": print(int(r["minor_faults"]))' "$T/hl.csv")
h_64k=$(python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["allocator"] != "heaplab": print(int(r["minor_faults"]))' "$T/hl.csv")
check "HEAPLAB_MMAP_THRESHOLD=64k reaches heaplab's worker: every block mapped, 3x the faults ($h_64k vs $h_def)" \
    '[ "$h_64k" -gt $((3 * h_def)) ]'
ok "an inherited GLIBC_TUNABLES is replaced by the variant's" \
    env GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536 "$H" replay -q "$T/large.hlt" -n 1 \
    -a 'glibc:mmap_threshold=4m,trim_threshold=64m' --csv "$T/inh.csv" -o /dev/null
f_inh=$(python3 -c 'import csv,sys; print(int(next(csv.DictReader(open(sys.argv[1])))["minor_faults"]))' "$T/inh.csv")
check "... so the blocks stay in the heap ($f_inh faults)" '[ "$f_inh" -lt $((2 * f_def + 64)) ]'
ok "plot draws a sweep" "$H" plot "$T/sweep.csv" -o "$T/sweep-charts" --format png
check "report.md lists each variant with its settings" \
    'grep -q "glibc:mmap_threshold=64k,trim_threshold=64m.*GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536" "$T/sweep-charts/report.md"'

# ---- allocators --settings ----
ok "allocators --settings glibc" "$H" allocators --settings glibc
check "glibc's list has trim_threshold with ld.so's range" 'grep -Eq "^trim_threshold +0x0 +0\.\." "$T/.out"'
ok "allocators --settings jemalloc" "$H" allocators --settings jemalloc
check "jemalloc's list has dirty_decay_ms with its default" 'grep -Eq "^dirty_decay_ms +[0-9]+" "$T/.out"'
ok "allocators --settings heaplab" "$H" allocators --settings heaplab
check "heaplab's list has retain, default 4 MiB" 'grep -Eq "^retain +4194304 " "$T/.out"'
fails_with_one_line "allocators --settings of an unknown allocator" "$H" allocators --settings nosuch

# ---- shards: every cell exactly once ----
ok "full replay" "$H" replay -q "$T/small.hlt" "$T/large.hlt" -n 1 -a glibc,heaplab,jemalloc \
    --format json -o "$T/full.json"
for i in 1 2 3 4; do
    "$H" replay -q "$T/small.hlt" "$T/large.hlt" -n 1 -a glibc,heaplab,jemalloc --shard "$i/4" \
        --format json -o "$T/shard$i.json"
done
cells() { python3 -c 'import json,sys
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]: print(r["trace"], r["allocator"])' "$@" | sort; }
eq "4 shards hold the full run's 6 cells, each once" "$(cells "$T"/shard?.json)" "$(cells "$T/full.json")"
check "no shard is empty or whole" \
    '[ "$(cells "$T/shard1.json" | wc -l)" -ge 1 ] && [ "$(cells "$T/shard1.json" | wc -l)" -lt 6 ]'
fails_with_one_line "--shard 5/4 refused" "$H" replay "$T/small.hlt" --shard 5/4

# ---- merge ----
ok "merge of the shards" "$H" merge -o "$T/merged.csv" "$T"/shard?.json
eq "the merge holds every cell once, names unchanged" \
    "$(python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])): print(r["trace"], r["allocator"])' "$T/merged.csv" | sort)" \
    "$(cells "$T/full.json")"
fails_with_one_line "overlapping shards refused" "$H" merge -o "$T/x.csv" "$T/shard1.json" "$T/full.json"
# A second machine: the same results, as if run on host 'other' with 8 cores.
python3 - "$T/full.json" "$T/other.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["host"], d["cores"] = "other", 8
for r in d["results"]:
    r["host"], r["cores"] = "other", 8
json.dump(d, open(sys.argv[2], "w"))
PY
ok "merge of two machines' files" "$H" merge -o "$T/machines.csv" "$T/full.json" "$T/other.json"
host=$(json "$T/full.json" 'j["results"][0]["host"]')
eq "allocators are named per machine" \
    "$(csvcol "$T/machines.csv" allocator | sort -u | paste -sd' ')" \
    "$(printf '%s\n' "glibc@$host" glibc@other "heaplab@$host" heaplab@other "jemalloc@$host" jemalloc@other | sort | paste -sd' ')"
ok "plot draws the machines in one chart" "$H" plot "$T/machines.csv" -o "$T/mcharts" --format png
check "the peak RSS chart has a bar series per allocator and machine" \
    'head -2 "$T/mcharts/data/peak-rss.dat" | grep -q "glibc@other" && head -2 "$T/mcharts/data/peak-rss.dat" | grep -q "glibc@$host"'
check "the report's provenance names both hosts" 'grep -q "other" "$T/mcharts/report.md" && grep -q "$host" "$T/mcharts/report.md"'
sed 's/"trace_hash": "[0-9a-f]*"/"trace_hash": "00000000deadbeef"/' "$T/other.json" >"$T/otherhash.json"
fails_with_one_line "merge refuses traces with different hashes" "$H" merge -o "$T/x.csv" "$T/full.json" "$T/otherhash.json"
grep -q "not the same trace" "$T/.stderr"
check "... saying so" '[ $? -eq 0 ]'
python3 - "$T/other.json" "$T/v9.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["heaplab_version"] = "9.0.0"
for r in d["results"]:
    r["heaplab_version"] = "9.0.0"
json.dump(d, open(sys.argv[2], "w"))
PY
fails_with_one_line "merge refuses another heaplab major version" "$H" merge -o "$T/x.csv" "$T/full.json" "$T/v9.json"
grep -q "major version" "$T/.stderr"
check "... saying so" '[ $? -eq 0 ]'

# ---- diff ----
# Planted: heaplab's instructions 10% up in one cell; its time range moved wholly above.
python3 - "$T/full.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for i, r in enumerate(d["results"]):
    r["instructions"] = 1000000 + 1000 * i
    r["counters_source"] = "sim"
json.dump(d, open(sys.argv[1].replace("full", "base"), "w"))
for r in d["results"]:
    if r["allocator"] == "heaplab" and r["trace"].endswith("large.hlt"):
        r["instructions"] = int(r["instructions"] * 1.10)
    if r["allocator"] == "glibc" and r["trace"].endswith("large.hlt"):
        r["instructions"] = int(r["instructions"] * 1.10)
        span = r["time_ns_max"] - r["time_ns_min"] + 1
        for k in ("time_ns", "time_ns_min", "time_ns_max"):
            r[k] = r[k] * 2 + span
json.dump(d, open(sys.argv[1].replace("full", "worse"), "w"))
PY
ok "diff of a result set with itself passes the gate" "$H" diff "$T/base.json" "$T/base.json" \
    --fail-on 'heaplab:instructions>1%' --fail-on 'glibc:time>5%'
fails_with_one_line "diff fails on heaplab's planted 10% instructions regression" \
    "$H" diff "$T/base.json" "$T/worse.json" --fail-on 'heaplab:instructions>5%'
check "... and prints the cell as worse, FAIL" 'grep -Eq "large +heaplab +instructions .*1\.100 +worse +FAIL" "$T/.stdout"'
python3 - "$T/worse.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["results"]:
    r["recorded_threads"] = 2 if r["trace"].endswith("large.hlt") else 1
json.dump(d, open(sys.argv[1].replace("worse", "worse-threads"), "w"))
PY
ok "the same counts on a cell of several replay threads are not gated" \
    "$H" diff "$T/base.json" "$T/worse-threads.json" --fail-on 'heaplab:instructions>5%'
check "... but printed as such" 'grep -Eq "large +heaplab +instructions .*worse +\(threads: not gated\)" "$T/.out"'
ok "a regression below the threshold passes" "$H" diff "$T/base.json" "$T/worse.json" --fail-on 'heaplab:instructions>15%'
ok "a regression of another allocator passes heaplab's gate" "$H" diff "$T/base.json" "$T/worse.json" \
    --fail-on 'jemalloc:instructions>1%'
fails_with_one_line "a time regression beyond the runs' spread fails" "$H" diff "$T/base.json" "$T/worse.json" \
    --fail-on 'glibc:time>5%'
fails_with_one_line "a gate on a metric no cell has fails" "$H" diff "$T/full.json" "$T/full.json" \
    --fail-on 'heaplab:instructions>1%'
fails_with_one_line "a malformed --fail-on is a usage error" "$H" diff "$T/base.json" "$T/base.json" --fail-on 'heaplab:speed>5'
check "... with status 2" '"$H" diff "$T/base.json" "$T/base.json" --fail-on "heaplab:time>x%" 2>/dev/null; [ $? -eq 2 ]'
fails_with_one_line "diff of a truncated file" "$H" diff "$T/base.json" <(head -c 300 "$T/base.json")
done_testing
