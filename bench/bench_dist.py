"""Data parallelism on this machine: `s2s train` (stage 3, the tiny model) on 1, 2 and 4 ranks under mpirun, with
dist.zero 0 and 1: the step's wall time split into compute (forward, backward, the loader), collectives and the
optimizer (from metrics.jsonl: time_s, time_comm_s, time_optim_s, mean over the steps after the first two), and
the per-rank memory of parameters, gradients and optimizer state (the line each rank logs at start); then the
gradient all-reduce against one plain MPI_Allreduce of the same bytes (bench_comm). Prints; never fails on speed.

usage: python3 bench/bench_dist.py [BUILD_DIR] [--steps N]
On 2 cores, 4 ranks are oversubscribed (one OpenMP thread each): the split, not the speed-up, is the point there.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
import torch_train_ref as R  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else os.path.join(ROOT, "build")
STEPS = int(sys.argv[sys.argv.index("--steps") + 1]) if "--steps" in sys.argv else 6
S2S = os.path.join(BUILD, "s2s")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
TMP = tempfile.mkdtemp(prefix="s2s_bench_dist_")
model = R.init_model(os.path.join(TMP, "model"), seed=3, s2s=S2S)
shards = os.path.dirname(R.make_shards(os.path.join(TMP, "data"), "instruct", 16, 5, s2s=S2S))
print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; tiny model (configs/tiny/model.json), "
      f"batch 1 per rank, {STEPS} steps")
print(f"{'ranks':>5} {'zero':>4} {'step ms':>8} {'compute':>8} {'comm':>8} {'optim':>8} "
      f"{'params MiB':>10} {'grads MiB':>9} {'optim MiB':>9}")
for world in (1, 2, 4):
    for zero in (0, 1):
        if world == 1 and zero == 1:
            continue
        run = os.path.join(TMP, f"run{world}_{zero}")
        recipe = {"stage": "stage3", "seed": 7, "model": {"init": model}, "data": {"train": [shards]},
                  "train": {"batch_size": 1, "max_steps": STEPS, "threads": 1}, "optim": {"lr": 1e-3},
                  "dist": {"zero": zero}, "run": {"dir": run}, "checkpoint": {"every": 100000}}
        path = os.path.join(TMP, f"r{world}_{zero}.yaml")
        json.dump(recipe, open(path, "w"))
        cmd = [S2S, "train", "--config", path, "--quiet"]
        if world > 1:
            cmd = ["mpirun", "-np", str(world), "--oversubscribe"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=1800)
        if p.returncode:
            print(f"{world:>5} {zero:>4} failed: {p.stderr[-300:]}")
            continue
        rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"loss"' in l][2:]
        mean = lambda k: sum(r[k] for r in rows) / max(1, len(rows)) * 1e3  # noqa: E731
        tot, comm, opt = mean("time_s"), mean("time_comm_s"), mean("time_optim_s")
        mem = [l for l in open(os.path.join(run, "logs", "rank_0.log")) if "memory per rank" in l][0]
        nums = [float(x.split(" MiB")[0].split()[-1]) for x in mem.split(",")[:3]]
        print(f"{world:>5} {zero:>4} {tot:8.1f} {tot - comm - opt:8.1f} {comm:8.1f} {opt:8.1f} "
              f"{nums[0]:10.2f} {nums[1]:9.2f} {nums[2]:9.2f}")
for world in (2, 4):
    p = subprocess.run(["mpirun", "-np", str(world), "--oversubscribe", os.path.join(BUILD, "bench", "bench_comm"),
                        "64", "25", "5"], capture_output=True, text=True, env=ENV, timeout=600)
    print(p.stdout.strip() or p.stderr[-300:])
shutil.rmtree(TMP, ignore_errors=True)
