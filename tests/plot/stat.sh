#!/bin/bash
# heaplab plot on `heaplab stat --json` output: size and lifetime histograms per trace
# (and per sizeable process) and stat-report.md, from hand-written text traces whose
# histograms are known; and one-line errors on malformed stat JSON.
. "$HEAPLAB_SRC/tests/lib/lib.sh"

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

links_exist() { # DIR REPORT: every link and image in REPORT names a file in DIR
    python3 - "$1" "$2" <<'PY'
import os, re, sys
d = sys.argv[1]
text = open(os.path.join(d, sys.argv[2])).read()
links = re.findall(r"\]\(([^)]+)\)", text)
assert links, "no links"
missing = [l for l in links if not os.path.isfile(os.path.join(d, l))]
assert not missing, missing
PY
}

# ---- the known traces (described in data/make-stat-sample) ----
bash "$HEAPLAB_SRC/tests/plot/data/make-stat-sample" "$T"
ok "import the hand-written multi-process trace" \
    "$HEAPLAB" import --format text "$T/multi.txt" -o "$T/multi.hlt"
ok "import the hand-written trace without timestamps" \
    "$HEAPLAB" import --format text "$T/notime.txt" -o "$T/notime.hlt"
"$HEAPLAB" stat --json "$T/multi.hlt" >"$T/multi.json"
"$HEAPLAB" stat --json "$T/multi.hlt" "$T/notime.hlt" >"$T/both.json"
eq "stat sees the three processes" "$(json "$T/multi.json" 'len(j["process_list"])')" "3"

# ---- malformed stat JSON (no gnuplot needed) ----
bad_stat() { # NAME FILE WANT-IN-MESSAGE
    fails_with_one_line "$1 is a one-line error" "$HEAPLAB" plot "$2" -o "$T/bad-out"
    check "$1: the error names the file and line" "grep -qF -- '$3' '$T/.stderr'"
}
python3 - "$T/multi.json" "$T" <<'PY'
import json, sys
src, d = sys.argv[1], sys.argv[2]
text = open(src).read()
# a count that is a string, on the line of the 512-byte bucket
open(d + "/count.json", "w").write(text.replace('"lo": 512, "hi": 1023, "count": 120', '"lo": 512, "hi": 1023, "count": "many"', 1))
j = json.loads(text)
del j["events"]
open(d + "/noevents.json", "w").write(json.dumps(j, indent=1))
j = json.loads(text)
j["size_histogram"].reverse()
open(d + "/order.json", "w").write(json.dumps(j, indent=1))
open(d + "/array.json", "w").write(json.dumps([json.loads(text), 42], indent=1))
open(d + "/cut.json", "w").write(text[: len(text) // 2])
PY
line=$(grep -n '"lo": 512, "hi": 1023, "count": 120' "$T/multi.json" | head -1 | cut -d: -f1)
bad_stat "a bucket count that is not a number" "$T/count.json" "count.json:$line: \"count\" should be a number"
bad_stat "stat JSON without \"events\"" "$T/noevents.json" "noevents.json:1: no \"events\""
bad_stat "histogram buckets out of order" "$T/order.json" "not in ascending order"
bad_stat "an array holding a non-object" "$T/array.json" "array.json:"
bad_stat "truncated stat JSON" "$T/cut.json" "cut.json:"
printf '{"file": "x.hlt", "events": 3}\n' >"$T/neither.json"
bad_stat "JSON that is neither results nor stat output" "$T/neither.json" \
    "neither.json:1: no \"results\" array (neither replay results nor \`heaplab stat --json\` output)"
fails_with_one_line "--timeline with stat input is a one-line error" \
    "$HEAPLAB" plot "$T/multi.json" --timeline "$T/multi.json" -o "$T/bad-out"
check "malformed stat JSON writes no output folder" "[ ! -e '$T/bad-out' ]"
fails_with_one_line "without gnuplot, plotting stat JSON is a one-line error" \
    env PATH=/nonexistent "$HEAPLAB" plot "$T/multi.json" -o "$T/nognuplot"
check "the missing-gnuplot error says how to install it" \
    "grep -q 'apt-get install gnuplot-nox' '$T/.stderr'"
check "plot --help mentions the stat input" \
    "'$HEAPLAB' plot --help | grep -qF 'heaplab stat --json'"

if ! command -v gnuplot >/dev/null; then
    skip "plot draws stat charts" "gnuplot is not installed (apt-get install gnuplot-nox)"
    done_testing
fi

# ---- charts from the known trace ----
ok "plot on stat JSON succeeds" "$HEAPLAB" plot "$T/multi.json" -o "$T/m"
want="lifetimes-multi lifetimes-multi-100 lifetimes-multi-101 sizes-multi sizes-multi-100 sizes-multi-101"
eq "plot draws the trace and its two sizeable processes, not the tiny one" \
    "$(cd "$T/m" && ls *.png | sed 's/\.png$//' | sort | tr '\n' ' ')" "$want "
missing=""
for c in $want; do
    [ -s "$T/m/$c.svg" ] || missing="$missing $c.svg"
done
eq "every chart is also written as SVG" "$missing" ""
eq "size charts are valid PNGs of their default size" \
    "$(png_size "$T/m/sizes-multi.png") $(png_size "$T/m/sizes-multi-101.png")" "1000x700 1000x700"
eq "lifetime charts (two panels) are valid PNGs of their default size" \
    "$(png_size "$T/m/lifetimes-multi.png")" "1200x500"
check "plot writes stat-report.md" "[ -s '$T/m/stat-report.md' ]"
check "stat input leaves no replay report" "[ ! -e '$T/m/report.md' ]"
ok "stat-report.md links only files that exist" links_exist "$T/m" stat-report.md

# The size histogram of the whole file, empty buckets in between included:
# 8: 1 block; 16..31: 150 x 16 + 24; 512..1023: 120 x 1000; 4096: 2 x 4096.
eq "the size histogram has the trace's blocks and bytes per power-of-two bucket" \
    "$(grep -v '^#' "$T/m/data/sizes-multi.dat" | awk '{print $1, $2, $3}' | tr '\n' ';')" \
    '"8" 1 8;"16" 151 2424;"32" NaN NaN;"64" NaN NaN;"128" NaN NaN;"256" NaN NaN;"512" 120 120000;"1K" NaN NaN;"2K" NaN NaN;"4K" 2 8192;'
eq "a process's size histogram has only its own blocks" \
    "$(grep -v '^#' "$T/m/data/sizes-multi-100.dat" | awk '$2 != "NaN" {print $1, $2}' | tr '\n' ';')" \
    '"16" 150;"4K" 2;'
# alpha's blocks live one event and 1 us; its leaks get their own bar.
eq "lifetimes in events, with the blocks never freed last" \
    "$(awk '/^$/ {exit} !/^#/' "$T/m/data/lifetimes-multi-100.dat" | tr '\n' ';')" \
    '"1" 150 0 "150";"never freed" 2 1 "2";'
eq "lifetimes in time, in decades" \
    "$(awk '/in time/ {on=1; next} on && NF' "$T/m/data/lifetimes-multi-100.dat" | tr '\n' ';')" \
    '"1 µs" 150 0 "150";"never freed" 2 1 "2";'
check "bytes spanning four decades get a log axis with binary tics" \
    "grep -q '^bytes_log = 1' '$T/m/data/sizes-multi.gp' && grep -qF '\"4 KiB\" 4096' '$T/m/data/sizes-multi.gp'"
check "chart titles name the trace and the process's program" \
    "grep -qF \"chart_title = 'Allocation sizes: multi[101] (beta)'\" '$T/m/data/sizes-multi-101.gp'"

R="$T/m/stat-report.md"
check "the summary gives events, allocations, peak live bytes and leaks" \
    "grep -q '^| multi | 545 | 274 | 128 KiB | 117 KiB at 121 us | 3 blocks, 8.02 KiB | ' '$R'"
check "a process's leak trend is reported from stat's regression" \
    "grep -qF \"$(json "$T/multi.json" '"R² %.2f" % j["process_list"][1]["leak_trend"]["r2"]')\" '$R'"
check "the process table says why the tiny process has no charts" \
    "grep -q '^| multi\[102\] | gamma | 2 | 1 | .*too few allocations to chart |' '$R'"
check "the report lists the most frequent exact sizes" \
    "grep -q '^| 16 | 150 | 54.7% |' '$R'"
check "the report lists the leaks by size" "grep -q '^| 4,096 | 2 | 8.00 KiB |' '$R'"

# ---- several traces in one array; a trace without timestamps ----
ok "plot on stat JSON of two traces (an array) succeeds" \
    "$HEAPLAB" plot "$T/both.json" -o "$T/b" --size 640x400 --format png
eq "both traces are charted" \
    "$(cd "$T/b" && ls sizes-*.png lifetimes-*.png | grep -c -e '-notime\.png$' -e '-multi\.png$')" "4"
bad=""
for f in "$T"/b/*.png; do
    [ "$(png_size "$f")" = "640x400" ] || bad="$bad $(basename "$f"):$(png_size "$f")"
done
eq "--size applies to every stat chart" "$bad" ""
check "--format png writes no SVG" "! ls '$T'/b/*.svg >/dev/null 2>&1"
ok "the report of two traces links only files that exist" links_exist "$T/b" stat-report.md
eq "size 0 has its own bucket, before 1, 2, 4, ..." \
    "$(grep -v '^#' "$T/b/data/sizes-notime.dat" | awk '{print $1, $2}' | tr '\n' ';')" \
    '"0" 1;"1" NaN;"2" NaN;"4" NaN;"8" NaN;"16" NaN;"32" NaN;"64" 3;'
check "a trace without timestamps has no lifetime-in-time panel" \
    "grep -q '^has_time = 0' '$T/b/data/lifetimes-notime.gp'"
check "the report says so" \
    "grep -q 'No lifetimes in time: the trace has no timestamps' '$T/b/stat-report.md'"

# ---- exec keeps the pid: two images of one process are told apart as replay does ----
python3 - "$T/exec.txt" <<'PY'
import sys
out = []
for image, size in (("sh", 32), ("worker", 256)):
    out.append('process pid=7 ppid=1 page_size=4096 exe="/bin/%s" cmdline="%s"' % (image, image))
    out += ["%d malloc %d" % (1000 * (i + 1), size) for i in range(200)]
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
"$HEAPLAB" import --format text "$T/exec.txt" -o "$T/exec.hlt" && "$HEAPLAB" stat --json "$T/exec.hlt" >"$T/exec.json"
ok "plot takes a trace where one pid runs two programs" \
    "$HEAPLAB" plot "$T/exec.json" -o "$T/e" --format svg
eq "each image of the pid gets its own charts (pid, then pid.2)" \
    "$(cd "$T/e" && ls sizes-*.svg | tr '\n' ' ')" "sizes-exec-7.2.svg sizes-exec-7.svg sizes-exec.svg "
check "the report names the second image exec[7.2] (worker)" \
    "grep -qF '### Process exec[7.2] (worker)' '$T/e/stat-report.md'"

# ---- a file stat could not read is reported, not charted ----
printf 'not a trace\n' >"$T/junk.hlt"
"$HEAPLAB" stat --json "$T/notime.hlt" "$T/junk.hlt" >"$T/junk.json" 2>/dev/null
ok "plot takes stat output that holds an unreadable file" \
    "$HEAPLAB" plot "$T/junk.json" -o "$T/j" --format svg
check "the unreadable file is named in the report with stat's error" \
    "grep -q '^## junk' '$T/j/stat-report.md' && ! ls '$T'/j/*junk* >/dev/null 2>&1"
done_testing
