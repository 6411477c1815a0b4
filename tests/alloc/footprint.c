/*
 * footprint.c: a small program stays small.  A program that keeps a few blocks in each
 * of many size classes (an awk script, a shell, a compiler pass) must not pay a page or
 * more per class: its resident set should grow by about what it allocated.  Allocates
 * two blocks of every size from 16 bytes to 4 KiB in steps of an eighth, writes them
 * whole, and checks that the resident set grew by less than twice the bytes requested
 * plus 16 KiB (a slab per class costs at least 4 KiB a class, 170 KiB here).  Then a
 * fork: the child frees and reallocates those blocks (served from the tag heap while the
 * process is small and single-threaded) and must find the heap intact.
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

int main(int argc, char **argv)
{
    const char *lib = hlm_test_preload(argc, argv);
    static void *blocks[256];
    size_t nb = 0, bytes = 0, classes = 0;
    hlm_test_rss();   /* stdio's own buffers are allocated before the first measurement */
    size_t before = hlm_test_rss();
    for (size_t s = 16; s <= 4096 && nb + 2 <= 256; s += (s / 8 + 15) & ~(size_t)15) {
        for (int k = 0; k < 2; k++) {
            blocks[nb] = malloc(s);
            if (!blocks[nb])
                break;
            memset(blocks[nb++], 0x5a, s);
            bytes += s;
        }
        classes++;
    }
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
    return tap_done();
}
