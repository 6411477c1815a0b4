/*
 * driver.c: runs a fuzz target without libFuzzer, as a unit test: over every file of
 * a seed corpus, then over deterministic random mutations of them (bit flips, byte
 * overwrites with edge values, insertions, deletions, truncations, spliced copies).
 * Under the sanitizer build (scripts/test) any out-of-bounds access, leak or undefined
 * behaviour fails the test.
 *   driver CORPUS_DIR [MUTATIONS]
 */
#include "fuzz.h"
#include "tap.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct seed {
    uint8_t *data;
    size_t len;
};

static uint64_t rng = 0x853c49e6748fea9bull;

static uint64_t next(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static const uint8_t edge[] = {0, 1, 0x7f, 0x80, 0xff, 0xfe, '#', ' ', '\n', 'x', '0', '9', '-', '>'};

/* Apply a few random mutations to buf (capacity cap), return the new length. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap, const struct seed *seeds, int nseeds)
{
    int n = 1 + (int)(next() % 6);
    for (int i = 0; i < n; i++) {
        size_t at = len ? (size_t)(next() % len) : 0;
        switch (next() % 7) {
        case 0: /* flip a bit */
            if (len)
                buf[at] ^= (uint8_t)(1u << (next() % 8));
            break;
        case 1: /* an edge value */
            if (len)
                buf[at] = edge[next() % sizeof edge];
            break;
        case 2: /* insert a byte */
            if (len < cap) {
                memmove(buf + at + 1, buf + at, len - at);
                buf[at] = (uint8_t)next();
                len++;
            }
            break;
        case 3: /* delete a run */
            if (len) {
                size_t k = 1 + (size_t)(next() % 16);
                if (k > len - at)
                    k = len - at;
                memmove(buf + at, buf + at + k, len - at - k);
                len -= k;
            }
            break;
        case 4: /* truncate */
            len = at;
            break;
        case 5: { /* splice in part of another seed */
            const struct seed *s = &seeds[next() % (uint64_t)nseeds];
            if (!s->len)
                break;
            size_t from = (size_t)(next() % s->len), k = (size_t)(next() % 64);
            if (k > s->len - from)
                k = s->len - from;
            if (at + k > cap)
                k = cap - at;
            memcpy(buf + at, s->data + from, k);
            if (at + k > len)
                len = at + k;
            break;
        }
        default: /* a random 32-bit word (lengths, counts) */
            if (len >= 4) {
                uint32_t v = (uint32_t)next();
                at = at > len - 4 ? len - 4 : at;
                memcpy(buf + at, &v, 4);
            }
            break;
        }
    }
    return len;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
        return 2;
    }
    long iterations = argc > 2 ? atol(argv[2]) : 3000;
    DIR *d = opendir(argv[1]);
    if (!d) {
        perror(argv[1]);
        return 1;
    }
    struct seed seeds[256];
    int nseeds = 0;
    size_t maxlen = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nseeds < 256) {
        if (de->d_name[0] == '.')
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", argv[1], de->d_name);
        FILE *f = fopen(p, "rb");
        if (!f)
            continue;
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        seeds[nseeds].data = malloc((size_t)n + 1);
        seeds[nseeds].len = fread(seeds[nseeds].data, 1, (size_t)n, f);
        fclose(f);
        if (seeds[nseeds].len > maxlen)
            maxlen = seeds[nseeds].len;
        nseeds++;
    }
    closedir(d);
    TAP_CHECK(nseeds > 0, "the seed corpus %s has files (%d)", argv[1], nseeds);
    if (!nseeds)
        return tap_done();
    for (int i = 0; i < nseeds; i++) {
        /* Run each seed from an exact-size copy, so reads past the end are caught. */
        uint8_t *copy = malloc(seeds[i].len ? seeds[i].len : 1);
        memcpy(copy, seeds[i].data, seeds[i].len);
        LLVMFuzzerTestOneInput(copy, seeds[i].len);
        free(copy);
    }
    TAP_CHECK(1, "every seed runs to completion");
    size_t cap = maxlen + 256;
    uint8_t *buf = malloc(cap);
    for (long it = 0; it < iterations; it++) {
        const struct seed *s = &seeds[next() % (uint64_t)nseeds];
        memcpy(buf, s->data, s->len);
        size_t len = mutate(buf, s->len, cap, seeds, nseeds);
        if (fuzz_postprocess && (it & 1))
            fuzz_postprocess(buf, len);
        uint8_t *exact = malloc(len ? len : 1);
        memcpy(exact, buf, len);
        LLVMFuzzerTestOneInput(exact, len);
        free(exact);
    }
    TAP_CHECK(1, "%ld mutated inputs run to completion", iterations);
    free(buf);
    for (int i = 0; i < nseeds; i++)
        free(seeds[i].data);
    return tap_done();
}
