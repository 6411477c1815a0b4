#!/bin/bash
# outputs.sh: every program of the direct-run suites (real programs from Debian packages,
# the classic-style allocator benchmarks, the project's workload programs), at its test
# size, prints the same and writes the same files under LIBRARY as under glibc.
#   outputs.sh LIBRARY.so
. "$HEAPLAB_SRC/tests/lib/lib.sh"
lib=$1
[ -r "$lib" ] || { echo "outputs.sh: $lib: no such library" >&2; exit 2; }
name=$(basename "$lib" .so)
py=/usr/bin/python3; [ -x $py ] || py=python3
programs() { $py "$HEAPLAB_SRC/scripts/workloads/programs.py" "$@" --size test --build "$HEAPLAB_BUILD"; }
for p in $($py "$HEAPLAB_SRC/scripts/workloads/programs.py" names); do
    want=$(programs digest "$p" 2>&1)
    check "$p runs to completion under glibc ($want)" '[[ "$want" == "exit 0 sha256 "* ]]'
    got=$(programs digest "$p" --preload "$lib" 2>&1)
    eq "$p prints and writes the same under $name as under glibc" "$got" "$want"
done
done_testing
