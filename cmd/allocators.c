/* allocators.c: placeholder until the subcommand lands (owned by its issue). */
#include "cmd.h"
#include <stdio.h>

int cmd_allocators(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "heaplab: 'allocators' is not available in this build yet\n");
    return 1;
}
