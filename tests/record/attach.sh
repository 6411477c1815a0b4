#!/bin/bash
# attach.sh: `heaplab record -p PID` on running programs.  A multi-threaded test server
# (tests/record/server.c, which counts its own requests) and Debian's python3 are
# attached to while they work, detached from, checked still answering, and attached to
# again; the traces must hold exactly what they did meanwhile.  Then each refusal.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
B=$HEAPLAB_BUILD/tests/record
H=$HEAPLAB

if ! command -v gdb >/dev/null; then
    skip "attach" "gdb is not installed (scripts/setup installs it)"
    done_testing
fi

sj() { "$H" stat --json "$1" >"$T/.stat.json" && json "$T/.stat.json" "$2"; }
# count TRACE OP SIZE: events OP of SIZE bytes (malloc, realloc: the new size)
count() {
    "$H" export "$1" | awk -v op="$2" -v size="$3" '
        $3 == op && (($4 == size) || ($5 == size) || ($4 == "3x" size)) { n++ } END { print n + 0 }'
}

# A program on a pipe: start NAME CMD...; ask NAME LINE (prints the answer line).
declare -A PID
start() {
    local name=$1; shift
    mkfifo "$T/$name.in"
    "$@" <"$T/$name.in" >"$T/$name.out" 2>&1 &
    PID[$name]=$!
    eval "exec {fd_$name}>\"\$T/\$name.in\""
}
ask() {
    local name=$1 fd n
    eval "fd=\$fd_$name"
    n=$(($(wc -l <"$T/$name.out") + 1))
    echo "$2" >&"$fd"
    for _ in $(seq 600); do
        [ "$(wc -l <"$T/$name.out")" -ge "$n" ] && break
        sleep 0.05
    done
    sed -n "${n}p" "$T/$name.out"
}
# attach NAME TRACE [ARGS]: heaplab record -p in the background, returns once attached
attach() {
    "$H" record -p "${PID[$1]}" -o "$2" "${@:3}" 2>"$2.err" &
    AP=$!
    for _ in $(seq 1200); do
        grep -q attached "$2.err" 2>/dev/null && return 0
        kill -0 "$AP" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
# stop SIGNAL: stop the attached heaplab; its exit status in $st
stop() {
    kill -"$1" "$AP"
    wait "$AP"
    st=$?
}

# Can gdb call a function in a process here?  gdb before 14 cannot on a CPU with AMX
# (cmd/record_attach.c, gdb_error): there only heaplab's refusal is tested.
sleep 30 &
PP=$!
gdb -nx -batch -ex 'call (int) getpid()' -p "$PP" >"$T/probe.log" 2>&1
kill "$PP" 2>/dev/null
wait "$PP" 2>/dev/null
if ! grep -q "^\$1 = $PP\$" "$T/probe.log" &&
    grep -q "Couldn't write extended state status" "$T/probe.log"; then
    start srv env -u LD_LIBRARY_PATH "$B/rec-server" libdlalloc.so
    eq "server: answers before the attach" "$(ask srv 'req 64')" "done 64"
    fails_with_one_line "gdb cannot call functions here: refused with one line" \
        "$H" record -p "${PID[srv]}" -o "$T/x.hlt"
    check "... the line says why, and that nothing was changed" \
        "grep -q 'gdb .*cannot call functions in a process on this CPU.*; nothing was changed in the process$' '$T/.stderr'"
    check "... the recorder was not loaded" "! grep -q heaplab-record /proc/${PID[srv]}/maps"
    check "... the server still runs" "kill -0 ${PID[srv]}"
    eq "... and answers (the read it was waiting in was restarted, not failed)" \
        "$(kill -0 "${PID[srv]}" && ask srv 'req 40')" "done 40"
    kill "${PID[srv]}"
    skip "attach" "this machine's gdb cannot call functions in a process (\"Couldn't write extended state status\": gdb before 14 on a CPU with AMX)"
    done_testing
fi

# ---- the test server ----
# (by its bare name: the server's RUNPATH finds it, not the test's LD_LIBRARY_PATH)
start srv env -u LD_LIBRARY_PATH "$B/rec-server" libdlalloc.so
eq "server: answers before the attach" "$(ask srv 'req 64')" "done 64"
r0=$(ask srv count | cut -d' ' -f2)
ok "server: attached" attach srv "$T/a1.hlt"
eq "server: answers while attached" "$(ask srv 'req 400')" "done 400"
r1=$(ask srv count | cut -d' ' -f2)
stop INT
eq "server: SIGINT detaches and finalises (status 0)" "$st" 0
check "server: still running after the detach" "kill -0 ${PID[srv]}"
eq "server: still answering after the detach" "$(ask srv 'req 40')" "done 40"
n=$((r1 - r0))
eq "server: trace holds exactly the requests made while attached (malloc)" \
    "$(count "$T/a1.hlt" malloc 4001)" "$n"
eq "server: ... calloc" "$(count "$T/a1.hlt" calloc 1335)" "$n"
eq "server: ... realloc" "$(count "$T/a1.hlt" realloc 8003)" "$n"
eq "server: four worker threads recorded" "$(sj "$T/a1.hlt" 'j["threads"]')" 4
eq "server: 32 frees of blocks from before the attach (4 rings of 8), marked unknown" \
    "$(sj "$T/a1.hlt" 'j["unknown_frees"]')" 32
eq "server: stat counts them as frees from before the attach, in one attached section" \
    "$(sj "$T/a1.hlt" '(j["attached_sections"], j["frees_from_before_attach"], j["process_list"][0]["attached"])')" \
    "(1, 32, True)"
check "server: stat's summary says the recording began mid-life" \
    "'$H' stat '$T/a1.hlt' | grep -q 'attached .*began while the program ran: 32 frees'"
ok "server: replay runs the attached trace (skipping those frees)" \
    "$H" replay -q -n 1 -a glibc "$T/a1.hlt"
eq "server: every other free known (realloc frees the old block)" "$(sj "$T/a1.hlt" 'j["frees"]')" \
    $((3 * n - 32))

ok "server: attached a second time" attach srv "$T/a2.hlt"
eq "server: answers during the second attach" "$(ask srv 'req 100')" "done 100"
eq "server: a fork child made while attached runs" "$(ask srv 'fork 30')" "forked 30"
eq "server: a library it loads with dlopen while attached (found by its RUNPATH) runs" \
    "$(ask srv 'dl 25')" "dl 25"
stop TERM
eq "server: SIGTERM detaches too" "$st" 0
eq "server: second trace holds the second batch and the child's" \
    "$(count "$T/a2.hlt" malloc 4001)" 130
eq "server: the dlopen'ed library's own malloc calls are recorded" \
    "$(count "$T/a2.hlt" malloc 7777)" 25
eq "server: the fork child is a second process, attached too" \
    "$(sj "$T/a2.hlt" '(j["processes"], j["attached_sections"], j["process_list"][1]["ops"]["malloc"])')" \
    "(2, 2, 30)"
eq "server: its frees of the first attach's blocks are unknown too" \
    "$(sj "$T/a2.hlt" 'j["unknown_frees"]')" 32

# heaplab killed while attached: the program stops writing at its next flush (nobody
# would read the capture), keeps working, and the next attach takes the hooks over.
ok "server: attached, then heaplab is killed" attach srv "$T/k.hlt" --capture-dir "$T/kcap"
kill -KILL "$AP"
wait "$AP" 2>/dev/null
size0=$(cat "$T"/kcap/*.hlraw | wc -c)
eq "server: answers after heaplab was killed" "$(ask srv 'req 80000')" "done 80000"
eq "server: ... twice" "$(ask srv 'req 80000')" "done 80000"
eq "server: nothing more written to the orphaned capture (buffers filled and flushed)" \
    "$(cat "$T"/kcap/*.hlraw | wc -c)" "$size0"
ok "server: the next attach takes over" attach srv "$T/k2.hlt"
eq "server: answers" "$(ask srv 'req 12')" "done 12"
stop INT
eq "server: ... and its trace holds what it did" "$st,$(count "$T/k2.hlt" malloc 4001)" "0,12"

ok "server: --duration detaches by itself" "$H" record -q -p "${PID[srv]}" -o "$T/a3.hlt" --duration 1
eq "server: answers after a --duration attach" "$(ask srv 'req 8')" "done 8"
ok "server: the --duration trace is readable" "$H" stat "$T/a3.hlt"

ok "server: attached before it exits" attach srv "$T/a4.hlt"
ask srv 'req 20' >/dev/null
ask srv quit >/dev/null
wait "$AP"
eq "server: its exit ends the recording (status 0)" "$?" 0
eq "server: recorded up to its exit" "$(count "$T/a4.hlt" malloc 4001)" 20

"$H" record -q -o "$T/run.hlt" -- "$B/rec-allocs" >/dev/null
eq "a recording from the start is not marked attached" \
    "$(sj "$T/run.hlt" '(j["attached_sections"], j["process_list"][0]["attached"])')" "(0, False)"

# ---- a program running on a preloaded allocator (jemalloc): the hooks call it ----
JE=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if [ -f "$JE" ]; then
    start je env LD_PRELOAD="$JE" "$B/rec-server"
    ask je 'req 64' >/dev/null
    ok "jemalloc: attached" attach je "$T/je.hlt"
    eq "jemalloc: answers while attached" "$(ask je 'req 100')" "done 100"
    stop INT
    eq "jemalloc: detached, trace holds the requests" "$st,$(count "$T/je.hlt" malloc 4001)" "0,100"
    eq "jemalloc: still answering (blocks freed by the same allocator)" "$(ask je 'req 100')" \
        "done 100"
    ask je quit >/dev/null
else
    skip "jemalloc: attached" "libjemalloc2 is not installed"
fi

# ---- a real program: Debian's python3, allocating in a thread per line ----
py='
import sys, threading
keep = []
def work(n):
    keep.append([bytearray(5000) for _ in range(n)])
for line in sys.stdin:
    t = threading.Thread(target=work, args=(int(line),))
    t.start(); t.join()
    print("done", len(keep[-1]), flush=True)
'
start py /usr/bin/python3 -u -c "$py"
eq "python3: answers before the attach" "$(ask py 10)" "done 10"
ok "python3: attached" attach py "$T/p1.hlt"
eq "python3: answers while attached" "$(ask py 300)" "done 300"
stop INT
eq "python3: detached" "$st" 0
eq "python3: still answering after the detach" "$(ask py 7)" "done 7"
eq "python3: its 300 bytearrays recorded (malloc of 5001 bytes)" \
    "$(count "$T/p1.hlt" malloc 5001)" 300
ok "python3: attached a second time" attach py "$T/p2.hlt"
eq "python3: answers during the second attach" "$(ask py 50)" "done 50"
stop INT
eq "python3: detached again" "$st" 0
eq "python3: second trace holds the second batch" "$(count "$T/p2.hlt" malloc 5001)" 50
eq "python3: still answering" "$(ask py 3)" "done 3"

# ---- refusals: one line, nothing done to the program ----
if [ -x "$B/rec-static" ]; then
    "$B/rec-static" >"$T/static.out" &
    SP=$!
    for _ in $(seq 100); do [ -s "$T/static.out" ] && break; sleep 0.05; done
    fails_with_one_line "refused: a statically linked program" "$H" record -p "$SP" -o "$T/x.hlt"
    check "refused: ... the line says why" "grep -q 'statically linked' '$T/.stderr'"
    kill "$SP"
else
    skip "refused: a statically linked program" "no static test program in a sanitizer build"
fi

"$B/rec-ownalloc" >"$T/own.out" &
OP=$!
for _ in $(seq 100); do [ -s "$T/own.out" ] && break; sleep 0.05; done
fails_with_one_line "refused: an allocator reached through its own symbol version" \
    "$H" record -p "$OP" -o "$T/x.hlt"
check "refused: ... the line names the other allocator" "grep -q 'libownalloc.so' '$T/.stderr'"
check "refused: ... the recorder is unloaded again" "! grep -q heaplab-record /proc/$OP/maps"
check "refused: ... and the program still runs" "kill -0 $OP"
kill "$OP"

"$H" record -q -o "$T/pre.hlt" -- sleep 300 &
RP=$!
CP=
for _ in $(seq 200); do
    CP=$(pgrep -P "$RP" | head -1)
    [ -n "$CP" ] && grep -q heaplab-record "/proc/$CP/maps" 2>/dev/null && break
    sleep 0.05
done
fails_with_one_line "refused: a program heaplab records from its start already" \
    "$H" record -p "$CP" -o "$T/x.hlt"
check "refused: ... the line says so" "grep -q 'recorded from its start' '$T/.stderr'"
kill "$CP"
wait "$RP" 2>/dev/null

sleep 300 &
SL=$!
fails_with_one_line "refused: a PID that does not exist" "$H" record -p 2147483646 -o "$T/x.hlt"
check "refused: ... the line says so" "grep -q 'no process' '$T/.stderr'"
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    fails_with_one_line "refused: no permission (another user's process)" \
        setpriv --reuid=nobody --regid=nogroup --clear-groups "$H" record -p "$SL" -o /tmp/x.hlt
    check "refused: ... the line says what to do" "grep -q 'not allowed to trace' '$T/.stderr'"
else
    fails_with_one_line "refused: no permission (PID 1)" "$H" record -p 1 -o "$T/x.hlt"
    check "refused: ... the line says what to do" "grep -q 'not allowed to trace' '$T/.stderr'"
fi
gdb -nx -batch -ex 'shell sleep 30' -p "$SL" >/dev/null 2>&1 &
GP=$!
for _ in $(seq 200); do
    [ "$(awk '/TracerPid/ { print $2 }' /proc/$SL/status)" != 0 ] && break
    sleep 0.05
done
fails_with_one_line "refused: a process already being traced" "$H" record -p "$SL" -o "$T/x.hlt"
check "refused: ... the line names the tracer" "grep -q 'already being traced' '$T/.stderr'"
kill "$GP" "$SL" 2>/dev/null
wait "$GP" "$SL" 2>/dev/null

kill "${PID[py]}"
done_testing
