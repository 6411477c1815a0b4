/* churn: a malloc-heavy single-threaded program for long-recording tests and
 * benchmarks.  churn N [LIVE [PROGRAM [WORK]]]: first, with PROGRAM (not "-"), spawn it
 * and wait for it (so that the capture announces a child early on); then N times, do
 * WORK steps of arithmetic (default 0: the program's own work between its calls, which
 * sets its call rate without touching memory), free a random one of LIVE slots and
 * allocate a block of 16..527 bytes into it (a deterministic LCG, so two runs make the same calls
 * in the same order), touching its first word; then free them all.  Prints N.  That
 * is N mallocs and N + LIVE frees, of which the first LIVE are free(NULL), which the
 * interposer does not record; with the table of slots and stdio's buffer, 2N + 3
 * events. */
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

extern char **environ;
static unsigned long sink;

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long live = argc > 2 ? atol(argv[2]) : 4096;
    long work = argc > 4 ? atol(argv[4]) : 0;
    if (n < 0 || live < 1 || work < 0) {
        fprintf(stderr, "usage: churn N [LIVE [PROGRAM [WORK]]]\n");
        return 2;
    }
    if (argc > 3 && strcmp(argv[3], "-") != 0) {
        pid_t pid;
        int st;
        char *args[] = {argv[3], NULL};
        if (posix_spawn(&pid, argv[3], NULL, NULL, args, environ) != 0 ||
            waitpid(pid, &st, 0) != pid)
            return 1;
    }
    void **slots = calloc((size_t)live, sizeof *slots);
    if (!slots)
        return 1;
    unsigned x = 12345;
    unsigned long busy = 1;
    for (long i = 0; i < n; i++) {
        for (long j = 0; j < work; j++)
            busy = busy * 6364136223846793005ul + 1442695040888963407ul;
        x = x * 1103515245u + 12345u;
        unsigned k = (x >> 8) % (unsigned)live;
        free(slots[k]);
        slots[k] = malloc(16 + (x >> 20) % 512);
        if (!slots[k])
            return 1;
        *(volatile long *)slots[k] = i;
    }
    for (long k = 0; k < live; k++)
        free(slots[k]);
    free(slots);
    *(volatile unsigned long *)&sink = busy;
    printf("%ld\n", n);
    return 0;
}
