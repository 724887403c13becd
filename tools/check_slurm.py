#!/usr/bin/env python3
"""launch/slurm.sbatch under a real SLURM: a manual check (not a ctest test: CI has no SLURM).

    tools/slurm_local.sh             # a single-node SLURM on this machine (as root)
    tools/check_slurm.py [--s2s build/s2s] [--keep] [--no-time-limit]
    tools/slurm_local.sh stop

Runs the real launch/slurm.sbatch on a tiny stage-3 recipe (configs/tiny, made as tests/dist/test_train_dist.py
makes its own) with 2 tasks on the one node, the script's #SBATCH node / GPU lines overridden from the sbatch
command line (--nodes=1 --ntasks-per-node=2 --gpus-per-task=0 --cpus-per-task=1), and checks:

  a. the job completes; 2 ranks ran (logs/rank_0.log and rank_1.log, "rank 1 of 2 (mpi)"), started by srun with
     PMIx (the tasks' environment: SLURM_STEP_ID, SLURM_PROCID, PMIX_RANK); metrics.jsonl has the planned steps;
  b. a SIGUSR1 to the tasks (scancel --signal=USR1 JOBID): every rank stops after the same step with one checkpoint,
     exit 0, no requeue; scontrol requeue: the requeued job resumes (--resume auto) from that checkpoint, goes on;
  c. the time-limit signal (--signal=B:USR1@120 in the script, emulated by scancel --batch --signal=USR1 JOBID):
     the script passes it to the tasks, they stop with a checkpoint and the job requeues itself and resumes;
  d. (skipped with --no-time-limit) the same at a real time limit: --time=2 --signal=B:USR1@60.

Prints ok / FAILED lines; exits 1 on a failure, 2 when no SLURM is up. The run directories are on local disk:
one node. Keeps its files with --keep (their directory is printed).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))

ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
ap.add_argument("--s2s", default=os.path.join(ROOT, "build", "s2s"))
ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
ap.add_argument("--no-time-limit", action="store_true", help="skip d (a job run into its time limit, ~2 min)")
args = ap.parse_args()
S2S = os.path.abspath(args.s2s)
failures = []


def check(cond, what):
    print(("ok     " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def sh(*cmd, **kw):
    return subprocess.run(list(cmd), capture_output=True, text=True, **kw)


if not shutil.which("sbatch") or sh("sinfo", "-h", "-o", "%t").returncode != 0 or \
        "idle" not in sh("sinfo", "-h", "-o", "%t").stdout:
    print("check_slurm: no SLURM with an idle node here; start one: tools/slurm_local.sh")
    sys.exit(2)
if not os.access(S2S, os.X_OK):
    print(f"check_slurm: no {S2S}; build it: cmake --build build --target s2s")
    sys.exit(2)
VERSION = sh("sinfo", "-V").stdout.strip()
MPI = sh("scontrol", "show", "config").stdout
MPI = re.search(r"^MpiDefault\s*=\s*(\S+)", MPI, re.M).group(1)
print(f"check_slurm: {VERSION}, MpiDefault={MPI}, {sh('sinfo', '-h', '-o', '%N %c CPUs %t').stdout.strip()}")

import torch_train_ref as R  # noqa: E402  (after the checks above: it imports torch)

TMP = tempfile.mkdtemp(prefix="s2s_slurm_")
MODEL = R.init_model(os.path.join(TMP, "model"), seed=3, s2s=S2S)
SHARDS = os.path.dirname(R.make_shards(os.path.join(TMP, "instruct"), "instruct", 8, 5, s2s=S2S))
SBATCH = os.path.join(ROOT, "launch", "slurm.sbatch")
# S2S: the script's binary (default build/s2s, relative to the submission directory, here TMP).
ENV = dict(os.environ, S2S=S2S)


def recipe(name, steps, every):
    r = {"stage": "stage3", "seed": 7,
         "model": {"init": MODEL, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                   "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
         "data": {"train": [SHARDS], "prefetch": 1},
         "train": {"batch_size": 1, "grad_accum": 1, "max_steps": steps, "threads": 1},
         "optim": {"lr": 2e-3, "warmup_steps": 1},
         "run": {"dir": os.path.join(TMP, "runs", name)},
         "checkpoint": {"every": every}}
    path = os.path.join(TMP, name + ".yaml")
    json.dump(r, open(path, "w"))
    return path, r["run"]["dir"]


def submit(path, time_limit="10", extra=()):
    cmd = ["sbatch", "--parsable", f"--chdir={TMP}", "--nodes=1", "--ntasks-per-node=2", "--gpus-per-task=0",
           "--cpus-per-task=1", f"--time={time_limit}", *extra, SBATCH, path]
    p = sh(*cmd, env=ENV)
    if not check(p.returncode == 0, f"sbatch {' '.join(cmd[2:])}: job {p.stdout.strip()}"):
        print(p.stderr)
        return None
    return p.stdout.strip().split(";")[0]


def job(jid):
    out = sh("scontrol", "show", "job", "-o", jid).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def wait_job(jid, pred, timeout, what):
    t0 = time.time()
    while time.time() - t0 < timeout:
        j = job(jid)
        if pred(j):
            return j
        time.sleep(0.5)
    j = job(jid)
    check(False, f"job {jid}: {what} within {timeout} s (JobState={j.get('JobState')}, Reason={j.get('Reason')})")
    return None


def done(j):
    return j.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def metrics(run):
    mp = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(mp):
        return []
    return [r for r in map(json.loads, filter(str.strip, open(mp))) if "loss" in r]


def wait_steps(run, n, timeout=300):
    t0 = time.time()
    while time.time() - t0 < timeout:
        m = metrics(run)
        if m and m[-1]["step"] >= n:
            return m[-1]["step"]
        time.sleep(0.2)
    return None


def rank_log(run, r):
    p = os.path.join(run, "logs", f"rank_{r}.log")
    return open(p).read() if os.path.exists(p) else ""


def stopped_lines(run):
    return [[l.strip() for l in rank_log(run, r).splitlines() if "received: stopped after step" in l] for r in (0, 1)]


def checkpoints(run):
    d = os.path.join(run, "checkpoints")
    return sorted(int(x[5:]) for x in os.listdir(d) if x.startswith("step_")) if os.path.isdir(d) else []


def tasks_env(jid):
    """The environments of this job's s2s tasks (read from /proc: one node)."""
    envs = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            if not cmd or os.path.basename(cmd[0].decode()) != os.path.basename(S2S) or b"train" not in cmd:
                continue
            env = dict(kv.split("=", 1) for kv in open(f"/proc/{pid}/environ", "rb").read().decode(
                errors="replace").split("\0") if "=" in kv)
        except OSError:
            continue
        if env.get("SLURM_JOB_ID") == jid:
            envs.append(env)
    return envs


def stop_and_check(jid, run, signal_cmd, name, expect_requeue):
    """Send signal_cmd once a few steps are logged; check every rank stopped after the same step, one checkpoint,
    exit 0. Returns the checkpoint step."""
    before = checkpoints(run)
    base = metrics(run)[-1]["step"] if metrics(run) else 0
    got = wait_steps(run, base + 3)
    if not check(got is not None, f"{name}: job {jid} logs steps (now {got})"):
        return None
    p = sh(*signal_cmd)
    check(p.returncode == 0, f"{name}: {' '.join(signal_cmd)} after step {got} {p.stderr.strip()}")
    if expect_requeue:
        # the script requeues its job: it goes back to PENDING / REQUEUED with one more restart
        restarts = int(job(jid).get("Restarts", 0))
        j = wait_job(jid, lambda j: int(j.get("Restarts", 0)) > restarts, 240, "requeued by the script")
        if j:
            check(True, f"{name}: the script requeued job {jid} (Restarts={j['Restarts']}, JobState={j['JobState']})")
    else:
        j = wait_job(jid, done, 240, "ends")
        if j:
            check(j["JobState"] == "COMPLETED" and j["ExitCode"] == "0:0" and j.get("Restarts") == job(jid)["Restarts"],
                  f"{name}: job {jid} {j['JobState']}, ExitCode {j['ExitCode']}, not requeued "
                  f"(Restarts={j.get('Restarts')})")
    stop = stopped_lines(run)
    new = [s for s in checkpoints(run) if s not in before]
    last = [s[-1] if s else None for s in stop]
    step = int(re.search(r"after step (\d+)", last[0]).group(1)) if last[0] else None
    m = metrics(run)
    check(last[0] is not None and last[0] == last[1] and new == [step] and m and m[-1]["step"] == step,
          f"{name}: both ranks stopped after the same step ({last[0]!r} / {last[1]!r}), one new checkpoint "
          f"{new}, metrics end at step {m[-1]['step'] if m else None}")
    return step


def check_resumed(jid, run, step, name):
    """The (re)started job resumes from checkpoint `step` and goes on past it."""
    j = wait_job(jid, lambda j: j.get("JobState") == "RUNNING", 300, "running again")
    if not j:
        return False
    got = wait_steps(run, step + 2)
    resumed = [l for l in rank_log(run, 0).splitlines() if "resuming" in l]
    m = metrics(run)
    after = [r["step"] for r in m if r["step"] > step]
    return check(got is not None and resumed and f"step_{step:08d} at step {step}" in resumed[-1]
                 and after[:2] == [step + 1, step + 2],
                 f"{name}: job {jid} (Restarts={j.get('Restarts')}) resumed from step {step} "
                 f"({resumed[-1].strip() if resumed else 'no resume line'}) and continued to step {got}")


# ---- a. a complete run: 2 ranks through srun ---------------------------------------------------------------------
pa, ra = recipe("complete", 4, 2)
jid = submit(pa)
if jid:
    j = wait_job(jid, done, 300, "completes")
    if j:
        check(j["JobState"] == "COMPLETED" and j["ExitCode"] == "0:0" and j.get("NumTasks") == "2",
              f"a: job {jid} {j['JobState']}, ExitCode {j['ExitCode']}, NumTasks {j.get('NumTasks')}")
        logs = sorted(os.listdir(os.path.join(ra, "logs"))) if os.path.isdir(os.path.join(ra, "logs")) else []
        check(logs == ["rank_0.log", "rank_1.log"] and "rank 1 of 2 (mpi)" in rank_log(ra, 1)
              and "rank 0 of 2 (mpi)" in rank_log(ra, 0), f"a: 2 MPI ranks, each its log {logs}, 'rank 1 of 2 (mpi)'")
        m = metrics(ra)
        check([r["step"] for r in m] == [1, 2, 3, 4] and all(r["samples"] == 2 * r["step"] for r in m)
              and checkpoints(ra) == [2, 4],
              f"a: metrics steps {[r['step'] for r in m]}, samples {[r['samples'] for r in m]} (2 ranks x batch 1), "
              f"checkpoints {checkpoints(ra)}, losses {[round(r['loss'], 4) for r in m]}")
        out = os.path.join(TMP, f"s2s-train-{jid}.out")
        check(os.path.exists(out) and "done, step 4" in open(out).read(),
              f"a: the job's output {os.path.basename(out)} (#SBATCH --output) ends 'done, step 4'")

# ---- b. SIGUSR1 to the tasks, scontrol requeue -------------------------------------------------------------------
pb, rb = recipe("requeue", 100000, 100000)
jid = submit(pb)
if jid and wait_job(jid, lambda j: j.get("JobState") == "RUNNING", 120, "starts") and wait_steps(rb, 1):
    envs = tasks_env(jid)
    check(len(envs) == 2 and sorted(e.get("SLURM_PROCID") for e in envs) == ["0", "1"]
          and all(e.get("SLURM_STEP_ID") == "0" and "PMIX_RANK" in e and "OMPI_COMM_WORLD_RANK" not in e
                  for e in envs),
          f"b: job {jid}: 2 s2s tasks started by srun (step {jid}.0, SLURM_PROCID "
          f"{sorted(e.get('SLURM_PROCID') for e in envs)}, PMIX_RANK {sorted(e.get('PMIX_RANK') for e in envs)}, "
          f"no mpirun)")
    step = stop_and_check(jid, rb, ["scancel", "--signal=USR1", jid], "b", expect_requeue=False)
    if step:
        p = sh("scontrol", "requeue", jid)
        check(p.returncode == 0, f"b: scontrol requeue {jid} {p.stderr.strip()}")
        if check_resumed(jid, rb, step, "b"):
            stop_and_check(jid, rb, ["scancel", "--signal=USR1", jid], "b (requeued)", expect_requeue=False)
sh("scancel", jid) if jid else None

# ---- c. the time-limit signal to the script: it requeues itself ---------------------------------------------------
pc, rc = recipe("self_requeue", 100000, 100000)
jid = submit(pc)
if jid and wait_job(jid, lambda j: j.get("JobState") == "RUNNING", 120, "starts") and wait_steps(rc, 1):
    step = stop_and_check(jid, rc, ["scancel", "--batch", "--signal=USR1", jid], "c", expect_requeue=True)
    if step and check_resumed(jid, rc, step, "c"):
        stop_and_check(jid, rc, ["scancel", "--signal=USR1", jid], "c (requeued)", expect_requeue=False)
sh("scancel", jid) if jid else None

# ---- d. a real time limit ----------------------------------------------------------------------------------------
if not args.no_time_limit:
    pd, rd = recipe("time_limit", 100000, 100000)
    # SLURM sends the --signal no sooner than asked and checks about every 30 s: 60 s before a 2-minute limit
    jid = submit(pd, "2", ["--signal=B:USR1@60"])
    if jid and wait_job(jid, lambda j: j.get("JobState") == "RUNNING", 120, "starts"):
        j = wait_job(jid, lambda j: int(j.get("Restarts", 0)) >= 1, 200, "requeued at its time limit")
        stop = stopped_lines(rd)
        step = int(re.search(r"after step (\d+)", stop[0][-1]).group(1)) if stop[0] else None
        check(j is not None and step and stop[0][-1] == stop[1][-1] and checkpoints(rd) == [step],
              f"d: job {jid} (--time=2): SIGUSR1 before the limit, both ranks stopped after step {step}, "
              f"checkpoints {checkpoints(rd)}, requeued by the script (Restarts={j.get('Restarts') if j else None})")
        if step and check_resumed(jid, rd, step, "d"):
            sh("scancel", "--signal=USR1", jid)
            wait_job(jid, done, 240, "ends")
    sh("scancel", jid) if jid else None

if args.keep:
    print(f"check_slurm: files kept in {TMP}")
else:
    shutil.rmtree(TMP, ignore_errors=True)
print(f"check_slurm: {'FAILED: ' + str(len(failures)) if failures else 'all passed'} ({VERSION}, MpiDefault={MPI})")
sys.exit(1 if failures else 0)
