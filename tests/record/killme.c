/*
 * killme.c: allocates 20000 blocks of 2001 bytes, writes its pid to the file named by
 * argv[1] (the signal that it is ready to be killed), then sleeps.  record.sh kills it
 * with SIGKILL and checks that the chunks it had flushed are in the trace.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    for (int i = 0; i < 20000; i++)
        sink = malloc(2001);
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, buf, (size_t)n) != n || close(fd) != 0 || rename(tmp, argv[1]) != 0)
        return 1;
    for (;;)
        pause();
}
