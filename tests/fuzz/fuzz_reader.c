/*
 * fuzz_reader.c: fuzz target for the binary trace reader (traces/reader.c): any bytes
 * must be read to the end or refused with an error, never crash, hang or allocate
 * without bound.
 */
#include "format.h"
#include "fuzz.h"
#include "trace.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hl_err err;
    struct hl_reader *r = hl_reader_open_mem(data, size, "fuzz.hlt", &err);
    if (!r)
        return 0;
    (void)hl_reader_hash(r);
    struct hl_process p;
    uint64_t sum = 0;
    int sections = 0;
    while (sections++ < 1000 && hl_reader_next_process(r, &p, &err) > 0) {
        const struct hl_event *ev;
        ssize_t k;
        /* Skip every other section without reading it: that path must hold too. */
        if (sections % 2 == 0)
            continue;
        struct hl_pages *pg;
        ssize_t npg = hl_reader_pages(r, &pg, &err);
        for (ssize_t i = 0; i < npg; i++)
            sum += pg[i].slot + pg[i].pages;
        free(pg);
        while ((k = hl_reader_events(r, &ev, &err)) > 0)
            for (ssize_t i = 0; i < k; i++)
                sum += ev[i].size + ev[i].slot + ev[i].old_slot + hl_event_bytes(&ev[i]);
    }
    hl_reader_close(r);
    return sum == 42 ? 0 : 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Recompute every block's checksums, so that a mutation inside a block reaches the
 * code behind them. */
void fuzz_postprocess(uint8_t *d, size_t len)
{
    size_t pos = HL_FILE_HEADER_BYTES;
    while (pos + HL_BLOCK_HEADER_BYTES <= len) {
        uint8_t *h = d + pos;
        size_t stored = (size_t)h[4] | (size_t)h[5] << 8 | (size_t)h[6] << 16 | (size_t)h[7] << 24;
        if (stored > len - pos - HL_BLOCK_HEADER_BYTES)
            stored = len - pos - HL_BLOCK_HEADER_BYTES;
        put32(h + 16, hl_crc32c(0, h + HL_BLOCK_HEADER_BYTES, stored));
        put32(h + 20, hl_crc32c(0, h, 20));
        pos += HL_BLOCK_HEADER_BYTES + stored;
    }
}
