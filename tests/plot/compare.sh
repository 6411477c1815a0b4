#!/bin/bash
# scripts/compare, the comparison CI runs, end to end on two tiny generated traces and
# two allocators (one main, one policy variant): real replay output through plot.
. "$HEAPLAB_SRC/tests/lib/lib.sh"

if ! "$HEAPLAB" replay --help >/dev/null 2>&1 || ! command -v gnuplot >/dev/null; then
    skip "scripts/compare runs" "needs heaplab replay and gnuplot"
    done_testing
fi
"$HEAPLAB" gen fragmenter -o "$T/frag.hlt" rounds=4 blocks=200 >/dev/null 2>&1
"$HEAPLAB" gen larson -o "$T/larson.hlt" threads=2 steps=2000 blocks=100 >/dev/null 2>&1
allocs=glibc
"$HEAPLAB" allocators 2>/dev/null | grep -q '^heaplab-bestfit .*available$' && allocs=glibc,heaplab-bestfit
sim=no
command -v valgrind >/dev/null && sim=yes

ok "scripts/compare runs on two traces" env COMPARE_TRACES="$T/frag.hlt $T/larson.hlt" \
    COMPARE_ALLOCATORS="$allocs" COMPARE_RUNS=1 COMPARE_SIM=$sim \
    "$HEAPLAB_SRC/scripts/compare" "$T/ci"
for f in results.csv results.json timeline.csv report.md time.png peak-rss.png \
         memory-frag.png memory-larson.png latency-frag.png; do
    check "compare writes $f" "[ -s '$T/ci/$f' ]"
done
"$HEAPLAB" replay "$T/frag.hlt" -a glibc -n 1 -q --format csv -o "$T/direct.csv" 2>/dev/null
eq "results.csv has replay's own CSV header" "$(head -n 1 "$T/ci/results.csv")" \
    "$(head -n 1 "$T/direct.csv")"
want=$(( 2 * $(tr ',' '\n' <<<"$allocs" | wc -l) ))
eq "results.json has a row per trace and allocator" \
    "$(json "$T/ci/results.json" 'len(j["results"])')" "$want"
eq "results.csv has the same rows" "$(( $(wc -l <"$T/ci/results.csv") - 1 ))" "$want"
ok "report.md links only files that exist" python3 -c '
import os, re, sys
d = sys.argv[1]
links = re.findall(r"\]\(([^)]+)\)", open(os.path.join(d, "report.md")).read())
assert links and all(os.path.isfile(os.path.join(d, l)) for l in links), links
' "$T/ci"
if [ "$sim" = yes ]; then
    eq "with COMPARE_SIM=yes glibc's rows get simulated counters" \
        "$(json "$T/ci/results.json" '",".join(sorted(set(str(r["counters_source"]) for r in j["results"] if r["allocator"] == "glibc")))')" "sim"
    check "and the report charts instructions per operation" "[ -s '$T/ci/instructions.png' ]"
else
    skip "simulated counters" "valgrind is not installed"
fi
if [ "$allocs" != glibc ]; then
    eq "policy variants replay once" \
        "$(json "$T/ci/results.json" '",".join(sorted(set(str(r["runs"]) for r in j["results"] if r["allocator"] == "heaplab-bestfit")))')" "1"
fi
fails_with_one_line "compare without a heaplab executable is a one-line error" \
    env HEAPLAB=/nonexistent/heaplab "$HEAPLAB_SRC/scripts/compare" "$T/none"
done_testing
