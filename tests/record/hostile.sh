#!/bin/bash
# hostile.sh: programs hostile to a recorder (tests/record/hostile.c, one mode each)
# behave the same under `heaplab record` as without it: the same output and exit
# status; the trace reads back (`heaplab stat`), and holds every block the program
# says it allocated (its HOSTILE_COUNTS file: "SIZE COUNT" lines, over all processes).
# Two modes cannot be recorded whole, and heaplab must say so (nothing silent), on
# stderr even with -q and in the trace: seccomp-fork, a fork child under a filter that
# refuses new files (its capture file cannot be created: the trace has a section
# naming it, flagged unrecorded), and sigtimer, a timer signal's handler that
# allocates (calls made while the signal interrupted the recorder's own wrapper are
# not recorded but counted: the trace's blocks plus the missed calls cover the
# program's).
# Then a full disk on the interposer's side: a capture file that cannot grow (RLIMIT_FSIZE
# with SIGXFSZ ignored gives EFBIG; as root, a small tmpfs gives ENOSPC) ends that
# process's capture cleanly: the program goes on unharmed, what was written is kept,
# and the trace says how many events were dropped.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
P=$HEAPLAB_BUILD/tests/record/rec-hostile
H=$HEAPLAB

# allocations TRACE SIZE: malloc calls of exactly SIZE bytes, every process
allocations() {
    "$H" export "$1" | awk -v size="$2" '$3 == "malloc" && $4 == size && $5 == "->" { n++ }
        END { print n + 0 }'
}

hostile() { # hostile MODE WHAT [STDERR-PATTERN]: with a pattern, stderr must match it
    local m=$1 what=$2 said=${3:-}
    HOSTILE_COUNTS="$T/$m.plain.counts" timeout 120 "$P" "$m" >"$T/$m.plain.out" 2>&1
    local plain=$?
    HOSTILE_COUNTS="$T/$m.counts" timeout 120 "$H" record -q -o "$T/$m.hlt" -- "$P" "$m" \
        >"$T/$m.out" 2>"$T/$m.err"
    local recorded=$?
    eq "$what: exit status $plain without heaplab, the same recorded" "$recorded" "$plain"
    ok "$what: the same output recorded as without heaplab" diff "$T/$m.plain.out" "$T/$m.out"
    if [ -z "$said" ]; then
        eq "$what: heaplab record -q writes nothing to stderr" "$(head -n 3 "$T/$m.err")" ""
    else
        ok "$what: heaplab record -q says what it could not record" grep -q "$said" "$T/$m.err"
    fi
    ok "$what: the trace reads back (heaplab stat)" "$H" stat "$T/$m.hlt"
    [ -s "$T/$m.counts" ] && [ -z "$said" ] || return 0
    local size n got want=""
    got=""
    while read -r size n; do
        want+="$size:$n "
        got+="$size:$(allocations "$T/$m.hlt" "$size") "
    done <"$T/$m.counts"
    eq "$what: the trace holds every block the program allocated ($want)" "$got" "$want"
}

hostile sigfork "fork from a signal handler, the child allocating in it"
hostile vfork "vfork then exec of an allocating child, and vfork then _exit"
hostile spawn "posix_spawn with file actions (open, dup2, close, closefrom)"
hostile closefds "close_range and closefrom over every descriptor, numbers reused"
hostile seccomp "a seccomp filter refusing to open files for writing"
hostile seccomp-thread "the same filter, then a thread"
hostile seccomp-fork "the same filter, then a fork child" \
    "was not recorded: could not create its capture file"
eq "seccomp-fork: the trace names the child in a section flagged unrecorded" \
    "$("$H" stat --json "$T/seccomp-fork.hlt" | python3 -c '
import json, sys
j = json.load(sys.stdin)
print(j["unrecorded_processes"], [p["unrecorded_reason"] for p in j["process_list"] if p["unrecorded"]])')" \
    "1 ['could not create its capture file']"
check "seccomp-fork: heaplab stat shows it" "'$H' stat '$T/seccomp-fork.hlt' | grep -q 'unrecorded pid [0-9]* .*could not create its capture file'"
hostile faults "the program's own SIGSEGV and SIGBUS handlers, recovering"
hostile crash "a crash the program's own SIGSEGV handler turns into exit 42"
hostile nofile "RLIMIT_NOFILE of 5, then a fork child and a thread"
hostile sigmalloc "malloc and free in signal handlers"
hostile sigtimer "timer signals inside malloc, their handler allocating" "calls were not recorded"
missed=$("$H" stat --json "$T/sigtimer.hlt" | python3 -c 'import json, sys; print(json.load(sys.stdin)["missed_calls"])')
want=$(awk '$1 == 7702 { print $2 }' "$T/sigtimer.counts")
got=$(allocations "$T/sigtimer.hlt" 7702)
check "sigtimer: the handler's blocks in the trace ($got) plus the missed calls ($missed) cover the $want it allocated" \
    "[ $((got + missed)) -ge $want ] && [ $missed -gt 0 ]"
check "sigtimer: heaplab stat shows the missed calls" "'$H' stat '$T/sigtimer.hlt' | grep -q 'missed .* $missed calls not recorded'"

# ---- a capture file that cannot grow ----
C=$HEAPLAB_BUILD/tests/record/rec-churn
full() { # full NAME EXPECTED-REASON CAPTURE-DIR SHELL-PREFIX: churn 200000 under it
    local n=$1 reason=$2 dir=$3 pre=$4
    bash -c "$pre exec '$C' 200000" >"$T/$n.plain.out" 2>&1
    local plain=$?
    "$H" record -q --buffer 64k --capture-dir "$dir" -o "$T/$n.hlt" -- bash -c "$pre exec '$C' 200000" \
        >"$T/$n.out" 2>"$T/$n.err"
    local rc=$?
    ok "$n: the program's output is unchanged" diff "$T/$n.plain.out" "$T/$n.out"
    if [ -s "$T/$n.hlt" ]; then
        eq "$n: the program's exit status is unchanged" "$rc" "$plain"
    else
        # The finaliser's own files go beside the capture, on the same full disk: it
        # keeps the capture and says how to finish it; finished elsewhere, it holds
        # what was written.
        ok "$n: heaplab keeps the capture and says where" grep -q "the capture is kept in $dir" "$T/$n.err"
        cp -r "$dir" "$T/$n.copy"
        "$H" record -q --from-capture "$T/$n.copy" -o "$T/$n.hlt" 2>"$T/$n.err"
    fi
    ok "$n: heaplab says the capture was cut and how much it dropped" \
        grep -q "could not write all of its capture.*events dropped" "$T/$n.err"
    eq "$n: the events kept plus those dropped are every event churn made (2N + 3)" \
        "$("$H" stat --json "$T/$n.hlt" | python3 -c '
import json, sys
j = json.load(sys.stdin)
p = [p for p in j["process_list"] if p["exe"].endswith("rec-churn")][0]
print(p["events"] + p["dropped_events"], p["dropped_events"] > 0, p.get("truncated"))')" \
        "400003 True $reason"
    check "$n: heaplab stat shows where the capture was cut" \
        "'$H' stat '$T/$n.hlt' | grep -q 'truncated  pid [0-9]*: $reason after [0-9. kM]* events, [0-9]* more dropped'"
}
full fsize "file size limit" "$T/fsize.cap" "trap '' XFSZ; ulimit -f 256;"
if [ "$(id -u)" = 0 ] && mkdir -p "$T/tmpfs" && mount -t tmpfs -o size=1m tmpfs "$T/tmpfs" 2>/dev/null; then
    full diskfull "disk full" "$T/tmpfs/cap" ""
    umount "$T/tmpfs"
else
    skip "diskfull: a capture on a full tmpfs" "needs root and mount (not root, or mount refused here)"
fi
hostile deeprec "1000 levels of recursion allocating on a 256 KiB thread stack"

done_testing
