#!/bin/bash
# hostile.sh: programs hostile to a recorder (tests/record/hostile.c, one mode each)
# behave the same under `heaplab record` as without it: the same output and exit
# status; the trace reads back (`heaplab stat`), and holds every block the program
# says it allocated (its HOSTILE_COUNTS file: "SIZE COUNT" lines, over all processes).
# Two modes are run without the count check, because what they allocate is not all
# recorded: seccomp-fork, a fork child under a filter that refuses new files (its
# capture file cannot be created), and sigtimer, a timer signal's handler that
# allocates (calls made while the signal interrupted the recorder's own wrapper pass
# through unrecorded).
. "$HEAPLAB_SRC/tests/lib/lib.sh"
P=$HEAPLAB_BUILD/tests/record/rec-hostile
H=$HEAPLAB

# allocations TRACE SIZE: malloc calls of exactly SIZE bytes, every process
allocations() {
    "$H" export "$1" | awk -v size="$2" '$3 == "malloc" && $4 == size && $5 == "->" { n++ }
        END { print n + 0 }'
}

hostile() { # hostile MODE WHAT [uncounted]
    local m=$1 what=$2 counted=${3:-counted}
    HOSTILE_COUNTS="$T/$m.plain.counts" timeout 120 "$P" "$m" >"$T/$m.plain.out" 2>&1
    local plain=$?
    HOSTILE_COUNTS="$T/$m.counts" timeout 120 "$H" record -q -o "$T/$m.hlt" -- "$P" "$m" \
        >"$T/$m.out" 2>"$T/$m.err"
    local recorded=$?
    eq "$what: exit status $plain without heaplab, the same recorded" "$recorded" "$plain"
    ok "$what: the same output recorded as without heaplab" diff "$T/$m.plain.out" "$T/$m.out"
    eq "$what: heaplab record -q writes nothing to stderr" "$(head -n 3 "$T/$m.err")" ""
    ok "$what: the trace reads back (heaplab stat)" "$H" stat "$T/$m.hlt"
    [ -s "$T/$m.counts" ] && [ "$counted" = counted ] || return 0
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
hostile seccomp-fork "the same filter, then a fork child" uncounted
hostile faults "the program's own SIGSEGV and SIGBUS handlers, recovering"
hostile crash "a crash the program's own SIGSEGV handler turns into exit 42"
hostile nofile "RLIMIT_NOFILE of 5, then a fork child and a thread"
hostile sigmalloc "malloc and free in signal handlers"
hostile sigtimer "timer signals inside malloc, their handler allocating" uncounted
hostile deeprec "1000 levels of recursion allocating on a 256 KiB thread stack"

done_testing
