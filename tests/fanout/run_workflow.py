#!/usr/bin/env python3
"""Run .github/workflows/compare.yml's shard and merge jobs here, in sequence, as
GitHub Actions would: every matrix entry of the shard job, then the merge job, each in a
fresh checkout (a folder with the repository's scripts/ and traces/), artifacts kept
in a folder between jobs.

    run_workflow.py WORKFLOW SRC WORKDIR

Steps are run with bash -e after substituting ${{ matrix.* }} and
${{ strategy.job-total }}; the workflow's env applies.  What cannot run here is left
out and said so: the test job (it is the suite this runs in) and the set-up steps
(sudo scripts/setup: the build exists, HEAPLAB points at it).  Exits non-zero with
one line when the workflow is not the expected shape or a step fails."""
import os
import re
import shutil
import subprocess
import sys

import yaml


def fail(msg):
    print(f"run_workflow: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


def substitute(text, ctx):
    def one(m):
        key = m.group(1).strip()
        if key not in ctx:
            fail(f"unknown expression ${{{{ {key} }}}}")
        return str(ctx[key])
    return re.sub(r"\$\{\{([^}]*)\}\}", one, text)


def checkout(src, workdir, name):
    d = os.path.join(workdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for part in ("scripts", "traces"):
        os.symlink(os.path.join(src, part), os.path.join(d, part))
    return d


def run_job(job, ctx, src, workdir, name, artifacts, env):
    d = None
    for step in job["steps"]:
        uses = step.get("uses", "")
        w = {k: substitute(str(v), ctx) for k, v in (step.get("with") or {}).items()}
        if uses.startswith("actions/checkout"):
            d = checkout(src, workdir, name)
        elif uses.startswith("actions/upload-artifact"):
            expect(os.path.exists(os.path.join(d, w["path"])), f"{name}: nothing at {w['path']} to upload")
            shutil.copytree(os.path.join(d, w["path"]), os.path.join(artifacts, w["name"]))
        elif uses.startswith("actions/download-artifact"):
            pattern = re.compile("^" + re.escape(w["pattern"]).replace("\\*", ".*") + "$")
            dest = os.path.join(d, w["path"])
            os.makedirs(dest, exist_ok=True)
            got = [a for a in sorted(os.listdir(artifacts)) if pattern.match(a)]
            expect(got, f"{name}: no artifact matches {w['pattern']}")
            for a in got:
                target = dest if w.get("merge-multiple") == "True" else os.path.join(dest, a)
                shutil.copytree(os.path.join(artifacts, a), target, dirs_exist_ok=True)
        elif "run" in step:
            cmd = substitute(step["run"], ctx)
            if cmd.startswith("sudo scripts/setup") or cmd.startswith("sudo scripts/test"):
                print(f"# {name}: left out here: {cmd}")
                continue
            expect(d, f"{name}: a run step before the checkout")
            print(f"# {name}: {cmd}")
            r = subprocess.run(["bash", "-e", "-c", cmd], cwd=d, env=env)
            expect(r.returncode == 0, f"{name}: step '{step.get('name', cmd)}' failed (exit {r.returncode})")
        else:
            fail(f"{name}: a step neither runs nor uses a known action: {step}")
    return d


def main():
    if len(sys.argv) != 4:
        fail("usage: run_workflow.py WORKFLOW SRC WORKDIR")
    wf_path, src, workdir = sys.argv[1:]
    wf = yaml.safe_load(open(wf_path))
    jobs = wf.get("jobs") or {}
    # PyYAML reads the key `on` as True (YAML 1.1).
    expect(True in wf or "on" in wf, "no 'on' triggers")
    expect(set(jobs) >= {"test", "shard", "merge"}, f"jobs are {sorted(jobs)}, want test, shard, merge")
    expect(jobs["shard"].get("needs") == "test", "the shard job must need the test job")
    expect(jobs["merge"].get("needs") == "shard", "the merge job must need the shard job")
    shards = jobs["shard"]["strategy"]["matrix"]["shard"]
    expect(shards == list(range(1, len(shards) + 1)), f"matrix.shard should be 1..N, is {shards}")
    env = dict(os.environ)
    env.update({k: str(v) for k, v in (wf.get("env") or {}).items()})
    env["GITHUB_STEP_SUMMARY"] = os.path.join(workdir, "step-summary.md")
    artifacts = os.path.join(workdir, "artifacts")
    shutil.rmtree(artifacts, ignore_errors=True)
    os.makedirs(artifacts)
    print(f"# test job left out here (it is the suite this runs in)")
    for s in shards:
        ctx = {"matrix.shard": s, "strategy.job-total": len(shards)}
        run_job(jobs["shard"], ctx, src, workdir, f"shard-{s}", artifacts, env)
    run_job(jobs["merge"], {}, src, workdir, "merge", artifacts, env)
    print(f"# artifacts: {' '.join(sorted(os.listdir(artifacts)))}")


main()
