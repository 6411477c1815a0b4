/*
 * shard.c: which cells a `replay --shard I/N` job runs (shard.h).
 */
#include "shard.h"

#include <errno.h>
#include <stdlib.h>

int hl_rp_shard_parse(const char *s, struct hl_rp_shard *out)
{
    char *end;
    errno = 0;
    long i = strtol(s, &end, 10);
    if (end == s || *end != '/' || errno)
        return -1;
    const char *p = end + 1;
    long n = strtol(p, &end, 10);
    if (end == p || *end || errno || n < 1 || n > 100000 || i < 1 || i > n)
        return -1;
    out->i = (int)i;
    out->n = (int)n;
    return 0;
}

int hl_rp_shard_has(const struct hl_rp_shard *s, int cell)
{
    return cell % s->n == s->i - 1;
}

int hl_rp_shard_compact(struct hl_rp_cell *cells, int n)
{
    int k = 0;
    for (int i = 0; i < n; i++)
        if (cells[i].row)
            cells[k++] = cells[i];
    return k;
}
