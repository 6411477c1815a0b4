#!/bin/bash
# heaplab stat, gen and import --format mtrace through the executable: exact figures of
# hand-written traces (text form), damaged traces, generated workloads, and a real glibc
# mtrace log made by a small C program (compared with a recording of the same program).
. "$HEAPLAB_SRC/tests/lib/lib.sh"
H=$HEAPLAB
py() { python3 -c "$@"; }

# ---- exact figures of a hand-written trace (see tests/stat/test_analysis.c) ----
cat >"$T/mixed.txt" <<'EOF'
# heaplab-text 1
process pid=42 ppid=1 cmdline="mixed"
0 t0 malloc 0 -> #0
1000 t0 malloc 1 -> #1
2000 t0 malloc 24 -> #2
3000 t0 free #2
4000 t1 malloc 24 -> #3
5000 t0 free #3
6000 t0 calloc 10x24 -> #4
7000 t0 realloc #4 480 -> #5
8000 t0 realloc #5 480 -> #6
9000 t0 realloc #6 100 -> #7
10000 t0 realloc NULL 24 -> #8
11000 t0 malloc 4611686018427387904 -> FAILED
12000 t0 free ?
13000 t0 free NULL
14000 t1 posix_memalign align=4096 64 -> #9
15000 t1 free #9
16000 t0 free #0
EOF
ok "a hand-written text trace imports" "$H" import "$T/mixed.txt" -o "$T/mixed.hlt"
"$H" stat --json "$T/mixed.hlt" >"$T/mixed.json" 2>"$T/err"
j() { json "$T/mixed.json" "$1"; }
eq "stat --json: processes, threads, events" "$(j '(j["processes"], j["threads"], j["events"])')" "(1, 2, 17)"
eq "stat --json: ops per name" "$(j 'sorted((k, v) for k, v in j["ops"].items() if v)')" \
    "[('calloc', 1), ('free', 6), ('malloc', 5), ('posix_memalign', 1), ('realloc', 4)]"
eq "stat --json: every op name is present" "$(j 'len(j["ops"])')" 10
eq "stat --json: bytes requested, peak live, leaks, duration" \
    "$(j '(j["bytes_requested"], j["peak_live_bytes"], j["leaked_blocks"], j["leaked_bytes"], j["duration_ns"])')" \
    "(1437, 481, 3, 125, 16000)"
eq "stat --json: when the peak happens" "$(j '(j["peak_live_event"], j["peak_live_time_ns"])')" "(7, 7000)"
eq "stat --json: size histogram in power-of-two buckets" \
    "$(j '[(b["lo"], b["hi"], b["count"]) for b in j["size_histogram"]]')" \
    "[(0, 0, 1), (1, 1, 1), (16, 31, 3), (64, 127, 2), (128, 255, 1), (256, 511, 2)]"
eq "stat --json: top exact sizes" "$(j '[(s["size"], s["count"]) for s in j["top_sizes"][:3]]')" \
    "[(24, 3), (480, 2), (0, 1)]"
eq "stat --json: lifetime histogram in events" \
    "$(j '[(b["lo"], b["count"]) for b in j["lifetime_events_histogram"]]')" "[(1, 6), (16, 1)]"
eq "stat --json: lifetime histogram in ns" \
    "$(j '[(b["lo_ns"], b["count"]) for b in j["lifetime_ns_histogram"]]')" "[(1000, 6), (10000, 1)]"
eq "stat --json: leaks grouped by size" \
    "$(j '[(l["size"], l["blocks"]) for l in j["leaks_by_size"]]')" "[(100, 1), (24, 1), (1, 1)]"
eq "stat --json: failed, unknown, NULL and cross-thread frees, temporary" \
    "$(j '(j["failed"]["malloc"], j["unknown_frees"], j["null_frees"], j["cross_thread_frees"], j["temporary_allocations"])')" \
    "(1, 1, 1, 1, 2)"
eq "stat --json: realloc growth patterns" \
    "$(j '(j["realloc"]["grow"], j["realloc"]["shrink"], j["realloc"]["same"], j["realloc"]["from_null"], j["realloc"]["mean_growth_factor"])')" \
    "(1, 1, 1, 1, 2)"
eq "stat --json: per-thread counts" \
    "$(j '[(t["thread"], t["allocs"], t["frees"], t["cross_thread_frees"]) for t in j["thread_list"]]')" \
    "[(0, 8, 6, 1), (1, 2, 1, 0)]"
eq "stat --json: a one-section file lists that process" "$(j '[(p["pid"], p["events"]) for p in j["process_list"]]')" "[(42, 17)]"

# ---- leak trend: live 1000 B for 1 s, 2000 B for 1 s: slope 750 B/s, R^2 0.75 ----
printf '%s\n' "0 malloc 1000" "1000000000 malloc 1000" "2000000000 free #0" >"$T/step.txt"
"$H" import "$T/step.txt" -o "$T/step.hlt" 2>/dev/null
"$H" stat --json "$T/step.hlt" >"$T/step.json" 2>/dev/null
eq "leak trend: exact slope and R^2 of a step" \
    "$(json "$T/step.json" '(round(j["leak_trend"]["slope_bytes_per_s"], 6), round(j["leak_trend"]["r2"], 6))')" \
    "(750.0, 0.75)"
{
    echo "# a program that leaks one block in ten"
    t=0
    for i in $(seq 0 499); do
        echo "$t malloc 100 -> #$i"
        [ $((i % 10)) -eq 0 ] || echo "$((t + 100)) free #$i"
        t=$((t + 1000000))
    done
} >"$T/slowleak.txt"
"$H" import "$T/slowleak.txt" -o "$T/slowleak.hlt" 2>/dev/null
"$H" stat --json "$T/slowleak.hlt" >"$T/slowleak.json" 2>/dev/null
eq "leak trend: a slow leak shows a positive slope with a good fit" \
    "$(json "$T/slowleak.json" 'j["leak_trend"]["slope_bytes_per_s"] > 9000 and j["leak_trend"]["r2"] > 0.95')" True
"$H" stat "$T/slowleak.hlt" >"$T/slowleak.out" 2>&1
ok "human output shows the trend" grep -q "trend .*B/s" "$T/slowleak.out"

# ---- human output ----
"$H" stat "$T/mixed.hlt" >"$T/mixed.out" 2>&1
ok "human output: peak live with its event and time" grep -Eq "peak live +481 B .*at event 7 \(7.00 us\)" "$T/mixed.out"
ok "human output: leaks grouped by size" grep -Eq "leaks by size +100 B x1, 24 B x1, 1 B x1" "$T/mixed.out"
ok "human output: size histogram rows" grep -Eq "^ +256 B-511 B +2 +960 B #" "$T/mixed.out"
ok "human output: failed calls" grep -Eq "failed +1: malloc 1" "$T/mixed.out"

# ---- several process sections ----
cat >"$T/two.txt" <<'EOF'
process pid=10 ppid=1 start_ns=1000000000 cmdline="parent"
0 t0 malloc 100 -> #0
10 t1 malloc 50 -> #1
20 t0 free #1
process pid=11 ppid=10 start_ns=1000000500 cmdline="child"
0 t0 malloc 300 -> #0
1000 t0 free #0
EOF
"$H" import "$T/two.txt" -o "$T/two.hlt" 2>/dev/null
"$H" stat --json "$T/two.hlt" >"$T/two.json" 2>/dev/null
eq "several processes: totals at the top" \
    "$(json "$T/two.json" '(j["processes"], j["threads"], j["events"], j["leaked_bytes"], j["peak_live_bytes"], j["duration_ns"])')" \
    "(2, 3, 5, 100, 300, 1500)"
eq "several processes: each in process_list" \
    "$(json "$T/two.json" '[(p["pid"], p["ppid"], p["events"], p["threads"], p["peak_live_bytes"]) for p in j["process_list"]]')" \
    "[(10, 1, 3, 2, 150), (11, 10, 2, 1, 300)]"
"$H" stat "$T/two.hlt" >"$T/two.out" 2>&1
ok "several processes: the human summary has a row per process" \
    bash -c "grep -Eq '^ +10 +1 .*parent' '$T/two.out' && grep -Eq '^ +11 +10 .*child' '$T/two.out'"
ok "several processes: threads are labelled pid/thread" grep -Eq "^ +10/1 +1 +0 +50 B" "$T/two.out"
ok "several processes: the peak names its process" grep -Eq "peak live +300 B in pid 11 at event 0" "$T/two.out"
"$H" stat --json "$T/two.hlt" "$T/mixed.hlt" >"$T/both.json" 2>/dev/null
eq "several files: --json gives one object per file" "$(json "$T/both.json" '[o["events"] for o in j]')" "[5, 17]"

# ---- damaged and wrong input ----
"$H" gen larson -o "$T/big.hlt" 2>/dev/null
size=$(stat -c %s "$T/big.hlt")
head -c $((size / 2)) "$T/big.hlt" >"$T/trunc.hlt"
rc=0; "$H" stat "$T/trunc.hlt" >"$T/trunc.out" 2>"$T/trunc.err" || rc=$?
eq "truncated trace: exit 1" "$rc" 1
eq "truncated trace: one error line" "$(wc -l <"$T/trunc.err")" 1
ok "truncated trace: the error names the file and the offset" grep -Eq "trunc.hlt.*offset [0-9]+" "$T/trunc.err"
ok "truncated trace: what was read is printed first" grep -q "peak live" "$T/trunc.out"
rc=0; "$H" stat --json "$T/trunc.hlt" >"$T/trunc.json" 2>/dev/null || rc=$?
eq "truncated trace: --json holds the events read, marked incomplete" \
    "$(json "$T/trunc.json" 'j["complete"] is False and 0 < j["events"] < 1000000 and "offset" in j["error"]')" True
cp "$T/big.hlt" "$T/corrupt.hlt"
printf '\xff\x00\xff\x00' | dd of="$T/corrupt.hlt" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
fails_with_one_line "corrupted trace: one-line error" "$H" stat "$T/corrupt.hlt"
ok "corrupted trace: the error names the file and the offset" grep -Eq "corrupt.hlt.*offset [0-9]+" "$T/.stderr"
fails_with_one_line "missing trace: one-line error" "$H" stat "$T/nope.hlt"
ok "missing trace: the error names it" grep -q "nope.hlt" "$T/.stderr"
echo "not a trace" >"$T/junk.hlt"
fails_with_one_line "not a trace: one-line error" "$H" stat "$T/junk.hlt"
rc=0; "$H" stat >/dev/null 2>&1 || rc=$?
eq "stat without a trace is a usage error (exit 2)" "$rc" 2

# ---- gen ----
"$H" gen --list >"$T/list" 2>&1
for w in larson threadtest xmalloc cache-scratch fragmenter phases; do
    ok "gen --list describes $w" grep -q "^$w: " "$T/list"
done
ok "gen --list gives parameters with defaults" grep -Eq "^ +threads +4 " "$T/list"
"$H" gen xmalloc -o "$T/x1.hlt" --seed 5 blocks=20000 2>/dev/null
"$H" gen xmalloc -o "$T/x2.hlt" --seed 5 blocks=20000 2>/dev/null
"$H" gen xmalloc -o "$T/x3.hlt" --seed 6 blocks=20000 2>/dev/null
ok "gen: the same seed gives a byte-identical trace" cmp "$T/x1.hlt" "$T/x2.hlt"
ok "gen: another seed gives another trace" bash -c "! cmp -s '$T/x1.hlt' '$T/x3.hlt'"
(cd "$T" && "$H" gen threadtest iterations=2 2>/dev/null)
ok "gen: writes WORKLOAD.hlt by default" test -s "$T/threadtest.hlt"
for w in larson threadtest xmalloc cache-scratch fragmenter phases; do
    "$H" gen "$w" -o "$T/$w.hlt" 2>/dev/null
    "$H" stat --json "$T/$w.hlt" >"$T/$w.json" 2>/dev/null
    eq "gen $w: defaults give a valid trace of 0.2-5 M events" \
        "$(json "$T/$w.json" 'j["complete"] and 200000 <= j["events"] <= 5000000 and j["unknown_frees"] == 0 and j["double_frees"] == 0')" True
done
eq "gen larson: threads as requested, cross-thread frees" \
    "$(json "$T/larson.json" '(j["threads"], j["cross_thread_frees"] > 0, j["leaked_blocks"])')" "(4, True, 0)"
"$H" gen larson -o "$T/l8.hlt" threads=8 steps=1000 2>/dev/null
eq "gen larson threads=8: eight threads" "$("$H" stat --json "$T/l8.hlt" | python3 -c 'import json,sys; print(json.load(sys.stdin)["threads"])')" 8
eq "gen xmalloc: every free is cross-thread" \
    "$(json "$T/xmalloc.json" 'j["cross_thread_frees"] == j["frees"] > 0')" True
eq "gen threadtest: no cross-thread frees" "$(json "$T/threadtest.json" 'j["cross_thread_frees"]')" 0
fails_with_one_line "gen: unknown workload is a one-line error" "$H" gen nosuch
fails_with_one_line "gen: unknown parameter is a one-line error" "$H" gen larson -o "$T/z.hlt" bogus=3
fails_with_one_line "gen: out-of-range parameter is a one-line error" "$H" gen larson -o "$T/z.hlt" threads=0
fails_with_one_line "gen: unwritable output is a one-line error" "$H" gen larson -o /nonexistent/x.hlt
rc=0; "$H" gen >/dev/null 2>&1 || rc=$?
eq "gen without a workload is a usage error (exit 2)" "$rc" 2

# ---- glibc mtrace ----
cat >"$T/mt.c" <<'EOF'
#include <mcheck.h>
#include <stdlib.h>
int main(void)
{
    mtrace();
    char *a = malloc(100);
    char *b = calloc(4, 25);
    a = realloc(a, 300);
    char *c = malloc(7);
    free(b);
    void *p;
    if (posix_memalign(&p, 64, 50) == 0)
        free(p);
    void *big = malloc((size_t)1 << 62); /* fails */
    char *c2 = realloc(c, 4000);
    free(a);
    muntrace();
    (void)big;
    (void)c2; /* left allocated: a leak of 4000 bytes */
    return 0;
}
EOF
debuglib=/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0
if ! cc -O0 -o "$T/mt" "$T/mt.c" 2>"$T/cc.err"; then
    skip "mtrace: a real log imports" "no C compiler"
elif [ ! -e "$debuglib" ]; then
    skip "mtrace: a real log imports" "no $debuglib"
else
    MALLOC_TRACE="$T/mt.log" LD_PRELOAD="$debuglib" "$T/mt"
    ok "mtrace: the program wrote a log" grep -q "^= Start" "$T/mt.log"
    ok "mtrace: a real log imports" "$H" import --format mtrace "$T/mt.log" -o "$T/mt.hlt"
    "$H" export "$T/mt.hlt" 2>/dev/null | grep -v '^#' | grep -v '^process' | cut -d' ' -f3- >"$T/mt.ev"
    printf '%s\n' "malloc 100 -> #0" "malloc 100 -> #1" "realloc #0 300 -> #2" "malloc 7 -> #3" \
        "free #1" "malloc 50 -> #4" "free #4" "malloc 4611686018427387904 -> FAILED" \
        "realloc #3 4000 -> #5" "free #2" >"$T/mt.want"
    ok "mtrace: the import matches the program's allocation sequence" diff "$T/mt.want" "$T/mt.ev"
    "$H" stat --json "$T/mt.hlt" >"$T/mt.json" 2>/dev/null
    eq "mtrace: stat sees the leak and the failed call" \
        "$(json "$T/mt.json" '(j["leaked_blocks"], j["leaked_bytes"], j["failed_calls"])')" "(1, 4000, 1)"
    # The same program recorded by heaplab record: same blocks, same bytes, same order
    # (mtrace sees calloc and posix_memalign as plain allocations, so compare bytes).
    if "$H" record -o "$T/rec.hlt" -- "$T/mt" >/dev/null 2>"$T/rec.err"; then
        cat >"$T/norm.py" <<'EOF2'
# one line per event: "free", or "alloc BYTES" / "realloc BYTES", plus " failed"
import sys
for line in sys.stdin:
    if line.startswith(("#", "process")):
        continue
    words = line.split()[2:]
    op, result = words[0], words[-1]
    if op == "free":
        print("free")
        continue
    args = [a for a in words[1:words.index("->")] if not a.startswith(("#", "align="))]
    moves = op.startswith("realloc") and args[0] != "NULL"
    args = [a for a in args if a not in ("NULL", "?")]
    n = 1
    for x in args[0].split("x"):
        n *= int(x, 0)
    print("realloc" if moves else "alloc", n, "failed" if result == "FAILED" else "ok")
EOF2
        norm() { "$H" export "$1" | python3 "$T/norm.py"; }
        norm "$T/mt.hlt" >"$T/mt.norm"
        norm "$T/rec.hlt" >"$T/rec.norm"
        ok "mtrace: the import matches a heaplab recording of the same program" diff "$T/mt.norm" "$T/rec.norm"
    else
        skip "mtrace: the import matches a heaplab recording of the same program" "heaplab record failed: $(head -1 "$T/rec.err")"
    fi
fi
printf '= Start\n@ ./x:[0x1] + 0x10 0x8\nthis is not mtrace\n' >"$T/bad.log"
fails_with_one_line "mtrace: a bad line is a one-line error" "$H" import --format mtrace "$T/bad.log" -o "$T/bad.hlt"
ok "mtrace: the error names the file and the line" grep -q "bad.log: line 3" "$T/.stderr"
ok "mtrace: a failed import writes no trace" test ! -e "$T/bad.hlt"
fails_with_one_line "mtrace: a missing log is a one-line error" "$H" import --format mtrace "$T/none.log" -o "$T/none.hlt"

# A command line with newlines (python3 -c SCRIPT) stays on one line of the summary.
printf '# heaplab-text 1\nprocess pid=7 ppid=1 page_size=4096 start_ns=0 exe="/usr/bin/python3" cmdline="python3 -c \\nimport os\\nprint(1)"\nmalloc 8\n' >"$T/nl.txt"
"$H" import "$T/nl.txt" -o "$T/nl.hlt" >/dev/null
eq "a multi-line command line is printed on one line" \
    "$("$H" stat "$T/nl.hlt" | grep -c 'command    python3 -c  import os print(1) (pid 7)')" 1

done_testing
