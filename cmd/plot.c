/* plot.c: placeholder until the subcommand lands (owned by its issue). */
#include "cmd.h"
#include <stdio.h>

int cmd_plot(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "heaplab: 'plot' is not available in this build yet\n");
    return 1;
}
