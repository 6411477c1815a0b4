/*
 * server.c: a small multi-threaded server for the attach tests (`heaplab record -p`).
 * It reads one command a line on stdin and answers one line on stdout:
 *   req N   handle N requests, request i in worker thread i % NWORKERS; answers "done N"
 *   dl N    loads the library named by argv[1] with dlopen (once) and calls its
 *           dl_alloc(N) (N malloc(7777)/free pairs); answers "dl N"
 *   count   answers "requests R": requests handled since it started
 *   fork N  a child process handles N requests in its main thread and exits; answers
 *           "forked N" once it has
 *   quit    exits 0
 * Each request makes four calls: malloc(4001), calloc(3, 1335), realloc of the first
 * block to 8003 bytes, free of the calloc'ed one; the realloc'ed block goes into the
 * worker's ring of RING slots, and the block it replaces there is freed (so a worker's
 * first RING requests after an attach free blocks allocated before it).
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define NWORKERS 4
#define RING 8

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER, idle = PTHREAD_COND_INITIALIZER;
static long pending[NWORKERS], handled;

static void request(void **ring, unsigned *next)
{
    char *p = malloc(4001);
    char *q = calloc(3, 1335);
    if (!p || !q)
        abort();
    p[0] = q[0];
    p = realloc(p, 8003);
    if (!p)
        abort();
    free(q);
    free(ring[*next]);
    ring[*next] = p;
    *next = (*next + 1) % RING;
}

static void *worker(void *arg)
{
    long w = (long)arg;
    void *ring[RING] = {0};
    unsigned next = 0;
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!pending[w])
            pthread_cond_wait(&work, &mu);
        pthread_mutex_unlock(&mu);
        request(ring, &next);
        pthread_mutex_lock(&mu);
        pending[w]--;
        handled++;
        pthread_cond_broadcast(&idle);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    void (*dl_alloc)(long) = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t th[NWORKERS];
    for (long w = 0; w < NWORKERS; w++)
        if (pthread_create(&th[w], NULL, worker, (void *)w) != 0)
            return 1;
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        long n;
        if (sscanf(line, "req %ld", &n) == 1 && n > 0) {
            pthread_mutex_lock(&mu);
            for (long i = 0; i < n; i++)
                pending[i % NWORKERS]++;
            pthread_cond_broadcast(&work);
            for (;;) {
                long left = 0;
                for (int w = 0; w < NWORKERS; w++)
                    left += pending[w];
                if (!left)
                    break;
                pthread_cond_wait(&idle, &mu);
            }
            pthread_mutex_unlock(&mu);
            printf("done %ld\n", n);
        } else if (sscanf(line, "fork %ld", &n) == 1 && n > 0) {
            fflush(stdout);
            pid_t c = fork();
            if (c == 0) {
                void *ring[RING] = {0};
                unsigned next = 0;
                for (long i = 0; i < n; i++)
                    request(ring, &next);
                exit(0);
            }
            int st = 0;
            if (c < 0 || waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st))
                printf("error\n");
            else
                printf("forked %ld\n", n);
        } else if (sscanf(line, "dl %ld", &n) == 1 && argc > 1) {
            if (!dl_alloc) {
                void *h = dlopen(argv[1], RTLD_NOW);
                dl_alloc = h ? (void (*)(long))dlsym(h, "dl_alloc") : NULL;
            }
            if (dl_alloc) {
                dl_alloc(n);
                printf("dl %ld\n", n);
            } else {
                printf("error\n");
            }
        } else if (strncmp(line, "count", 5) == 0) {
            pthread_mutex_lock(&mu);
            printf("requests %ld\n", handled);
            pthread_mutex_unlock(&mu);
        } else if (strncmp(line, "quit", 4) == 0) {
            return 0;
        } else {
            printf("error\n");
        }
    }
    return 0;
}
