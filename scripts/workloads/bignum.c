/*
 * bignum.c: arbitrary-precision arithmetic in the style of cfrac: every operation
 * returns a freshly allocated number and most operands die right after, so the heap
 * sees many short-lived small blocks (16..200 bytes) beside a few hundred long-lived
 * accumulators that are replaced as they grow.
 * Usage: wl-bignum [ROUNDS]   (default 1000000)
 */
#include <stdint.h>
#include <string.h>

#include "wl.h"

typedef struct {
    int n;           /* limbs in use; value is sum d[i] * 2^(32 i), n == 0 for zero */
    uint32_t d[];
} num;

static num *num_new(int n)
{
    num *x = wl_xmalloc(sizeof(num) + (size_t)(n ? n : 1) * sizeof(uint32_t));
    x->n = n;
    return x;
}

static num *num_trim(num *x)
{
    while (x->n > 0 && x->d[x->n - 1] == 0)
        x->n--;
    return x;
}

static num *num_random(unsigned long *seed, int limbs)
{
    num *x = num_new(limbs);
    for (int i = 0; i < limbs; i++)
        x->d[i] = (uint32_t)wl_rnd(seed);
    return num_trim(x);
}

static num *num_add(const num *a, const num *b)
{
    if (a->n < b->n) {
        const num *t = a;
        a = b;
        b = t;
    }
    num *r = num_new(a->n + 1);
    uint64_t c = 0;
    for (int i = 0; i < a->n; i++) {
        c += (uint64_t)a->d[i] + (i < b->n ? b->d[i] : 0);
        r->d[i] = (uint32_t)c;
        c >>= 32;
    }
    r->d[a->n] = (uint32_t)c;
    return num_trim(r);
}

static num *num_mul(const num *a, const num *b)
{
    num *r = num_new(a->n + b->n);
    memset(r->d, 0, (size_t)r->n * sizeof(uint32_t));
    for (int i = 0; i < a->n; i++) {
        uint64_t c = 0;
        for (int j = 0; j < b->n; j++) {
            c += (uint64_t)a->d[i] * b->d[j] + r->d[i + j];
            r->d[i + j] = (uint32_t)c;
            c >>= 32;
        }
        r->d[i + b->n] = (uint32_t)c;
    }
    return num_trim(r);
}

/* a / m into a new number; the remainder in *rem. */
static num *num_divsmall(const num *a, uint32_t m, uint32_t *rem)
{
    num *q = num_new(a->n);
    uint64_t r = 0;
    for (int i = a->n - 1; i >= 0; i--) {
        r = r << 32 | a->d[i];
        q->d[i] = (uint32_t)(r / m);
        r %= m;
    }
    *rem = (uint32_t)r;
    return num_trim(q);
}

/* The decimal digits' sum, by repeated division, each step a new number. */
static unsigned long digit_sum(const num *x)
{
    unsigned long s = 0;
    num *cur = num_new(x->n);
    memcpy(cur->d, x->d, (size_t)x->n * sizeof(uint32_t));
    while (cur->n > 0) {
        uint32_t rem;
        num *next = num_divsmall(cur, 1000000000u, &rem);
        free(cur);
        cur = next;
        for (; rem; rem /= 10)
            s += rem % 10;
    }
    free(cur);
    return s;
}

#define ACCS 512

int main(int argc, char **argv)
{
    long rounds = wl_arg(argc, argv, 1, 1000000, 1000000000, "wl-bignum [ROUNDS]");
    unsigned long seed = 88172645463325252ul, check = 0;
    num **acc = wl_xmalloc(ACCS * sizeof *acc);
    for (int i = 0; i < ACCS; i++)
        acc[i] = num_new(0);
    for (long r = 0; r < rounds; r++) {
        num *x = num_random(&seed, 1 + (int)(wl_rnd(&seed) % 8));
        num *y = num_random(&seed, 1 + (int)(wl_rnd(&seed) % 8));
        num *p = num_mul(x, y);
        num *s = num_add(p, x);
        uint32_t rem;
        num *q = num_divsmall(s, 65521, &rem);
        check += rem;
        check += digit_sum(q);
        int k = (int)(wl_rnd(&seed) % ACCS);
        num *a = num_add(acc[k], q);
        free(acc[k]);
        /* Accumulators that grow past 24 limbs start again, as cfrac's do when a
         * candidate is rejected. */
        if (a->n > 24) {
            check += a->d[0];
            free(a);
            a = num_new(0);
        }
        acc[k] = a;
        free(x);
        free(y);
        free(p);
        free(s);
        free(q);
    }
    for (int i = 0; i < ACCS; i++) {
        check += digit_sum(acc[i]);
        free(acc[i]);
    }
    free(acc);
    printf("bignum %ld rounds: checksum %lu\n", rounds, check);
    return 0;
}
