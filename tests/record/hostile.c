/*
 * hostile.c: programs that make life hard for a recorder, one per mode; hostile.sh runs
 * each with and without `heaplab record` and compares.
 *
 *   rec-hostile MODE
 *
 * Every mode prints only what does not depend on timing or on being recorded, and
 * exits with a status of its own (so that passing it through is checked).  Where it
 * knows how many blocks it allocated it appends "SIZE COUNT" lines to the file named by
 * HOSTILE_COUNTS (if set): COUNT allocations of exactly SIZE bytes, over every process
 * of the run, which the trace must hold.  Sizes are unusual (7xxx) so that nothing else
 * in the process asks for them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Opened before the mode runs: some modes can open nothing later. */
static FILE *counts;

static void count(size_t size, long n)
{
    if (counts) {
        fprintf(counts, "%zu %ld\n", size, n);
        fflush(counts);
    }
}

/* n blocks of size bytes, each written, all freed; returns how many were intact. */
static long churn(size_t size, long n)
{
    long good = 0;
    for (long i = 0; i < n; i++) {
        unsigned char *p = malloc(size);
        if (!p)
            continue;
        memset(p, (int)(i & 0xff), size);
        good += p[size - 1] == (unsigned char)(i & 0xff);
        free(p);
    }
    return good;
}

static int wait_status(pid_t pid)
{
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- fork from a signal handler ---- */

static pid_t kids[64];
static volatile sig_atomic_t nkids;

static void on_usr1_fork(int sig)
{
    (void)sig;
    pid_t pid = fork();
    if (pid == 0) {
        churn(7101, 5); /* the child allocates in the handler, then leaves */
        _exit(7);
    }
    if (pid > 0)
        kids[nkids++] = pid;
}

static int sigfork(void)
{
    signal(SIGUSR1, on_usr1_fork);
    long good = 0;
    for (int i = 0; i < 20; i++) {
        good += churn(7100, 50);
        raise(SIGUSR1);
    }
    int ok = 0;
    for (int i = 0; i < nkids; i++)
        ok += wait_status(kids[i]) == 7;
    printf("sigfork: %ld blocks intact, %d of %d children forked in a handler exited 7\n", good,
           ok, (int)nkids);
    count(7100, 1000);
    count(7101, 100);
    return 3;
}

/* ---- the child of vfork / posix_spawn: allocate, print, exit 5 ---- */

static int child(void)
{
    long good = churn(7201, 50);
    printf("child: %ld blocks intact\n", good);
    return 5;
}

static int vfork_mode(void)
{
    churn(7200, 30);
    fflush(stdout);
    pid_t pid = vfork();
    if (pid == 0) {
        char *argv[] = {"rec-hostile", "child", NULL};
        execve("/proc/self/exe", argv, environ);
        _exit(127);
    }
    int s1 = wait_status(pid);
    pid = vfork();
    if (pid == 0)
        _exit(9); /* vfork, nothing but _exit */
    int s2 = wait_status(pid);
    printf("vfork: exec'd child exited %d, bare child exited %d\n", s1, s2);
    count(7200, 30);
    count(7201, 50);
    return 4;
}

/* ---- posix_spawn with file actions ---- */

static int spawn(void)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
    posix_spawn_file_actions_addclose(&fa, pfd[0]);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3); /* every other descriptor */
    char *argv[] = {"rec-hostile", "child", NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(pfd[1]);
    if (rc != 0) {
        printf("spawn: posix_spawn failed: %s\n", strerror(rc));
        return 1;
    }
    char buf[256];
    ssize_t n, len = 0;
    while ((n = read(pfd[0], buf + len, sizeof buf - 1 - (size_t)len)) > 0)
        len += n;
    buf[len] = 0;
    close(pfd[0]);
    int st = wait_status(pid);
    printf("spawn: the child wrote '%.*s' through the pipe and exited %d\n",
           len && buf[len - 1] == '\n' ? (int)len - 1 : (int)len, buf, st);
    churn(7200, 10);
    count(7200, 10);
    count(7201, 50);
    return 6;
}

/* ---- every descriptor but stdio closed, then reused ---- */

static int closefds(void)
{
    count(7300, 100); /* now: the counts file is closed below with the rest */
    count(7301, 300);
    count(7302, 2000);
    count(7303, 50);
    churn(7300, 100);
    syscall(SYS_close_range, 3u, ~0u, 0u);
    char path[] = "/tmp/hl-hostile.XXXXXX";
    int fd = mkstemp(path); /* the lowest free number: one the recorder may have had */
    if (fd < 0)
        return 1;
    unlink(path);
    churn(7301, 300);
    /* Fill the next numbers with the program's own descriptors, as daemons do. */
    for (int i = 0; i < 20; i++)
        if (dup(fd) < 0)
            return 1;
    const char rec[] = "0123456789abcdef";
    for (int i = 0; i < 1000; i++) {
        if (write(fd, rec, 16) != 16)
            return 1;
        churn(7302, 2);
    }
    /* The file holds exactly what the program wrote, nothing else. */
    off_t size = lseek(fd, 0, SEEK_END);
    char buf[16];
    long bad = 0;
    for (off_t at = 0; at < size; at += 16)
        bad += pread(fd, buf, 16, at) != 16 || memcmp(buf, rec, 16) != 0;
    closefrom(3);
    churn(7303, 50);
    printf("closefds: close_range and closefrom over every descriptor; the program's own "
           "file holds %lld bytes, %ld records damaged\n", (long long)size, bad);
    return 0;
}

/* ---- a seccomp filter: no new files ---- */

static int seccomp_mode(void)
{
    churn(7400, 100);
    /* openat/open with O_CREAT, O_WRONLY or O_RDWR, and creat: EPERM. */
    const unsigned mask = O_CREAT | O_WRONLY | O_RDWR;
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, mask, 4, 5),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_open, 0, 2),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, mask, 1, 2),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_creat, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {sizeof f / sizeof f[0], f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
        printf("seccomp: cannot install the filter: %s\n", strerror(errno));
        return 1;
    }
    int fd = open("/tmp/hl-hostile-seccomp", O_CREAT | O_WRONLY, 0600);
    int e = errno;
    printf("seccomp: creating a file %s\n", fd < 0 && e == EPERM ? "is refused" : "worked");
    churn(7401, 400);
    count(7400, 100);
    count(7401, 400);
    return 0;
}

/* The same filter, then a thread that allocates. */
static void *thread_churn(void *arg)
{
    churn((size_t)(uintptr_t)arg, 40);
    return NULL;
}

static int seccomp_thread(void)
{
    int rc = seccomp_mode();
    pthread_t t;
    pthread_create(&t, NULL, thread_churn, (void *)(uintptr_t)7403);
    pthread_join(t, NULL);
    printf("seccomp-thread: a thread allocated under the filter\n");
    count(7403, 40);
    return rc;
}

/* The same filter, then a fork child that allocates (the child's recording needs a
 * new file, which the filter refuses). */
static int seccomp_fork(void)
{
    int rc = seccomp_mode();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        churn(7402, 40);
        exit(0);
    }
    printf("seccomp-fork: the child exited %d\n", wait_status(pid));
    count(7402, 40);
    return rc;
}

/* ---- the program's own SIGSEGV and SIGBUS handlers ---- */

static sigjmp_buf recover;
static volatile sig_atomic_t segvs, buses;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    if (sig == SIGSEGV)
        segvs++;
    else
        buses++;
    siglongjmp(recover, 1);
}

static int faults(void)
{
    struct sigaction sa = {0};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    long page = sysconf(_SC_PAGESIZE);
    char *none = mmap(NULL, (size_t)page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int mfd = memfd_create("hl-hostile", 0);
    char *beyond = mmap(NULL, (size_t)page, PROT_READ, MAP_SHARED, mfd, 0); /* empty file */
    for (int i = 0; i < 50; i++) {
        churn(7500, 4);
        if (sigsetjmp(recover, 1) == 0)
            none[i] = 1;
        churn(7501, 2);
        if (sigsetjmp(recover, 1) == 0)
            (void)*(volatile char *)(beyond + i);
    }
    printf("faults: %d SIGSEGV and %d SIGBUS caught by the program's own handlers\n",
           (int)segvs, (int)buses);
    count(7500, 200);
    count(7501, 100);
    return 0;
}

static void on_segv_exit(int sig)
{
    (void)sig;
    const char msg[] = "crash: the program's handler reports and exits 42\n";
    if (write(1, msg, sizeof msg - 1) < 0)
        _exit(1);
    _exit(42);
}

static int crash(void)
{
    churn(7502, 60);
    count(7502, 60);
    fflush(stdout);
    signal(SIGSEGV, on_segv_exit);
    volatile char *none = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    none[0] = 1;
    return 0;
}

/* ---- a tiny RLIMIT_NOFILE ---- */

static int nofile(void)
{
    churn(7600, 50);
    struct rlimit rl = {5, 5}; /* stdio, the counts file, one more */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        printf("nofile: setrlimit failed\n");
        return 1;
    }
    churn(7601, 200);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        churn(7602, 30);
        exit(0);
    }
    pthread_t t;
    pthread_create(&t, NULL, thread_churn, (void *)(uintptr_t)7603);
    pthread_join(t, NULL);
    int fd = open("/dev/null", O_RDONLY);
    int fd2 = open("/dev/null", O_RDONLY);
    printf("nofile: limit 5, the child exited %d, opens: %s %s\n", wait_status(pid),
           fd >= 0 ? "ok" : "refused", fd2 >= 0 ? "ok" : "refused");
    count(7600, 50);
    count(7601, 200);
    count(7602, 30);
    count(7603, 40);
    return 0;
}

/* ---- malloc (and free) from a signal handler ---- */

static volatile sig_atomic_t handler_allocs, interrupts;
static void *kept[4096];
static volatile sig_atomic_t nkept;

static void on_usr2_malloc(int sig)
{
    (void)sig;
    void *p = malloc(7701);
    void *q = malloc(7701);
    free(p);
    if (q && nkept < 4096)
        kept[nkept++] = q; /* freed later, outside the handler */
    else
        free(q);
    handler_allocs += 2;
}

/* A timer's handler that allocates while the program allocates: the program's calls
 * are served from glibc's per-thread cache without a lock, so that the handler's
 * (which take the arena's lock) cannot deadlock on one the interrupted code holds. */
static void on_alarm(int sig)
{
    (void)sig;
    free(malloc(7702));
    interrupts++;
}

static int sigmalloc(void)
{
    signal(SIGUSR2, on_usr2_malloc);
    for (int i = 0; i < 100; i++) {
        churn(7700, 10);
        raise(SIGUSR2);
    }
    for (int i = 0; i < nkept; i++)
        free(kept[i]);
    printf("sigmalloc: %d blocks allocated in handlers\n", (int)handler_allocs);
    count(7700, 1000);
    count(7701, 200);
    return 0;
}

/* Timer signals interrupt the program anywhere, inside malloc and inside the recorder
 * too, and their handler allocates. */
static int sigtimer(void)
{
    free(malloc(24));
    signal(SIGALRM, on_alarm);
    struct itimerval it = {{0, 200}, {0, 200}};
    setitimer(ITIMER_REAL, &it, NULL);
    long n = 0;
    while (interrupts < 300 && n < 50000000) {
        free(malloc(24));
        n++;
    }
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, NULL);
    printf("sigtimer: timer handlers allocated while the program did\n");
    count(7702, interrupts);
    return 0;
}

/* ---- deep recursion on a small stack ---- */

#define STACK_BYTES (256 * 1024)
static long depth_reached;

static __attribute__((noinline)) long recurse(long depth, long max)
{
    volatile char frame[160];
    frame[0] = (char)depth;
    char *p = malloc(7901);
    if (!p)
        return -1;
    p[0] = frame[0];
    long r;
    if (depth < max) {
        r = recurse(depth + 1, max);
    } else {
        depth_reached = depth;
        /* At the bottom, enough calls to fill the recorder's buffers several times. */
        for (int i = 0; i < 300000; i++)
            free(malloc(7902));
        r = 0;
    }
    free(p);
    return r + frame[0] * 0;
}

static void *deep(void *arg)
{
    (void)arg;
    return (void *)recurse(1, 1000);
}

static int deeprec(void)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, STACK_BYTES);
    pthread_t t;
    void *r;
    if (pthread_create(&t, &a, deep, NULL) != 0)
        return 1;
    pthread_join(t, &r);
    printf("deeprec: %ld levels on a %d KiB stack, result %ld\n", depth_reached,
           STACK_BYTES / 1024, (long)r);
    count(7901, 1000);
    count(7902, 300000);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(void);
    } modes[] = {
        {"sigfork", sigfork},       {"vfork", vfork_mode},   {"spawn", spawn},
        {"closefds", closefds},
        {"seccomp", seccomp_mode},  {"seccomp-thread", seccomp_thread},
        {"seccomp-fork", seccomp_fork},
        {"faults", faults},         {"crash", crash},        {"nofile", nofile},
        {"sigmalloc", sigmalloc},   {"sigtimer", sigtimer},  {"deeprec", deeprec},
        {"child", child},
    };
    const char *path = getenv("HOSTILE_COUNTS");
    if (path && !(counts = fopen(path, "a")))
        return 2;
    for (size_t i = 0; argc > 1 && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].name) == 0) {
            int rc = modes[i].run();
            fflush(stdout);
            return rc;
        }
    fprintf(stderr, "usage: rec-hostile MODE\n");
    return 2;
}
