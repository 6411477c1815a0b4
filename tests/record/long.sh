#!/bin/bash
# long.sh: recordings as long as users make them, at a scale a test can afford.
#   - heaplab record's memory stays bounded on tens of millions of events, and the
#     capture it has read goes back to the file system (checkpoints punch holes), and
#     so does the whole capture of a process that ended while the program runs;
#   - sequence numbers past 2^40 (the interposer starts numbering there for a test);
#   - a trace of several parts is assembled in the capture folder, the parts given
#     back as they are copied, and an assembly stopped midway goes on from there;
#   - nothing lost: a finalise that fails keeps the capture and says how to go on,
#     and going on from its checkpoint writes the same bytes as finalising in one go;
#     heaplab killed with SIGKILL mid-run, then --from-capture, gives every event;
#     an unrecorded child announced in capture a checkpoint gave back to the disk is
#     still named after --from-capture;
#   - a thread that allocates seldom beside a fast one does not stop finalising;
#   - a program faster than finalising is held back: its unread capture stays under
#     --max-backlog (and does not without it), one process or several, every event is
#     there, heaplab says so, and a program whose heaplab is killed meanwhile goes on
#     to its end.
# Figures (speed, bytes) belong to scripts/bench-scale; this asserts counts and bytes.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
B=$HEAPLAB_BUILD/tests/record
H=$HEAPLAB

# events FILE: the event lines of a trace's text form, without the time field
events() { "$H" export "$1" | grep -v '^#' | grep -v '^process ' | cut -d' ' -f2-; }
# peak_kib CMD...: run CMD, print the largest peak RSS (KiB) of it and its children
peak_kib() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
PY
}

# ---- bounded memory: 30M events, record's own peak RSS under 64 MiB ----
N=15000000
# (a 64 MiB ring, so that the 240 MB of capture go round it several times)
kib=$(HEAPLAB_TEST_CHECKPOINT_EVERY=16777216 HEAPLAB_RECORD_RING=64M peak_kib "$H" record -q \
    --capture-dir "$T/big" -o "$T/big.hlt" -- "$B/rec-churn" "$N")
eq "30M events recorded" "$("$H" stat --json "$T/big.hlt" >"$T/big.json" && json "$T/big.json" 'j["events"]')" \
    $((2 * N + 3))
check "heaplab record's peak RSS stays under 64 MiB on 30M events (got $kib KiB)" "[ '$kib' -lt 65536 ]"
raw=$(ls "$T/big"/*.hlraw)
apparent=$(stat -c %s "$raw")
allocated=$(( $(stat -c %b "$raw") * $(stat -c %B "$raw") ))
# ring_word FILE N: word N of a raw file's ring state (raw.h: RING; 2 written, 3 spill)
ring_word() { od -An -t u8 -j $((2048 + 8 * $2)) -N 8 "$1" | tr -d ' '; }
written=$(ring_word "$raw" 2)
check "the capture went round its ring: $written bytes through 64 MiB, none after it" \
    "[ $written -gt $((3 * 64 << 20)) ] && [ $apparent -eq $((4096 + (64 << 20))) ]"
check "the disk holds the ring, not the capture: $allocated bytes held" \
    "[ $allocated -le $((4096 + (64 << 20))) ]"
check "a checkpoint and the finished part stay with the punched capture" \
    "[ -s '$raw.ckpt' ] && [ -s '$raw.part' ]"
same_file=$(stat -c %d:%i "$T/big.hlt" "$raw.part" | uniq | wc -l)
check "a one-process trace is its finished part, not a copy: the disk holds it once" \
    "[ $same_file -eq 1 ]"
"$H" record -q --from-capture "$T/big" -o "$T/again.hlt"
ok "a punched capture is finalised again from its part, the same trace" cmp "$T/big.hlt" "$T/again.hlt"
rm -rf "$T/big" "$T/again.hlt"

# ---- the ring (raw.h: RING): 4 KiB chunks from five threads go round an 8 MiB ring
#      several times (it is given back a trace chunk, 65536 events, at a time) with
#      every event kept; a ring finalising does not give back (a stopped finaliser) is
#      left for the space after it, with every event kept ----
tiny() { HEAPLAB_TEST_CHECKPOINT_EVERY=65536 "$H" record --buffer 4K --ring 8M "$@"; }
printf 'req 500000\nquit\n' | tiny -q --capture-dir "$T/ring" -o "$T/ring.hlt" -- \
    "$B/rec-server" >/dev/null
raw=$(ls "$T/ring"/*.hlraw)
check "threads through an 8 MiB ring: it went round ($(ring_word "$raw" 2) bytes), none after it" \
    "[ $(ring_word "$raw" 2) -gt $((3 * 8 << 20)) ] && [ $(stat -c %s "$raw") -eq $((4096 + (8 << 20))) ]"
eq "... every event of the five threads, every free of a known block" \
    "$("$H" stat --json "$T/ring.hlt" >"$T/ring.json" && json "$T/ring.json" '(j["threads"], j["events"] >= 2000000, j["unknown_frees"])')" \
    "(5, True, 0)"
out=$(HEAPLAB_TEST_FINALISE_SLOW=2000000 HEAPLAB_TEST_HOLD_STALL_MS=200 tiny \
    --capture-dir "$T/spill" -o "$T/spill.hlt" -- "$B/rec-churn" 1000000 2>&1)
raw=$(ls "$T/spill"/*.hlraw)
spill=$(ring_word "$raw" 3)
check "a ring finalising is slow to give back: the chunks go after it (from byte $spill of the stream)" \
    "[ $spill -lt $((1 << 62)) ] && [ $(stat -c %s "$raw") -gt $((4096 + (8 << 20))) ]"
check "... heaplab says so" "echo \"\$out\" | grep -q '1 process filled the ring'"
eq "... and every event is there" \
    "$("$H" stat --json "$T/spill.hlt" >"$T/spill.json" && json "$T/spill.json" 'j["events"]')" 2000003
"$H" record -q --from-capture "$T/spill" -o "$T/spill2.hlt"
ok "... finalised again from the capture: the same trace" cmp "$T/spill.hlt" "$T/spill2.hlt"
"$H" record -q --ring 0 --capture-dir "$T/app" -o "$T/app.hlt" -- "$B/rec-churn" 1000 >/dev/null
raw=$(ls "$T/app"/*.hlraw)
check "--ring 0: the capture is appended (a file of $(stat -c %s "$raw") bytes, no ring state)" \
    "[ $(stat -c %s "$raw") -lt $((4096 + 65536)) ] && [ '$(ring_word "$raw" 0)' != 5138134759587465288 ]"
rm -rf "$T"/ring* "$T"/spill* "$T"/app*

# ---- the trace put in place: on another file system it is copied; a stale temporary
#      linked to another file (a heaplab killed while placing) is not written through ----
if [ -d /dev/shm ] && [ "$(stat -c %d /dev/shm)" != "$(stat -c %d "$T")" ]; then
    shm=$(mktemp -d /dev/shm/heaplab-test.XXXXXX)
    "$H" record -q --capture-dir "$shm/cap" -o "$T/xdev.hlt" -- "$B/rec-churn" 100000 >/dev/null
    eq "a capture on another file system: the trace is copied whole" \
        "$("$H" stat --json "$T/xdev.hlt" >"$T/xdev.json" && json "$T/xdev.json" 'j["events"]')" 200003
    rm -rf "$shm"
fi
printf 'keep me\n' >"$T/other"
ln "$T/other" "$T/stale.hlt.tmp"
"$H" record -q -o "$T/stale.hlt" -- "$B/rec-churn" 1000 >/dev/null
eq "a stale temporary linked to another file: that file is left as it was" "$(cat "$T/other")" "keep me"
ok "... and the trace is whole" "$H" stat "$T/stale.hlt"

# ---- sequence numbers past 2^40 ----
"$H" record -q -o "$T/ref.hlt" -- "$B/rec-churn" 300000 >/dev/null
HEAPLAB_RECORD_SEQ_START=$(( (1 << 40) - 200000 )) "$H" record -q -o "$T/s40.hlt" -- \
    "$B/rec-churn" 300000 >/dev/null
ok "numbering across 2^40 gives the same events" diff <(events "$T/ref.hlt") <(events "$T/s40.hlt")
HEAPLAB_RECORD_SEQ_START=$(( (1 << 40) - 2000 )) "$H" record -q -o "$T/t40.hlt" -- \
    "$B/rec-threads" >/dev/null
eq "threads numbered across 2^40: every worker block freed, none unknown" \
    "$("$H" stat --json "$T/t40.hlt" >"$T/t40.json" && json "$T/t40.json" '(j["threads"], j["unknown_frees"])')" "(5, 0)"

# ---- a process that ended while the program runs gives its capture back ----
# Two children run one after the other, then the shell waits: by then finalising has
# ended their sections (their parts are whole), and their raw files go back to the
# disk at once rather than when the recording ends.
"$H" record -q --capture-dir "$T/kids" -o "$T/kids.hlt" -- sh -c \
    "'$B/rec-churn' 1000000 1000; '$B/rec-churn' 1000000 1000; sleep 2" >/dev/null
held=0 apparent=0
for raw in "$T/kids"/*.hlraw; do
    size=$(stat -c %s "$raw")
    [ "$size" -gt 1048576 ] || continue # the shell's own
    apparent=$((apparent + size))
    held=$((held + $(stat -c %b "$raw") * $(stat -c %B "$raw")))
done
check "the ended children's capture went back to the disk ($held of $apparent bytes held)" \
    "[ $apparent -gt 0 ] && [ $held -lt $((apparent / 16)) ]"
"$H" record -q --from-capture "$T/kids" -o "$T/kids2.hlt"
ok "finalised again from that capture: the same trace" cmp "$T/kids.hlt" "$T/kids2.hlt"

# ---- a trace of several parts: assembled in the capture folder, parts given back ----
# The same program recorded without keeping its capture, stopped after three 1 MiB
# windows of the trace's assembly (as a full disk would stop it): what was copied has
# gone back to the disk from the children's parts (the only copies of their sections,
# whose raw capture went back before), and --from-capture goes on to the same events.
HEAPLAB_TEST_ASSEMBLY_WINDOW=1048576 HEAPLAB_TEST_ASSEMBLY_FAIL_AFTER=3 \
    "$H" record -q -o "$T/asmk.hlt" -- sh -c \
    "'$B/rec-churn' 1000000 1000; '$B/rec-churn' 1000000 1000; sleep 2" >/dev/null 2>&1
rc=$?
check "a finish stopped in the assembly exits non-zero and keeps the capture (got $rc)" \
    "[ $rc -ne 0 ] && [ -s '$T/asmk.hlt.capture/assembly.state' ] && [ ! -e '$T/asmk.hlt' ]"
held=0 apparent=0 nparts=0
for part in "$T"/asmk.hlt.capture/*.part; do
    [ -e "$part" ] || continue
    apparent=$((apparent + $(stat -c %s "$part")))
    held=$((held + $(stat -c %b "$part") * $(stat -c %B "$part")))
    nparts=$((nparts + 1))
done
# A part's ends may each hold a partly used block.
check "the children's parts gave what was copied back ($held of $apparent bytes held)" \
    "[ $apparent -gt 2097152 ] && [ $held -le $((apparent - 2097152 + 8192 * nparts)) ]"
ok "--from-capture finishes the assembly" \
    "$H" record -q --from-capture "$T/asmk.hlt.capture" -o "$T/asmk.hlt"
# churn_events FILE: the events of the rec-churn sections (the shell's own vary with
# its environment)
churn_events() {
    "$H" export "$1" | awk '/^process /{on = /exe="[^"]*rec-churn"/; next} on && !/^#/' |
        cut -d' ' -f2-
}
ok "with every event of the children" diff <(churn_events "$T/kids.hlt") <(churn_events "$T/asmk.hlt")
eq "two churns of 1M rounds: 2 x (2 x 1M + 3) events" "$(churn_events "$T/asmk.hlt" | wc -l)" 4000006
"$H" record -q --from-capture "$T/asmk.hlt.capture" -o "$T/asmk2.hlt"
ok "finalising that capture again gives the same trace (its assembly)" \
    cmp "$T/asmk.hlt" "$T/asmk2.hlt"
check "a kept capture finalised whole leaves no assembly behind" \
    "[ ! -e '$T/kids/assembly.hlt' ] && [ ! -e '$T/kids/assembly.state' ]"
rm -rf "$T"/kids* "$T"/asmk*

# ---- an assembly stopped midway goes on from where it stopped ----
# A raw capture of a shell and two children (LD_PRELOAD, no heaplab), finalised once
# whole, and once stopped after three 1 MiB windows of the assembly, then again.
mkdir "$T/asm"
HEAPLAB_CAPTURE_DIR="$T/asm" LD_PRELOAD="$HEAPLAB_BUILD/traces/preload/libheaplab-record.so" \
    sh -c "'$B/rec-churn' 1000000 >/dev/null; '$B/rec-churn' 500000 >/dev/null"
cp -r "$T/asm" "$T/asm2"
"$H" record -q --from-capture "$T/asm" -o "$T/asm.hlt"
HEAPLAB_TEST_ASSEMBLY_WINDOW=1048576 HEAPLAB_TEST_ASSEMBLY_FAIL_AFTER=3 \
    "$H" record -q --from-capture "$T/asm2" -o "$T/asm2.hlt" 2>"$T/asm2.err"
rc=$?
check "an assembly stopped midway exits non-zero and leaves no trace (got $rc)" \
    "[ $rc -ne 0 ] && [ ! -e '$T/asm2.hlt' ]"
check "it says how to go on" "grep -q -- '--from-capture' '$T/asm2.err'"
check "its state says at least 2 MiB are in the assembly" \
    "[ \"\$(cut -d' ' -f6 '$T/asm2/assembly.state')\" -ge 2097152 ]"
cp "$T/asm2/assembly.state" "$T/asm2.state"
echo "heaplab-assembly 1 3 9 x" >"$T/asm2/assembly.state"
fails_with_one_line "a damaged assembly state: one line, the capture left as it is" \
    "$H" record -q --from-capture "$T/asm2" -o "$T/asm2.hlt"
check "... naming the state file" "grep -q 'assembly.state: damaged' '$T/.stderr'"
cp -r "$T/asm2" "$T/asm3"
rm "$T/asm3/assembly.state"
ok "... and without it the capture is assembled again from its parts" \
    "$H" record -q --from-capture "$T/asm3" -o "$T/asm3.hlt"
ok "to the same trace" cmp "$T/asm.hlt" "$T/asm3.hlt"
cp "$T/asm2.state" "$T/asm2/assembly.state"
ok "--from-capture goes on from the stopped assembly" \
    "$H" record -q --from-capture "$T/asm2" -o "$T/asm2.hlt"
ok "to the same trace as finalising in one go" cmp "$T/asm.hlt" "$T/asm2.hlt"
rm -rf "$T"/asm*

# ---- a finalise that fails keeps the capture and says how to go on ----
HEAPLAB_TEST_CHECKPOINT_EVERY=4194304 HEAPLAB_TEST_FINALISE_FAIL_AFTER=20000000 \
    "$H" record -q -o "$T/fail.hlt" -- "$B/rec-churn" 2000000 >/dev/null 2>"$T/fail.err"
rc=$?
check "a failed finalise exits non-zero (got $rc)" "[ $rc -ne 0 ]"
check "its message names the capture kept and the command to finish it" \
    "grep -q 'kept in .*fail.hlt.capture.*--from-capture' '$T/fail.err'"
check "no trace is left under the output name" "[ ! -e '$T/fail.hlt' ]"
ok "--from-capture finishes it" "$H" record -q --from-capture "$T/fail.hlt.capture" -o "$T/fail.hlt"
"$H" record -q -o "$T/ref2.hlt" -- "$B/rec-churn" 2000000 >/dev/null
ok "--from-capture gives every event of the failed recording" \
    diff <(events "$T/ref2.hlt") <(events "$T/fail.hlt")
fails_with_one_line "a capture left beside the output is not overwritten by a new recording" \
    "$H" record -o "$T/fail.hlt" -- "$B/rec-churn" 10
rm -rf "$T/fail.hlt.capture"

# ---- announcements in capture given back to the disk survive --from-capture ----
# rec-churn spawns a static program (announced, never recorded) before its churn; the
# finalise fails after checkpoints, and going on from the last one starts past the
# announcement (its bytes may be given back to the disk).  Then
# the same with a second churn after it, so that the first one's section is finished
# (a part file) when the finalise fails.
# unrec_names TRACE: the unrecorded sections' programs (stat --json)
unrec_names() {
    "$H" stat --json "$1" >"$T/u.json" &&
        json "$T/u.json" '" ".join(sorted(p["exe"].rsplit("/", 1)[-1] for p in j["process_list"] if p["unrecorded"]))'
}
if [ -x "$B/rec-spawn-static" ]; then
    HEAPLAB_TEST_CHECKPOINT_EVERY=4194304 HEAPLAB_TEST_FINALISE_FAIL_AFTER=20000000 \
        "$H" record -q -o "$T/pev.hlt" -- "$B/rec-churn" 2000000 4096 "$B/rec-spawn-static" \
        >/dev/null 2>&1
    raw=$(ls "$T/pev.hlt.capture"/*.hlraw)
    held=$(( $(stat -c %b "$raw") * $(stat -c %B "$raw") )) apparent=$(stat -c %s "$raw")
    check "capture after the announcement was given back to the disk ($held of $apparent bytes held)" \
        "[ $held -le $((apparent - 4194304)) ]"
    # The same when the program is over before finalising reads its capture (heaplab
    # stopped while it runs): one scan then holds it all, and checkpoints must still
    # follow the merge through it.
    HEAPLAB_TEST_CHECKPOINT_EVERY=4194304 HEAPLAB_TEST_FINALISE_FAIL_AFTER=20000000 \
        "$H" record -q -o "$T/pev3.hlt" -- "$B/rec-churn" 2000000 4096 "$B/rec-spawn-static" \
        >/dev/null 2>&1 &
    hp=$!
    for _ in $(seq 200); do
        ls "$T/pev3.hlt.capture/"*.hlraw >/dev/null 2>&1 && break
        sleep 0.01
    done
    kill -STOP $hp; sleep 1; kill -CONT $hp; wait $hp
    raw=$(ls "$T/pev3.hlt.capture"/*.hlraw)
    held=$(( $(stat -c %b "$raw") * $(stat -c %B "$raw") )) apparent=$(stat -c %s "$raw")
    check "capture read in one scan is given back to the disk too ($held of $apparent bytes held)" \
        "[ $held -le $((apparent - 4194304)) ]"
    "$H" record -q --from-capture "$T/pev.hlt.capture" -o "$T/pev.hlt" 2>"$T/pev.err"
    eq "--from-capture past a punched announcement: the static child is named" \
        "$(unrec_names "$T/pev.hlt")" "rec-spawn-static"
    check "and said on stderr" "grep -q 'rec-spawn-static.*was not recorded' '$T/pev.err'"
    HEAPLAB_TEST_CHECKPOINT_EVERY=1048576 HEAPLAB_TEST_FINALISE_FAIL_AFTER=30000000 \
        "$H" record -q -o "$T/pev2.hlt" -- sh -c \
        "'$B/rec-churn' 400000 4096 '$B/rec-spawn-static'; '$B/rec-churn' 3000000" >/dev/null 2>&1
    check "a finished part is there when the finalise fails" "ls '$T/pev2.hlt.capture'/*.hlraw.part >/dev/null"
    "$H" record -q --from-capture "$T/pev2.hlt.capture" -o "$T/pev2.hlt" 2>/dev/null
    eq "--from-capture with that section finished before: the static child is named" \
        "$(unrec_names "$T/pev2.hlt")" "rec-spawn-static"
    rm -rf "$T"/pev*
else
    skip "announcements in punched capture" "no static test program in this build"
fi

# ---- a finalise stopped past the section's trial chunks goes on to the same bytes ----
# 6M events are 92 chunks: past the first 64, which try every form of every column,
# the writer's choices (modes, columns stored as they are) come from the chunks before
# and are part of each checkpoint (writer.c, trace.h: struct hl_writer_state).
mkdir "$T/res"
HEAPLAB_CAPTURE_DIR="$T/res" LD_PRELOAD="$HEAPLAB_BUILD/traces/preload/libheaplab-record.so" \
    "$B/rec-churn" 3000000 >/dev/null
cp -r "$T/res" "$T/res2"
"$H" record -q --from-capture "$T/res" -o "$T/res.hlt"
HEAPLAB_TEST_CHECKPOINT_EVERY=4194304 HEAPLAB_TEST_FINALISE_FAIL_AFTER=40000000 \
    "$H" record -q --from-capture "$T/res2" -o "$T/res2.hlt" 2>/dev/null
rc=$?
check "a finalise stopped after 40 MB of capture exits non-zero, with a checkpoint (got $rc)" \
    "[ $rc -ne 0 ] && ls '$T/res2'/*.ckpt >/dev/null"
ok "--from-capture goes on from the checkpoint" "$H" record -q --from-capture "$T/res2" -o "$T/res2.hlt"
ok "to the same bytes as finalising in one go" cmp "$T/res.hlt" "$T/res2.hlt"
rm -rf "$T"/res*

# ---- the window a raw file is read through (finalise.c: window_read), one page at
# first: grown, and slid past what the merge is done with, at nearly every chunk ----
# (wl-prodcons: 4 threads handing blocks to each other, 600k events in 64 KiB chunks.)
mkdir "$T/win"
HEAPLAB_CAPTURE_DIR="$T/win" HEAPLAB_RECORD_BUFFER=64K \
    LD_PRELOAD="$HEAPLAB_BUILD/traces/preload/libheaplab-record.so" \
    "$HEAPLAB_BUILD/scripts/workloads/wl-prodcons" 4 300000 >/dev/null
cp -r "$T/win" "$T/win2"
"$H" record -q --from-capture "$T/win" -o "$T/win.hlt"
HEAPLAB_TEST_WINDOW=4096 "$H" record -q --from-capture "$T/win2" -o "$T/win2.hlt"
ok "threads' chunks read through a window and a scan of a page at first: the same bytes" \
    cmp "$T/win.hlt" "$T/win2.hlt"
"$H" record -q -o "$T/win3.hlt" -- "$B/rec-churn" 300000 >/dev/null
HEAPLAB_TEST_WINDOW=4096 "$H" record -q -o "$T/win4.hlt" -- "$B/rec-churn" 300000 >/dev/null
ok "... and while the program runs: the same events" \
    diff <(events "$T/win3.hlt") <(events "$T/win4.hlt")
rm -rf "$T"/win*

# ---- heaplab killed with SIGKILL while the program runs ----
HEAPLAB_TEST_CHECKPOINT_EVERY=4194304 "$H" record -q -o "$T/kill.hlt" -- \
    "$B/rec-churn" 6000000 >/dev/null &
hp=$!
for _ in $(seq 100); do # until a checkpoint is there
    ls "$T/kill.hlt.capture/"*.ckpt >/dev/null 2>&1 && break
    sleep 0.05
done
kill -9 "$hp"
wait "$hp" 2>/dev/null
while pgrep -f "rec-churn 6000000" >/dev/null; do sleep 0.1; done # the program goes on
check "heaplab killed: the capture stays beside the output" "[ -d '$T/kill.hlt.capture' ]"
"$H" record -q --from-capture "$T/kill.hlt.capture" -o "$T/kill.hlt"
eq "--from-capture after SIGKILL: every event" \
    "$("$H" stat --json "$T/kill.hlt" >"$T/kill.json" && json "$T/kill.json" 'j["events"]')" 12000003
"$H" record -q -o "$T/ref3.hlt" -- "$B/rec-churn" 6000000 >/dev/null
ok "--from-capture after SIGKILL: the same events as a recording left alone" \
    cmp <(events "$T/ref3.hlt") <(events "$T/kill.hlt")

# ---- a thread that allocates once a millisecond beside a fast one does not hold
#      finalising back until it fills its buffer: the capture merged while the program
#      runs goes back to the disk ----
out=$(HEAPLAB_TEST_CHECKPOINT_EVERY=1048576 "$H" record -q -o "$T/seldom.hlt" -- \
    "$B/rec-seldom" 3000000 look)
check "a seldom thread beside a fast one: capture given back while the program runs" \
    "echo '$out' | grep -q 'given back while running: yes'"
rm -rf "$T"/seldom*

# ---- a program faster than finalising (slowed here by a test hook) is held back ----
# raw_peak DIR CMD...: run CMD, print the peak disk use (KiB) of DIR's raw files,
# sampled every 20 ms
raw_peak() {
    local dir=$1 peak=0 k
    shift
    "$@" >/dev/null 2>"$T/peak.err" &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        k=$(du -ck "$dir"/*.hlraw 2>/dev/null | tail -1 | cut -f1)
        [ -n "$k" ] && [ "$k" -gt "$peak" ] && peak=$k
        sleep 0.02
    done
    wait "$pid"
    echo "$peak"
}
# finalising at about 20 MB/s, a checkpoint every MiB
# held_back PEAK UNHELD BOUND: a held-back peak (KiB) is under BOUND, or under half the
# peak of the same run not held back if that is more.
held_back() { [ "$1" -gt 0 ] && [ "$1" -lt "$3" -o "$1" -lt $(($2 / 2)) ]; }
# No ring: these measure the disk an appended capture holds (a ring file's is its ring).
slow() { HEAPLAB_TEST_FINALISE_SLOW=50000 HEAPLAB_TEST_CHECKPOINT_EVERY=1048576 \
    HEAPLAB_RECORD_RING=0 "$@"; }
# (A stall of 30 s, not 2: in a loaded suite finalising has been held up for 2 s, the
# program stopped waiting, and the peak reached half the unheld one, in 2 runs of 4.)
kib=$(HEAPLAB_TEST_HOLD_STALL_MS=30000 slow raw_peak "$T/bl" "$H" record --capture-dir "$T/bl" \
    --max-backlog 8M -o "$T/bl.hlt" -- "$B/rec-churn" 5000000 4096)
check "heaplab says the program waited for finalising" \
    "grep -q 'waited .* so that its unread capture stayed under the limit' '$T/peak.err'"
waited=$(grep -o 'waited [^(]*([0-9]* times)' "$T/peak.err")
kib0=$(slow raw_peak "$T/bl0" "$H" record -q --capture-dir "$T/bl0" --max-backlog 0 \
    -o "$T/bl0.hlt" -- "$B/rec-churn" 5000000 4096)
# 8 MiB, a buffer, and what the program writes between a checkpoint and its punch, which
# varies with the machine's load: the bound is 24 MiB, or half of what the same program
# leaves unread when it is not held back if that is more.
check "held back: the unread capture stays near 8 MiB (peak $kib KiB; $waited)" \
    "held_back $kib $kib0 24576"
check "--max-backlog 0: the same program leaves a longer unread capture (peak $kib0 KiB)" \
    "[ $kib0 -gt 40960 ]"
ok "held back or not, the same events" cmp <(events "$T/bl.hlt") <(events "$T/bl0.hlt")
rm -rf "$T"/bl*
# The same with four processes one after the other: the limit is over all the files
# finalising reads, not each one's.  A process is held back only once finalising has
# begun to read its file (at its next look at the folder: here some 50 ms, a few MiB).
kids="for i in 1 2 3 4; do '$B/rec-churn' 2000000 4096; done"
# The bound: 32 MiB, or half of what the same processes leave unread when they are not
# held back if that is more (a busy machine lets each process write more between looks).
kib=$(slow raw_peak "$T/bk" "$H" record --capture-dir "$T/bk" --max-backlog 8M \
    -o "$T/bk.hlt" -- sh -c "$kids")
kib0=$(slow raw_peak "$T/bk0" "$H" record -q --capture-dir "$T/bk0" --max-backlog 0 \
    -o "$T/bk0.hlt" -- sh -c "$kids")
check "four processes held back: their unread capture stays near 8 MiB (peak $kib KiB)" \
    "held_back $kib $kib0 32768"
check "... and with --max-backlog 0 it does not (peak $kib0 KiB)" "[ $kib0 -gt 40960 ]"
ok "... the same events either way" cmp <(events "$T/bk.hlt" | sort) <(events "$T/bk0.hlt" | sort)
rm -rf "$T"/bk*
slow "$H" record -q --max-backlog 4M -o "$T/blk.hlt" -- "$B/rec-churn" 4000000 4096 \
    >/dev/null 2>&1 &
hp=$!
for _ in $(seq 200); do # until the program is held back
    ls "$T/blk.hlt.capture/"*.ckpt >/dev/null 2>&1 && break
    sleep 0.05
done
sleep 0.5
kill -9 "$hp"
wait "$hp" 2>/dev/null
for _ in $(seq 600); do pgrep -f "rec-churn 4000000" >/dev/null || break; sleep 0.1; done
check "heaplab killed while the program is held back: the program goes on to its end" \
    "! pgrep -f 'rec-churn 4000000' >/dev/null"
"$H" record -q --from-capture "$T/blk.hlt.capture" -o "$T/blk.hlt" 2>"$T/blk.err"
eq "... and --from-capture gives every event" \
    "$("$H" stat --json "$T/blk.hlt" >"$T/blk.json" && json "$T/blk.json" 'j["events"]')" 8000003

done_testing
