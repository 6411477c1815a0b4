/*
 * fuzz_analysis.c: fuzz target for the analysis engine behind `heaplab stat`, fed
 * events no writer would accept (any op, flags, slots allocated twice or freed twice,
 * time going backwards): it must not crash, and its books must balance.
 *
 * Input: 16-byte records: op, flags, thread, slot, old_slot (255 = none), pad,
 * time delta (16-bit signed, little-endian), size (64-bit little-endian).
 */
#include "analysis.h"
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

static uint64_t slot_of(uint8_t b)
{
    return b == 255 ? HL_NO_SLOT : b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hl_analysis *a = hl_analysis_new();
    uint64_t t = 1000000;
    for (size_t i = 0; i + 16 <= size; i += 16) {
        const uint8_t *d = data + i;
        int16_t dt;
        uint64_t sz;
        memcpy(&dt, d + 6, 2);
        memcpy(&sz, d + 8, 8);
        t += (uint64_t)(int64_t)dt;
        struct hl_event e = {t, sz, sz >> 60, slot_of(d[3]), slot_of(d[4]), d[2], d[0], d[1]};
        hl_analysis_feed(a, &e, 1);
    }
    uint64_t live = a->live_bytes, blocks = a->live_blocks;
    hl_analysis_finish(a);
    if (a->leaked_bytes != live || a->leaked_blocks != blocks || a->peak_live < live ||
        a->peak_blocks < blocks)
        abort(); /* the books do not balance */
    struct hl_analysis *t2 = hl_analysis_new();
    hl_analysis_finish(t2);
    hl_analysis_merge(t2, a);
    hl_analysis_merge(t2, a);
    if (t2->leaked_bytes != 2 * live || t2->events != 2 * a->events)
        abort();
    hl_analysis_free(t2);
    hl_analysis_free(a);
    return 0;
}
