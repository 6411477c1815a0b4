/*
 * forker.c: fork, exec and spawn for `heaplab record`'s tests.  Each process image
 * allocates blocks of its own distinctive size, so record.sh can tell which section
 * holds which image's events:
 *
 *   forker fork    parent 10 x 3001 (unflushed when it forks), child 5 x 3002
 *                  (exits normally), second child 4 x 3003 (leaves with _exit)
 *   forker exec    parent 3 x 3004, child execve()s "forker execd" with an envp of
 *                  its own that lacks LD_PRELOAD; the new image allocates 7 x 3005
 *   forker spawn   parent posix_spawn()s "forker spawned" with an empty envp; it
 *                  allocates 6 x 3006
 *   forker execl   the child uses execl (environ without LD_PRELOAD, unset by hand)
 */
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static void alloc_n(int n, size_t size, int release)
{
    void *p[16];
    for (int i = 0; i < n; i++)
        sink = p[i] = malloc(size);
    if (release)
        for (int i = 0; i < n; i++)
            free(p[i]);
}

static int wait_ok(pid_t pid)
{
    int st;
    return waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "fork") == 0) {
        alloc_n(10, 3001, 1);
        pid_t a = fork();
        if (a == 0) {
            alloc_n(5, 3002, 1);
            exit(0);
        }
        pid_t b = fork();
        if (b == 0) {
            alloc_n(4, 3003, 0);
            _exit(0);
        }
        return wait_ok(a) && wait_ok(b) ? 0 : 1;
    }
    if (strcmp(mode, "exec") == 0 || strcmp(mode, "execl") == 0) {
        alloc_n(3, 3004, 1);
        pid_t a = fork();
        if (a == 0) {
            if (strcmp(mode, "exec") == 0) {
                char *args[] = {argv[0], "execd", NULL};
                char *env[] = {"FOO=bar", NULL};
                execve("/proc/self/exe", args, env);
            } else {
                unsetenv("LD_PRELOAD");
                execl("/proc/self/exe", argv[0], "execd", (char *)NULL);
            }
            _exit(127);
        }
        return wait_ok(a) ? 0 : 1;
    }
    if (strcmp(mode, "execd") == 0) {
        alloc_n(7, 3005, 1);
        return 0;
    }
    if (strcmp(mode, "spawn") == 0) {
        char *args[] = {argv[0], "spawned", NULL};
        char *env[] = {NULL};
        pid_t pid;
        if (posix_spawn(&pid, "/proc/self/exe", NULL, NULL, args, env) != 0)
            return 1;
        return wait_ok(pid) ? 0 : 1;
    }
    if (strcmp(mode, "spawned") == 0) {
        alloc_n(6, 3006, 1);
        return 0;
    }
    return 2;
}
