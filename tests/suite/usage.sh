#!/bin/bash
# usage.sh: the benchmark scripts and the programs' definition reject bad arguments with
# one line on stderr and a non-zero exit, before running anything.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
S=$HEAPLAB_SRC/scripts
B=$HEAPLAB_BUILD
fails_with_one_line "bench-allocators: an unknown option" "$S/bench-allocators" "$B" --no-such-option
fails_with_one_line "bench-allocators: --runs=0" "$S/bench-allocators" "$B" --direct-only --runs=0
fails_with_one_line "bench-allocators: --runs without a value" "$S/bench-allocators" "$B" --runs
fails_with_one_line "bench-allocators: an unknown size" "$S/bench-allocators" "$B" --size=huge
fails_with_one_line "bench-allocators: an unknown program" "$S/bench-allocators" "$B" --programs=gcc,nosuch
fails_with_one_line "bench-allocators: two build folders" "$S/bench-allocators" "$B" "$B"
fails_with_one_line "bench-allocators: a build folder without heaplab's library" "$S/bench-allocators" "$T" --direct-only
fails_with_one_line "bench-replay: an unknown part" "$S/bench-replay" "$B" everything
fails_with_one_line "bench-replay: --runs=x" "$S/bench-replay" "$B" fidelity --runs=x
fails_with_one_line "bench-replay: a program that is not a real one" "$S/bench-replay" "$B" fidelity --programs=bignum
fails_with_one_line "bench-replay: a flag given a value" "$S/bench-replay" "$B" fidelity --size
fails_with_one_line "programs.py: an unknown program" /usr/bin/python3 "$S/workloads/programs.py" digest nosuch
fails_with_one_line "programs.py: an unknown size" /usr/bin/python3 "$S/workloads/programs.py" digest gcc --size huge
ok "bench-allocators --help prints its usage" bash -c "'$S/bench-allocators' --help | grep -q 'usage\|bench-allocators \[BUILD_DIR\]'"
ok "bench-replay --help prints its usage" bash -c "'$S/bench-replay' --help | grep -q 'bench-replay \[BUILD_DIR'"
done_testing
