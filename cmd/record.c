/*
 * record.c: `heaplab record`, run a program under libheaplab-record.so and finalise
 * what it captured into a trace.
 *
 * Orchestration only: the interposer (traces/preload/) writes a raw capture into a
 * private directory, the finaliser (traces/finalise.c) turns it into the trace.  This
 * file starts the program (the preload put in front of any LD_PRELOAD the user has),
 * passes signals on, waits for it and every descendant it leaves behind (heaplab is
 * their subreaper, so a capture is complete before it is finalised), and exits with the
 * program's status: its exit code, or 128+N if signal N killed it.
 *
 * While it waits it finalises: every few milliseconds (and whenever a child exits) it
 * lets the finaliser read what the capture holds so far, so the merge, slot mapping
 * and compression run on the core the program leaves free, and only the tail is
 * left after the program exits.  The trace is the same as finalising afterwards.
 *
 * Nothing is lost: the capture goes into OUTPUT.capture beside the trace (or the
 * --capture-dir), which is removed only once the trace is written.  If finalising
 * fails or is interrupted, or heaplab itself is killed, the capture stays there, and
 * `heaplab record --from-capture DIR -o OUTPUT` goes on from the last checkpoint.
 */
#include "cmd.h"
#include "options.h"
#include "paths.h"
#include "record.h"
#include "util.h"

#include "finalise.h"
#include "preload/raw.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const usage[] = {
    "heaplab record [-o FILE] [options] [--] PROGRAM [ARGS...]",
    "Run PROGRAM with heaplab's recording interposer and write its malloc/free calls to a",
    "trace (default: PROGRAM's name + .hlt).  Threads, fork children and exec'd programs",
    "are recorded too, one process section each.  Exits with the program's status",
    "(128+N if signal N killed it); 127 if the program cannot be started.  It waits for",
    "every process the program started, unless --no-wait.",
    "The raw capture goes into FILE.capture (or --capture-dir DIR), is finalised while",
    "the program runs, and is removed once the trace is written.  If finalising fails,",
    "is interrupted, or heaplab is killed, it stays: finish it with",
    "heaplab record --from-capture DIR -o FILE (a capture kept with --capture-dir can",
    "be finalised again the same way).  Memory stays bounded however long the",
    "recording, and the capture read so far is given back to the file system as",
    "finalising passes it (so disk stays bounded while finalising keeps up).",
    "heaplab record -p PID -o FILE [--duration SECONDS] attaches to the running process",
    "PID instead (with gdb), records until --duration, SIGINT/SIGTERM or its exit, then",
    "detaches: the process keeps running.  The trace starts mid-life: frees of blocks",
    "allocated before the attach are marked unknown (see heaplab stat, replay --help).",
    NULL};

static volatile pid_t child_pid;

/* SIGCHLD only has to interrupt the wait in ppoll. */
static void on_child(int sig)
{
    (void)sig;
}

/* How often the capture is looked at while the program runs. */
#define POLL_NS 10000000

/* Signals a user sends to heaplab go on to the program.  Those the terminal sends
 * (Ctrl-C) reach the whole process group, the program included, already. */
static void forward(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    if (child_pid > 0 && si->si_code != SI_KERNEL)
        kill(child_pid, sig);
}

static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

/* Resolve PROGRAM like a shell would.  Returns a malloc'd path, or NULL with errno
 * (ENOENT: not found; EACCES: found but not executable). */
static char *find_program(const char *prog)
{
    if (strchr(prog, '/')) {
        struct stat sb;
        if (stat(prog, &sb) != 0)
            return NULL;
        if (S_ISDIR(sb.st_mode) || access(prog, X_OK) != 0) {
            errno = EACCES;
            return NULL;
        }
        return strdup(prog);
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int saw_eacces = 0;
    while (*path) {
        size_t len = strcspn(path, ":");
        char *cand = NULL;
        if (asprintf(&cand, "%.*s%s%s", (int)len, len ? path : ".", "/", prog) < 0)
            return NULL;
        struct stat sb;
        if (stat(cand, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
            if (access(cand, X_OK) == 0)
                return cand;
            saw_eacces = 1;
        }
        free(cand);
        path += len;
        if (*path == ':')
            path++;
    }
    errno = saw_eacces ? EACCES : ENOENT;
    return NULL;
}

void hl_remove_capture(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.' &&
                (de->d_name[1] == 0 || (de->d_name[1] == '.' && de->d_name[2] == 0)))
                continue;
            char *p;
            if (asprintf(&p, "%s/%s", dir, de->d_name) >= 0) {
                unlink(p);
                free(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

int hl_has_capture(const char *dir)
{
    DIR *d = opendir(dir);
    int found = 0;
    if (!d)
        return 0;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        found = n > 6 && strcmp(de->d_name + n - 6, ".hlraw") == 0;
    }
    closedir(d);
    return found;
}

char *hl_capture_dir(const char *capture, const char *out)
{
    /* By default beside the trace, where a user finds it if heaplab is killed. */
    char *want;
    if (capture)
        want = strdup(capture);
    else if (asprintf(&want, "%s.capture", out) < 0)
        want = NULL;
    if (!want)
        hl_die("out of memory");
    if (mkdir(want, 0700) != 0 && errno != EEXIST)
        hl_die("cannot create the capture directory %s: %s", want, strerror(errno));
    /* Absolute, since the program may change its working directory. */
    char *dir = realpath(want, NULL);
    if (!dir)
        hl_die("%s: %s", want, strerror(errno));
    if (hl_has_capture(dir))
        hl_die("%s holds the capture of an earlier recording that was not finalised: "
               "finish it with 'heaplab record --from-capture %s -o %s', or remove it%s",
               want, want, capture ? "FILE" : out, capture ? ", or name another folder" : "");
    free(want);
    return dir;
}

static char *default_output(const char *prog)
{
    const char *base = strrchr(prog, '/');
    base = base ? base + 1 : prog;
    char *out;
    if (asprintf(&out, "%s.hlt", *base ? base : "record") < 0)
        hl_die("out of memory");
    return out;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Progress while the tail of a long capture is finalised (on a terminal only), and
 * a stop when a signal asks for one. */
struct progress {
    uint64_t total;       /* raw bytes in the capture */
    double last;          /* when the line was last drawn */
    int shown;
};

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

static int show_progress(void *ctx, uint64_t done)
{
    struct progress *p = ctx;
    double t = now_s();
    if (p->total && t - p->last >= 0.5) {
        char a[32], b[32];
        fprintf(stderr, "\rheaplab: finalising: %s of %s of capture read (%.0f%%)  ",
                hl_fmt_bytes(a, sizeof a, (double)done), hl_fmt_bytes(b, sizeof b, (double)p->total),
                100.0 * (double)(done < p->total ? done : p->total) / (double)p->total);
        p->last = t;
        p->shown = 1;
    }
    return stop_signal != 0;
}

/* Bytes of raw capture in dir. */
static uint64_t capture_bytes(const char *dir)
{
    uint64_t n = 0;
    DIR *d = opendir(dir);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        struct stat sb;
        if (len > 6 && strcmp(de->d_name + len - 6, ".hlraw") == 0 &&
            fstatat(dirfd(d), de->d_name, &sb, 0) == 0)
            n += (uint64_t)sb.st_size;
    }
    if (d)
        closedir(d);
    return n;
}

int hl_record_finalise(struct hl_finaliser *fz, const char *dir, const char *out, int quiet,
                    double exited, int keep)
{
    struct hl_finalise_stats st;
    struct hl_err err;
    struct progress pg = {0, now_s(), 0};
    if (!quiet && isatty(2))
        pg.total = capture_bytes(dir);
    if (!fz && !(fz = hl_finaliser_new(dir, out, &err))) {
        fprintf(stderr, "heaplab: %s\n", err.msg);
        return -1;
    }
    hl_finaliser_set_progress(fz, show_progress, &pg);
    if (keep)
        hl_finaliser_keep_capture(fz);
    /* From here a signal to heaplab stops finalising; the capture stays. */
    signal(SIGINT, on_stop);
    signal(SIGTERM, on_stop);
    signal(SIGHUP, on_stop);
    int r = hl_finaliser_finish(fz, &st, &err);
    if (pg.shown)
        fprintf(stderr, "\r\033[K");
    if (r != 0) {
        if (hl_has_capture(dir))
            fprintf(stderr, "heaplab: %s; the capture is kept in %s: finish it with "
                            "'heaplab record --from-capture %s -o %s'\n",
                    err.msg, dir, dir, out);
        else
            fprintf(stderr, "heaplab: %s\n", err.msg);
        return -1;
    }
    if (st.damaged)
        hl_warn("%s", st.damage);
    hl_unseen_warn(&st); /* nothing silent: say what was not recorded */
    if (st.cut)
        hl_warn("%u process%s could not write all of %s capture (disk full or file size "
                "limit): %llu events dropped, the trace holds what was written before "
                "(heaplab stat shows where)", st.cut, st.cut == 1 ? "" : "es",
                st.cut == 1 ? "its" : "their", (unsigned long long)st.dropped);
    if (st.missed)
        hl_warn("%llu calls were not recorded: made while the recorder's own wrapper ran (a "
                "signal handler interrupting an allocation, or the allocator calling itself)",
                (unsigned long long)st.missed);
    if (st.big_untracked)
        hl_warn("%llu large blocks (%u KiB or more) got no count of their resident pages: "
                "more than %u were live at once; the replay writes every page of them",
                (unsigned long long)st.big_untracked, (unsigned)(HL_PAGES_MIN_BYTES >> 10),
                HL_RAW_PAGES_TRACKED);
    if (st.held && !quiet)
        fprintf(stderr, "heaplab: finalising fell behind the program, which waited %.1f s "
                        "in all (%llu times) so that its unread capture stayed under the "
                        "limit (--max-backlog)\n",
                (double)st.held_ns / 1e9, (unsigned long long)st.held);
    if (st.spilled && !quiet)
        fprintf(stderr, "heaplab: %u process%s filled the ring of capture finalising could "
                        "not give back in time; the rest was appended after it (more disk "
                        "and page cache; %s sets the ring's size)\n",
                st.spilled, st.spilled == 1 ? "" : "es", HL_RAW_ENV_RING);
    if (!quiet) {
        char b[32], after[64] = "";
        if (exited > 0)
            snprintf(after, sizeof after, ", finished %.3f s after the program", now_s() - exited);
        fprintf(stderr,
                "heaplab: %s: %u process%s, %llu thread%s, %llu events, %s (%.2f bytes/event)%s\n",
                out, st.processes, st.processes == 1 ? "" : "es",
                (unsigned long long)st.threads, st.threads == 1 ? "" : "s",
                (unsigned long long)st.events,
                hl_fmt_bytes(b, sizeof b, (double)st.trace_bytes),
                st.events ? (double)st.trace_bytes / (double)st.events : 0.0, after);
    }
    return 0;
}

static int status_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return 1;
}

int cmd_record(int argc, char **argv)
{
    const char *output = NULL, *capture = NULL, *from = NULL;
    uint64_t buffer = 0, backlog = UINT64_MAX, ring = UINT64_MAX;
    int quiet = 0, no_wait = 0;
    long attach_pid = LONG_MIN, duration = 0;
    struct hl_option opts[] = {
        HL_OPT_STRING('o', "output", &output, "FILE", "write the trace to FILE"),
        HL_OPT_STRING(0, "capture-dir", &capture, "DIR",
                      "write the raw capture into DIR (created) and keep it"),
        HL_OPT_SIZE(0, "buffer", &buffer, "SIZE",
                    "per-thread record buffer, " HL_RAW_BUFFER_BOUNDS
                    " (default " HL_STR(HL_RAW_BUFFER_DEFAULT_MIB) "M; smaller flushes more often)"),
        HL_OPT_SIZE(0, "max-backlog", &backlog, "SIZE",
                    "hold the program back while more than SIZE of a process's capture "
                    "is not finalised yet (default " HL_STR(HL_RAW_BACKLOG_DEFAULT_MIB)
                    "M; 0: never, the disk then holds whatever finalising is behind)"),
        HL_OPT_SIZE(0, "ring", &ring, "SIZE",
                    "each process's capture goes round a ring of SIZE in its raw file, "
                    "given back as finalising reads it (default " HL_STR(HL_RAW_RING_DEFAULT_MIB)
                    "M; at least 4 buffers; 0: appended); a ring that stays full for 2 s "
                    "spills after itself"),
        HL_OPT_STRING(0, "from-capture", &from, "DIR",
                      "finalise the raw capture in DIR instead of running a program"),
        HL_OPT_FLAG(0, "no-wait", &no_wait,
                    "finalise when PROGRAM exits, even if processes it started still run "
                    "(their captures end where they are)"),
        HL_OPT_INT('p', "pid", &attach_pid, "PID", "attach to the running process PID"),
        HL_OPT_INT(0, "duration", &duration, "SECONDS",
                   "with -p: detach after SECONDS (default: at SIGINT/SIGTERM or its exit)"),
        HL_OPT_FLAG('q', "quiet", &quiet, "no summary line"),
        HL_OPT_END()};
    int i = hl_parse_options(argc, argv, opts, usage, HL_PARSE_STOP_AT_NON_OPTION);
    if (buffer && (buffer < HL_RAW_BUFFER_MIN || buffer > HL_RAW_BUFFER_MAX))
        hl_usage_die("record: --buffer must be " HL_RAW_BUFFER_BOUNDS);
    uint64_t bufbytes = buffer ? buffer : HL_RAW_BUFFER_DEFAULT;
    if (ring != UINT64_MAX && ring && (ring < 4 * bufbytes || ring > HL_RAW_RING_MAX))
        hl_usage_die("record: --ring must be 0, or 4 buffers (%lluK) to 1024G",
                     (unsigned long long)(4 * bufbytes) >> 10);
    if (from) {
        if (i < argc)
            hl_usage_die("record: --from-capture takes no program");
        if (!output)
            hl_usage_die("record: --from-capture needs -o FILE");
        return hl_record_finalise(NULL, from, output, quiet, 0, 1) == 0 ? 0 : 1;
    }
    if (attach_pid != LONG_MIN) {
        if (i < argc || from || buffer || no_wait || backlog != UINT64_MAX || ring != UINT64_MAX)
            hl_usage_die("record: -p PID takes no program, --from-capture, --buffer, "
                         "--max-backlog, --ring or --no-wait");
        if (!output)
            hl_usage_die("record: -p PID needs -o FILE");
        return hl_record_attach(attach_pid, output, duration, capture, quiet);
    }
    if (duration)
        hl_usage_die("record: --duration needs -p PID");
    if (i >= argc)
        hl_usage_die("record: no program given (heaplab record -- PROGRAM [ARGS...])");
    char **prog_argv = argv + i;
    const char *prog = prog_argv[0];

    char *prog_path = find_program(prog);
    if (!prog_path) {
        int e = errno;
        fprintf(stderr, "heaplab: %s: %s\n", prog,
                e == ENOENT ? "command not found" : strerror(e));
        return e == EACCES ? 126 : 127;
    }
    const char *found = hl_find_lib("libheaplab-record.so");
    if (!found)
        hl_die("cannot find libheaplab-record.so (set HEAPLAB_LIBDIR)");
    char *lib = realpath(found, NULL);
    if (!lib)
        hl_die("%s: %s", found, strerror(errno));
    char *out = output ? strdup(output) : default_output(prog);

    char *dir = hl_capture_dir(capture, out);

    /* The environment the program starts with. */
    const char *old_pre = getenv("LD_PRELOAD");
    char *pre;
    if (asprintf(&pre, "%s%s%s", lib, old_pre && *old_pre ? ":" : "",
                 old_pre ? old_pre : "") < 0)
        hl_die("out of memory");

    /* Descendants orphaned by the program come to us, so we can wait for them. */
    if (!no_wait)
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0)
        hl_die("pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = forward;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigset_t fwd, old;
    sigemptyset(&fwd);
    for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++) {
        sigaction(forwarded[k], &sa, NULL);
        sigaddset(&fwd, forwarded[k]);
    }
    /* SIGCHLD stays blocked except inside ppoll, so that a child's exit always wakes it. */
    struct sigaction sc;
    memset(&sc, 0, sizeof sc);
    sc.sa_handler = on_child;
    sc.sa_flags = SA_NOCLDSTOP;
    sigemptyset(&sc.sa_mask);
    sigaction(SIGCHLD, &sc, NULL);
    sigaddset(&fwd, SIGCHLD);

    /* Signals wait until child_pid is known (parent) or the defaults are back
     * (child), so none sent while the program starts is lost. */
    sigprocmask(SIG_BLOCK, &fwd, &old);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        hl_die("fork: %s", strerror(errno));
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        for (size_t k = 0; k < sizeof forwarded / sizeof forwarded[0]; k++)
            signal(forwarded[k], SIG_DFL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        setenv("LD_PRELOAD", pre, 1);
        setenv(HL_RAW_ENV_DIR, dir, 1);
        if (buffer) {
            char b[32];
            snprintf(b, sizeof b, "%llu", (unsigned long long)buffer);
            setenv(HL_RAW_ENV_BUFFER, b, 1);
        }
        char v[32];
        if (backlog != UINT64_MAX) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)backlog);
            setenv(HL_RAW_ENV_BACKLOG, v, 1);
        }
        if (ring != UINT64_MAX) {
            snprintf(v, sizeof v, "%llu", (unsigned long long)ring);
            setenv(HL_RAW_ENV_RING, v, 1);
        }
        snprintf(v, sizeof v, "%ld", (long)getppid());
        setenv(HL_RAW_ENV_WATCHER, v, 1);
        execv(prog_path, prog_argv);
        int e = errno;
        if (write(errpipe[1], &e, sizeof e) < 0)
            _exit(127);
        _exit(127);
    }
    child_pid = pid;
    sigset_t run_mask = old, poll_mask = old;
    sigaddset(&run_mask, SIGCHLD);
    sigdelset(&poll_mask, SIGCHLD);
    sigprocmask(SIG_SETMASK, &run_mask, NULL);
    close(errpipe[1]);
    int exec_errno = 0;
    ssize_t k;
    do
        k = read(errpipe[0], &exec_errno, sizeof exec_errno);
    while (k < 0 && errno == EINTR);
    close(errpipe[0]);

    int status = 0;
    if (k == (ssize_t)sizeof exec_errno) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        fprintf(stderr, "heaplab: %s: %s\n", prog, strerror(exec_errno));
        hl_remove_capture(dir);
        return exec_errno == ENOENT ? 127 : 126;
    }

    /* While the program runs, finalise what its capture already holds (on the core
     * this process would otherwise leave idle), so that only the tail is left once it
     * exits.  Any error is kept for the finish to report. */
    struct hl_err ferr;
    struct hl_finaliser *fz = hl_finaliser_new(dir, out, &ferr);
    struct hl_unseen *unseen = hl_unseen_new();
    int fz_ok = fz != NULL, main_done = 0;
    for (;;) {
        int none_left = 0;
        for (;;) {
            int st;
            /* Look before reaping, to note what exited (record_unseen.c). */
            siginfo_t si;
            si.si_pid = 0;
            pid_t r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
            if (r == 0 && si.si_pid > 0) {
                hl_unseen_note(unseen, si.si_pid);
                r = waitpid(si.si_pid, &st, 0);
            }
            if (r > 0) {
                if (r == pid) {
                    status = st;
                    main_done = 1;
                    child_pid = 0;
                    /* From here on a signal is for heaplab itself (to stop a long wait
                     * or finalise). */
                    for (size_t j = 0; j < sizeof forwarded / sizeof forwarded[0]; j++)
                        signal(forwarded[j], SIG_DFL);
                }
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            none_left = r < 0;
            break;
        }
        /* Wait for what the program left running too: their captures are still open. */
        if (main_done && (no_wait || none_left))
            break;
        int moved = 0;
        if (fz_ok) {
            moved = hl_finaliser_poll(fz, &ferr);
            fz_ok = moved >= 0;
        }
        /* Behind the program: go on at once (just let a pending SIGCHLD in). */
        struct timespec tick = {0, moved > 0 ? 0 : POLL_NS};
        ppoll(NULL, 0, &tick, &poll_mask);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    double exited = now_s();
    int code = status_code(status);

    int r;
    if (!hl_has_capture(dir)) {
        fprintf(stderr, "heaplab: %s: nothing was recorded (a static or setuid program "
                        "cannot be preloaded)\n", prog);
        hl_finaliser_abort(fz);
        r = -1;
        if (!capture)
            hl_remove_capture(dir);
    } else {
        if (!fz)
            fz = hl_finaliser_new(dir, out, &ferr);
        hl_unseen_hand_over(unseen, fz, pid, prog_path);
        r = hl_record_finalise(fz, dir, out, quiet, exited, capture != NULL);
        if (r == 0 && !capture)
            hl_remove_capture(dir);
    }
    hl_unseen_free(unseen);
    if (r != 0 && code == 0)
        code = 1;
    free(out);
    free(pre);
    free(lib);
    free(dir);
    free(prog_path);
    return code;
}
