/*
 * runaway.c: main exits while a thread it started is still running.  The thread
 * allocates 20000 blocks of 2002 bytes, tells main, and blocks forever; main then
 * returns from main().  The thread that exits writes the records the still-running
 * thread has not flushed, so all 20000 must be in the trace, once each.
 * With an argument, main execs /bin/true instead: exec ends the thread just the same.
 */
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

static void *volatile sink;
static int ready[2];

static void *runaway(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++)
        sink = malloc(2002);
    if (write(ready[1], "x", 1) != 1)
        abort();
    for (;;)
        pause();
    return NULL;
}

int main(int argc, char **argv)
{
    (void)argv;
    pthread_t th;
    char c;
    if (pipe(ready) != 0 || pthread_create(&th, NULL, runaway, NULL) != 0)
        return 1;
    if (read(ready[0], &c, 1) != 1)
        return 1;
    if (argc > 1)
        execl("/bin/true", "true", (char *)NULL);
    return 0; /* exit() with the thread still running */
}
