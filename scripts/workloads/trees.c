/*
 * trees.c: the binary-trees benchmark: a long-lived tree of depth MAX stays while many
 * short-lived trees of depths 4, 6, ... MAX are built, walked and freed; every node is
 * its own 16-byte block.  Usage: wl-trees [MAX_DEPTH]   (default 16)
 */
#include "wl.h"

typedef struct node {
    struct node *left, *right;
} node;

static node *build(int depth)
{
    node *n = wl_xmalloc(sizeof *n);
    if (depth > 0) {
        n->left = build(depth - 1);
        n->right = build(depth - 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long check(const node *n)
{
    return n->left ? 1 + check(n->left) + check(n->right) : 1;
}

static void drop(node *n)
{
    if (n->left) {
        drop(n->left);
        drop(n->right);
    }
    free(n);
}

int main(int argc, char **argv)
{
    int max = (int)wl_arg(argc, argv, 1, 16, 24, "wl-trees [MAX_DEPTH]");
    if (max < 6)
        max = 6;
    node *stretch = build(max + 1);
    printf("stretch tree of depth %d\t check: %ld\n", max + 1, check(stretch));
    drop(stretch);
    node *longlived = build(max);
    for (int d = 4; d <= max; d += 2) {
        long iterations = 1L << (max - d + 4), sum = 0;
        for (long i = 0; i < iterations; i++) {
            node *t = build(d);
            sum += check(t);
            drop(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iterations, d, sum);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max, check(longlived));
    drop(longlived);
    return 0;
}
