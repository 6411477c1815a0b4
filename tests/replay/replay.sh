#!/bin/bash
# heaplab replay and heaplab allocators, end to end: exact counts from hand-written
# traces against every allocator, threads, contract checks, counters, output forms,
# provenance, and one-line errors for bad input.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
H=$HEAPLAB
LIBDIR=$HEAPLAB_BUILD/tests/replay
BUMP=$LIBDIR/libhl-bump.so
BROKEN=$LIBDIR/libhl-broken.so
TCMALLOC=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
LIBZ=/usr/lib/x86_64-linux-gnu/libz.so.1

# csvcol FILE COLUMN: the column's values, one per row (the CSV has no quoted commas
# in the columns asked for here).
csvcol() {
    python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])): print(r[sys.argv[2]])' "$1" "$2"
}

# time_split (JSON): parts that are never negative and add up to the measured loop time (on
# the 4-thread trace too, where the waits for other threads are one of the parts).
SPLIT='all(all(r["time_split"][k] >= 0 for k in ("allocator_ns", "touch_check_ns", "wait_ns", "rest_ns")) and abs(sum(r["time_split"][k] for k in ("allocator_ns", "touch_check_ns", "wait_ns", "rest_ns")) - r["time_ns"]) <= 2 for r in j["results"])'

# A hand-written trace: 9 calls replayed, one foreign free skipped, peak live 380 bytes
# (64 + 100 + 80 + 100 aligned + ... as computed by hand below).
cat >"$T/small.txt" <<'TXT'
t0 malloc 64 -> #0
t0 malloc 100 -> #1
t0 calloc 10x8 -> #2
t0 free #0
t0 realloc #1 200 -> #3
t0 memalign align=64 100 -> #4
t0 free ?
t0 free #3
t0 free #2
t0 free #4
TXT
# live after each call: 64, 164, 244, 180, 280, 380, -, 180, 100, 0  -> peak 380
"$H" import --format text "$T/small.txt" -o "$T/small.hlt" >/dev/null

# ---- heaplab allocators ----
"$H" allocators >"$T/alloc.txt" 2>&1
ok "allocators lists glibc as available with its version" \
    grep -Eq "^glibc +[0-9]+\.[0-9]+ .*available" "$T/alloc.txt"
for a in jemalloc mimalloc; do
    if grep -Eq "^$a .*available$" "$T/alloc.txt"; then
        path=$(awk -v a=$a '$1 == a {print $3}' "$T/alloc.txt")
        check "allocators gives $a's library path and version" \
            "[ -f '$path' ] && awk -v a=$a '\$1 == a {exit \$2 ~ /^[0-9]/ ? 0 : 1}' '$T/alloc.txt'"
    else
        skip "allocators gives $a's library path and version" "$a not installed"
    fi
done
ok "allocators checks a library given by path" \
    bash -c "\"\$HEAPLAB\" allocators -a tc=$TCMALLOC | grep -Eq '^tc +[0-9].*available'"
ok "allocators says why a library does not replace malloc" \
    bash -c "\"\$HEAPLAB\" allocators -a z=$LIBZ | grep -q 'does not replace malloc'"

# ---- exact figures against every available allocator ----
# (Without meson's MALLOC_PERTURB_, about which replay warns: checked below.)
env -u MALLOC_PERTURB_ "$H" replay "$T/small.hlt" -n 1 --format csv -o "$T/small.csv" 2>"$T/err"
navail=$(grep -c 'available$' "$T/alloc.txt")
eq "replay defaults to every available allocator" "$(csvcol "$T/small.csv" allocator | wc -l)" "$navail"
eq "every allocator replays exactly the 9 calls" "$(csvcol "$T/small.csv" ops | sort -u)" 9
eq "every allocator reports the exact peak live bytes" \
    "$(csvcol "$T/small.csv" peak_live_bytes | sort -u)" 380
eq "no allocator that ships with heaplab breaks the contract on it" \
    "$(csvcol "$T/small.csv" violations | sort -u)" 0
eq "replay is silent on stderr when it is not a terminal" "$(cat "$T/err")" ""
MALLOC_PERTURB_=165 "$H" replay "$T/small.hlt" -n 1 -a glibc -o /dev/null 2>"$T/perturb.err"
eq "MALLOC_PERTURB_ set: replay says glibc's workers write every byte" \
    "$(grep -c '^heaplab: warning: MALLOC_PERTURB_=165 is set' "$T/perturb.err")" 1
MALLOC_PERTURB_=165 "$H" replay "$T/small.hlt" -n 1 -a heaplab -o /dev/null 2>"$T/perturb.err"
eq "but not when glibc is not replayed" "$(cat "$T/perturb.err")" ""
eq "the CSV header is the results schema" "$(head -1 "$T/small.csv")" \
    "trace,trace_hash,process,allocator,allocator_version,allocator_path,status,runs,ops,time_ns,time_ns_min,time_ns_max,ns_per_op,ops_per_s,peak_rss_bytes,peak_rss_min,peak_rss_max,peak_live_bytes,fragmentation,replay_live_bytes,user_ns,sys_ns,minor_faults,major_faults,instructions,l1d_misses,llc_misses,dtlb_misses,counters_source,lat_malloc_p50,lat_malloc_p99,lat_malloc_p999,lat_malloc_max,lat_free_p50,lat_free_p99,lat_free_p999,lat_free_max,violations,threads_mode,touch,tunables,heaplab_version,cpu,kernel,date,settings,host,cores,libc,startup_rss_bytes,startup_ns"
hash=$(csvcol "$T/small.csv" trace_hash | sort -u)
check "rows carry the trace's hash" "[ \${#hash} -eq 16 ]"
eq "glibc's row has its version and no library path" \
    "$(python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["allocator"] == "glibc": print(bool(r["allocator_version"]), r["allocator_path"] == "")' "$T/small.csv")" "True True"

# ---- one run, the table on stdout and the files beside it ----
"$H" replay "$T/small.hlt" -n 1 -a glibc,mimalloc --csv "$T/both.csv" --json "$T/both.json" >"$T/both.txt"
check "--csv/--json keep the table on stdout" "grep -q 'small.hlt  *mimalloc ' '$T/both.txt'"
eq "--csv writes one row per allocator" "$(csvcol "$T/both.csv" allocator | tr '\n' ' ')" "glibc mimalloc "
eq "--json writes the same rows" "$(json "$T/both.json" '" ".join(r["allocator"] for r in j["results"])')" "glibc mimalloc"

# ---- double and foreign frees ----
cat >"$T/buggy.txt" <<'TXT'
t0 malloc 32 -> #0
t0 malloc 32 -> #1
t0 free #0
t0 free ?
t0 free ?
t0 free #1
TXT
"$H" import --format text "$T/buggy.txt" -o "$T/buggy.hlt" >/dev/null
"$H" replay "$T/buggy.hlt" -n 1 -a glibc,jemalloc --format json -o "$T/buggy.json"
eq "double and foreign frees are reported as skipped" \
    "$(json "$T/buggy.json" '[r["skipped_unknown"] for r in j["results"]]')" "[2, 2]"
eq "double and foreign frees are not replayed" \
    "$(json "$T/buggy.json" '[r["ops"] for r in j["results"]]')" "[4, 4]"

# ---- threads: cross-thread frees and reallocs, both modes ----
python3 - "$T/mt.txt" <<'PY'
import random, sys
random.seed(7)
out, live, slot = [], [], 0
for i in range(30000):
    t = random.randrange(4)
    r = random.random()
    if live and r < 0.45:
        s = live.pop(random.randrange(len(live)))
        out.append(f"t{t} free #{s}")
    elif live and r < 0.55:
        s = live.pop(random.randrange(len(live)))
        out.append(f"t{t} realloc #{s} {random.randrange(1, 3000)} -> #{slot}")
        live.append(slot); slot += 1
    else:
        out.append(f"t{t} malloc {random.choice([8, 24, 64, 200, 1000, 5000])} -> #{slot}")
        live.append(slot); slot += 1
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
"$H" import --format text "$T/mt.txt" -o "$T/mt.hlt" >/dev/null
for mode in recorded serial; do
    rc=0
    timeout 120 "$H" replay "$T/mt.hlt" -n 1 --threads=$mode --check=full --format csv \
        -o "$T/mt-$mode.csv" 2>"$T/mt.err" || rc=$?
    eq "a 4-thread trace with cross-thread frees replays in $mode mode" "$rc" 0
    eq "$mode mode replays every call of the threaded trace" \
        "$(csvcol "$T/mt-$mode.csv" ops | sort -u)" 30000
    eq "$mode mode: no overlapping blocks or lost realloc contents (--check=full)" \
        "$(csvcol "$T/mt-$mode.csv" violations | sort -u)" 0
done
"$H" replay "$T/mt.hlt" -n 1 -a glibc,mimalloc --format json -o "$T/mt.json"
eq "a threaded replay's time_split parts are never negative and add up to the time" \
    "$(json "$T/mt.json" "$SPLIT")" True
eq "a threaded replay's time_split measures the threads' own time beside the wall time" \
    "$(json "$T/mt.json" 'all(r["time_split"]["thread_ns"] > 0 and r["time_split"]["from_events"] >= 30000 // 64 for r in j["results"])')" True
rc=0
timeout 300 "$H" replay "$T/mt.hlt" -n 1 -a glibc --counters=sim --format csv -o "$T/mt-vg.csv" || rc=$?
eq "the threaded trace replays under valgrind (callgrind) without deadlock" "$rc" 0

# ---- several processes in one trace ----
cat >"$T/procs.txt" <<'TXT'
process pid=100
t0 malloc 10 -> #0
t0 free #0
process pid=101 ppid=100
t0 malloc 20 -> #0
t0 malloc 30 -> #1
TXT
"$H" import --format text "$T/procs.txt" -o "$T/procs.hlt" >/dev/null
"$H" replay "$T/procs.hlt" -n 1 -a glibc --format csv -o "$T/procs.csv"
eq "each process of a trace is its own row, named FILE[pid]" \
    "$(csvcol "$T/procs.csv" trace | sed 's|.*/||' | tr '\n' ' ')" "procs.hlt[100] procs.hlt[101] "
eq "each process row has its own peak live bytes" \
    "$(csvcol "$T/procs.csv" peak_live_bytes | tr '\n' ' ')" "10 50 "

"$H" replay "$T/procs.hlt" -n 1 -a glibc -p 101 --format csv -o "$T/proc101.csv"
eq "--process replays one process of a trace" \
    "$(csvcol "$T/proc101.csv" trace | sed 's|.*/||')" "procs.hlt[101]"
fails_with_one_line "--process with a pid the trace does not have is a one-line error" \
    "$H" replay "$T/procs.hlt" -n 1 -a glibc -p 7
cat >"$T/exec.txt" <<'TXT'
process pid=200
t0 malloc 10 -> #0
process pid=200
t0 malloc 20 -> #0
TXT
"$H" import --format text "$T/exec.txt" -o "$T/exec.hlt" >/dev/null
"$H" replay "$T/exec.hlt" -n 1 -a glibc --format csv -o "$T/exec.csv"
eq "the images of an exec'ing process get distinct rows" \
    "$(csvcol "$T/exec.csv" trace | sed 's|.*/||' | tr '\n' ' ')" "exec.hlt[200] exec.hlt[200.2] "

# ---- a real program's trace, allocators by name and by path ----
# A trace recorded from python3 (every object through malloc); while `heaplab record`
# cannot give a usable one, a generated workload stands in (the test says which).
real=""
if "$H" record --help >/dev/null 2>&1; then
    PYTHONMALLOC=malloc "$H" record -o "$T/real.hlt" -- /usr/bin/python3 -c '
d = {str(i): [i, str(i) * 3] for i in range(20000)}
for i in range(0, 20000, 2): del d[str(i)]
print(len(sorted(d.items())))' >/dev/null 2>"$T/rec.err" &&
        "$H" replay "$T/real.hlt" -n 1 -a glibc --format json -o "$T/real.json" 2>/dev/null &&
        [ "$(json "$T/real.json" 'j["results"][0]["ops"]')" -ge 10000 ] && real="recorded from python3"
fi
if [ -z "$real" ]; then
    "$H" gen phases -o "$T/real.hlt" >/dev/null && real="generated (heaplab record gave no usable trace)"
fi
echo "# big trace: $real"
"$H" replay "$T/real.hlt" -n 1 -a glibc,jemalloc,mimalloc,tcmalloc=$TCMALLOC --format csv \
    -o "$T/real.csv" 2>"$T/real.err"
eq "a big trace ($real) replays against glibc, jemalloc, mimalloc and tcmalloc" \
    "$(csvcol "$T/real.csv" allocator | tr '\n' ' ')" "glibc jemalloc mimalloc tcmalloc "
check "peak RSS is above peak live bytes for every allocator" \
    "python3 -c 'import csv,sys
sys.exit(0 if all(int(r[\"peak_rss_bytes\"]) > int(r[\"peak_live_bytes\"]) > 0 for r in csv.DictReader(open(\"$T/real.csv\"))) else 1)'"
eq "a path-given allocator is named and its path kept" \
    "$(python3 -c 'import csv,sys
print([r["allocator_path"] for r in csv.DictReader(open(sys.argv[1])) if r["allocator"] == "tcmalloc"][0])' "$T/real.csv")" "$TCMALLOC"

# ---- counters ----
"$H" replay "$T/small.hlt" -n 1 -a glibc --format csv -o "$T/auto.csv"
src=$(csvcol "$T/auto.csv" counters_source)
if [[ $src == n/a* ]]; then
    eq "without hardware counters, instructions are empty, not zero" "$(csvcol "$T/auto.csv" instructions)" ""
    check "without hardware counters, counters_source says why and how to get them" \
        "[[ '$src' == *'perf_event_open'*'--counters=sim'* ]]"
else
    check "hardware counters count instructions" "[ '$(csvcol "$T/auto.csv" instructions)' -gt 0 ]"
    skip "without hardware counters, counters_source says why" "this machine has a PMU"
fi
# (glibc: jemalloc's and mimalloc's purging reads the clock, so their counts may move
# by a few hundred instructions from one run to the next)
for i in 1 2; do
    "$H" replay "$T/mt.hlt" --threads=serial -n 1 -a glibc --counters=sim --format csv \
        -o "$T/sim$i.csv"
done
check "--counters=sim counts instructions (non-zero)" \
    "[ \"\$(csvcol '$T/sim1.csv' instructions | sort -n | head -1)\" -gt 0 ]"
eq "--counters=sim gives the same instruction counts twice" \
    "$(csvcol "$T/sim1.csv" instructions | tr '\n' ' ')" "$(csvcol "$T/sim2.csv" instructions | tr '\n' ' ')"
eq "--counters=sim says where its counts come from" "$(csvcol "$T/sim1.csv" counters_source | sort -u)" sim

# ---- the contract checks ----
"$H" replay "$T/mt.hlt" --threads=serial -n 1 -a glibc,broken=$BROKEN --format json -o "$T/broken.json"
check "a misaligned, too-small, dirty-calloc allocator is flagged with violations" \
    "[ \"\$(json '$T/broken.json' 'j[\"results\"][1][\"violations\"]')\" -gt 0 ]"
check "violations are described in the JSON" \
    "json '$T/broken.json' 'any(\"aligned\" in v for v in j[\"results\"][1][\"violations_detail\"])' | grep -q True"
"$H" replay "$T/small.hlt" -n 1 -a bump=$BUMP,broken=$BROKEN >"$T/broken.txt"
check "the table flags the broken allocator and never marks it best" \
    "grep -E '^\S+ +broken ' '$T/broken.txt' | grep -q '!' && ! grep -E '^\S+ +broken ' '$T/broken.txt' | grep -q '\*'"
cat >"$T/calloc.txt" <<'TXT'
t0 calloc 100x8 -> #0
t0 free #0
TXT
"$H" import --format text "$T/calloc.txt" -o "$T/calloc.hlt" >/dev/null
"$H" replay "$T/calloc.hlt" -n 1 -a broken=$BROKEN --format json -o "$T/calloc.json"
check "calloc memory that is not zeroed is a violation" \
    "json '$T/calloc.json' 'j[\"results\"][0][\"violations_detail\"]' | grep -q 'not zeroed'"

# The checks are never timed: the timed runs make no malloc_usable_size call, one more
# run per allocator makes them all (small.hlt: 5 new blocks get the usable-size check).
COUNT=$LIBDIR/libhl-count.so
HL_USABLE_LOG="$T/usable" "$H" replay "$T/small.hlt" -n 3 -a count=$COUNT >/dev/null
counts=$(for f in "$T"/usable.*; do od -An -tu8 -N8 "$f"; done | tr -s ' \n' ' ' | sed 's/^ //')
eq "--check=cheap: the probe and the 3 timed runs call malloc_usable_size 0 times, one verification run 5 times" \
    "$(echo $counts | tr ' ' '\n' | sort -n | tr '\n' ' ')" "0 0 0 0 5 "
rm -f "$T"/usable.*
HL_USABLE_LOG="$T/usable" "$H" replay "$T/small.hlt" -n 2 -a count=$COUNT --check=none >/dev/null
eq "--check=none: no run calls malloc_usable_size, and there is no verification run" \
    "$(for f in "$T"/usable.*; do od -An -tu8 -N8 "$f"; done | tr -s ' \n' ' ')" " 0 0 0 "

# Peak RSS counts the allocator's start-up memory, as a program running under it pays
# it, and never the harness's own (its tables, its replay threads' stacks): an allocator
# that writes 8 MiB before main shows 8 MiB or more of start-up memory, in peak RSS too;
# the bump allocator, which sets nothing up, under 1 MiB (what ld.so and libc set up
# for the process besides).
STARTUP=$LIBDIR/libhl-startup.so
for thr in serial recorded; do
    "$H" replay "$T/mt.hlt" -n 1 -a startup=$STARTUP,bump=$BUMP --threads=$thr --format json \
        -o "$T/startup-$thr.json" 2>/dev/null
    eq "$thr threads: start-up memory of the 8 MiB allocator >= 8 MiB, and inside its peak RSS" \
        "$(json "$T/startup-$thr.json" '[r["startup_rss_bytes"] >= 8 << 20 and r["peak_rss_bytes"] >= r["startup_rss_bytes"] for r in j["results"] if r["allocator"] == "startup"]')" \
        "[True]"
    eq "$thr threads: start-up memory of the bump allocator < 1 MiB (the harness's own memory is left out)" \
        "$(json "$T/startup-$thr.json" '[r["startup_rss_bytes"] < 1 << 20 for r in j["results"] if r["allocator"] == "bump"]')" \
        "[True]"
    # Start-up time (fork of the worker to its first own instruction) is measured for
    # every cell, apart from the timed window.
    eq "$thr threads: startup_ns measured for every allocator" \
        "$(json "$T/startup-$thr.json" '[isinstance(r["startup_ns"], int) and r["startup_ns"] > 0 for r in j["results"]]')" \
        "[True, True]"
done

# --gaps spends the recorded time between calls writing to the recent live blocks, a
# fixed number of cache lines per microsecond (gaps.h: 250), never to a freed block.
# Events 0-63: malloc 4096 then 63 x malloc 64, 1 us apart (63 us: 15750 lines, all
# blocks live); events 64-127: every block freed, the first 100 us after event 63, then
# 1 us apart (163 us recorded, nothing live to write to: 0 lines).
python3 - "$T/gaps.txt" <<'PY'
import sys
out = ["0 t0 malloc 4096 -> #0"] + ["%d t0 malloc 64 -> #%d" % (1000 * i, i) for i in range(1, 64)]
out += ["%d t0 free #%d" % (163000 + 1000 * i, i) for i in range(64)]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
"$H" import --format text "$T/gaps.txt" -o "$T/gaps.hlt" >/dev/null
"$H" replay "$T/gaps.hlt" -n 2 -a glibc,bump=$BUMP --gaps --format json -o "$T/gaps.json"
eq "--gaps: the recorded time spent, and 15750 cache lines written, none to freed blocks, under every allocator" \
    "$(json "$T/gaps.json" '[(r["gaps"]["recorded_ns"], r["gaps"]["lines_written"]) for r in j["results"]]')" \
    "[(226000, 15750), (226000, 15750)]"
check "--gaps: the time split gives the time spent in the gaps, and its parts still add up" \
    "json '$T/gaps.json' 'all(r[\"time_split\"][\"gap_ns\"] > 0 and abs(sum(r[\"time_split\"][k] for k in (\"allocator_ns\", \"touch_check_ns\", \"wait_ns\", \"gap_ns\", \"rest_ns\")) - r[\"time_ns\"]) <= 2 for r in j[\"results\"])' | grep -qx True"
"$H" replay "$T/small.hlt" -n 1 -a glibc --format json -o "$T/nogaps.json"
eq "without --gaps no gap is spent" \
    "$(json "$T/nogaps.json" '[("gaps" in r, r["time_split"]["gap_ns"]) for r in j["results"]]')" "[(False, 0)]"
"$H" replay "$T/mt.hlt" -n 1 -a glibc --gaps --format csv -o "$T/mt-gaps.csv"
eq "--gaps replays a threaded trace serially, in its recorded order" \
    "$(csvcol "$T/mt-gaps.csv" threads_mode)" serial

# ---- recorded concurrency: a barrier program (every block live at the barrier) ----
"$H" record -o "$T/barrier.hlt" -- "$LIBDIR/hl-barrier" 8 1500 >/dev/null 2>&1
for mode in recorded serial; do
    "$H" replay "$T/barrier.hlt" -n 1 -a glibc,jemalloc --threads=$mode --format csv \
        -o "$T/barrier-$mode.csv" 2>/dev/null
    eq "barrier program, $mode threads: every cell measured" \
        "$(csvcol "$T/barrier-$mode.csv" status | sort -u)" ok
    # Peak RSS counts from a baseline taken before the first event: blocks that land in
    # heap the allocator had resident by then (glibc's arena, from the worker's own
    # start) raise no RSS, so a few pages of 6.6 MB (under 2%) can go uncounted.
    check "barrier program, $mode threads: fragmentation >= 0.98 (peak RSS over the replay's own live peak)" \
        "python3 -c 'import csv,sys; sys.exit(0 if all(float(r[\"fragmentation\"]) >= 0.98 for r in csv.DictReader(open(\"$T/barrier-$mode.csv\"))) else 1)'"
done
check "barrier program, recorded threads: the replay's live peak is within 5% of the recorded one" \
    "python3 -c 'import csv,sys; sys.exit(0 if all(abs(int(r[\"replay_live_bytes\"]) - int(r[\"peak_live_bytes\"])) <= 0.05 * int(r[\"peak_live_bytes\"]) for r in csv.DictReader(open(\"$T/barrier-recorded.csv\"))) else 1)'"
eq "barrier program, serial: the replay's live peak is the recorded one" \
    "$(csvcol "$T/barrier-serial.csv" replay_live_bytes | sort -u)" "$(csvcol "$T/barrier-serial.csv" peak_live_bytes | sort -u)"

# ---- the windowed plan counts what the trace holds (the corpus, against stat) ----
for t in awk perl python python-threads sqlite; do
    f=$HEAPLAB_SRC/traces/corpus/$t.hlt
    [ -f "$f" ] || continue
    "$H" stat --json "$f" >"$T/c-stat.json"
    "$H" replay "$f" -a bump=$BUMP -n 1 --check=none --touch=none --format json -o "$T/c-rp.json" -q \
        --no-plan-cache
    eq "corpus $t: replayed + skipped events and peak live bytes are the trace's (stat)" \
        "$(json "$T/c-rp.json" '[(r["ops"] + r["skipped_unknown"] + r["skipped_failed"], r["peak_live_bytes"]) for r in j["results"]]')" \
        "$(json "$T/c-stat.json" '[(j["events"], j["peak_live_bytes"])]')"
    [ "$t" = python-threads ] && check "corpus python-threads, recorded threads: the replay's live peak within 5% of the recorded one" \
        "json '$T/c-rp.json' 'all(abs(r[\"replay_live_bytes\"] - r[\"peak_live_bytes\"]) <= 0.05 * r[\"peak_live_bytes\"] for r in j[\"results\"])' | grep -q True"
done

# ---- plans kept beside the trace and reused while trace and options match ----
cp "$T/small.hlt" "$T/cache.hlt"
ops() { "$H" replay "$T/cache.hlt" -a glibc -n 1 -q --format csv "$@" | sed -n 2p | cut -d, -f9; }
eq "a first replay plans the trace" "$(ops)" 9
check "and keeps the plan beside it" "[ -s '$T/cache.hlt.0.plan' ]"
before=$(stat -c '%i %z' "$T/cache.hlt.0.plan")
eq "a second replay gives the same counts" "$(ops)" 9
eq "from the kept plan, not a new one" "$(stat -c '%i %z' "$T/cache.hlt.0.plan")" "$before"
ops --threads=serial >/dev/null
check "other options make a new plan" "[ \"\$(stat -c '%i %z' '$T/cache.hlt.0.plan')\" != '$before' ]"
truncate -s 100 "$T/cache.hlt.0.plan"
eq "a truncated plan is not used: replanned, same counts" "$(ops)" 9
check "and replaced whole" "[ \$(stat -c %s '$T/cache.hlt.0.plan') -gt 4096 ]"
dd if=/dev/zero of="$T/cache.hlt.0.plan" bs=64 count=1 conv=notrunc 2>/dev/null
eq "a damaged plan is not used: replanned, same counts" "$(ops)" 9
cp "$T/calloc.hlt" "$T/cache.hlt"
eq "a changed trace is replanned (its plan is the old trace's)" "$(ops)" 2
rm -f "$T"/nocache.hlt*; cp "$T/small.hlt" "$T/nocache.hlt"
"$H" replay "$T/nocache.hlt" -a glibc -n 1 -q --no-plan-cache >/dev/null
eq "--no-plan-cache keeps nothing beside the trace" "$(ls "$T" | grep -c '^nocache.hlt.*plan')" 0

# ---- bounded memory: a trace whose whole plan (16 B/event) would be 160 MB ----
"$H" gen threadtest threads=1 iterations=2000 objects=2500 -o "$T/long.hlt" >/dev/null
maxrss=$(python3 -c '
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)' \
    "$H" replay "$T/long.hlt" -n 1 -a glibc --check=none -q)
check "10M events replayed with heaplab and its worker under 64 MiB (VmHWM; got $maxrss KiB)" \
    "[ '$maxrss' -lt 65536 ]"

# ---- a plan too large for the page cache is streamed (its pages given back behind) ----
cp "$T/long.hlt" "$T/stream.hlt"
cnt() { json "$1" '[(r["ops"], r["skipped_unknown"], r["peak_live_bytes"], r["replay_live_bytes"]) for r in j["results"]]'; }
"$H" replay "$T/long.hlt" -n 1 -a glibc --check=full -q --format json -o "$T/unstreamed.json"
HEAPLAB_PLAN_STREAM_MIN=1 "$H" replay "$T/stream.hlt" -n 2 -a glibc --check=full -q \
    --format json -o "$T/streamed.json"
eq "a streamed plan replays the same events, checked in full, as one left in the page cache" \
    "$(cnt "$T/streamed.json")" "$(cnt "$T/unstreamed.json")"
eq "both runs measured (the second reads the plan back after the first gave its pages back)" \
    "$(json "$T/streamed.json" '[(r["runs"], r["status"]) for r in j["results"]]')" "[(2, 'ok')]"
HEAPLAB_PLAN_STREAM_MIN=1 "$H" replay "$T/stream.hlt" -n 1 -a glibc --check=full -q \
    --format json -o "$T/streamed2.json"
eq "the streamed plan kept beside the trace replays the same events again" \
    "$(cnt "$T/streamed2.json")" "$(cnt "$T/unstreamed.json")"
plan_kib=$(( $(stat -c %s "$T/stream.hlt.0.plan") / 1024 ))
res_kib=$(( $(fincore -b -n -o RES "$T/stream.hlt.0.plan" | tr -d ' ') / 1024 ))
check "and leaves little of it in the page cache ($res_kib of $plan_kib KiB)" \
    "[ $plan_kib -gt 16384 ] && [ $res_kib -lt $((plan_kib / 2)) ]"

# ---- output forms, runs, timeline ----
"$H" replay "$T/small.hlt" -n 3 -a glibc,mimalloc --format json -o "$T/n3.json"
eq "-n 3 makes 3 runs per allocator" "$(json "$T/n3.json" '[r["runs"] for r in j["results"]]')" "[3, 3]"
eq "the median time lies between min and max" \
    "$(json "$T/n3.json" 'all(r["time_ns_min"] <= r["time_ns"] <= r["time_ns_max"] for r in j["results"])')" True
eq "JSON carries per-op latency percentiles" \
    "$(json "$T/n3.json" 'sorted(j["results"][0]["latency"]["malloc"].keys())')" \
    "['max', 'p50', 'p99', 'p999', 'samples']"
eq "JSON splits the time into allocator, touch/check, waits and the rest, adding up to the time" \
    "$(json "$T/n3.json" "$SPLIT")" True
eq "time_split counts the allocator's calls (non-zero) from the events it timed" \
    "$(json "$T/n3.json" 'all(r["time_split"]["allocator_ns"] > 0 and r["time_split"]["from_events"] == 1 for r in j["results"])')" True
eq "JSON carries provenance at the top" \
    "$(json "$T/n3.json" 'all(j[k] for k in ("heaplab_version", "cpu", "kernel", "date"))')" True
env -u MALLOC_PERTURB_ MALLOC_ARENA_MAX=2 "$H" replay "$T/small.hlt" -n 1 -a glibc --format csv -o "$T/tun.csv"
eq "the allocator tunables in effect are recorded" "$(csvcol "$T/tun.csv" tunables)" "MALLOC_ARENA_MAX=2"
"$H" replay "$T/small.hlt" -n 1 -a glibc --timeline "$T/tl.csv" --timeline-every 1 >/dev/null
eq "--timeline writes its CSV header" "$(head -1 "$T/tl.csv")" "trace,allocator,run,event,time_ns,live_bytes,rss_bytes"
eq "--timeline samples live bytes from the trace" \
    "$(cut -d, -f6 "$T/tl.csv" | tail -n +2 | tr '\n' ' ')" "64 164 244 180 280 380 180 100 0 "
"$H" replay "$T/small.hlt" -n 1 -a glibc,jemalloc >"$T/table.txt"
check "the table has a row per allocator and marks the best values" \
    "grep -q '^.*small.hlt *glibc' '$T/table.txt' && grep -q '^.*small.hlt *jemalloc' '$T/table.txt' && grep -q ' \*' '$T/table.txt'"

deep="$T/a-folder-with-a-rather-long-name/and-another-long-folder-name"
mkdir -p "$deep" && cp "$T/small.hlt" "$deep/small.hlt"
"$H" replay "$deep/small.hlt" -n 1 -a glibc >"$T/deep.txt"
check "a long trace path keeps its file name in the table" "grep -q '^\.\.\..*/small.hlt  *glibc' '$T/deep.txt'"

# ---- bad input: one line, non-zero exit ----
head -c 100 "$T/mt.hlt" >"$T/trunc.hlt"
fails_with_one_line "a missing trace is a one-line error" "$H" replay "$T/nonexistent.hlt"
fails_with_one_line "a file that is not a trace is a one-line error" "$H" replay /etc/passwd
fails_with_one_line "a truncated trace is a one-line error" "$H" replay "$T/trunc.hlt" -a glibc
fails_with_one_line "an unknown allocator is a one-line error" "$H" replay "$T/small.hlt" -a nosuch
fails_with_one_line "a library that is not a malloc replacement is a one-line error" \
    "$H" replay "$T/small.hlt" -a z=$LIBZ
fails_with_one_line "a missing library is a one-line error" "$H" replay "$T/small.hlt" -a x=/nonexistent/lib.so
fails_with_one_line "a file that is not a library is a one-line error" "$H" replay "$T/small.hlt" -a x=/etc/passwd
fails_with_one_line "an unknown --threads mode is a one-line error" "$H" replay "$T/small.hlt" --threads=many
fails_with_one_line "replay without a trace is a one-line error" "$H" replay
printf 't0 malloc 10 -> #0\nt0 malloc 4242 -> #1\n' >"$T/crash.txt"
"$H" import --format text "$T/crash.txt" -o "$T/crash.hlt" >/dev/null
rc=0
timeout 60 "$H" replay "$T/crash.hlt" -n 2 -a glibc,crash=$LIBDIR/libhl-crash.so --format csv \
    -o "$T/crash.csv" 2>"$T/crash.err" || rc=$?
eq "an allocator that crashes during replay does not stop the others" "$rc" 0
check "the crashed cell says why: the worker's signal" \
    "csvcol '$T/crash.csv' status | sed -n 2p | grep -q '^n/a: .*killed by signal'"
eq "the other allocator's cell is measured" "$(csvcol "$T/crash.csv" status | head -1)" ok
eq "the crash is one line on stderr naming the trace and allocator" \
    "$(grep -c 'crash.hlt: crash: .*killed by signal' "$T/crash.err")" 1

# ---- --timeout: a hanging allocator is given up on, its cell n/a with the reason ----
printf 't0 malloc 10 -> #0\nt0 malloc 4343 -> #1\n' >"$T/hang.txt"
"$H" import --format text "$T/hang.txt" -o "$T/hang.hlt" >/dev/null
rc=0
timeout 60 "$H" replay "$T/hang.hlt" -n 2 -a glibc,hang=$LIBDIR/libhl-crash.so --timeout 1 \
    --format csv -o "$T/hang.csv" --json "$T/hang.json" 2>"$T/hang.err" || rc=$?
eq "--timeout gives up on a hanging allocator and still reports the others" "$rc" 0
eq "a timed-out cell has no made-up time: its time_ns is empty" \
    "$(csvcol "$T/hang.csv" time_ns | sed -n 2p)" ""
eq "the status column gives the reason, ok for a measured cell" \
    "$(csvcol "$T/hang.csv" status | tr '\n' '|')" "ok|n/a: timed out after 1 s|"
check "the allocators that finished keep their measured time" \
    "[ \"\$(csvcol '$T/hang.csv' time_ns | head -1)\" -gt 0 ]"
eq "a timed-out cell's measured fields are empty, never zero" \
    "$(json "$T/hang.json" '[(r["status"], r["peak_rss_bytes"], r["ns_per_op"], r["time_split"]) for r in j["results"] if r["allocator"] == "hang"]')" \
    "[('n/a: timed out after 1 s', None, None, None)]"
eq "a timeout is one line on stderr naming the trace and allocator" \
    "$(grep -c 'hang.hlt: hang: timed out after 1 s' "$T/hang.err")" 1
"$H" replay "$T/hang.hlt" -n 1 -a glibc,hang=$LIBDIR/libhl-crash.so --timeout 1 >"$T/hang.txt" 2>/dev/null
check "the table says which cell timed out" "grep -q 'hang  *timed out' '$T/hang.txt'"
# By default (no --timeout) a hanging allocator is still given up on: the limit comes
# from the shortest run on the trace (here at least HL_RP_TIMEOUT_MIN_S = 10 s).  The
# library is a copy under this test's own folder, so that the process table is
# searched for this run's workers only (not those of a suite running beside it).
rc=0
cp "$LIBDIR/libhl-crash.so" "$T/hang-own.so"
timeout 120 "$H" replay "$T/hang.hlt" -n 1 -a glibc,hang="$T/hang-own.so" --format csv \
    -o "$T/hang-default.csv" 2>/dev/null & hpid=$!
wait $hpid || rc=$?
eq "without --timeout a hanging allocator is given up on and the others reported" "$rc" 0
eq "its cell says it timed out" "$(csvcol "$T/hang-default.csv" status | tr '\n' '|')" \
    "ok|n/a: timed out after 10 s|"
eq "no replay worker is left behind" \
    "$(pgrep -f "__worker run.*$T/hang-own.so" | wc -l)" 0
fails_with_one_line "a negative --timeout is a one-line error" "$H" replay "$T/small.hlt" --timeout -1
fails_with_one_line "an output file that cannot be written is a one-line error" \
    "$H" replay "$T/small.hlt" -a glibc -o "$T/no/such/dir/out.csv"
"$H" replay "$T/trunc.hlt" -a glibc -o "$T/failed.csv" 2>/dev/null
check "a failed replay leaves no output file behind" "[ ! -e '$T/failed.csv' ]"
done_testing
