#!/bin/bash
# heaplab export / import: the text form of traces (traces/text.h) round-trips
# losslessly, hand-written traces are read forgivingly, bad input is one line.
. "$HEAPLAB_SRC/tests/lib/lib.sh"

# A hand-written trace using the forgiving forms: no times, no threads, no results,
# comments, "N S" arrays, "A SIZE" alignment.
cat >"$T/hand.txt" <<'TXT'
# a hand-written trace
malloc 64
calloc 10 8          # calloc(10, 8)
calloc 0x16
pages #0 3           # block #0 had 3 pages resident
t1 free #0
realloc #1 200
realloc NULL 16 -> #4
reallocarray #4 4x32
memalign 64 100
posix_memalign align=16 24 -> #7
aligned_alloc align=32 64
valloc 10
pvalloc 5000
malloc 1099511627776 -> FAILED
free ?
free NULL
realloc ? 8
0x10 t2 free #3
pages #5 1
TXT
cat >"$T/hand.want" <<'TXT'
# heaplab-text 1
process pid=0 ppid=0 page_size=4096 start_ns=0 exe="" cmdline=""
0 t0 malloc 64 -> #0
0 t0 calloc 10x8 -> #1
0 t0 calloc 0x16 -> #2
0 t1 free #0
0 t0 realloc #1 200 -> #3
0 t0 realloc NULL 16 -> #4
0 t0 reallocarray #4 4x32 -> #5
0 t0 memalign align=64 100 -> #6
0 t0 posix_memalign align=16 24 -> #7
0 t0 aligned_alloc align=32 64 -> #8
0 t0 valloc 10 -> #9
0 t0 pvalloc 5000 -> #10
0 t0 malloc 1099511627776 -> FAILED
0 t0 free ?
0 t0 free NULL
0 t0 realloc ? 8 -> #11
16 t2 free #3
pages #0 3
pages #5 1
TXT
ok "a hand-written text trace imports" "$HEAPLAB" import "$T/hand.txt" -o "$T/hand.hlt"
ok "its export is the canonical form" bash -c '"$HEAPLAB" export "$1" >"$2"' _ "$T/hand.hlt" "$T/hand.out"
ok "the canonical form holds every event as written" diff "$T/hand.want" "$T/hand.out"

# Processes without events are kept, in order.
printf 'process pid=5\nprocess pid=6\nmalloc 3\nprocess pid=7\n' >"$T/empty.txt"
ok "processes without events import" "$HEAPLAB" import "$T/empty.txt" -o "$T/empty.hlt"
eq "processes without events export in order" "$("$HEAPLAB" export "$T/empty.hlt" 2>&1 | awk '{print $1, $2}' | tr '\n' ' ')" \
    "# heaplab-text process pid=5 process pid=6 0 t0 process pid=7 "

# A larger trace: two processes, several threads, times, every op; made with awk.
awk 'BEGIN {
    print "# heaplab-text 1"
    for (p = 0; p < 2; p++) {
        printf "process pid=%d ppid=%d page_size=4096 start_ns=%d exe=\"/bin/x y\" cmdline=\"x \\\"a b\\\" \\\\ \\t\\x01\"\n", 100 + p, 99 + p, 1700000000000000000 + p
        t = 0; next_slot = 0; n = 0
        for (i = 0; i < 3000; i++) {
            t += 37 + (i * 7919) % 101
            th = int(i / 100) % 3
            r = (i * 2654435761) % 97
            if (n > 0 && r < 40) {
                printf "%d t%d free #%d\n", t, th, live[n - 1]; n--
            } else if (n > 0 && r < 45) {
                printf "%d t%d realloc #%d %d -> #%d\n", t, th, live[n - 1], r * 13, next_slot
                live[n - 1] = next_slot++
            } else if (r < 50) {
                printf "%d t%d calloc %dx%d -> #%d\n", t, th, r, 16, next_slot; live[n++] = next_slot++
            } else if (r < 52) {
                printf "%d t%d posix_memalign align=64 %d -> #%d\n", t, th, r * 3, next_slot; live[n++] = next_slot++
            } else {
                printf "%d t%d malloc %d -> #%d\n", t, th, (r * 31) % 4000, next_slot; live[n++] = next_slot++
            }
        }
    }
}' >"$T/big.txt"
ok "a generated text trace imports" "$HEAPLAB" import "$T/big.txt" -o "$T/big.hlt"
"$HEAPLAB" export "$T/big.hlt" >"$T/big.out" 2>/dev/null
ok "import -> export reproduces the text byte for byte" cmp "$T/big.txt" "$T/big.out"
ok "export -> import -> export is byte-identical" bash -c \
    '"$HEAPLAB" import "$1/big.out" -o "$1/big2.hlt" && "$HEAPLAB" export "$1/big2.hlt" | cmp - "$1/big.out"' _ "$T"
ok "the re-imported trace is the same file" cmp "$T/big.hlt" "$T/big2.hlt"
ok "export -o writes the same text as stdout" bash -c \
    '"$HEAPLAB" export -o "$1/big3.txt" "$1/big.hlt" && cmp "$1/big3.txt" "$1/big.out"' _ "$T"
ok "import reads stdin with -" bash -c \
    '"$HEAPLAB" import -o "$1/stdin.hlt" - <"$1/big.txt" && cmp "$1/stdin.hlt" "$1/big.hlt"' _ "$T"

# Recorded traces (the committed corpus; the smaller ones, to stay fast) survive
# export -> import -> export.
for f in $(find "$HEAPLAB_SRC/traces/corpus" -name '*.hlt' -size -400k | sort); do
    b=$(basename "$f" .hlt)
    ok "recorded trace $b: export -> import -> export gives the same text" bash -c \
        '"$HEAPLAB" export -o "$2.txt" "$1" && "$HEAPLAB" import -o "$2.hlt" "$2.txt" &&
         "$HEAPLAB" export "$2.hlt" | cmp - "$2.txt"' _ "$f" "$T/$b"
done

# Traces of format version 1 (before ref_mode) still read, to the same events.
ok "a version 1 trace still exports to the same text" bash -c \
    '"$HEAPLAB" export "$1/tests/trace/data/v1.hlt" | cmp - "$1/tests/trace/data/v1.txt"' _ "$HEAPLAB_SRC"

# Bad input: one line naming the file (and line), non-zero exit, no output left.
bad() { # NAME LINE-OF-TEXT WANT-IN-MESSAGE
    printf 'malloc 8\n%s\n' "$2" >"$T/bad.txt"
    fails_with_one_line "$1 is a one-line error" "$HEAPLAB" import "$T/bad.txt" -o "$T/bad.hlt"
    check "$1 names the file and line" "grep -qF -- '$T/bad.txt:2: $3' '$T/.stderr'"
}
bad "an unknown operation" "mallocx 8" "unknown operation"
bad "a free of a slot never allocated" "free #5" "block #5 is not allocated yet"
bad "the pages of a slot not allocated yet" "pages #1 4" "pages #1: no such block allocated before"
bad "a pages line without its count" "pages #0" "expected: pages #SLOT PAGES"


printf 'malloc 8\nfree #0\nfree #0\n' >"$T/bad.txt"
"$HEAPLAB" import "$T/bad.txt" -o "$T/bad.hlt" 2>"$T/.stderr"
check "a double free names its own line" "grep -qF '$T/bad.txt:3:' '$T/.stderr'"
bad "a result that skips a slot" "malloc 8 -> #7" "the result must be the next slot #1, got #7"
bad "a bad number" "malloc 12abc" "bad size"
bad "a size that overflows" "malloc 99999999999999999999" "bad size"
bad "a bad process field" "process pid=1 colour=red" "unknown process field"
bad "an unterminated string" 'process exe="abc' "unterminated string"
printf '# heaplab-text 2\nmalloc 8\n' >"$T/v2.txt"
fails_with_one_line "a text trace of another version is refused" "$HEAPLAB" import "$T/v2.txt" -o "$T/v2.hlt"
check "no trace is left after a failed import" "[ ! -e '$T/bad.hlt' ] && [ ! -e '$T/bad.hlt.tmp' ] && [ ! -e '$T/v2.hlt' ]"
fails_with_one_line "importing a missing file is one line" "$HEAPLAB" import "$T/nope.txt" -o "$T/x.hlt"
fails_with_one_line "import --format mtrace of a file that is no mtrace log is one line" \
    "$HEAPLAB" import --format mtrace "$T/hand.txt" -o "$T/x.hlt"
fails_with_one_line "import without -o is a usage error" "$HEAPLAB" import "$T/hand.txt"
fails_with_one_line "exporting a missing file is one line" "$HEAPLAB" export "$T/nope.hlt"
fails_with_one_line "exporting a text file is one line" "$HEAPLAB" export "$T/hand.txt"
check "it says it is not a heaplab trace" "grep -q 'not a heaplab trace' '$T/.stderr'"
head -c 300 "$T/big.hlt" >"$T/cut.hlt"
fails_with_one_line "exporting a truncated trace is one line" "$HEAPLAB" export -o "$T/cut.txt" "$T/cut.hlt"
check "it names the byte offset" "grep -q 'cut.hlt: truncated at byte offset' '$T/.stderr'"
check "export -o leaves no partial text on failure" "[ ! -e '$T/cut.txt' ]"
done_testing
