/*
 * variants_test.c: how -a lists split into allocator variants and sweeps expand
 * (allocators/settings.c), and which cells a replay shard owns (cmd/replay/shard.c).
 */
#include "allocators/settings.h"
#include "replay/shard.h"
#include "tap.h"

#include <string.h>

#define MAXV 64
static char out[MAXV][1024];

/* Expand list; join the variants with " | " into got. */
static int expand(const char *list, char *got, size_t n)
{
    int nv = 0;
    char why[512];
    got[0] = 0;
    if (hl_variants_expand(list, out[0], sizeof out[0], &nv, MAXV, why, sizeof why) != 0) {
        snprintf(got, n, "error: %s", why);
        return -1;
    }
    size_t l = 0;
    for (int i = 0; i < nv; i++)
        l += (size_t)snprintf(got + l, n - l, "%s%s", i ? " | " : "", out[i]);
    return nv;
}

static void expands_to(const char *list, const char *want)
{
    char got[8192];
    expand(list, got, sizeof got);
    if (!TAP_CHECK(strcmp(got, want) == 0, "-a '%s' -> %s", list, want))
        tap_diag("got: %s", got);
}

static void refused(const char *list, const char *what)
{
    char got[8192];
    int n = expand(list, got, sizeof got);
    TAP_CHECK(n < 0 && strstr(got, what), "-a '%s' refused: %s", list, what);
    if (n >= 0 || !strstr(got, what))
        tap_diag("got: %s", got);
}

int main(void)
{
    expands_to("glibc,jemalloc", "glibc | jemalloc");
    expands_to("glibc:trim_threshold=128k", "glibc:trim_threshold=128k");
    /* a variant's settings keep their commas; the next allocator starts a new one */
    expands_to("jemalloc:dirty_decay_ms=0,narenas=1,glibc",
               "jemalloc:dirty_decay_ms=0,narenas=1 | glibc");
    expands_to("glibc:trim_threshold={128k,1m,16m}",
               "glibc:trim_threshold=128k | glibc:trim_threshold=1m | glibc:trim_threshold=16m");
    /* two sweeps: every combination, the first varying slowest */
    expands_to("glibc:arena_max={1,2},trim_threshold={0,1m}",
               "glibc:arena_max=1,trim_threshold=0 | glibc:arena_max=1,trim_threshold=1m | "
               "glibc:arena_max=2,trim_threshold=0 | glibc:arena_max=2,trim_threshold=1m");
    /* NAME=/path, with and without settings: a value with '/' is a library */
    expands_to("tc=/usr/lib/libtc.so:release_rate={0,10},glibc",
               "tc=/usr/lib/libtc.so:release_rate=0 | tc=/usr/lib/libtc.so:release_rate=10 | glibc");
    expands_to("heaplab:retain=1m,tc=/x/libtc.so", "heaplab:retain=1m | tc=/x/libtc.so");
    expands_to("glibc,tc=/x/libtc.so", "glibc | tc=/x/libtc.so");
    refused("glibc,,jemalloc", "empty allocator name");
    refused("glibc:trim_threshold={}", "sweep");
    refused("glibc:trim_threshold={1,{2}}", "sweep");
    refused("glibc:trim_threshold={1,,2}", "empty value");
    refused("glibc{1,2}", "sweep");
    refused("glibc:trim_threshold=1}", "'}' without '{'");
    refused("glibc:a={1,2,3,4,5,6,7,8},b={1,2,3,4,5,6,7,8,9}", "more than 64");

    /* shards: every cell in exactly one shard of N, for several N */
    struct hl_rp_shard s;
    int bad = 0;
    for (int n = 1; n <= 7; n++)
        for (int cell = 0; cell < 50; cell++) {
            int owners = 0;
            for (int i = 1; i <= n; i++) {
                hl_rp_shard_parse("1/1", &s);
                s.i = i;
                s.n = n;
                owners += hl_rp_shard_has(&s, cell);
            }
            bad += owners != 1;
        }
    TAP_CHECK(bad == 0, "shards 1..N of N own every cell exactly once (N = 1..7, 50 cells)");
    TAP_CHECK(hl_rp_shard_parse("2/3", &s) == 0 && s.i == 2 && s.n == 3, "--shard 2/3 parses");
    const char *badspec[] = {"0/3", "4/3", "1/0", "3", "1/", "/2", "a/b", "1/2x", "-1/2", NULL};
    for (int i = 0; badspec[i]; i++)
        TAP_CHECK(hl_rp_shard_parse(badspec[i], &s) != 0, "--shard %s refused", badspec[i]);
    return tap_done();
}
