# lib.sh: TAP helpers for heaplab's shell tests.  Source it, call the checks, end with
# `done_testing`.  Environment (set by tests/meson.build):
#   HEAPLAB        the heaplab executable under test
#   HEAPLAB_SRC    the source tree     HEAPLAB_BUILD  the build tree
# Each test gets a scratch folder $T, removed at exit.
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/heaplab-test.XXXXXX")
trap 'rm -rf "$T"' EXIT
_n=0
_failed=0

ok() { # ok NAME CMD...: passes if CMD exits 0
    local name=$1; shift
    _n=$((_n + 1))
    if "$@" >"$T/.out" 2>&1; then
        echo "ok $_n - $name"
    else
        echo "not ok $_n - $name"
        sed 's/^/#   /' "$T/.out" | head -20
        _failed=$((_failed + 1))
    fi
}

check() { # check NAME CONDITION-STRING: evaluates with [[ ]]-free `eval`
    local name=$1; shift
    _n=$((_n + 1))
    if eval "$@"; then
        echo "ok $_n - $name"
    else
        echo "not ok $_n - $name"
        echo "#   failed: $*"
        _failed=$((_failed + 1))
    fi
}

eq() { # eq NAME GOT WANT
    _n=$((_n + 1))
    if [ "$2" = "$3" ]; then
        echo "ok $_n - $1"
    else
        echo "not ok $_n - $1"
        echo "#   got:  '$2'"
        echo "#   want: '$3'"
        _failed=$((_failed + 1))
    fi
}

fails_with_one_line() { # NAME CMD...: non-zero exit (not a crash) and exactly one line on stderr
    local name=$1; shift
    _n=$((_n + 1))
    local rc=0
    "$@" >"$T/.stdout" 2>"$T/.stderr" </dev/null || rc=$?
    local lines
    lines=$(wc -l <"$T/.stderr")
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 128 ] && [ "$lines" -eq 1 ]; then
        echo "ok $_n - $name"
    else
        echo "not ok $_n - $name"
        echo "#   exit $rc, $lines stderr lines:"
        sed 's/^/#   /' "$T/.stderr" | head -10
        _failed=$((_failed + 1))
    fi
}

skip() { # skip NAME REASON
    _n=$((_n + 1))
    echo "ok $_n - $1 # SKIP $2"
}

done_testing() {
    echo "1..$_n"
    [ "$_failed" -eq 0 ]
    exit $?
}

# json FILE EXPR: evaluate a python expression on the JSON document `j` in FILE.
json() {
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
