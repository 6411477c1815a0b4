#!/bin/bash
# heaplab plot: charts and report from replay results (tests/plot/data/, made by
# data/make-samples in replay's results schema), and its errors on bad input.
. "$HEAPLAB_SRC/tests/lib/lib.sh"
D="$HEAPLAB_SRC/tests/plot/data"

# png_size FILE: "WIDTHxHEIGHT" from the IHDR chunk, or "not a PNG".
png_size() {
    python3 - "$1" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(33)
if len(b) < 33 or b[:8] != b"\x89PNG\r\n\x1a\n" or b[12:16] != b"IHDR":
    print("not a PNG")
else:
    w, h = struct.unpack(">II", b[16:24])
    print("%dx%d" % (w, h))
PY
}

# A small malformed-input helper: plot FILE must fail with one line naming FILE:LINE.
bad_input() { # NAME FILE WANT-IN-MESSAGE
    fails_with_one_line "$1 is a one-line error" "$HEAPLAB" plot "$2" -o "$T/bad-out"
    check "$1 names the file and line" "grep -qF -- '$3' '$T/.stderr'"
}

# ---- malformed input (no gnuplot needed) ----
printf 'trace,allocator,time_ns\npy,glibc,100\npy,jemalloc\n' >"$T/fields.csv"
bad_input "a row with too few fields" "$T/fields.csv" "fields.csv:3:"
printf 'trace,allocator,time_ns\npy,glibc,12x\n' >"$T/nan.csv"
bad_input "a non-number in a numeric column" "$T/nan.csv" "nan.csv:2: time_ns"
printf 'trace,allocator,cpu\npy,glibc,"Xeon, 2 cores\n' >"$T/quote.csv"
bad_input "an unterminated quoted field" "$T/quote.csv" "quote.csv:2:"
printf 'hello,world\n1,2\n' >"$T/header.csv"
bad_input "a CSV that is not results" "$T/header.csv" "header.csv:1:"
printf 'trace,allocator,time_ns\n' >"$T/empty.csv"
bad_input "a header without rows" "$T/empty.csv" "empty.csv"
printf '{"results": [\n {"trace": "py", "allocator": "glibc",\n  "time_ns": 12 13}\n]}\n' >"$T/bad.json"
bad_input "malformed JSON" "$T/bad.json" "bad.json:3:"
printf '{"results": [{"trace": "py", "allocator": "glibc", "time_ns": "slow"}]}\n' >"$T/str.json"
bad_input "a JSON string where a number belongs" "$T/str.json" "str.json:1: time_ns"
printf 'trace,allocator,run,event\npy,glibc,1,0\n' >"$T/tl.csv"
fails_with_one_line "a timeline without its columns is a one-line error" \
    "$HEAPLAB" plot "$D/results.csv" --timeline "$T/tl.csv" -o "$T/bad-out"
fails_with_one_line "a folder given as results is a one-line error" \
    "$HEAPLAB" plot "$D" -o "$T/bad-out"
fails_with_one_line "a missing results file is a one-line error" \
    "$HEAPLAB" plot "$T/no-such.csv" -o "$T/bad-out"
fails_with_one_line "normalising to an allocator not in the results is a one-line error" \
    "$HEAPLAB" plot "$D/results.csv" --normalise tcmalloc -o "$T/bad-out"
check "bad input writes no output folder" "[ ! -e '$T/bad-out' ]"

# ---- no gnuplot ----
cp "$D/results.csv" "$T/keep.csv"
fails_with_one_line "without gnuplot plot is a one-line error" \
    env PATH=/nonexistent "$HEAPLAB" plot "$T/keep.csv" -o "$T/nognuplot"
check "the missing-gnuplot error says how to install it" \
    "grep -q 'apt-get install gnuplot-nox' '$T/.stderr'"
ok "without gnuplot the results file is left as it was" cmp "$D/results.csv" "$T/keep.csv"
check "without gnuplot no output folder is made" "[ ! -e '$T/nognuplot' ]"

if ! command -v gnuplot >/dev/null; then
    skip "plot draws charts" "gnuplot is not installed (apt-get install gnuplot-nox)"
    done_testing
fi

# ---- charts from a known CSV ----
ok "plot on a results CSV with a timeline succeeds" \
    "$HEAPLAB" plot "$D/results.csv" --timeline "$D/timeline.csv" -o "$T/csv" --size 640x400
want="fragmentation instructions l1d-misses llc-misses minor-faults peak-rss time
latency-fragmenter latency-gcc-compile-hello-world-with-optimisation latency-larson
latency-python-json latency-sort-words memory-fragmenter memory-python-json
memory-sort-words"
missing=""
for c in $want; do
    for ext in png svg; do
        [ -s "$T/csv/$c.$ext" ] || missing="$missing $c.$ext"
    done
done
eq "plot writes every expected chart as PNG and SVG" "$missing" ""
check "plot writes report.md" "[ -s '$T/csv/report.md' ]"
extra=$(cd "$T/csv" && ls *.png | sed 's/\.png$//' | sort | tr '\n' ' ')
eq "plot writes no other charts" "$extra" "$(echo $want | tr ' ' '\n' | sort | tr '\n' ' ')"

bad=""
for f in "$T"/csv/*.png; do
    [ "$(png_size "$f")" = "640x400" ] || bad="$bad $(basename "$f"):$(png_size "$f")"
done
eq "every PNG is a valid PNG of the requested size" "$bad" ""
ok "every SVG is well-formed XML" python3 -c '
import sys, xml.dom.minidom
for f in sys.argv[1:]:
    d = xml.dom.minidom.parse(f)
    assert d.documentElement.tagName == "svg", f
' "$T"/csv/*.svg

links_exist() { # DIR: every link and image in report.md names a file in DIR
    python3 - "$1" <<'PY'
import os, re, sys
d = sys.argv[1]
text = open(os.path.join(d, "report.md")).read()
links = re.findall(r"\]\(([^)]+)\)", text)
assert links, "no links"
missing = [l for l in links if not os.path.isfile(os.path.join(d, l))]
assert not missing, missing
PY
}
ok "report.md links only files that exist" links_exist "$T/csv"
check "report.md embeds the time chart" "grep -qF '](time.png)' '$T/csv/report.md'"
check "a metric never measured is not drawn" "[ ! -e '$T/csv/dtlb-misses.png' ]"
check "report.md says why a metric is not charted" \
    "grep -q '^- dTLB misses.*not measured' '$T/csv/report.md'"
check "a metric that is 0 everywhere is listed, not drawn" \
    "[ ! -e '$T/csv/major-faults.png' ] && grep -q '^- Major page faults: 0 in every result' '$T/csv/report.md'"
check "report.md opens with a summary relative to glibc" \
    "grep -q '^| glibc | 1.00 (5) | \*\*1.00\*\* (5) | 1.00 (5) |' '$T/csv/report.md' && grep -q '^| mimalloc | \*\*0\.' '$T/csv/report.md'"
check "the summary flags an allocator that broke the contract" \
    "grep -q '^| heaplab (!) |' '$T/csv/report.md'"
check "report.md has the provenance (CPU with its comma, kernel)" \
    "grep -qF '| CPU | Intel(R) Xeon(R) CPU @ 2.20GHz, 2 cores |' '$T/csv/report.md' && grep -qF 'Linux 6.1.0-28' '$T/csv/report.md'"
check "report.md lists allocator versions, libraries and tunables" \
    "grep -qF '| jemalloc | 5.3.0 | \`/usr/lib/x86_64-linux-gnu/libjemalloc.so.2\` | \`MALLOC_CONF=background_thread:false,narenas:2\` |' '$T/csv/report.md'"
check "report.md warns about an allocator that broke the contract" \
    "grep -q '^| sort-words | heaplab | 2 |' '$T/csv/report.md'"
check "an allocator that broke the contract is never marked best" \
    "! grep -q '^| sort-words |.*\*\*[^|]*(!)' '$T/csv/report.md'"
check "the time table marks the fastest allocator of a trace in bold" \
    "grep -q '^| python-json | 48.9 ns | 41.5 ns | 36.4 ns | \*\*29.7 ns\*\* |' '$T/csv/report.md'"
check "an allocator missing on a trace gets n/a, not a zero bar" \
    "grep '^\"larson\"' '$T/csv/data/time.dat' | grep -q ' NaN NaN NaN 0'"

# One colour per allocator across all charts.
colours=$(python3 -c '
import sys, re
pairs = set()
for gp in sys.argv[1:]:
    n, c = {}, {}
    for line in open(gp):
        m = re.match(r"(alloc|series)_(name|color)\[(\d+)\] = (.*)", line.strip())
        if m:
            (n if m.group(2) == "name" else c)[m.group(3)] = m.group(4)
    for k in n:
        pairs.add((n[k], c[k]))
by = {}
for name, col in pairs:
    by.setdefault(name, set()).add(col)
print("ok" if by and all(len(v) == 1 for v in by.values()) and len(set(min(v) for v in by.values())) == len(by) else by)
' "$T"/csv/data/*.gp)
eq "each allocator has one colour in every chart, and no two share one" "$colours" "ok"

# ---- JSON gives the same charts; normalising ----
ok "plot on the same results as JSON succeeds" \
    "$HEAPLAB" plot "$D/results.json" -o "$T/json" --format svg
ok "JSON and CSV give the same chart data" diff "$T/csv/data/time.dat" "$T/json/data/time.dat"
check "JSON results chart the time inside allocator calls" "[ -s '$T/json/alloc-time.svg' ]"
check "CSV results say why they cannot" \
    "grep -q '^- Time in allocator calls per operation: not in these results' '$T/csv/report.md'"
check "--format svg writes no PNG" "! ls '$T'/json/*.png >/dev/null 2>&1"
ok "report.md of an SVG-only plot links only files that exist" links_exist "$T/json"
ok "plot --normalise glibc succeeds" \
    "$HEAPLAB" plot "$D/results.csv" --normalise glibc -o "$T/norm" --format png
eq "normalised charts put glibc at 1.0 on every trace" \
    "$(grep -v '^#' "$T/norm/data/time.dat" | awk '{print $2}' | sort -u)" "1"
check "normalised tables show ratios to glibc" "grep -qF '(1.00x)' '$T/norm/report.md'"
# An allocator without any value for a metric (e.g. not simulated) is left out of that
# chart, and the report names it.
python3 - "$D/results.csv" "$T/nosim.csv" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
h = rows[0]
for r in rows[1:]:
    if r[h.index("allocator")] == "jemalloc":
        r[h.index("instructions")] = ""
csv.writer(open(sys.argv[2], "w", newline=""), lineterminator="\n").writerows(rows)
PY
ok "plot takes results where one allocator has no instruction counts" \
    "$HEAPLAB" plot "$T/nosim.csv" -o "$T/nosim" --format svg
check "that allocator is not in the instructions chart" \
    "! grep -q jemalloc '$T/nosim/data/instructions.gp' && grep -q jemalloc '$T/nosim/data/time.gp'"
check "the report names what the chart leaves out" \
    "grep -q '^Not measured, so not in the chart: jemalloc' '$T/nosim/report.md'"
colour_of() { # colour_of GP-FILE INDEX
    sed -n "s/^alloc_color\[$2\] = //p" "$1"
}
eq "the others keep their colours (mimalloc: 4th of 4 in time, 3rd of 3 here)" \
    "$(colour_of "$T/nosim/data/instructions.gp" 3)" "$(colour_of "$T/nosim/data/time.gp" 4)"

# Timelines from threaded replays arrive in several runs of samples: drawn in order.
{ head -n 1 "$D/timeline.csv"; tail -n +2 "$D/timeline.csv" | grep '^sort-words,' | sort -t, -k4,4nr; } >"$T/shuffled.csv"
ok "plot takes a timeline whose samples are out of order" \
    "$HEAPLAB" plot "$D/results.csv" --timeline "$T/shuffled.csv" -o "$T/shuf" --format svg
ok "memory-over-time lines run forward in the trace" python3 -c '
import sys
prev = None
for line in open(sys.argv[1]):
    if not line.strip() or line.startswith("#"):
        prev = None
        continue
    x = float(line.split()[0])
    assert prev is None or x >= prev, (prev, x)
    prev = x
' "$T/shuf/data/memory-sort-words.dat"
check "the input CSV is not modified by plot" "cmp -s '$D/results.csv' '$T/keep.csv'"
done_testing
