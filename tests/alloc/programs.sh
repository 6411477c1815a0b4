#!/bin/bash
# programs.sh: real programs run unchanged with a heaplab allocator preloaded and print
# the same as without it: python3, perl, gcc, git, sort, grep -R.  Usage:
#   programs.sh LIBRARY.so [all|subset]    (subset: python3, sort, grep for the variants)
. "$HEAPLAB_SRC/tests/lib/lib.sh"
lib=$1
set_=${2:-all}
name=$(basename "$lib" .so)
[ -r "$lib" ] || { echo "heaplab: $lib: no such library" >&2; exit 2; }

# run CMD...: stdout and exit status, with and without the allocator; compare.
same() { # same NAME CMD...
    local what=$1; shift
    local want got rcw=0 rcg=0
    want=$("$@" 2>&1) || rcw=$?
    got=$(LD_PRELOAD=$lib "$@" 2>&1) || rcg=$?
    eq "$what under $name prints the same as under glibc" "$got (exit $rcg)" "$want (exit $rcw)"
}

py=/usr/bin/python3
cat >"$T/work.py" <<'PY'
import hashlib, json, re, collections
words = [("w%d" % (i * 7919 % 10007)) * (1 + i % 5) for i in range(200000)]
c = collections.Counter(words)
d = {w: [len(w), w[::-1]] for w in set(words)}
s = json.dumps(sorted(d.items())[:2000])
print(len(c), c.most_common(3), hashlib.sha256(s.encode()).hexdigest())
print(sum(len(m.group(0)) for m in re.finditer(r"w\d+", " ".join(words[:50000]))))
PY
same "python3 running a script" $py "$T/work.py"
same "python3 with its own allocator off (PYTHONMALLOC=malloc)" env PYTHONMALLOC=malloc $py "$T/work.py"

awk 'BEGIN { srand(7); for (i = 0; i < 400000; i++) printf "%08d %s\n", int(rand() * 1e8), substr("abcdefghijklmnop", 1 + i % 16) }' >"$T/big.txt"
same "sort of a 400000-line file" sort -S 64M "$T/big.txt"
same "grep -R over the source tree" grep -R -n "alloc" "$HEAPLAB_SRC/allocators" "$HEAPLAB_SRC/tests/alloc"

if [ "$set_" = all ]; then
    same "python3 with thread caches off (HEAPLAB_TCACHE=0)" env HEAPLAB_TCACHE=0 PYTHONMALLOC=malloc $py "$T/work.py"
    same "python3 with a 40k mmap threshold" env HEAPLAB_MMAP_THRESHOLD=40k PYTHONMALLOC=malloc $py "$T/work.py"
    thr=$(LD_PRELOAD=$lib HEAPLAB_STATS=1 HEAPLAB_MMAP_THRESHOLD=1m $py -c 'print(1)' 2>&1 >/dev/null | awk -F': ' '/mmap threshold now/ { print $2 }')
    eq "HEAPLAB_MMAP_THRESHOLD=1m is read from the environment" "${thr%% *}" 1048576
    thr=$(LD_PRELOAD=$lib HEAPLAB_STATS=1 $py -c 'b = bytearray(5 << 20); del b' 2>&1 >/dev/null | awk -F': ' '/mmap threshold now/ { v = $2 } END { print v }')
    eq "freeing a 5 MiB mapped block raises the adaptive mmap threshold (from 4 MiB) to twice its mapping" "${thr%% *}" $((2 * ((5242881 + 16 + 4095) / 4096 * 4096)))
    same "perl building hashes and sorting" perl -e 'my %h; $h{"k".($_*31%9973)} .= "x" x ($_%40) for 1..200000; my @k = sort keys %h; print scalar(@k), " ", length(join("", @h{@k})), "\n";'
    cat >"$T/prog.c" <<'C'
#include <stdio.h>
#include <stdlib.h>
struct node { struct node *next; int v; };
int main(void) {
    struct node *h = NULL;
    for (int i = 0; i < 1000; i++) { struct node *n = malloc(sizeof *n); n->v = i; n->next = h; h = n; }
    long s = 0; while (h) { struct node *n = h->next; s += h->v; free(h); h = n; }
    printf("%ld\n", s);
    return 0;
}
C
    gcc -O2 -o "$T/prog-glibc" "$T/prog.c"
    LD_PRELOAD=$lib gcc -O2 -o "$T/prog-heaplab" "$T/prog.c"
    ok "gcc compiles a file under $name" test -x "$T/prog-heaplab"
    ok "the program gcc built under $name is identical" cmp "$T/prog-glibc" "$T/prog-heaplab"
    same "the program gcc built runs" "$T/prog-heaplab"
    same "gcc -O2 -S of the allocator's own owned.c" gcc -O2 -S -o - -D_GNU_SOURCE "$HEAPLAB_SRC/allocators/heaplab/owned.c"

    git init -q "$T/repo"
    for i in $(seq 1 200); do echo "file $i" >"$T/repo/f$i.txt"; done
    git -C "$T/repo" add . && git -C "$T/repo" -c user.name=t -c user.email=t@t commit -q -m one
    for i in $(seq 1 200 | awk 'NR % 7 == 0'); do echo change >>"$T/repo/f$i.txt"; done
    echo new >"$T/repo/new.txt"
    same "git status" git -C "$T/repo" status --porcelain
    same "git log and diff" sh -c "git -C '$T/repo' log --format=%s && git -C '$T/repo' diff --stat | tail -1"
fi

stats=$(LD_PRELOAD=$lib HEAPLAB_STATS=1 PYTHONMALLOC=malloc $py -c 'print(1)' 2>&1 >/dev/null)
check "HEAPLAB_STATS=1 prints the allocator's statistics at exit" '[[ "$stats" == *"allocator statistics"* && "$stats" == *"malloc-family calls"* ]]'
calls=$(echo "$stats" | awk -F': ' '/malloc-family calls/ { print $2 }')
check "python3 really allocated through $name ($calls calls)" '[ "${calls:-0}" -gt 10000 ]'
done_testing
