/*
 * spawn.c: worker processes (see spawn.h).
 *
 * The worker is heaplab itself, re-executed, so it loads the allocator exactly as a
 * program would: through LD_PRELOAD at exec time, with nothing else preloaded (an
 * LD_PRELOAD the user had is dropped for the worker).  Answers come back over a pipe;
 * a worker that dies instead is reported with its signal or exit status.
 */
#include "spawn.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char **worker_env(const struct hl_alloc *a, char **preload)
{
    int n = 0;
    while (environ[n])
        n++;
    char **env = calloc((size_t)n + (size_t)a->nenv + 2, sizeof *env);
    if (!env)
        hl_die("out of memory");
    int k = 0;
    *preload = NULL;
    /* A variant's settings replace the same variables inherited from heaplab's caller. */
    for (int i = 0; i < n; i++) {
        int drop = strncmp(environ[i], "LD_PRELOAD=", 11) == 0;
        size_t vl = strcspn(environ[i], "=") + 1;
        for (int j = 0; j < a->nenv && !drop; j++)
            drop = strncmp(environ[i], a->env[j], vl) == 0;
        if (!drop)
            env[k++] = environ[i];
    }
    for (int j = 0; j < a->nenv; j++)
        env[k++] = (char *)a->env[j];
    if (a->path[0]) {
        size_t l = strlen(a->path) + 12;
        env[k] = malloc(l);
        if (!env[k])
            hl_die("out of memory");
        snprintf(env[k], l, "LD_PRELOAD=%s", a->path);
        *preload = env[k++];
    }
    env[k] = NULL;
    return env;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* How long a worker may take, and whom to tell that it is still running. */
struct watch {
    double start;
    const struct hl_rp_wopts *o;
    long last_tick;
    int timed_out;
};

/* Wait until fd is readable, ticking every second; 0, or -1 once past the timeout. */
static int wait_readable(int fd, struct watch *w)
{
    if (!w)
        return 0;
    for (;;) {
        double el = now_s() - w->start;
        if (w->o->timeout_s > 0 && el >= (double)w->o->timeout_s) {
            w->timed_out = 1;
            return -1;
        }
        int ms = 1000;
        if (w->o->timeout_s > 0 && ((double)w->o->timeout_s - el) * 1000 < ms)
            ms = (int)(((double)w->o->timeout_s - el) * 1000) + 1;
        struct pollfd pf = {fd, POLLIN, 0};
        int k = poll(&pf, 1, ms);
        if (k > 0)
            return 0;
        if (k < 0 && errno != EINTR)
            return 0; /* let read() report it */
        long s = (long)(now_s() - w->start);
        if (w->o->tick && s != w->last_tick) {
            w->last_tick = s;
            w->o->tick(w->o->tick_arg, s);
        }
    }
}

static int read_full(int fd, void *buf, size_t n, struct watch *w)
{
    char *p = buf;
    while (n) {
        if (wait_readable(fd, w) != 0)
            return -1;
        ssize_t k = read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static const char *find_in_path(const char *prog)
{
    static char buf[4096];
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/bin:/bin";
    while (*path) {
        size_t l = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)l, path, prog);
        if (access(buf, X_OK) == 0)
            return buf;
        path += l;
        if (*path)
            path++;
    }
    return NULL;
}

/* Parse the totals of a callgrind output file into res. */
static int parse_callgrind(const char *file, struct hl_rp_result *res, char *err, size_t errlen)
{
    FILE *f = fopen(file, "r");
    if (!f) {
        snprintf(err, errlen, "callgrind wrote no output (%s: %s)", file, strerror(errno));
        return -1;
    }
    char line[4096], names[4096] = "";
    unsigned long long v[32] = {0};
    int have = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "events:", 7) == 0) {
            snprintf(names, sizeof names, "%s", line + 7);
        } else if (strncmp(line, "totals:", 7) == 0 || strncmp(line, "summary:", 8) == 0) {
            char *s = strchr(line, ':') + 1;
            memset(v, 0, sizeof v);
            for (int i = 0; i < 32; i++) {
                char *e;
                v[i] = strtoull(s, &e, 10);
                if (e == s)
                    break;
                s = e;
            }
            have = 1;
        }
    }
    fclose(f);
    if (!have || !names[0]) {
        snprintf(err, errlen, "%s: no totals in the callgrind output", file);
        return -1;
    }
    unsigned long long ir = 0, d1 = 0, ll = 0;
    int i = 0;
    for (char *tok = strtok(names, " \t\n"); tok && i < 32; tok = strtok(NULL, " \t\n"), i++) {
        if (strcmp(tok, "Ir") == 0)
            ir = v[i];
        else if (strcmp(tok, "D1mr") == 0 || strcmp(tok, "D1mw") == 0)
            d1 += v[i];
        else if (strcmp(tok, "DLmr") == 0 || strcmp(tok, "DLmw") == 0)
            ll += v[i];
    }
    res->have_counters = 1;
    res->have_dtlb = 0;
    res->instructions = ir;
    res->l1d_misses = d1;
    res->llc_misses = ll;
    snprintf(res->counters_source, sizeof res->counters_source, "sim");
    return 0;
}

static int spawn(const struct hl_alloc *a, const char *mode, int plan_fd,
                 const struct hl_rp_wopts *o, struct hl_rp_result *res,
                 struct hl_rp_tlsample **tl, char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    char cgfile[256] = "";
    const char *valgrind = NULL;
    int sim = o && o->counters == HL_CNT_SIM;
    if (sim) {
        valgrind = find_in_path("valgrind");
        if (!valgrind) {
            snprintf(err, errlen, "--counters=sim needs valgrind, which is not installed");
            close(p[0]);
            close(p[1]);
            return -1;
        }
        const char *tmp = getenv("TMPDIR");
        if (!tmp || !*tmp || strlen(tmp) > 200)
            tmp = "/tmp";
        snprintf(cgfile, sizeof cgfile, "%s/heaplab-cg.%d.%ld", tmp, (int)getpid(), random());
    }
    char a_res[32], a_plan[32], a_lib[PATH_MAX + 8], a_touch[32], a_check[32], a_cnt[32],
        a_tl[32], a_gap[32], a_out[300], a_log[300], a_spawn[48];
    snprintf(a_res, sizeof a_res, "--result-fd=%d", p[1]);
    snprintf(a_plan, sizeof a_plan, "--plan-fd=%d", plan_fd);
    snprintf(a_lib, sizeof a_lib, "--lib=%s", a->path);
    snprintf(a_touch, sizeof a_touch, "--touch=%d", o ? o->touch : 0);
    snprintf(a_check, sizeof a_check, "--check=%d", o ? o->check : 0);
    snprintf(a_cnt, sizeof a_cnt, "--counters=%d", o ? o->counters : 0);
    snprintf(a_tl, sizeof a_tl, "--timeline=%d", o ? o->timeline : 0);
    snprintf(a_gap, sizeof a_gap, "--gap-fd=%d", o ? o->gap_fd : -1);
    snprintf(a_out, sizeof a_out, "--callgrind-out-file=%s", cgfile);
    /* valgrind's own chatter (it warns about every host cache it does not simulate)
     * goes to a file that is dropped; failures show as the worker's exit status. */
    snprintf(a_log, sizeof a_log, "--log-file=%s.log", cgfile);
    const char *argv[24];
    int n = 0;
    if (sim) {
        argv[n++] = valgrind;
        argv[n++] = "--tool=callgrind";
        argv[n++] = "--cache-sim=yes";
        argv[n++] = "--collect-atstart=no";
        argv[n++] = "--toggle-collect=hl_replay_loop";
        /* Fixed caches, not the host's: simulated counts then depend only on the trace
         * and the allocator, which is what makes them fit for CI. */
        argv[n++] = "--I1=32768,8,64";
        argv[n++] = "--D1=32768,8,64";
        argv[n++] = "--LL=8388608,16,64";
        argv[n++] = a_out;
        argv[n++] = a_log;
    }
    argv[n++] = hl_self_exe();
    argv[n++] = "__worker";
    argv[n++] = mode;
    argv[n++] = a_res;
    if (plan_fd >= 0)
        argv[n++] = a_plan;
    if (a->path[0])
        argv[n++] = a_lib;
    if (o) {
        argv[n++] = a_touch;
        argv[n++] = a_check;
        argv[n++] = a_cnt;
        argv[n++] = a_tl;
        if (o->gap_fd >= 0)
            argv[n++] = a_gap;
        argv[n++] = a_spawn;
    }
    argv[n] = NULL;
    char *preload;
    char **env = worker_env(a, &preload);
    fflush(NULL);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(a_spawn, sizeof a_spawn, "--spawn-ns=%llu",
             (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec);
    pid_t pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "fork: %s", strerror(errno));
        free(preload);
        free(env);
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        fcntl(p[1], F_SETFD, 0);
        /* Under the simulator, the same addresses every time: allocators that hash
         * or align by address (jemalloc) then execute the same instructions too. */
        if (sim)
            personality(ADDR_NO_RANDOMIZE);
        if (!o) { /* a probe: the loader's complaints become our one-line error */
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0)
                dup2(null, 2);
        }
        execve(argv[0], (char **)argv, env);
        _exit(127);
    }
    close(p[1]);
    free(preload);
    free(env);
    memset(res, 0, sizeof *res);
    struct watch watch = {now_s(), o, 0, 0}, *w = o && (o->timeout_s > 0 || o->tick) ? &watch : NULL;
    int got = read_full(p[0], res, sizeof *res, w) == 0 && res->magic == HL_RP_RESULT_MAGIC;
    if (got && res->status == 0 && res->ntimeline && tl) {
        *tl = calloc(res->ntimeline, sizeof **tl);
        if (!*tl || read_full(p[0], *tl, res->ntimeline * sizeof **tl, w) != 0) {
            free(*tl);
            *tl = NULL;
            res->ntimeline = 0;
        }
    }
    if (watch.timed_out) { /* the worker (or valgrind around it) goes, threads and all */
        kill(pid, SIGKILL);
        got = 0;
    }
    close(p[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    int rc = 0;
    if (watch.timed_out) {
        snprintf(err, errlen, "%s: timed out after %ld s (--timeout)", a->name, o->timeout_s);
        if (tl) {
            free(*tl);
            *tl = NULL;
        }
        rc = HL_RP_TIMED_OUT;
    } else if (got && res->status != 0) {
        snprintf(err, errlen, "%s", res->error);
        rc = -1;
    } else if (!got || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        if (WIFSIGNALED(st))
            snprintf(err, errlen, "%s: the replay worker was killed by signal %d (%s)",
                     a->name, WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(err, errlen, "%s: the replay worker failed (exit status %d)", a->name,
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
        rc = -1;
    }
    if (rc == 0 && sim)
        rc = parse_callgrind(cgfile, res, err, errlen);
    if (sim) {
        unlink(cgfile);
        char log[300];
        snprintf(log, sizeof log, "%s.log", cgfile);
        unlink(log);
    }
    return rc;
}

int hl_rp_spawn_run(const struct hl_alloc *a, int plan_fd, const struct hl_rp_wopts *o,
                    struct hl_rp_result *res, struct hl_rp_tlsample **tl, char *err,
                    size_t errlen)
{
    if (tl)
        *tl = NULL;
    return spawn(a, "run", plan_fd, o, res, tl, err, errlen);
}

int hl_rp_probe(struct hl_alloc *a, char *err, size_t errlen)
{
    struct hl_rp_result *res = calloc(1, sizeof *res);
    if (!res)
        hl_die("out of memory");
    int rc = spawn(a, "probe", -1, NULL, res, NULL, err, errlen);
    if (rc == 0) {
        if (res->version[0])
            snprintf(a->version, sizeof a->version, "%s", res->version);
        else
            hl_registry_static_version(a);
    }
    free(res);
    return rc;
}
