"""direct.py: running the suite's programs directly under each allocator and measuring
them; shared by scripts/bench-allocators and scripts/bench-replay.

One run is the program started by /usr/bin/time (itself under `nice`) with the
allocator's library in LD_PRELOAD (none for glibc): wall time from here, and from
/usr/bin/time, which reads wait4's rusage of its child: user+system CPU time, peak RSS
and minor faults.  The rusage of a waited-for child covers its own waited-for children,
so for a program that runs others (gcc, make) CPU time and faults are the whole tree's
and peak RSS is the largest of any process in it.  Runs of the allocators are
interleaved (A B C D E A B C D E ...), so that load from other work hits them alike.
"""
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import programs

NICE = ["nice", "-n", "5"]
TIME = "/usr/bin/time"


class RunFailed(Exception):
    pass


def measure(run, lib, scratch):
    """One timed run of `run` under `lib`; returns {wall, cpu, rss, faults, digest}."""
    run.prepare()
    out, tf, err = (os.path.join(scratch, f) for f in ("stdout", "time", "stderr"))
    env = programs.env_for(run, lib)
    with open(run.stdin or os.devnull) as fin, open(out, "wb") as fout, open(err, "wb") as ferr:
        t0 = time.perf_counter()
        rc = subprocess.run(NICE + [TIME, "-f", "%U %S %M %R", "-o", tf] + run.argv, env=env,
                            stdin=fin, stdout=fout, stderr=ferr, cwd=run.cwd).returncode
        wall = time.perf_counter() - t0
    with open(tf) as f:
        fields = f.read().split()
    if rc != 0 or len(fields) < 4:
        with open(err, errors="replace") as f:
            last = [l for l in f.read().splitlines() if l.strip() and "exited with" not in l]
        raise RunFailed("%s exited with status %d%s" % (os.path.basename(run.argv[0]), rc,
                                                      ": " + last[-1] if last else ""))
    user, sys_, rss_kb, faults = fields[-4:]
    return {"wall": wall, "cpu": float(user) + float(sys_), "rss": int(rss_kb) * 1024,
            "faults": int(faults), "digest": programs.digest(run, rc, out)}


def interleaved(run, allocs, runs, scratch, progress=None):
    """`runs` rounds of one run per allocator; {allocator: [measure() dicts]}."""
    samples = {a: [] for a in allocs}
    for k in range(runs):
        for a, lib in allocs.items():
            try:
                samples[a].append(measure(run, lib, scratch))
            except RunFailed as e:
                raise RunFailed("under %s: %s" % (a, e))
        if progress:
            progress(k + 1, runs)
    return samples


def spread(values):
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def beyond_spread(xs, ys):
    """True when the two samples' min..max ranges do not overlap: every run of one was
    faster (smaller) than every run of the other.  With 7 runs each, two samples of the
    same distribution do that with probability 2/C(14,7) = 0.06%."""
    return max(xs) < min(ys) or max(ys) < min(xs)


def geomean(xs):
    xs = [x for x in xs if x and x > 0 and x == x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def human_time(s):
    return "%.2f s" % s if s >= 1 else "%.0f ms" % (s * 1e3) if s >= 1e-3 else "%.0f us" % (s * 1e6)


def human_bytes(b):
    for unit in ("B", "KiB", "MiB", "GiB"):
        if b < 1024 or unit == "GiB":
            return ("%.0f %s" if unit == "B" else "%.1f %s") % (b, unit)
        b /= 1024.0


def _cmd(argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def _library_of(allocs, name):
    """How the table names an allocator without a package version: its library's path
    (a --with library, a policy variant), when allocs maps names to paths."""
    lib = allocs.get(name) if isinstance(allocs, dict) else None
    return "(%s)" % lib if lib else "?"


def machine(allocs, build):
    """The machine and the allocators the figures come from, as {field: text}."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = {"glibc": platform.libc_ver()[1] or "?"}
    for a in allocs:
        pkg = programs.ALLOCATOR_PACKAGES.get(a)
        if pkg:
            versions[a] = _cmd(["dpkg-query", "-W", "-f=${Version}", pkg]) or "?"
    heaplab = os.path.join(build, "heaplab")
    versions["heaplab"] = (_cmd([heaplab, "--version"]).split() or ["", "?"])[-1]
    rev = _cmd(["git", "-C", programs.ROOT, "rev-parse", "--short", "HEAD"])
    return {
        "cpu": cpu, "cores": str(os.cpu_count()), "kernel": platform.release(),
        "libc": "glibc " + versions["glibc"],
        "allocators": ", ".join("%s %s" % (a, versions.get(a) or _library_of(allocs, a))
                                for a in allocs),
        "heaplab commit": rev or "?",
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "load average at start": "%.1f" % os.getloadavg()[0],
    }


def markdown_table(head, rows):
    line = lambda cells: "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"
    return "\n".join([line(head), line(["---"] * len(head))] + [line(r) for r in rows]) + "\n"


def machine_markdown(desc):
    return markdown_table(["machine", ""], list(desc.items()))


def scratch_dir():
    return tempfile.TemporaryDirectory(prefix="heaplab-suite.")


def parse_args(prog, argv, options, max_positional):
    """Command-line parsing shared by the benchmark scripts: `options` maps '--name' to
    its default (a value option, given as --name=V or --name V) or to None (a flag).
    Returns (positional arguments, {name: value or True/False}); any error is one line on
    stderr and exit status 2."""
    def fail(msg):
        print("%s: %s" % (prog, msg), file=sys.stderr)
        sys.exit(2)
    pos, opts = [], {k: (v if v is not None else False) for k, v in options.items()}
    args = list(argv)
    while args:
        a = args.pop(0)
        if not a.startswith("--"):
            pos.append(a)
            continue
        name, eq, value = a.partition("=")
        if name == "--help":
            print(sys.modules["__main__"].__doc__.strip())
            sys.exit(0)
        if name not in options:
            fail("unknown option '%s' (see --help)" % name)
        if options[name] is None:
            if eq:
                fail("option %s takes no value" % name)
            opts[name] = True
        else:
            if not eq:
                if not args:
                    fail("option %s needs a value" % name)
                value = args.pop(0)
            opts[name] = value
    if len(pos) > max_positional:
        fail("unexpected argument '%s' (see --help)" % pos[max_positional])
    return pos, opts


def positive_int(prog, name, value):
    try:
        v = int(value)
        if v >= 1:
            return v
    except ValueError:
        pass
    print("%s: %s must be a positive integer, not '%s'" % (prog, name, value), file=sys.stderr)
    sys.exit(2)


def check_size(prog, size):
    if size not in programs.SIZES:
        print("%s: unknown size '%s' (sizes: %s)" % (prog, size, ", ".join(programs.SIZES)),
              file=sys.stderr)
        sys.exit(2)
    return size
