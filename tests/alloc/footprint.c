/*
 * footprint.c: a small program stays small.  A program that keeps a few blocks in each
 * of many size classes (an awk script, a shell, a compiler pass) must not pay a page or
 * more per class: its resident set should grow by about what it allocated.  Allocates
 * two blocks of every size from 16 bytes to 4 KiB in steps of an eighth, writes them
 * whole, and checks that the resident set grew by less than twice the bytes requested
 * plus 16 KiB (a slab per class costs at least 4 KiB a class, 170 KiB here).  Then a
 * fork: the child frees and reallocates those blocks (served from the tag heap while the
 * process is small and single-threaded) and must find the heap intact.  Last, the
 * program churns one size (thousands of rounds of 32 blocks allocated and freed, which
 * overflow that class's cache) and then allocates a second such spread of sizes: the
 * resident set must grow by less than those bytes plus 16 KiB, not by a slab page per
 * class (a churn that turned every class to slabs did).
 * Usage: footprint LIBRARY.so
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preload.h"
#include "tap.h"

#define MAX_BLOCKS 256

/* Two blocks of every size from 16 bytes to 4 KiB in steps of an eighth, written whole,
 * into blocks[*nb...]; their bytes added to *bytes.  Returns the number of sizes. */
static size_t spread(void **blocks, size_t *nb, size_t *bytes)
{
    size_t classes = 0;
    for (size_t s = 16; s <= 4096 && *nb + 2 <= MAX_BLOCKS; s += (s / 8 + 15) & ~(size_t)15) {
        for (int k = 0; k < 2; k++) {
            blocks[*nb] = malloc(s);
            if (!blocks[*nb])
                break;
            memset(blocks[(*nb)++], 0x5a, s);
            *bytes += s;
        }
        classes++;
    }
    return classes;
}

/* A program that churns one size, then spreads a few blocks over many: the churn may
 * make that size's blocks come from a slab, not every size's. */
static void churn_then_spread(const char *lib)
{
    static void *round[32];
    int ok = 1;
    for (int r = 0; r < 4000; r++) {
        for (int i = 0; i < 32; i++)
            ok &= (round[i] = malloc(24)) != NULL;
        for (int i = 0; i < 32; i++)
            free(round[i]);
    }
    static void *blocks[MAX_BLOCKS];
    size_t nb = 0, bytes = 0;
    size_t before = hlm_test_rss();
    size_t classes = spread(blocks, &nb, &bytes);
    size_t after = hlm_test_rss(), grown = after > before ? after - before : 0;
    TAP_CHECK(ok && nb == 2 * classes, "after 128000 blocks of one size, 2 blocks in each of %zu sizes (%s)",
              classes, lib);
    tap_diag("resident set grew by %zu KiB", grown >> 10);
    /* (a page for each size would be 34 * 4 KiB here, twice the bytes asked for) */
    TAP_CHECK(grown < bytes + 16 * 1024,
              "churning one size does not cost the others a page each (%zu KiB resident for %zu KiB)",
              grown >> 10, bytes >> 10);
    for (size_t i = 0; i < nb; i++)
        free(blocks[i]);
}

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    static void *blocks[MAX_BLOCKS];
    size_t nb = 0, bytes = 0;
    hlm_test_rss();   /* stdio's own buffers are allocated before the first measurement */
    size_t before = hlm_test_rss();
    size_t classes = spread(blocks, &nb, &bytes);
    size_t after = hlm_test_rss(), grown = after > before ? after - before : 0;
    TAP_CHECK(nb == 2 * classes, "allocated 2 blocks in each of %zu sizes, %zu KiB (%s)", classes,
              bytes >> 10, lib);
    tap_diag("resident set grew by %zu KiB", grown >> 10);
    TAP_CHECK(grown < 2 * bytes + 16 * 1024,
              "a few blocks in many size classes cost about their size (%zu KiB resident for %zu KiB)",
              grown >> 10, bytes >> 10);
    pid_t pid = fork();
    if (pid == 0) {
        int ok = 1;
        for (size_t i = 0; i < nb; i += 2) {
            size_t n = malloc_usable_size(blocks[i]);
            ok &= ((unsigned char *)blocks[i])[0] == 0x5a;
            free(blocks[i]);
            blocks[i] = malloc(n);
            ok &= blocks[i] != NULL;
            if (blocks[i])
                memset(blocks[i], 0xa5, n);
        }
        for (size_t i = 0; i < nb; i++)
            free(blocks[i]);
        _exit(ok ? 0 : 1);
    }
    int status = -1;
    if (pid > 0)
        waitpid(pid, &status, 0);
    TAP_CHECK(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "after fork the child frees and reallocates the blocks cleanly");
    int intact = 1;
    for (size_t i = 0; i < nb; i++) {
        if (((unsigned char *)blocks[i])[0] != 0x5a)
            intact = 0;
        free(blocks[i]);
    }
    TAP_CHECK(intact, "the blocks kept their contents");
    churn_then_spread(lib);
    return tap_done();
}
