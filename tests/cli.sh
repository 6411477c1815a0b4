#!/bin/bash
# The heaplab executable's command-line contract: help for every command, usage errors.
. "$HEAPLAB_SRC/tests/lib/lib.sh"

ok "heaplab --help lists the commands" bash -c '"$HEAPLAB" --help | grep -q "replay"'
ok "heaplab --version prints the version" bash -c '"$HEAPLAB" --version | grep -Eq "^heaplab [0-9]+\.[0-9]+"'
for c in record stat replay allocators plot gen export import; do
    ok "heaplab $c --help prints usage" bash -c "\"\$HEAPLAB\" $c --help | grep -q '^usage: heaplab $c'"
    ok "heaplab help $c prints the same usage" bash -c "diff <(\"\$HEAPLAB\" help $c) <(\"\$HEAPLAB\" $c --help)"
done
fails_with_one_line "unknown command is a one-line error" "$HEAPLAB" frobnicate
rc=0; "$HEAPLAB" frobnicate 2>/dev/null || rc=$?
eq "unknown command exits 2" "$rc" 2
fails_with_one_line "unknown option is a one-line error" "$HEAPLAB" stat --no-such-option x
done_testing
