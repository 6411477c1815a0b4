. "$HEAPLAB_SRC/tests/lib/lib.sh"; done_testing
