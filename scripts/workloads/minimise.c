/*
 * minimise.c: two-level logic minimisation in the style of espresso: random Boolean
 * functions of VARS inputs are reduced to prime implicants by repeated merging of cubes
 * (Quine-McCluskey), then a greedy cover picks primes.  Cube sets ("families") are
 * arrays that grow by realloc and die after each merging pass, and every prime gets a
 * bit row of the minterms it covers: the heap sees medium blocks, 64 bytes to tens of
 * kilobytes, with short and medium lifetimes.
 * Usage: wl-minimise [FUNCTIONS]   (default 80)
 */
#include <stdint.h>
#include <string.h>

#include "wl.h"

#define VARS 11
#define MINTERMS (1u << VARS)
#define ON_WORDS (MINTERMS / 64)

typedef struct {
    uint32_t val, care;   /* a cube: the inputs in `care` have the values in `val` */
} cube;

typedef struct {
    int n, cap;
    cube c[];
} family;

static family *fam_new(int cap)
{
    family *f = wl_xmalloc(sizeof(family) + (size_t)cap * sizeof(cube));
    f->n = 0;
    f->cap = cap;
    return f;
}

static family *fam_add(family *f, cube c)
{
    if (f->n == f->cap) {
        f->cap = f->cap * 2 + 4;
        f = realloc(f, sizeof(family) + (size_t)f->cap * sizeof(cube));
        if (!f) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
    }
    f->c[f->n++] = c;
    return f;
}

static int cube_cmp(const void *a, const void *b)
{
    const cube *x = a, *y = b;
    if (x->care != y->care)
        return x->care < y->care ? -1 : 1;
    return x->val < y->val ? -1 : x->val > y->val;
}

/* One merging pass: cubes of `f` that differ in one cared-for input merge into the next
 * family; those that merge with nothing are prime and go to `primes`. */
static family *merge_pass(family *f, family **primes)
{
    qsort(f->c, (size_t)f->n, sizeof(cube), cube_cmp);
    char *used = calloc((size_t)f->n + 1, 1);
    family *next = fam_new(16);
    for (int i = 0; i < f->n; i++) {
        for (int j = i + 1; j < f->n && f->c[j].care == f->c[i].care; j++) {
            uint32_t d = f->c[i].val ^ f->c[j].val;
            if (d & (d - 1))
                continue;
            used[i] = used[j] = 1;
            cube m = { f->c[i].val & ~d, f->c[i].care & ~d };
            next = fam_add(next, m);
        }
        if (!used[i])
            *primes = fam_add(*primes, f->c[i]);
    }
    free(used);
    /* duplicates: one merged cube arises from several pairs */
    qsort(next->c, (size_t)next->n, sizeof(cube), cube_cmp);
    int k = 0;
    for (int i = 0; i < next->n; i++)
        if (k == 0 || cube_cmp(&next->c[k - 1], &next->c[i]))
            next->c[k++] = next->c[i];
    next->n = k;
    free(f);
    return next;
}

static unsigned long minimise(unsigned long *seed, unsigned long *cover_size)
{
    family *f = fam_new(64);
    uint64_t *on = calloc(ON_WORDS, sizeof(uint64_t));
    unsigned density = 3 + (unsigned)(wl_rnd(seed) % 4);   /* in eighths */
    for (uint32_t m = 0; m < MINTERMS; m++)
        if (wl_rnd(seed) % 8 < density) {
            f = fam_add(f, (cube){ m, MINTERMS - 1 });
            on[m / 64] |= 1ull << (m % 64);
        }
    family *primes = fam_new(32);
    while (f->n > 0)
        f = merge_pass(f, &primes);
    free(f);
    /* greedy cover: each prime's list of the minterms it covers, one block per prime
     * (2 bytes a minterm: 2 bytes to a few kilobytes) */
    uint16_t **rows = wl_xmalloc((size_t)primes->n * sizeof *rows);
    int *len = wl_xmalloc((size_t)primes->n * sizeof *len);
    for (int p = 0; p < primes->n; p++) {
        uint32_t care = primes->c[p].care, val = primes->c[p].val, free_bits = ~care & (MINTERMS - 1);
        len[p] = 1 << (VARS - __builtin_popcount(care));
        rows[p] = wl_xmalloc((size_t)len[p] * sizeof(uint16_t));
        int k = 0;
        uint32_t sub = 0;
        do {   /* every subset of the free inputs */
            rows[p][k++] = (uint16_t)(val | sub);
            sub = (sub - free_bits) & free_bits;
        } while (sub);
    }
    unsigned long chosen = 0;
    for (;;) {
        int best = -1, best_n = 0;
        for (int p = 0; p < primes->n; p++) {
            if (!rows[p])
                continue;
            int n = 0;
            for (int i = 0; i < len[p]; i++)
                n += (int)(on[rows[p][i] / 64] >> (rows[p][i] % 64) & 1);
            if (n == 0) {   /* covers nothing left: drop it now */
                free(rows[p]);
                rows[p] = NULL;
            } else if (n > best_n) {
                best_n = n;
                best = p;
            }
        }
        if (best < 0)
            break;
        for (int i = 0; i < len[best]; i++)
            on[rows[best][i] / 64] &= ~(1ull << (rows[best][i] % 64));
        free(rows[best]);
        rows[best] = NULL;
        chosen++;
    }
    unsigned long n = (unsigned long)primes->n;
    for (int p = 0; p < primes->n; p++)
        free(rows[p]);
    free(rows);
    free(len);
    free(primes);
    free(on);
    *cover_size += chosen;
    return n;
}

int main(int argc, char **argv)
{
    long fns = wl_arg(argc, argv, 1, 80, 1000000, "wl-minimise [FUNCTIONS]");
    unsigned long seed = 2463534242ul, primes = 0, cover = 0;
    for (long i = 0; i < fns; i++)
        primes += minimise(&seed, &cover);
    printf("minimise %ld functions of %d inputs: %lu primes, %lu in the covers\n", fns, VARS,
           primes, cover);
    return 0;
}
