/* idle.c: allocates a little, then waits for a signal.  Built static for the attach
 * tests' refusal of a statically linked program. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(void)
{
    void *p = malloc(100);
    printf("ready %d\n", p != NULL);
    fflush(stdout);
    pause();
    free(p);
    return 0;
}
