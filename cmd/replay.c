/* replay.c: placeholder until the subcommand lands (owned by its issue). */
#include "cmd.h"
#include <stdio.h>

int cmd_replay(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "heaplab: 'replay' is not available in this build yet\n");
    return 1;
}

int cmd_worker(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return 1;
}
