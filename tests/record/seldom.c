/* seldom: a thread that allocates seldom beside one that allocates fast, the case
 * where the recorder's merge horizon could be held back by the seldom thread's
 * half-empty buffer.
 *
 *   seldom N [look]
 *
 * The main thread makes N malloc/free pairs among 4096 live blocks while the other
 * thread makes one pair a millisecond.  Then, with "look", still running and with the
 * other thread still allocating, the main thread looks (for up to 20 s) whether
 * finalising has given at least 4 MiB of its raw capture file back to the disk (in
 * $HEAPLAB_CAPTURE_DIR, the file ending in ".hlraw": its allocated blocks 4 MiB below
 * its size), which it does only below what it has merged, and prints "capture given
 * back while running: yes" or "... no".  Prints N on the last line. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static volatile int stop;

static void *seldom(void *arg)
{
    (void)arg;
    while (!stop) {
        free(malloc(40));
        usleep(1000);
    }
    return NULL;
}

static int given_back(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    while (d && !found && (e = readdir(d))) {
        size_t n = strlen(e->d_name);
        struct stat st;
        found = n > 6 && strcmp(e->d_name + n - 6, ".hlraw") == 0 &&
                fstatat(dirfd(d), e->d_name, &st, 0) == 0 &&
                (long long)st.st_blocks * 512 < (long long)st.st_size - (4 << 20);
    }
    if (d)
        closedir(d);
    return found;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    const char *dir = argc > 2 && strcmp(argv[2], "look") == 0 ? getenv("HEAPLAB_CAPTURE_DIR")
                                                               : NULL;
    enum { LIVE = 4096 };
    static void *live[LIVE];
    pthread_t t;
    if (pthread_create(&t, NULL, seldom, NULL) != 0)
        return 1;
    unsigned x = 1;
    for (long i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        unsigned k = (x >> 8) % LIVE;
        free(live[k]);
        live[k] = malloc(16 + (x >> 20) % 200);
    }
    int seen = 0;
    for (int i = 0; dir && i < 400 && !seen; i++) {
        seen = given_back(dir);
        if (!seen) {
            struct timespec ts = {0, 50000000};
            nanosleep(&ts, NULL);
        }
    }
    if (dir)
        printf("capture given back while running: %s\n", seen ? "yes" : "no");
    stop = 1;
    pthread_join(t, NULL);
    for (int k = 0; k < LIVE; k++)
        free(live[k]);
    printf("%ld\n", n);
    return 0;
}
