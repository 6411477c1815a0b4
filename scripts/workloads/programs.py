"""programs.py: the programs of heaplab's direct-run suites, defined once.

scripts/bench-replay (fidelity: run directly, then recorded and replayed) and
scripts/bench-allocators (the direct-run suite) take their programs from PROGRAMS, and
tests/programs/ checks from it that every program prints the same under heaplab's
allocator as under glibc.  A program is:

  name      what the tables call it
  package   the Debian package it comes from ('heaplab' for the project's own programs)
  lang      the language the program is written in (C, C++, ...)
  kind      'real' (a program users run, from a Debian package), 'classic' (an allocator
            benchmark in the style of the classic ones, scripts/workloads/*.c) or
            'project' (heaplab's own workload programs, allocators/heaplab/bench/)
  par       'threads', 'processes' or 'single'
  sizes     {size: parameter} for the sizes 'test' (tests: a fraction of a second),
            'small' (a quick run of the suite) and 'full' (0.5-3 s on a 2-core machine)
  setup     setup(work, param, threads) -> Run: writes the program's inputs into the
            folder `work` and says how to run it; `threads` (None: the program's own
            default) is the thread count of the thread-scaling mode, for the programs
            whose `scaling` is True

A Run holds the command line, extra environment, a standard input file, the output files
that belong to its result, and `fresh`: files removed before every run (a build's
products), so that each run does the same work.  The result of a run, the thing compared
across allocators, is its exit status, its standard output and its output files
(digest() below); standard error is not part of it.

Command line:  python3 scripts/workloads/programs.py list | names
               python3 scripts/workloads/programs.py digest NAME [--size S] [--build DIR]
                                                     [--preload LIB]
`digest` sets the program up in a scratch folder, runs it once (under LIB when given) and
prints its exit status and the SHA-256 of its result; used by the tests.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SIZES = ("test", "small", "full")
TCMALLOC = "/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4"
# The allocators of the suites, in table order; None is glibc (no preload).  heaplab's
# path is relative to the build folder.
ALLOCATORS = (
    ("glibc", None),
    ("jemalloc", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
    ("mimalloc", "/usr/lib/x86_64-linux-gnu/libmimalloc.so.2"),
    ("tcmalloc", TCMALLOC),
    ("heaplab", "allocators/heaplab/libheaplab-malloc.so"),
)
# Debian packages that carry the allocators, for the machine description.
ALLOCATOR_PACKAGES = {"jemalloc": "libjemalloc2", "mimalloc": "libmimalloc2.0",
                      "tcmalloc": "libtcmalloc-minimal4"}


def allocators(build, names=None):
    """{name: library path or None} of the suite's allocators (or of `names`, in that
    order); raises ValueError naming the first one that is unknown or missing."""
    table = dict(ALLOCATORS)
    out = {}
    for n in names or [n for n, _ in ALLOCATORS]:
        if n not in table:
            raise ValueError("unknown allocator '%s' (known: %s)" % (n, ", ".join(table)))
        lib = table[n] and os.path.join(build, table[n]) if n == "heaplab" else table[n]
        if lib and not os.path.exists(lib):
            raise ValueError("%s: %s not found" % (n, lib))
        out[n] = lib
    return out


class Run:
    def __init__(self, argv, env=None, stdin=None, outputs=(), fresh=(), cwd=None):
        self.argv, self.env, self.stdin = argv, env or {}, stdin
        self.outputs, self.fresh, self.cwd = list(outputs), list(fresh), cwd

    def prepare(self):
        """Removes what an earlier run made, so that this one does the same work."""
        for f in self.fresh:
            if os.path.isdir(f):
                shutil.rmtree(f)
            elif os.path.exists(f):
                os.remove(f)


class Program:
    def __init__(self, name, package, lang, kind, par, sizes, setup, scaling=False):
        self.name, self.package, self.lang, self.kind, self.par = name, package, lang, kind, par
        self.sizes, self.setup_fn, self.scaling = sizes, setup, scaling

    def setup(self, work, size, build, threads=None):
        os.makedirs(work, exist_ok=True)
        return self.setup_fn(work, self.sizes[size], build, threads)


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


def words(n, seed):
    """n pseudo-random words from a small vocabulary: deterministic, compressible text."""
    x, out = seed, []
    syll = ("ka", "lo", "mi", "ne", "ru", "ta", "so", "vi", "de", "ga", "po", "zu")
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & (2**64 - 1)
        k = 1 + (x >> 60) % 4
        out.append("".join(syll[(x >> (8 * i + 3)) % len(syll)] for i in range(k)))
    return out


# ---- real programs: inputs are generated, the size sets how much work there is ----

def setup_gcc(work, n, build, threads):
    """A C file of n functions with loops, switches, structs and inlining to do."""
    parts = ["#include <string.h>\n", "struct rec { int a, b; double c; char name[24]; };\n"]
    for i in range(n):
        parts.append("""
static int helper%(i)d(const struct rec *r, int k) { return r->a * %(m)d + r->b - k %% %(p)d; }
double work%(i)d(struct rec *v, int n, int mode)
{
    double acc = %(i)d.5;
    for (int i = 0; i < n; i++) {
        switch ((v[i].a + mode) %% 5) {
        case 0: acc += helper%(i)d(&v[i], i) * v[i].c; break;
        case 1: acc -= v[i].b / (v[i].c + 1.0); memcpy(v[i].name, "w%(i)d", 4); break;
        case 2: for (int j = 0; j < v[i].a %% 7; j++) acc += j * %(m)d; break;
        case 3: v[i].a ^= v[(i + 1) %% n].b; acc *= 1.0001; break;
        default: acc += strlen(v[i].name);
        }
    }
    return acc + (mode > %(p)d ? work%(prev)d(v, n / 2, mode - 1) : 0);
}
""" % {"i": i, "m": 3 + i % 11, "p": 2 + i % 13, "prev": max(i - 1, 0)})
    src = write(os.path.join(work, "gen.c"), "".join(parts).replace(
        "double work0(", "double work0(struct rec *v, int n, int mode);\ndouble work0(", 1))
    obj = os.path.join(work, "gen.o")
    return Run(["gcc", "-O2", "-c", src, "-o", obj], outputs=[obj], fresh=[obj])


def setup_gxx(work, n, build, threads):
    """A C++ file with n classes instantiating standard containers and algorithms."""
    parts = ["#include <algorithm>\n#include <map>\n#include <string>\n#include <vector>\n"
             "#include <memory>\n#include <functional>\n"]
    for i in range(n):
        parts.append("""
template <typename K> struct Table%(i)d {
    std::map<K, std::vector<std::string>> rows;
    std::function<int(const K &)> score = [](const K &k) { return int(sizeof(k)) * %(i)d; };
    void add(const K &k, const std::string &s) { rows[k].push_back(s + "%(i)d"); }
    std::vector<K> keys() const {
        std::vector<K> out;
        for (auto &kv : rows) out.push_back(kv.first);
        std::sort(out.begin(), out.end(), [this](const K &a, const K &b) { return score(a) < score(b) || a < b; });
        return out;
    }
};
int use%(i)d(int n) {
    Table%(i)d<int> a; Table%(i)d<std::string> b; auto p = std::make_shared<Table%(i)d<long>>();
    for (int j = 0; j < n; j++) { a.add(j, "x"); b.add(std::to_string(j), "y"); p->add(j, "z"); }
    return int(a.keys().size() + b.keys().size() + p->keys().size());
}
""" % {"i": i})
    src = write(os.path.join(work, "gen.cc"), "".join(parts))
    obj = os.path.join(work, "gen.o")
    return Run(["g++", "-O1", "-c", src, "-o", obj], outputs=[obj], fresh=[obj])


PYTHON_SCRIPT = r'''
import json, sys, threading
n, threads = int(sys.argv[1]), int(sys.argv[2])
results = [None] * threads
def work(t):
    d = {}
    for i in range(n):
        k = "k%d-%d" % (t, i * 7919 % n)
        d[k] = [i, k * (1 + i % 3), {"v": i % 97, "t": (t, i)}]
        if i % 4 == 0:
            d.pop("k%d-%d" % (t, (i // 2) * 7919 % n), None)
    doc = json.dumps(sorted(d.items())[: n // 8])
    back = json.loads(doc)
    words = " ".join("w%d" % (i * 31 % 1009) for i in range(n)).split()
    counts = {}
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    results[t] = (len(d), len(back), sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for x in ts: x.start()
for x in ts: x.join()
for r in results: print(r)
'''


def setup_python(work, n, build, threads):
    """python3 with its small-object allocator off (PYTHONMALLOC=malloc: every object is a
    malloc call), building, serialising and counting in several threads."""
    script = write(os.path.join(work, "work.py"), PYTHON_SCRIPT)
    return Run(["/usr/bin/python3", script, str(n), str(threads or 4)],
               env={"PYTHONMALLOC": "malloc"})


PERL_SCRIPT = r'''
use strict; use warnings;
my $n = shift;
my (%h, @keep);
for my $i (1 .. $n) {
    my $k = "k" . ($i * 7919 % $n);
    $h{$k} = [$i, "v" x ($i % 40), { n => $i % 97 }];
    delete $h{"k" . (($i / 2) * 7919 % $n)} if $i % 3 == 0;
    push @keep, join(",", map { $_ * 3 } 1 .. ($i % 12)) if $i % 5 == 0;
}
my @s = sort { $h{$a}[0] <=> $h{$b}[0] } keys %h;
my $text = join(" ", @keep);
my $m = () = $text =~ /(\d+),(\d+)/g;
my %c; $c{length $_}++ for split /,/, $text;
print scalar(@s), " ", $m, " ", join(";", map { "$_=$c{$_}" } sort { $a <=> $b } keys %c), "\n";
'''


def setup_perl(work, n, build, threads):
    script = write(os.path.join(work, "work.pl"), PERL_SCRIPT)
    return Run(["/usr/bin/perl", script, str(n)])


SQL = """
CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, price REAL, note TEXT);
CREATE TABLE tag(item INTEGER, tag TEXT);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %(n)d)
INSERT INTO item SELECT x, 'item-' || (x * 7919 %% %(n)d), x %% 97, (x * 31 %% 1000) / 10.0,
       substr(hex(randomblob(8)), 1, 0) || printf('%%0*d', 10 + x %% 50, x) FROM c;
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < %(t)d)
INSERT INTO tag SELECT x %% %(n)d + 1, 't' || (x %% 113) FROM c;
CREATE INDEX item_grp ON item(grp, price);
CREATE INDEX tag_item ON tag(item);
SELECT grp, count(*), round(sum(price), 1), max(length(note)) FROM item GROUP BY grp ORDER BY grp LIMIT 5;
SELECT t.tag, count(DISTINCT i.grp), round(avg(i.price), 3) FROM tag t JOIN item i ON i.id = t.item
 GROUP BY t.tag ORDER BY 2 DESC, 1 LIMIT 5;
UPDATE item SET note = note || name WHERE id %% 3 = 0;
DELETE FROM tag WHERE item %% 5 = 0;
SELECT count(*), sum(length(note)) FROM item;
SELECT count(*) FROM (SELECT name FROM item ORDER BY note DESC, name LIMIT %(n)d / 2);
SELECT group_concat(name, ',') IS NOT NULL, count(*) FROM (SELECT name FROM item WHERE grp < 10 ORDER BY name);
"""


def setup_sqlite(work, n, build, threads):
    """sqlite3 on an in-memory database: generated rows, indexes, joins, sorts, updates.
    (randomblob feeds nothing into the result, so the output is deterministic.)"""
    sql = write(os.path.join(work, "work.sql"), SQL % {"n": n, "t": 3 * n})
    return Run(["/usr/bin/sqlite3", ":memory:"], stdin=sql)


def text_file(work, megabytes):
    path = os.path.join(work, "input.txt")
    if not os.path.exists(path):
        line = words(60000, 7)
        with open(path, "w") as f:
            size, i = 0, 0
            while size < megabytes * 2**20:
                chunk = " ".join(line[i % 50000:i % 50000 + 12]) + " %d\n" % i
                f.write(chunk)
                size += len(chunk)
                i += 1
    return path


def setup_xz(work, mb, build, threads):
    """xz compressing generated text with threads (1 MiB blocks so that they all work)."""
    src = text_file(work, mb)
    return Run(["/usr/bin/xz", "-T%d" % (threads or 2), "-3", "--block-size=1MiB", "-c", src])


def setup_zstd(work, mb, build, threads):
    """zstd at level 15 with worker threads."""
    src = text_file(work, mb)
    return Run(["/usr/bin/zstd", "-q", "-T%d" % (threads or 2), "-15", "-c", src])


MAKEFILE = r"""
N := %(n)d
nums := $(shell seq 1 $(N))
names := $(foreach i,$(nums),part$(i))
sorted := $(sort $(foreach n,$(names),$(n)-$(words $(wordlist 1,$(n:part%%=%%),$(names)))))
define rule
out/$(1).txt: | out
	@echo $(1) $(words $(filter %%$(1) %%$(1)0,$(sorted))) $(patsubst part%%,p%%,$(wordlist 1,20,$(names))) > $$@
endef
$(foreach n,$(names),$(eval $(call rule,$(n))))
all: $(foreach n,$(names),out/$(n).txt) out/prog
	@cat $(sort $(foreach n,$(names),out/$(n).txt)) > out/all.txt
	@./out/prog >> out/all.txt
out:
	@mkdir -p out
objs := $(foreach i,1 2 3 4 5 6,out/u$(i).o)
out/u%%.o: u%%.c | out
	@$(CC) -O1 -c $< -o $@
out/prog: $(objs)
	@$(CC) $(objs) -o $@
$(info $(words $(sorted)) names, checksum $(words $(subst 1, ,$(sorted))))
"""


def setup_make(work, n, build, threads):
    """GNU make -j2 on a generated Makefile: n rules made by $(eval), list functions over
    n names, one shell per rule, and six C files compiled and linked."""
    write(os.path.join(work, "Makefile"), MAKEFILE % {"n": n})
    for i in range(1, 7):
        body = "int f%d(int x) { int s = 0; for (int i = 0; i < x; i++) s += i * %d; return s; }\n" % (i, i)
        if i == 1:
            body += ("#include <stdio.h>\nint f2(int), f3(int), f4(int), f5(int), f6(int);\n"
                     "int main(void) { printf(\"%d\\n\", f1(10) + f2(20) + f3(30) + f4(40)"
                     " + f5(50) + f6(60)); return 0; }\n")
        write(os.path.join(work, "u%d.c" % i), body)
    out = os.path.join(work, "out")
    return Run(["/usr/bin/make", "-s", "-j%d" % (threads or 2), "-C", work, "all"],
               outputs=[os.path.join(out, "all.txt")], fresh=[out], cwd=work)


# ---- allocator benchmarks built by meson ----

def built(build, rel):
    return os.path.join(build, rel)


def classic(prog, extra=()):
    def setup(work, param, build, threads):
        args = [str(threads)] if threads else []
        args += [str(a) for a in (param if isinstance(param, tuple) else (param,))]
        if threads is None and extra:
            args = list(extra) + args
        return Run([built(build, "scripts/workloads/wl-" + prog)] + args)
    return setup


def project(prog):
    def setup(work, param, build, threads):
        return Run([built(build, "allocators/heaplab/hlm-bench-" + prog)] + [str(a) for a in param])
    return setup


PROGRAMS = [
    Program("gcc", "gcc", "C", "real", "processes", {"test": 5, "small": 40, "full": 250}, setup_gcc),
    Program("g++", "g++", "C++", "real", "processes", {"test": 0, "small": 2, "full": 10}, setup_gxx),
    Program("python3", "python3", "C", "real", "threads",
            {"test": 5000, "small": 20000, "full": 100000}, setup_python),
    Program("perl", "perl", "C", "real", "single", {"test": 10000, "small": 50000, "full": 300000},
            setup_perl),
    Program("sqlite3", "sqlite3", "C", "real", "single", {"test": 5000, "small": 30000, "full": 100000},
            setup_sqlite),
    Program("xz", "xz-utils", "C", "real", "threads", {"test": 0.25, "small": 2, "full": 8}, setup_xz),
    Program("zstd", "zstd", "C", "real", "threads", {"test": 0.25, "small": 1, "full": 6}, setup_zstd),
    Program("make", "make", "C", "real", "processes", {"test": 10, "small": 60, "full": 300},
            setup_make),
    # classic-style allocator benchmarks (scripts/workloads/*.c); THREADS comes first
    Program("bignum", "heaplab", "C", "classic", "single",
            {"test": 20000, "small": 300000, "full": 1000000}, classic("bignum")),
    Program("minimise", "heaplab", "C", "classic", "single", {"test": 3, "small": 25, "full": 80},
            classic("minimise")),
    Program("trees", "heaplab", "C", "classic", "single", {"test": 10, "small": 14, "full": 16},
            classic("trees")),
    Program("prodcons", "heaplab", "C", "classic", "threads",
            {"test": 50000, "small": 1000000, "full": 3000000}, classic("prodcons", ["4"]),
            scaling=True),
    Program("xstress", "heaplab", "C", "classic", "threads",
            {"test": (4, 300), "small": (8, 1000), "full": (20, 2000)}, classic("xstress", ["32"]),
            scaling=True),
    # the project's own workload programs (allocators/heaplab/bench/)
    Program("churn-1t", "heaplab", "C", "project", "single",
            {"test": (1, 100000), "small": (1, 1000000), "full": (1, 3000000)}, project("churn")),
    Program("churn-2t", "heaplab", "C", "project", "threads",
            {"test": (2, 50000), "small": (2, 500000), "full": (2, 1500000)}, project("churn")),
    Program("larson-4t", "heaplab", "C", "project", "threads",
            {"test": (4, 5, 5000), "small": (4, 10, 40000), "full": (4, 20, 40000)}, project("larson")),
    Program("fragment", "heaplab", "C", "project", "single", {"test": (1,), "small": (3,), "full": (6,)},
            project("fragment")),
    Program("growth", "heaplab", "C", "project", "single", {"test": (10,), "small": (80,), "full": (200,)},
            project("growth")),
]
BY_NAME = {p.name: p for p in PROGRAMS}


def select(names, kinds):
    """The programs named (comma-separated string, or None for every program of `kinds`);
    raises ValueError on an unknown name."""
    if not names:
        return [p for p in PROGRAMS if p.kind in kinds]
    out = []
    for n in names.split(","):
        if n not in BY_NAME or BY_NAME[n].kind not in kinds:
            known = ", ".join(p.name for p in PROGRAMS if p.kind in kinds)
            raise ValueError("unknown program '%s' (known: %s)" % (n, known))
        out.append(BY_NAME[n])
    return out


def env_for(run, lib):
    """The environment of a run under allocator library `lib` (None: glibc)."""
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.update(run.env)
    if lib:
        env["LD_PRELOAD"] = lib
    return env


def digest(run, rc, stdout_path):
    """What a run produced, as one hex string: exit status, stdout, output files."""
    h = hashlib.sha256(b"exit %d\n" % rc)
    for label, path in [("stdout", stdout_path)] + [(os.path.basename(p), p) for p in run.outputs]:
        h.update(label.encode() + b"\n")
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError:
            h.update(b"<missing>")
    return h.hexdigest()


def run_plain(run, lib, stdout_path):
    """Runs once, untimed, standard output to stdout_path; returns (exit status, digest)."""
    run.prepare()
    with open(run.stdin or os.devnull) as fin, open(stdout_path, "wb") as fout:
        rc = subprocess.run(run.argv, env=env_for(run, lib), stdin=fin, stdout=fout,
                            stderr=subprocess.DEVNULL, cwd=run.cwd).returncode
    return rc, digest(run, rc, stdout_path)


def main(argv):
    def fail(msg):
        print("programs.py: " + msg, file=sys.stderr)
        sys.exit(2)
    if not argv or argv[0] not in ("list", "names", "digest"):
        fail("usage: programs.py list | names | digest NAME [--size S] [--build DIR] [--preload LIB]")
    if argv[0] == "names":
        print(" ".join(p.name for p in PROGRAMS))
        return
    if argv[0] == "list":
        for p in PROGRAMS:
            print("%-10s %-8s %-12s %-4s %s" % (p.name, p.kind, p.package, p.lang, p.par))
        return
    opts = {"--size": "test", "--build": os.path.join(ROOT, "build"), "--preload": None}
    rest = argv[1:]
    if not rest or rest[0] not in BY_NAME:
        fail("unknown program '%s'" % (rest[0] if rest else ""))
    prog, rest = BY_NAME[rest[0]], rest[1:]
    while rest:
        if rest[0] not in opts or len(rest) < 2:
            fail("bad argument '%s'" % rest[0])
        opts[rest[0]], rest = rest[1], rest[2:]
    if opts["--size"] not in SIZES:
        fail("unknown size '%s' (sizes: %s)" % (opts["--size"], ", ".join(SIZES)))
    with tempfile.TemporaryDirectory(prefix="heaplab-prog.") as work:
        run = prog.setup(work, opts["--size"], os.path.abspath(opts["--build"]))
        rc, d = run_plain(run, opts["--preload"], os.path.join(work, "stdout"))
        print("exit %d sha256 %s" % (rc, d))


if __name__ == "__main__":
    main(sys.argv[1:])
