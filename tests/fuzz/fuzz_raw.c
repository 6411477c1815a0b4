/*
 * fuzz_raw.c: fuzz target for the raw capture reader (traces/finalise.c): the bytes a
 * recorded process left behind (traces/preload/raw.h), written as the one .hlraw file
 * of a capture folder and finalised.  Any file must be finalised, or read up to its
 * last good chunk (reported as damage), or refused with a one-line error naming it;
 * never a crash, a hang or an unbounded allocation.  What finalises must read back.
 */
#include "finalise.h"
#include "fuzz.h"
#include "preload/raw.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256], raw[300], out[300];

static void cleanup(void)
{
    unlink(raw);
    unlink(out);
    rmdir(dir);
}

static void setup(void)
{
    fuzz_scratch(dir, sizeof dir, "raw");
    snprintf(raw, sizeof raw, "%s/1-1.hlraw", dir);
    snprintf(out, sizeof out, "%s/out.hlt", dir);
    atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    FILE *f = fopen(raw, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
    struct hl_finalise_stats st;
    struct hl_err err;
    if (hl_finalise(dir, out, &st, &err) != 0) {
        if (strchr(err.msg, '\n'))
            abort(); /* errors are one line */
        return 0;
    }
    struct hl_reader *r = hl_reader_open(out, &err);
    if (!r) {
        fprintf(stderr, "a finalised trace does not read back: %s\n", err.msg);
        abort();
    }
    struct hl_process p;
    uint64_t events = 0;
    int k;
    while ((k = hl_reader_next_process(r, &p, &err)) > 0) {
        const struct hl_event *ev;
        ssize_t n;
        while ((n = hl_reader_events(r, &ev, &err)) > 0)
            events += (uint64_t)n;
        if (n < 0)
            break;
    }
    if (k < 0 || events != st.events) {
        fprintf(stderr, "a finalised trace reads back %llu events of %llu: %s\n",
                (unsigned long long)events, (unsigned long long)st.events,
                k < 0 ? err.msg : "");
        abort();
    }
    hl_reader_close(r);
    unlink(out);
    return 0;
}

/* Recompute the header's and every chunk's checksum, so that mutations reach the
 * chunk decoder and the merge behind them. */
void fuzz_postprocess(uint8_t *d, size_t len)
{
    struct hl_raw_header h;
    if (len < sizeof h)
        return;
    memcpy(&h, d, sizeof h);
    h.checksum = 0;
    h.checksum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &h, sizeof h / 8);
    memcpy(d, &h, sizeof h);
    size_t pos = sizeof h;
    struct hl_raw_chunk c;
    while (pos + sizeof c <= len) {
        memcpy(&c, d + pos, sizeof c);
        size_t nb = c.nbytes & ~7u;
        if (nb > len - pos - sizeof c)
            nb = (len - pos - sizeof c) & ~(size_t)7;
        c.nbytes = (uint32_t)nb;
        c.checksum = 0;
        uint64_t sum = hl_raw_checksum(HL_RAW_CHECKSUM_INIT, &c, sizeof c / 8);
        uint64_t *words = malloc(nb ? nb : 8);
        memcpy(words, d + pos + sizeof c, nb);
        c.checksum = hl_raw_checksum(sum, words, nb / 8);
        free(words);
        memcpy(d + pos, &c, sizeof c);
        pos += sizeof c + nb;
    }
}
