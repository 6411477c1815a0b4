/*
 * record_attach.c: `heaplab record -p PID`, recording a program that is already running.
 *
 * The injection is done by Debian's gdb in batch mode, not by heaplab's own ptrace
 * code: calling dlopen inside another process means stopping every thread, saving and
 * restoring registers, building a call frame that respects the ABI's stack alignment
 * and red zone, catching the return, and coping with a thread stopped inside a system
 * call; gdb does all of that, on every architecture it supports, and is a package
 * away.  heaplab only asks it for three calls: dlopen(libheaplab-record.so),
 * heaplab_attach(DIR) (traces/preload/hook.c: point the program's GOT slots of the
 * allocation API at the interposer, which writes a raw capture into DIR), and at the
 * end heaplab_detach() (put the slots back, flush).  The program keeps running
 * between and after them; the library stays loaded in it, idle.
 *
 * Before gdb is started the usual refusals are checked here, so that each gets one
 * clear line and the program is not touched: no such process, no permission to trace
 * it, a tracer already attached, a statically linked program.  hook.c refuses the rest
 * (an allocator the hooks cannot reach) from inside, before writing anything.
 *
 * While attached this waits like `heaplab record` does for a child: it finalises what
 * the capture holds every few milliseconds, and stops at --duration, SIGINT/SIGTERM,
 * or the program's exit.  Fork children recording into the same capture are detached
 * from too.  An exec after the attach is not followed: the new image starts without
 * the library.
 */
#include "options.h"
#include "paths.h"
#include "record.h"
#include "util.h"

#include "finalise.h"

#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RECORD_LIB "libheaplab-record.so"
/* How long one gdb session may take before heaplab gives up on it. */
#define GDB_TIMEOUT_S 120
/* How often the capture is looked at while attached. */
#define POLL_MS 10

static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
    stop_sig = sig;
}

/* The first line of /proc/PID/<file> starting with key, value copied to buf. */
static int proc_field(long pid, const char *file, const char *key, char *buf, size_t len)
{
    char path[64], line[512];
    snprintf(path, sizeof path, "/proc/%ld/%s", pid, file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int found = -1;
    size_t kl = strlen(key);
    while (found < 0 && fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(buf, len, "%s", line + kl + strspn(line + kl, " \t"));
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* Does the executable have a program interpreter (is it dynamically linked)?  1 yes,
 * 0 no, -1 unknown. */
static int has_interp(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/exe", pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf64_Ehdr eh;
    int r = -1;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 &&
        eh.e_ident[EI_CLASS] == ELFCLASS64 && eh.e_phentsize == sizeof(Elf64_Phdr)) {
        r = 0;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph) {
                r = -1;
                break;
            }
            if (ph.p_type == PT_INTERP)
                r = 1;
        }
    }
    close(fd);
    return r;
}

/* The refusals heaplab can tell before touching the process: a message, or NULL. */
static const char *refusal(long pid, char *buf, size_t len)
{
    if (pid <= 0 || pid > 0x7fffffff || (kill((pid_t)pid, 0) != 0 && errno == ESRCH)) {
        snprintf(buf, len, "no process %ld", pid);
        return buf;
    }
    if (pid == getpid()) {
        snprintf(buf, len, "PID %ld is heaplab itself", pid);
        return buf;
    }
    char mem[64];
    snprintf(mem, sizeof mem, "/proc/%ld/mem", pid);
    int fd = open(mem, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            snprintf(buf, len, "no process %ld", pid);
        } else {
            snprintf(buf, len,
                     "PID %ld: not allowed to trace it (%s): run heaplab as its user or as "
                     "root, or lower kernel.yama.ptrace_scope",
                     pid, strerror(errno));
        }
        return buf;
    }
    close(fd);
    char tracer[32];
    if (proc_field(pid, "status", "TracerPid:", tracer, sizeof tracer) == 0 &&
        strcmp(tracer, "0") != 0) {
        snprintf(buf, len,
                 "PID %ld is already being traced by PID %s (a debugger, strace, or another "
                 "heaplab): detach that first",
                 pid, tracer);
        return buf;
    }
    if (has_interp(pid) == 0) {
        snprintf(buf, len,
                 "PID %ld is statically linked: there is no dynamic linker to load the "
                 "recorder with, and its malloc cannot be hooked",
                 pid);
        return buf;
    }
    return NULL;
}

static char *gdb_path(void)
{
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        size_t n = strcspn(path, ":");
        char *cand;
        if (asprintf(&cand, "%.*s/gdb", (int)n, path) < 0)
            return NULL;
        if (access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path += n;
        if (*path == ':')
            path++;
    }
    return NULL;
}

/* Run gdb on pid with the given -ex commands, its output into `log`.  Returns 0 when
 * gdb ran to its end (whatever the calls returned), -1 if it could not run or took
 * too long. */
static int run_gdb(const char *gdb, long pid, const char *log, const char *const *cmds,
                   int ncmds)
{
    char pidstr[24];
    snprintf(pidstr, sizeof pidstr, "%ld", pid);
    const char *argv[20 + 2 * 8];
    int n = 0;
    argv[n++] = gdb;
    argv[n++] = "-nx";
    argv[n++] = "-batch";
    argv[n++] = "-iex";
    argv[n++] = "set debuginfod enabled off";
    argv[n++] = "-iex";
    argv[n++] = "set auto-load off";
    argv[n++] = "-ex";
    argv[n++] = "set confirm off";
    /* A call gdb could not make (gdb before 14 on a CPU with AMX: see gdb_error) still
     * leaves orig_rax at -1, so the system call the thread was stopped in would return
     * -ERESTART... to the program instead of being restarted: it is put back.  After a
     * call that was made gdb has put it back already. */
    argv[n++] = "-ex";
    argv[n++] = "set $hl_orig_rax = $orig_rax";
    for (int i = 0; i < ncmds && i < 8; i++) {
        argv[n++] = "-ex";
        argv[n++] = cmds[i];
    }
    argv[n++] = "-ex";
    argv[n++] = "set $orig_rax = $hl_orig_rax";
    argv[n++] = "-p";
    argv[n++] = pidstr;
    argv[n] = NULL;
    fflush(NULL);
    pid_t g = fork();
    if (g < 0)
        return -1;
    if (g == 0) {
        /* Its own process group: a Ctrl-C meant for heaplab must not reach gdb (it
         * would interrupt the program mid-call). */
        setpgid(0, 0);
        int in = open("/dev/null", O_RDONLY);
        int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        for (int s = 1; s < NSIG; s++)
            signal(s, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(gdb, (char **)argv);
        _exit(127);
    }
    for (int waited = 0;; waited++) {
        int st;
        pid_t r = waitpid(g, &st, WNOHANG);
        if (r == g)
            return WIFEXITED(st) && WEXITSTATUS(st) != 127 ? 0 : -1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (waited >= GDB_TIMEOUT_S * 20) {
            kill(g, SIGKILL);
            waitpid(g, &st, 0);
            return -1;
        }
        struct timespec t = {0, 50000000};
        nanosleep(&t, NULL);
    }
}

/* The value gdb printed for history entry $k ("$k = ..."), copied to buf. */
static int gdb_value(const char *log, int k, char *buf, size_t len)
{
    FILE *f = fopen(log, "r");
    if (!f)
        return -1;
    char line[1024], key[16];
    int kl = snprintf(key, sizeof key, "$%d = ", k), found = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, (size_t)kl) == 0) {
            line[strcspn(line, "\n")] = 0;
            snprintf(buf, len, "%s", line + kl);
            found = 0;
        }
    }
    fclose(f);
    return found;
}

/* The version gdb --version ends its first line with ("13.1"), or "". */
static void gdb_version(const char *gdb, char *buf, size_t len)
{
    char line[256] = "";
    int p[2];
    buf[0] = 0;
    if (pipe(p) != 0)
        return;
    fflush(NULL);
    pid_t g = fork();
    if (g == 0) {
        dup2(p[1], 1);
        execl(gdb, gdb, "--version", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    FILE *f = fdopen(p[0], "r");
    if (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        snprintf(buf, len, "%s", strrchr(line, ' ') ? strrchr(line, ' ') + 1 : line);
    }
    if (f)
        fclose(f);
    else
        close(p[0]);
    if (g > 0)
        waitpid(g, NULL, 0);
}

/* gdb's last line that is not a value or a thread/library notice: its error.  Returns
 * 1, with the reason instead, when gdb could make no call at all: gdb before 14 writes
 * the registers' XSAVE area back (PTRACE_SETREGSET NT_X86_XSTATE) with a fixed
 * 2696-byte buffer, and the kernel refuses any other size than the CPU's, larger with
 * AMX tiles (gdb 14 sizes it from CPUID); the call is abandoned before the program
 * runs it. */
static int gdb_error(const char *gdb, const char *log, char *buf, size_t len)
{
    FILE *f = fopen(log, "r");
    snprintf(buf, len, "gdb failed (see %s)", log);
    if (!f)
        return 0;
    char line[1024];
    int xstate = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        xstate |= strstr(line, "Couldn't write extended state status") != NULL;
        if (!*line || line[0] == '$' || line[0] == '[' || strncmp(line, "0x", 2) == 0 ||
            strstr(line, "warning") || strstr(line, "Reading symbols") ||
            strstr(line, "Downloading") || strstr(line, "Using host libthread_db"))
            continue;
        snprintf(buf, len, "%s", line);
    }
    fclose(f);
    if (xstate) {
        char v[64];
        gdb_version(gdb, v, sizeof v);
        snprintf(buf, len,
                 "this machine's gdb%s%s cannot call functions in a process on this CPU (it "
                 "could not write the registers' extended state back: gdb 14 or later is "
                 "needed with AMX)",
                 *v ? " " : "", v);
    }
    return xstate;
}

/* The recorder's one-line refusal, if it wrote one. */
static int read_refusal(const char *dir, char *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/refused", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int r = fgets(buf, (int)len, f) ? 0 : -1;
    buf[strcspn(buf, "\n")] = 0;
    fclose(f);
    return r;
}

static int alive(long pid)
{
    return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

/* Is lib mapped in pid? */
static int loaded(long pid, const char *lib)
{
    char maps[64], line[4400];
    snprintf(maps, sizeof maps, "/proc/%ld/maps", pid);
    FILE *f = fopen(maps, "r");
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, lib) != NULL;
    if (f)
        fclose(f);
    return found;
}

/* gdb failed: its error, and when it could make no call whether the library got in. */
static void cannot_attach(const char *gdb, long pid, const char *lib, const char *log)
{
    char v[1024];
    int xstate = gdb_error(gdb, log, v, sizeof v);
    fprintf(stderr, "heaplab: PID %ld: cannot attach: %s%s\n", pid, v,
            !xstate            ? ""
            : loaded(pid, lib) ? "; " RECORD_LIB " was loaded into it nonetheless"
                               : "; nothing was changed in the process");
}

/* Load the recorder into pid and start it: 0, or -1 with the reason printed. */
static int attach(const char *gdb, long pid, const char *lib, const char *dir)
{
    char log[4096], c_open[4400], c_attach[4400], v[1024];
    snprintf(log, sizeof log, "%s/gdb-attach.log", dir);
    snprintf(c_open, sizeof c_open, "call (void *) dlopen(\"%s\", 2)", lib);
    snprintf(c_attach, sizeof c_attach, "call (int) heaplab_attach(\"%s\", %d)", dir,
             (int)getpid());
    const char *cmds[] = {c_open, "call (char *) dlerror()", c_attach};
    if (run_gdb(gdb, pid, log, cmds, 3) != 0) {
        cannot_attach(gdb, pid, lib, log);
        return -1;
    }
    if (gdb_value(log, 3, v, sizeof v) == 0 && strcmp(v, "0") == 0)
        return 0;
    if (read_refusal(dir, v, sizeof v) == 0) {
        fprintf(stderr, "heaplab: PID %ld: %s\n", pid, v);
        /* Refused before anything was hooked: unload the library again. */
        char h[1024], c_close[1100];
        const char *x;
        if (gdb_value(log, 1, h, sizeof h) == 0 && (x = strstr(h, "0x"))) {
            snprintf(c_close, sizeof c_close, "call (int) dlclose((void *) %.*s)",
                     (int)strspn(x, "0123456789abcdefx"), x);
            const char *close_cmd[] = {c_close};
            snprintf(log, sizeof log, "%s/gdb-unload.log", dir);
            run_gdb(gdb, pid, log, close_cmd, 1);
        }
    } else if (gdb_value(log, 1, v, sizeof v) == 0 && strstr(v, " 0x0")) {
        char e[1024] = "";
        gdb_value(log, 2, e, sizeof e);
        fprintf(stderr, "heaplab: PID %ld: cannot load %s into it: %s\n", pid, RECORD_LIB, e);
    } else {
        cannot_attach(gdb, pid, lib, log);
    }
    return -1;
}

/* Give pid its functions back and flush.  0, or -1 (a warning is printed). */
static int detach(const char *gdb, long pid, const char *dir)
{
    char log[4096], v[1024];
    snprintf(log, sizeof log, "%s/gdb-detach-%ld.log", dir, pid);
    const char *cmds[] = {"call (int) heaplab_detach()"};
    if (run_gdb(gdb, pid, log, cmds, 1) == 0 && gdb_value(log, 1, v, sizeof v) == 0 &&
        strcmp(v, "0") == 0)
        return 0;
    if (!alive(pid))
        return 0; /* it exited meanwhile: its exit flushed the capture */
    gdb_error(gdb, log, v, sizeof v);
    hl_warn("PID %ld: detaching failed: %s", pid, v);
    return -1;
}

/* Fork children made while attached record into the capture too (one raw file each,
 * named "<pid>-<ns>.hlraw"): detach from those still running. */
static void detach_children(const char *gdb, long pid, const char *dir, const char *lib)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long c = strtol(de->d_name, &end, 10);
        if (c > 0 && c != pid && *end == '-' && strstr(end, ".hlraw") && alive(c) &&
            loaded(c, lib))
            detach(gdb, c, dir);
    }
    closedir(d);
}

int hl_record_attach(long pid, const char *out, long duration, const char *capture, int quiet)
{
    char why[512];
    const char *no = refusal(pid, why, sizeof why);
    if (no) {
        fprintf(stderr, "heaplab: %s\n", no);
        return 1;
    }
    if (duration < 0)
        hl_usage_die("record: --duration wants a positive number of seconds");
    char *gdb = gdb_path();
    if (!gdb)
        hl_die("attaching needs gdb (apt-get install gdb)");
    const char *found = hl_find_lib(RECORD_LIB);
    if (!found)
        hl_die("cannot find %s (set HEAPLAB_LIBDIR)", RECORD_LIB);
    char *lib = realpath(found, NULL);
    if (!lib)
        hl_die("%s: %s", found, strerror(errno));
    if (strchr(lib, '"'))
        hl_die("%s: a path with a double quote cannot be passed to gdb", lib);
    char *dir = hl_capture_dir(capture, out);
    if (strchr(dir, '"'))
        hl_die("%s: a path with a double quote cannot be passed to gdb", dir);
    /* The program writes the capture: root attaching to another user's process
     * hands the directory over. */
    char proc[64];
    struct stat ps;
    snprintf(proc, sizeof proc, "/proc/%ld", pid);
    if (geteuid() == 0 && stat(proc, &ps) == 0 && ps.st_uid != 0 &&
        chown(dir, ps.st_uid, ps.st_gid) != 0)
        hl_warn("%s: %s", dir, strerror(errno));

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    int code = 1;
    if (attach(gdb, pid, lib, dir) == 0) {
        if (!quiet)
            fprintf(stderr, "heaplab: attached to PID %ld; recording %s\n", pid,
                    duration ? "for --duration" : "until Ctrl-C, SIGTERM or its exit");
        int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
        struct hl_err ferr;
        struct hl_finaliser *fz = hl_finaliser_new(dir, out, &ferr);
        int fz_ok = fz != NULL;
        uint64_t deadline = duration ? hl_now_ns() + (uint64_t)duration * 1000000000u : 0;
        int exited = 0;
        while (!stop_sig && !(deadline && hl_now_ns() >= deadline)) {
            int moved = 0;
            if (fz_ok) {
                moved = hl_finaliser_poll(fz, &ferr);
                fz_ok = moved >= 0;
            }
            struct pollfd p = {pidfd, POLLIN, 0};
            if (pidfd >= 0 ? poll(&p, 1, moved > 0 ? 0 : POLL_MS) > 0 : !alive(pid)) {
                exited = 1;
                break;
            }
            if (pidfd < 0 && !moved)
                poll(NULL, 0, POLL_MS);
        }
        if (!exited) {
            detach(gdb, pid, dir);
            detach_children(gdb, pid, dir, lib);
        }
        if (pidfd >= 0)
            close(pidfd);
        code = hl_record_finalise(fz, dir, out, quiet, 0, capture != NULL) == 0 ? 0 : 1;
    }
    if (!capture && code == 0)
        hl_remove_capture(dir);
    else if (!capture && !hl_has_capture(dir))
        hl_remove_capture(dir); /* refused: nothing worth keeping */
    free(dir);
    free(lib);
    free(gdb);
    return code;
}
