#!/bin/bash
# record.sh: `heaplab record` end to end.  Small programs with exactly known allocation
# sequences (tests/record/*.c) and real programs (sort, python3, a shell pipeline) are
# recorded; the traces are read back with `heaplab export` and `heaplab stat --json`.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
B=$HEAPLAB_BUILD/tests/record
H=$HEAPLAB

# events FILE: the event lines of a trace's text form, without the time field (page
# counts are not events)
events() { "$H" export "$1" | grep -v '^#' | grep -v '^process ' | grep -v '^pages ' | cut -d' ' -f2-; }
# sj FILE EXPR: a value from `heaplab stat --json FILE`
sj() { "$H" stat --json "$1" >"$T/.stat.json" && json "$T/.stat.json" "$2"; }
# sized TRACE SIZE [SECTION]: allocations of exactly SIZE bytes (in process section
# SECTION, 1-based, if given), and on the next line how many of them were freed
sized() {
    "$H" export "$1" | awk -v size="$2" -v want="${3:-0}" '
        /^process / { sec++; delete sz; next }
        /^#/ { next }
        want && sec != want { next }
        {
            if ($4 == size && $5 == "->") { n++; sz[$6] = 1 }
            if ($3 == "free" && ($4 in sz)) { f++; delete sz[$4] }
        }
        END { print n + 0; print f + 0 }'
}

# ---- every wrapped function, failed calls, realloc edge cases ----
"$H" record -q -o "$T/allocs.hlt" -- "$B/rec-allocs" >"$T/allocs.out"
eq "a program's exit status 0 comes back" "$?" 0
eq "the program's stdout is passed through" "$(cat "$T/allocs.out")" done
events "$T/allocs.hlt" >"$T/allocs.txt"
ok "every wrapped call is recorded with its exact arguments and result, in order" \
    diff "$T/allocs.txt" "$HEAPLAB_SRC/tests/record/allocs.expected"
eq "one process, one thread" "$(sj "$T/allocs.hlt" '(j["processes"], j["threads"])')" "(1, 1)"
eq "failed calls counted as failed" "$(sj "$T/allocs.hlt" 'j["failed_calls"]')" 6
eq "no frees of unknown blocks" "$(sj "$T/allocs.hlt" 'j["unknown_frees"]')" 0

# the summary line
"$H" record -o "$T/sum.hlt" -- "$B/rec-allocs" >/dev/null 2>"$T/sum.err"
check "summary: one line naming processes, threads, events and size" \
    "[ \$(wc -l <'$T/sum.err') -eq 1 ] && grep -q '1 process, 1 thread, 28 events' '$T/sum.err'"

# default output name: the program's name + .hlt, in the current folder
(cd "$T" && "$H" record -q "$B/rec-allocs" >/dev/null)
check "without -o the trace is PROGRAM.hlt (and '--' is optional)" "[ -s '$T/rec-allocs.hlt' ]"

# ---- threads and cross-thread frees ----
"$H" record -q -o "$T/thr.hlt" -- "$B/rec-threads" >/dev/null
eq "threads: exit status" "$?" 0
eq "threads: main + 4 workers seen" "$(sj "$T/thr.hlt" 'j["threads"]')" 5
got=$("$H" export "$T/thr.hlt" | awk '$4 >= 1000 && $4 < 1100 && $3 == "malloc" { n++ } END { print n + 0 }')
eq "threads: 4000 worker blocks recorded" "$got" 4000
eq "threads: every free follows its allocation (none unknown)" \
    "$(sj "$T/thr.hlt" 'j["unknown_frees"]')" 0
eq "threads: 2000 frees cross threads" "$(sj "$T/thr.hlt" 'j["cross_thread_frees"] >= 2000')" True
got=$("$H" export "$T/thr.hlt" | awk '
    $3 == "malloc" && $4 >= 1000 && $4 < 1100 { live[$6] = 1; n++ }
    $3 == "free" && ($4 in live) { delete live[$4]; f++ }
    END { print n - f }')
eq "threads: no worker block left live" "$got" 0

"$H" record -q --buffer 4k -o "$T/run.hlt" -- "$B/rec-runaway"
eq "a thread still running at exit: exit status" "$?" 0
n=$(sized "$T/run.hlt" 2002 | head -1)
eq "a thread still running at exit: all its records are kept, none twice" "$n" 20000
"$H" record -q --buffer 4k -o "$T/runx.hlt" -- "$B/rec-runaway" exec
eq "a thread still running at exec: exit status of the exec'd program" "$?" 0
eq "a thread still running at exec: all its records are kept, none twice" \
    "$(sized "$T/runx.hlt" 2002 1 | head -1)" 20000

# ---- fork without exec ----
"$H" record -q -o "$T/fork.hlt" -- "$B/rec-forker" fork
eq "fork: exit status" "$?" 0
eq "fork: three processes" "$(sj "$T/fork.hlt" 'j["processes"]')" 3
eq "fork: parent's blocks in the parent's section only" \
    "$(sized "$T/fork.hlt" 3001 1 | head -1),$(sized "$T/fork.hlt" 3001 | head -1)" "10,10"
eq "fork: child exiting normally recorded (5 blocks, all freed)" \
    "$(sized "$T/fork.hlt" 3002 | tr '\n' ,)" "5,5,"
eq "fork: child leaving with _exit recorded (4 blocks)" \
    "$(sized "$T/fork.hlt" 3003 | head -1)" 4
eq "fork: children name the parent as ppid" \
    "$(sj "$T/fork.hlt" 'sorted(set(p["ppid"] for p in j["process_list"][1:])) == [j["process_list"][0]["pid"]]')" True

# ---- fork + exec, with an envp that drops LD_PRELOAD ----
for mode in exec execl; do
    "$H" record -q -o "$T/$mode.hlt" -- "$B/rec-forker" $mode
    eq "$mode: exit status" "$?" 0
    eq "$mode: parent, child before exec, exec'd image: three sections" \
        "$(sj "$T/$mode.hlt" 'j["processes"]')" 3
    eq "$mode: recording goes on in the exec'd image (7 blocks)" \
        "$(sized "$T/$mode.hlt" 3005 3 | head -1)" 7
    eq "$mode: the exec'd image's command line" \
        "$(sj "$T/$mode.hlt" 'j["process_list"][2]["cmdline"].endswith("execd")')" True
done
"$H" record -q -o "$T/spawn.hlt" -- "$B/rec-forker" spawn
eq "posix_spawn with an empty envp: the spawned program is recorded" \
    "$(sized "$T/spawn.hlt" 3006 | head -1)" 6

# ---- C++ ----
"$H" record -q -o "$T/cxx.hlt" -- "$B/rec-cxx" >/dev/null
eq "C++: new seen as malloc (3 objects), new[] too (2 arrays)" \
    "$(sized "$T/cxx.hlt" 4001 | head -1),$(sized "$T/cxx.hlt" 4002 | head -1)" "3,2"
eq "C++: delete and delete[] seen as free" \
    "$(sized "$T/cxx.hlt" 4001 | tail -1),$(sized "$T/cxx.hlt" 4002 | tail -1)" "3,2"

# ---- exit status, signals, bad programs ----
"$H" record -q -o "$T/x.hlt" -- sh -c 'exit 3'
eq "exit status 3 is propagated" "$?" 3
"$H" record -q -o "$T/x.hlt" -- sh -c 'kill -9 $$'
eq "killed by SIGKILL: exit status 137" "$?" 137
check "a killed program still leaves a trace" "[ -s '$T/x.hlt' ]"
fails_with_one_line "a missing program: one line on stderr" \
    "$H" record -o "$T/missing.hlt" -- /no/such/program
"$H" record -o "$T/missing.hlt" -- no-such-program-heaplab 2>/dev/null
eq "a missing program: exit status 127" "$?" 127
check "a missing program: no trace file left" "[ ! -e '$T/missing.hlt' ]"
: >"$T/noexec"
"$H" record -o "$T/noexec.hlt" -- "$T/noexec" 2>/dev/null
eq "a program that is not executable: exit status 126" "$?" 126
fails_with_one_line "no program at all: usage error on one line" "$H" record -o "$T/n.hlt"
fails_with_one_line "--buffer past 1G (the interposer would ignore it): one line" \
    "$H" record --buffer 2G -o "$T/n.hlt" -- true
fails_with_one_line "--ring under 4 buffers (the interposer would append): one line" \
    "$H" record --buffer 1M --ring 2M -o "$T/n.hlt" -- true
if file -L /sbin/ldconfig 2>/dev/null | grep -q static; then
    fails_with_one_line "a static program (cannot be preloaded): one line, no trace" \
        "$H" record -o "$T/static.hlt" -- /sbin/ldconfig -p
    check "a static program: no trace file left" "[ ! -e '$T/static.hlt' ]"
else
    skip "a static program (cannot be preloaded): one line, no trace" "no static ldconfig"
    skip "a static program: no trace file left" "no static ldconfig"
fi

# processes the program leaves running are waited for (their captures are complete)
"$H" record -q -o "$T/bg.hlt" -- sh -c "(sleep 0.3; echo late >'$T/late') & exit 0"
check "record waits for processes the program left running" "[ -s '$T/late' ]"

# SIGTERM to heaplab goes on to the program
"$H" record -q -o "$T/term.hlt" -- sleep 30 &
hpid=$!
for _ in $(seq 100); do pgrep -P $hpid >/dev/null && break; sleep 0.05; done
sleep 0.2
kill -TERM $hpid
wait $hpid
eq "SIGTERM is forwarded: the program dies of it (143)" "$?" 143

# LD_PRELOAD the user already has stays, behind the interposer
userlib=$(ldd /bin/sh | awk '/libc.so/ { print $3 }')
got=$(LD_PRELOAD=$userlib "$H" record -q -o "$T/pre.hlt" -- sh -c 'echo "$LD_PRELOAD"')
check "the interposer goes in front of the user's LD_PRELOAD" \
    "[[ '$got' == */libheaplab-record.so:$userlib ]]"

# ---- SIGKILL mid-run: the trace reads up to the last flushed chunk ----
rm -f "$T/ready"
"$H" record -q --buffer 4k -o "$T/kill.hlt" -- "$B/rec-killme" "$T/ready" &
hpid=$!
for _ in $(seq 200); do [ -s "$T/ready" ] && break; sleep 0.05; done
kill -KILL "$(cat "$T/ready")"
wait $hpid
eq "SIGKILL mid-run: exit status 137" "$?" 137
n=$(sized "$T/kill.hlt" 2001 | head -1)
check "SIGKILL mid-run: the flushed chunks are in the trace ($n of 20000 events)" \
    "[ '$n' -ge 19000 ] && [ '$n' -le 20000 ]"

# ---- a damaged raw capture is read up to the damage, and reported ----
# The capture is made by the interposer alone: under `record`, a process seen to end
# while record still polls has its section finished and its raw capture given back
# (a done checkpoint), and damage to the raw file would then never be read.
mkdir "$T/cap"
PYTHONMALLOC=malloc HEAPLAB_CAPTURE_DIR="$T/cap" HEAPLAB_RECORD_BUFFER=4k \
    LD_PRELOAD="$HEAPLAB_BUILD/traces/preload/libheaplab-record.so" \
    python3 -c 'x = [str(i) for i in range(20000)]' 2>/dev/null
cp -r "$T/cap" "$T/cap0"
"$H" record -q --from-capture "$T/cap0" -o "$T/cap.hlt"
full=$(sj "$T/cap.hlt" 'j["events"]')
raw=$(ls -S "$T/cap"/*.hlraw | head -1)
python3 - "$raw" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[len(b) // 2] ^= 0xff
open(p, 'wb').write(b)
PY
"$H" record --from-capture "$T/cap" -o "$T/dmg.hlt" 2>"$T/dmg.err"
eq "a damaged raw capture still finalises" "$?" 0
check "the damage is reported with the file and byte offset" \
    "grep -q 'hlraw: chunk checksum mismatch at byte [0-9]' '$T/dmg.err'"
n=$(sj "$T/dmg.hlt" 'j["events"]')
check "events before the damaged chunk are kept ($n of $full)" "[ '$n' -gt 1000 ] && [ '$n' -lt '$full' ]"
fails_with_one_line "--capture-dir holding an earlier capture is refused" \
    "$H" record --capture-dir "$T/cap" -o "$T/again.hlt" -- true
fails_with_one_line "--from-capture of a folder with no capture: one line" \
    "$H" record --from-capture "$T" -o "$T/none.hlt"

# ---- real programs ----
seq 1 20000 | shuf --random-source=<(yes) >"$T/numbers"
"$H" record -q -o "$T/sort.hlt" -- sort -n "$T/numbers" >"$T/sorted"
eq "sort: output unchanged under recording" "$(sort -n "$T/numbers" | cmp - "$T/sorted" && echo same)" same
eq "sort: trace reads, events recorded" "$(sj "$T/sort.hlt" 'j["events"] > 100')" True
eq "sort: frees never exceed allocations" "$(sj "$T/sort.hlt" 'j["frees"] - j["unknown_frees"] <= j["allocations"]')" True

PYTHONMALLOC=malloc "$H" record -q -o "$T/py.hlt" -- python3 -c 'x = [str(i) * 3 for i in range(50000)]; print(len(x))' >"$T/py.out"
eq "python3: runs and prints" "$(cat "$T/py.out")" 50000
eq "python3 (PYTHONMALLOC=malloc): at least 50000 allocations recorded" \
    "$(sj "$T/py.hlt" 'j["allocations"] >= 50000')" True
eq "python3: frees never exceed allocations" \
    "$(sj "$T/py.hlt" 'j["frees"] - j["unknown_frees"] <= j["allocations"]')" True

got=$("$H" record -q -o "$T/pipe.hlt" -- sh -c 'seq 1 5000 | sort -rn | head -3 | tr "\n" " "')
eq "pipeline: output unchanged" "$got" "5000 4999 4998 "
eq "pipeline: every process recorded (shell, seq, sort, head, tr and forks)" \
    "$(sj "$T/pipe.hlt" 'j["processes"] >= 5')" True
eq "pipeline: frees never exceed allocations in any process" \
    "$(sj "$T/pipe.hlt" 'all(p["frees"] - p["unknown_frees"] <= p["allocations"] for p in j["process_list"])')" True


# ---- finalised while the program runs: the same trace as finalising afterwards ----
# (small buffers, so that many chunks arrive while heaplab is still waiting)
PYTHONMALLOC=malloc "$H" record -q --buffer 16k --capture-dir "$T/live1" -o "$T/live1.hlt" -- \
    python3 -c 'x = [str(i) * 2 for i in range(300000)]; del x; print("ok")' >/dev/null
"$H" record -q --from-capture "$T/live1" -o "$T/after1.hlt"
ok "python3: the trace finalised while it ran is the one finalised afterwards" \
    cmp "$T/live1.hlt" "$T/after1.hlt"
PYTHONMALLOC=malloc "$H" record -q --buffer 8k --capture-dir "$T/live2" -o "$T/live2.hlt" -- \
    python3 -c '
import threading
def work(n):
    keep = []
    for i in range(n):
        keep.append([str(j) for j in range(20)])
        if len(keep) > 50:
            keep.pop(0)
ts = [threading.Thread(target=work, args=(6000,)) for _ in range(3)]
for t in ts: t.start()
work(3000)
for t in ts: t.join()
'
"$H" record -q --from-capture "$T/live2" -o "$T/live2b.hlt"
ok "python3 threads: the trace finalised while it ran is the one finalised afterwards" \
    cmp "$T/live2.hlt" "$T/live2b.hlt"
eq "python3 threads: four threads recorded, frees never exceed allocations" \
    "$(sj "$T/live2.hlt" '(max(p["threads"] for p in j["process_list"]), all(p["frees"] - p["unknown_frees"] <= p["allocations"] for p in j["process_list"]))')" "(4, True)"
"$H" record -q --buffer 4k --capture-dir "$T/live3" -o "$T/live3.hlt" -- "$B/rec-forker" exec
"$H" record -q --from-capture "$T/live3" -o "$T/live3b.hlt"
ok "fork + exec: the trace finalised while it ran is the one finalised afterwards" \
    cmp "$T/live3.hlt" "$T/live3b.hlt"
"$H" record -q --buffer 16k --capture-dir "$T/live4" -o "$T/live4.hlt" -- sh -c \
    'seq 1 100000 | sort -rn | head -3 >/dev/null; PYTHONMALLOC=malloc python3 -c "x = [str(i) for i in range(200000)]"'
"$H" record -q --from-capture "$T/live4" -o "$T/live4b.hlt"
ok "a shell, its pipeline and the python3 it runs, finalised side by side: the same trace" \
    cmp "$T/live4.hlt" "$T/live4b.hlt"
eq "the kept capture folder holds raw files, and parts and checkpoints beside them, nothing else" \
    "$(ls "$T/live4" | grep -v '[.]hlraw$' | grep -vc '[.]hlraw[.]\(part\|ckpt\)$')" 0
eq "... and each part or checkpoint belongs to a raw file there" \
    "$(for f in "$T/live4"/*.part "$T/live4"/*.ckpt; do [ -e "$f" ] && [ ! -e "${f%.*}" ] && echo "$f"; done | wc -l)" 0

# ---- nothing silent: a process the interposer cannot enter is named ----
# unrec TRACE: the unrecorded sections as "reason:exe-basename ..." (stat --json)
unrec() {
    "$H" stat --json "$1" | python3 -c '
import json, os, sys
j = json.load(sys.stdin)
print(j["unrecorded_processes"], " ".join(sorted(p["unrecorded_reason"] + ":" + os.path.basename(p["exe"])
      for p in j["process_list"] if p["unrecorded"])))'
}
if [ -x "$B/rec-spawn-static" ]; then
    "$H" record -q -o "$T/static.hlt" -- "$B/rec-spawn-static" /bin/true 2>"$T/static.err"
    eq "a static program starting a dynamic one: its exit status comes back" "$?" 0
    check "the static process is named as not recorded, even with -q" \
        "grep -q 'process [0-9]* (.*rec-spawn-static, child of [0-9]*) was not recorded: statically linked' '$T/static.err'"
    eq "the trace names it in a section flagged unrecorded" "$(unrec "$T/static.hlt")" \
        "1 statically linked:rec-spawn-static"
    eq "its dynamic child is still recorded" \
        "$(sj "$T/static.hlt" 'sum(not p["unrecorded"] and p["exe"].endswith("true") for p in j["process_list"])')" 1
    check "heaplab stat shows it" "'$H' stat '$T/static.hlt' | grep -q 'unrecorded pid [0-9]* (.*rec-spawn-static, child of [0-9]*): statically linked'"
    # A recorded shell runs a static program and reaps it itself: heaplab never sees
    # it end, the interposer announced the exec.
    "$H" record -q -o "$T/exstatic.hlt" -- sh -c "'$B/rec-spawn-static'; exit 0" 2>"$T/exstatic.err"
    eq "a static program exec'd by a recorded child that reaps it: exit status" "$?" 0
    check "it is named on stderr" "grep -q 'rec-spawn-static, child of [0-9]*) was not recorded: statically linked' '$T/exstatic.err'"
    eq "and in the trace" "$(unrec "$T/exstatic.hlt")" "1 statically linked:rec-spawn-static"
    "$H" export "$T/exstatic.hlt" >"$T/exstatic.txt"
    "$H" import -o "$T/exstatic2.hlt" "$T/exstatic.txt"
    eq "the unrecorded section goes through export and import" "$(unrec "$T/exstatic2.hlt")" \
        "1 statically linked:rec-spawn-static"
    ok "replay skips it (a section of no events)" "$H" replay -q -a glibc -n 1 --counters=none "$T/exstatic.hlt"
    "$H" record -q -o "$T/dyn.hlt" -- sh -c 'true' 2>"$T/dyn.err"
    eq "recorded programs are not named" "$(cat "$T/dyn.err")" ""
    eq "and the trace has no unrecorded section" "$(unrec "$T/dyn.hlt")" "0 "
fi

# ---- large blocks: the pages the program wrote, not the whole block ----
# (raw.h HL_RAW_PAGES, format.h PAGE blocks; tests/record/bigblocks.c says what it writes)
"$H" record -q -o "$T/big.hlt" -- "$B/rec-bigblocks" >/dev/null 2>"$T/big.err"
pages_of() { "$H" export "$T/big.hlt" | awk -v s="#$1" '$1 == "pages" && $2 == s { print $3 }'; }
within() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]; }
check "a 32 MiB malloc of which 100 pages are written counts 100-102 pages ($(pages_of 0))" \
    "within '$(pages_of 0)' 100 102"
check "an 8 MiB calloc with 20 pages written counts 20-22 ($(pages_of 1))" "within '$(pages_of 1)' 20 22"
check "a freed 12 MiB block with 1 page written counts 1-3 ($(pages_of 2))" "within '$(pages_of 2)' 1 3"
check "a calloc glibc zeroed in its heap counts the program's 5-7 pages, not 1024 ($(pages_of 3))" \
    "within '$(pages_of 3)' 5 7"
check "a block still live at exit is counted then: 3-5 pages ($(pages_of 4))" "within '$(pages_of 4)' 3 5"
eq "the counts are no events: 10 calls, 5 counts" \
    "$(events "$T/big.hlt" | wc -l) $("$H" export "$T/big.hlt" | grep -c '^pages ')" "10 5"
# Replayed, the blocks hold what the program wrote (512 KiB), not their 45 MiB;
# --touch=all still writes every byte.  (Without meson's MALLOC_PERTURB_, with which
# glibc itself writes every byte of every block.)
env -u MALLOC_PERTURB_ "$H" replay -q -n 1 -a glibc --json "$T/big.json" "$T/big.hlt" >/dev/null 2>&1
env -u MALLOC_PERTURB_ "$H" replay -q -n 1 -a glibc --touch=all --json "$T/bigall.json" "$T/big.hlt" >/dev/null 2>&1
rss=$(json "$T/big.json" 'j["results"][0]["peak_rss_bytes"] >> 20')
rss_all=$(json "$T/bigall.json" 'j["results"][0]["peak_rss_bytes"] >> 20')
check "replayed, the large blocks' peak RSS is the pages written: ${rss} MiB, under 8" "[ '$rss' -lt 8 ]"
check "with --touch=all it is their whole size: ${rss_all} MiB, 40 or more" "[ '$rss_all' -ge 40 ]"
# (live counted from the blocks' whole sizes would give about 0.01; the peak RSS, less the
# worker's measured start-up RSS, moves by tens of KiB around these 512 KiB: 0.95-1.19)
frag=$(json "$T/big.json" 'j["results"][0]["fragmentation"]')
check "fragmentation counts those pages as live: $frag, at least 0.5" "python3 -c 'import sys; sys.exit(not $frag >= 0.5)'"

# Beyond the interposer's table (4096 large blocks live at once) a block gets no
# count: said out loud, not silently replayed whole.
grep -q 'got no count' "$T/big.err" && bigwarn=yes || bigwarn=no
eq "within the table, no warning about uncounted blocks" "$bigwarn" "no"
"$H" record -q -o "$T/many.hlt" -- "$B/rec-bigblocks" 4100 >/dev/null 2>"$T/many.err"
check "4100 large blocks live at once: record says 4 got no page count ($(cat "$T/many.err"))" \
    "grep -q '^heaplab: warning: 4 large blocks (64 KiB or more) got no count' '$T/many.err'"
eq "and the trace counts the other 4096" "$("$H" export "$T/many.hlt" | grep -c '^pages ')" "4096"

done_testing
