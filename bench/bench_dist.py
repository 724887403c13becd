"""Data parallelism on this machine: `s2s train` (stage 3) on 1, 2 and 4 ranks under mpirun with dist.zero 0, 1 and
2, for the tiny model (configs/tiny/model.json) and the bench model of bench_train.py: the step's wall time split
into compute (forward, backward, the loader), exposed collectives and the optimizer (from metrics.jsonl: time_s,
time_comm_s, time_optim_s, mean over the steps after the first two), and the per-rank memory of parameters,
gradients and optimizer state (the line each rank logs at start; under ZeRO-2 also the most gradient-bucket memory
held at once during a backward, logged after step 1); then the gradient all-reduce against one plain
MPI_Allreduce of the same bytes (bench_comm). Prints; never fails on speed.

usage: python3 bench/bench_dist.py [BUILD_DIR] [--steps N] [--model tiny|bench|both] [--vocab-frac F]
The bench model's vocabularies are scaled by --vocab-frac (default 0.25: 4 ranks of the full 221.5 M-parameter
model with replicated state would need ~16 GB). On 2 cores, 2 and 4 ranks are oversubscribed (one OpenMP thread
each): the split and the memory, not the speed-up, are the point there.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import torch_train_ref as R  # noqa: E402
import bench_train as B  # noqa: E402


def arg(name, default, conv=str):
    return conv(sys.argv[sys.argv.index(name) + 1]) if name in sys.argv else default


BUILD = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else os.path.join(ROOT, "build")
STEPS = arg("--steps", 6, int)
WHICH = arg("--model", "both")
FRAC = arg("--vocab-frac", 0.25, float)
S2S = os.path.join(BUILD, "s2s")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
           OPENBLAS_NUM_THREADS="1")
TMP = tempfile.mkdtemp(prefix="s2s_bench_dist_")


def mib_after(line, key):
    return float(line.split(key)[1].split(" MiB")[0])


def table(tag, name, model, shards, batch):
    print(f"\n{name}: batch {batch} per rank, {STEPS} steps, load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores")
    print(f"{'ranks':>5} {'zero':>4} {'step ms':>9} {'compute':>9} {'comm':>8} {'optim':>8} "
          f"{'params MiB':>10} {'grads MiB':>9} {'held MiB':>8} {'optim MiB':>9}")
    for world in (1, 2, 4):
        for zero in (0, 1, 2):
            if world == 1 and zero > 0:
                continue
            run = os.path.join(TMP, f"{tag}_run{world}_{zero}")
            recipe = {"stage": "stage3", "seed": 7,
                      "model": {"init": model, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                                "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
                      "data": {"train": [shards], "prefetch": 1},
                      "train": {"batch_size": batch, "max_steps": STEPS, "threads": 1}, "optim": {"lr": 1e-4},
                      "dist": {"zero": zero}, "run": {"dir": run}, "checkpoint": {"every": 100000}}
            path = os.path.join(TMP, f"{tag}_{world}_{zero}.yaml")
            json.dump(recipe, open(path, "w"))
            cmd = [S2S, "train", "--config", path, "--quiet"]
            if world > 1:
                cmd = ["mpirun", "-np", str(world), "--oversubscribe"] + cmd
            p = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=3600)
            if p.returncode:
                print(f"{world:>5} {zero:>4} failed: {p.stderr[-300:]}")
                continue
            rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"loss"' in l][2:]
            mean = lambda k: sum(r[k] for r in rows) / max(1, len(rows)) * 1e3  # noqa: E731
            tot, comm, opt = mean("time_s"), mean("time_comm_s"), mean("time_optim_s")
            log = open(os.path.join(run, "logs", "rank_0.log")).read().splitlines()
            mem = [l for l in log if "memory per rank" in l][0]
            held = [l for l in log if "ZeRO-2: at most" in l]
            pm, gm, om = mib_after(mem, "parameters "), mib_after(mem, "gradients "), mib_after(mem, "optimizer state ")
            hm = mib_after(held[0], "at most ") if held else gm
            print(f"{world:>5} {zero:>4} {tot:9.1f} {tot - comm - opt:9.1f} {comm:8.1f} {opt:8.1f} "
                  f"{pm:10.2f} {gm:9.2f} {hm:8.2f} {om:9.2f}")


print("held MiB: gradient memory in use at its peak (ZeRO 0 / 1: the full buffer; ZeRO 2: the rank's range is "
      "'grads', the buckets held at once during a backward are 'held')")
if WHICH in ("tiny", "both"):
    model = R.init_model(os.path.join(TMP, "tiny_model"), seed=3, s2s=S2S)
    shards = os.path.dirname(R.make_shards(os.path.join(TMP, "tiny_data"), "instruct", 16, 5, s2s=S2S))
    table("tiny", "tiny model (configs/tiny/model.json)", model, shards, 1)
if WHICH in ("bench", "both"):
    cfg = B.model_config(FRAC)
    cfg_path, model = os.path.join(TMP, "bench_config.json"), os.path.join(TMP, "bench_model")
    json.dump(cfg, open(cfg_path, "w"))
    subprocess.run([S2S, "init", "--config", cfg_path, "--out", model, "--seed", "1", "--shard-mb", "100000"],
                   check=True, capture_output=True, timeout=600)
    shard = B.make_shard(os.path.join(TMP, "bench_data"), 16, S2S)
    table("bench", f"bench model (bench_train.py, vocabularies x {FRAC})", model, os.path.dirname(shard), 2)
for world in (2, 4):
    p = subprocess.run(["mpirun", "-np", str(world), "--oversubscribe", os.path.join(BUILD, "bench", "bench_comm"),
                        "64", "25", "5"], capture_output=True, text=True, env=ENV, timeout=600)
    print(p.stdout.strip() or p.stderr[-300:])
shutil.rmtree(TMP, ignore_errors=True)
