"""`s2s train` under mpirun: data parallelism on this machine's CPU ranks, dist.zero 0, 1 and 2.

- 2 ranks x batch 1 equal 1 rank x batch 1 x grad_accum 2 on the same data after K steps (float tolerance: the
  sum over ranks adds in another order);
- 2 ranks: N steps + --resume auto + N steps are bit-identical to 2N steps;
- ZeRO 1 and 2 equal ZeRO 0; ZeRO 2 with 2 micro-batches a step equals 1 rank x 4; its gradients per rank halve
  and no rank holds them all; it resumes bit for bit and on another number of ranks;
- an error on one rank before step 1 (its log file cannot be opened) stops every rank with that rank's message;
- rank 0 alone writes metrics.jsonl and config.yaml, every rank its logs/rank_R.log;
- SIGUSR1 to mpirun (which forwards it), SIGTERM to every rank (as scancel does): every rank stops after the same
  step, one checkpoint, exit 0, and it resumes. (A SIGTERM to mpirun itself makes Open MPI end the job.)

Run by ctest as: python3 tests/dist/test_train_dist.py S2S_BINARY BUILD_DIR. Skipped (77) without mpirun.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "train"))
import torch_train_ref as R  # noqa: E402

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
if not shutil.which("mpirun"):
    print("test_train_dist: no mpirun: skipped")
    sys.exit(77)
TMP = tempfile.mkdtemp(prefix="s2s_dist_")
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1")
# In the sanitized rerun: Open MPI's libraries keep no frame pointers, and only the slow unwinder names them, which
# the leak suppressions (tests/sanitize/lsan.supp: what MPI leaves at MPI_Finalize) need.
if "ASAN_OPTIONS" in ENV:
    ENV["ASAN_OPTIONS"] += ":fast_unwind_on_malloc=0"
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


MODEL = R.init_model(os.path.join(TMP, "model"), seed=3, s2s=S2S)
SHARDS = os.path.dirname(R.make_shards(os.path.join(TMP, "instruct"), "instruct", 8, 5, s2s=S2S))


def recipe(name, **over):
    r = {"stage": "stage3", "seed": 7,
         "model": {"init": MODEL, "tokenizer": "configs/tiny/tokenizer", "tts_tokenizer": "configs/tiny/tts-tokenizer"},
         "data": {"train": [SHARDS], "prefetch": 1},
         "train": {"batch_size": 1, "grad_accum": 1, "max_steps": 4, "threads": 1},
         "optim": {"lr": 2e-3, "warmup_steps": 1},
         "run": {"dir": os.path.join(TMP, "runs", name)},
         "checkpoint": {"every": 2}}
    for k, v in over.items():
        d = r
        *head, last = k.split(".")
        for p in head:
            d = d.setdefault(p, {})
        d[last] = v
    path = os.path.join(TMP, name + ".yaml")
    json.dump(r, open(path, "w"))
    return path, r["run"]["dir"]


def train(n, path, *args, timeout=600):
    cmd = [S2S, "train", "--config", path, "--quiet", *args]
    if n > 0:
        cmd = ["mpirun", "-np", str(n), "--oversubscribe"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV)
    if p.returncode:
        print(p.stderr[-2000:])
    return p


def ckpt(run, step):
    d = os.path.join(run, "checkpoints", "step_%08d" % step)
    return load_file(os.path.join(d, "model", "model.safetensors")), \
        load_file(os.path.join(d, "optimizer", "rank_00000.safetensors"))


def losses(run):
    return [(r["step"], r["loss"]) for r in map(json.loads, open(os.path.join(run, "metrics.jsonl"))) if "loss" in r]


# ---- 2 ranks x 1 == 1 rank x 2 micro-batches ---------------------------------------------------------------------
pa, ra = recipe("one", **{"train.grad_accum": 2})
pb, rb = recipe("two")
a, b = train(0, pa), train(2, pb)
check(a.returncode == 0 and b.returncode == 0, "1 rank x accum 2 and 2 ranks x accum 1 run")
if a.returncode == 0 and b.returncode == 0:
    ma, _ = ckpt(ra, 4)
    mb, _ = ckpt(rb, 4)
    worst = max(float(np.abs(ma[k] - mb[k]).max() / max(np.abs(ma[k]).max(), 1e-30)) for k in ma)
    check(worst < 1e-5, f"2 ranks x batch 1 equal 1 rank x grad_accum 2 after 4 steps (max relative {worst:.2e})")
    la, lb = losses(ra), losses(rb)
    check(len(la) == len(lb) == 4 and all(abs(x[1] - y[1]) < 1e-5 * abs(x[1]) for x, y in zip(la, lb)),
          f"and log the same losses {[round(x[1], 5) for x in la]} / {[round(y[1], 5) for y in lb]}")
    logs = sorted(os.listdir(os.path.join(rb, "logs")))
    check(logs == ["rank_0.log", "rank_1.log"] and "rank 1 of 2 (mpi)" in open(os.path.join(rb, "logs", "rank_1.log")).read(),
          f"every rank writes its log {logs}")

# ---- small buckets: sent while the backward runs, the same result bit for bit ------------------------------------
ps, rs = recipe("small_buckets", **{"dist.bucket_mb": 0.25})
sb = train(2, ps)
if sb.returncode == 0 and b.returncode == 0:
    mb, _ = ckpt(rb, 4)
    ms, _ = ckpt(rs, 4)
    line = [l.strip() for l in open(os.path.join(rs, "logs", "rank_0.log")) if "gradient buckets" in l]
    early = int(line[0].split("buckets: ")[1].split(" of")[0]) if line else 0
    check(all(np.array_equal(mb[k], ms[k]) for k in mb) and losses(rb) == losses(rs) and early > 1,
          f"0.25 MiB buckets, most sent during the backward ({line[0] if line else 'no log line'}): the same weights "
          f"bit for bit as one 25 MiB bucket")
else:
    check(False, "2 ranks with dist.bucket_mb 0.25 run")

# ---- ZeRO 1: the optimizer state sharded -------------------------------------------------------------------------
pz, rz = recipe("zero1", **{"dist.zero": 1})
z = train(2, pz)
check(z.returncode == 0, "2 ranks, dist.zero 1: runs")
if z.returncode == 0 and b.returncode == 0:
    mb, ob = ckpt(rb, 4)
    mz, _ = ckpt(rz, 4)
    worst = max(float(np.abs(mb[k] - mz[k]).max() / max(np.abs(mb[k]).max(), 1e-30)) for k in mb)
    check(worst < 1e-5, f"dist.zero 1 equals dist.zero 0 after 4 steps (max relative {worst:.2e})")
    opt = sorted(os.listdir(os.path.join(rz, "checkpoints", "step_00000004", "optimizer")))
    tj = json.load(open(os.path.join(rz, "checkpoints", "step_00000004", "trainer.json")))
    check(opt == ["rank_00000.safetensors", "rank_00001.safetensors"] and len(tj["optimizer_ranges"]) == 2,
          f"each rank writes its optimizer shard {opt}, trainer.json records the ranges {tj['optimizer_ranges']}")
    # the moments of both shards together are the replicated run's (within float tolerance)
    parts = [load_file(os.path.join(rz, "checkpoints", "step_00000004", "optimizer", f)) for f in opt]
    n0 = sum(v.size for v in ob.values())
    n1 = sum(v.size for p_ in parts for v in p_.values())
    check(n0 == n1, f"the shards hold every moment once ({n1} of {n0} values)")

    def mem(run, r):
        line = [l for l in open(os.path.join(run, "logs", f"rank_{r}.log")) if "memory per rank" in l][0]
        return float(line.split("optimizer state ")[1].split(" MiB")[0])
    m0, m1 = mem(rb, 0), mem(rz, 0)
    check(abs(m1 - m0 / 2) < 0.02 * m0, f"the optimizer state per rank halves: {m0:.2f} -> {m1:.2f} MiB")
    pz2, rz2 = recipe("zero1_resumed", **{"dist.zero": 1})
    z1, z2 = train(2, pz2, "--stop-after", "2"), train(2, pz2, "--resume", "auto")
    if z1.returncode == 0 and z2.returncode == 0:
        mz2, _ = ckpt(rz2, 4)
        check(all(np.array_equal(mz[k], mz2[k]) for k in mz) and losses(rz) == losses(rz2),
              "dist.zero 1 on 2 ranks: 2 + resume + 2 steps = 4 steps, bit for bit")
    else:
        check(False, "dist.zero 1: 2 steps, then --resume auto")

# ---- ZeRO 2: gradients sharded during the backward ----------------------------------------------------------------
def log_lines(run, r, what):
    return [l.strip() for l in open(os.path.join(run, "logs", f"rank_{r}.log")) if what in l]


p2, r2 = recipe("zero2", **{"dist.zero": 2, "dist.bucket_mb": 0.05})
z2 = train(2, p2)
check(z2.returncode == 0, "2 ranks, dist.zero 2: runs")
if z2.returncode == 0 and b.returncode == 0:
    mb, _ = ckpt(rb, 4)
    m2, _ = ckpt(r2, 4)
    worst = max(float(np.abs(mb[k] - m2[k]).max() / max(np.abs(mb[k]).max(), 1e-30)) for k in mb)
    lb, l2 = losses(rb), losses(r2)
    check(worst < 1e-5 and all(abs(x[1] - y[1]) < 1e-5 * abs(x[1]) for x, y in zip(lb, l2)),
          f"dist.zero 2 equals dist.zero 0 after 4 steps (max relative {worst:.2e})")

    def grads(run):
        line = log_lines(run, 0, "memory per rank")[0]
        return float(line.split("gradients ")[1].split(" MiB")[0])
    g0, g2 = grads(rb), grads(r2)
    check(abs(g2 - g0 / 2) < 0.02 * g0, f"the gradients kept per rank halve: {g0:.2f} -> {g2:.2f} MiB")
    peak = log_lines(r2, 0, "ZeRO-2: at most")
    held = float(peak[0].split("at most ")[1].split(" MiB")[0]) if peak else 1e9
    full = float(peak[0].split("would be ")[1].split(" MiB")[0]) if peak else 0
    check(held < full, f"no rank holds every gradient at once during a backward ({peak[0] if peak else 'no line'})")
    opt = sorted(os.listdir(os.path.join(r2, "checkpoints", "step_00000004", "optimizer")))
    tj = json.load(open(os.path.join(r2, "checkpoints", "step_00000004", "trainer.json")))
    check(opt == ["rank_00000.safetensors", "rank_00001.safetensors"] and tj["zero"] == 2,
          f"each rank writes its optimizer shard {opt}; trainer.json: zero {tj['zero']}")
    # The rank's range accumulates micro-batch by micro-batch: 2 ranks x 2 micro-batches = 1 rank x 4.
    pa4, ra4 = recipe("one_accum4", **{"train.grad_accum": 4})
    p22, r22 = recipe("zero2_accum2", **{"dist.zero": 2, "dist.bucket_mb": 0.05, "train.grad_accum": 2})
    a4, z22 = train(0, pa4), train(2, p22)
    if a4.returncode == 0 and z22.returncode == 0:
        ma, _ = ckpt(ra4, 4)
        mz, _ = ckpt(r22, 4)
        worst = max(float(np.abs(ma[k] - mz[k]).max() / max(np.abs(ma[k]).max(), 1e-30)) for k in ma)
        check(worst < 1e-5, f"dist.zero 2, 2 ranks x grad_accum 2 equal 1 rank x grad_accum 4 (max relative {worst:.2e})")
    else:
        check(False, "1 rank x accum 4 and dist.zero 2 with 2 ranks x accum 2 run")
    p2r, r2r = recipe("zero2_resumed", **{"dist.zero": 2, "dist.bucket_mb": 0.05})
    y1, y2 = train(2, p2r, "--stop-after", "2"), train(2, p2r, "--resume", "auto")
    if y1.returncode == 0 and y2.returncode == 0:
        m2r, _ = ckpt(r2r, 4)
        check(all(np.array_equal(m2[k], m2r[k]) for k in m2) and losses(r2) == losses(r2r),
              "dist.zero 2 on 2 ranks: 2 + resume + 2 steps = 4 steps, bit for bit")
    else:
        check(False, "dist.zero 2: 2 steps, then --resume auto")
    p23, r23 = recipe("zero2_to_three", **{"dist.zero": 2, "dist.bucket_mb": 0.05, "train.max_steps": 3})
    x1, x2 = train(2, p23, "--stop-after", "1"), train(3, p23, "--resume", "auto")
    ok = x1.returncode == 0 and x2.returncode == 0
    opt = sorted(os.listdir(os.path.join(r23, "checkpoints", "step_00000003", "optimizer"))) if ok else []
    check(ok and len(opt) == 3 and all(np.isfinite(l) for _, l in losses(r23)),
          f"a dist.zero 2 checkpoint of 2 ranks resumes on 3 ({opt})")

# ---- an error on one rank before step 1 stops them all -------------------------------------------------------------
pe, re_ = recipe("one_rank_fails")
os.makedirs(os.path.join(re_, "logs", "rank_1.log"))  # rank 1 cannot open its log: a directory is in the way
t0 = time.time()
e = train(2, pe, timeout=300)
took = time.time() - t0
check(e.returncode != 0 and "rank 1: " in e.stderr and "rank_1.log: cannot open" in e.stderr and took < 60
      and not os.path.exists(os.path.join(re_, "metrics.jsonl")),
      f"an error on rank 1 before step 1 stops both ranks in {took:.1f} s with its message: "
      f"{[l for l in e.stderr.splitlines() if 'rank 1' in l][:1]}")

# ---- a checkpoint of 2 ranks resumes on 1 and on 3 --------------------------------------------------------------
if z.returncode == 0:
    pw, rw = recipe("two_to_one", **{"dist.zero": 1})
    w1 = train(2, pw, "--stop-after", "2")
    # the same global batch on one rank: two micro-batches a step
    w2 = train(0, pw, "--resume", "auto", "--set", "train.grad_accum=2")
    check(w1.returncode == 0 and w2.returncode == 0 and "resuming" in w2.stderr,
          "a dist.zero 1 checkpoint of 2 ranks resumes on 1 rank (grad_accum 2: the same global batch)")
    if w2.returncode == 0:
        mz, _ = ckpt(rz, 4)
        mw, ow = ckpt(rw, 4)
        worst = max(float(np.abs(mz[k] - mw[k]).max() / max(np.abs(mz[k]).max(), 1e-30)) for k in mz)
        lz, lw = losses(rz), losses(rw)
        check(worst < 1e-5 and all(abs(a[1] - b[1]) < 1e-5 * abs(a[1]) for a, b in zip(lz, lw)),
              f"and ends where the uninterrupted 2-rank run does (max relative {worst:.2e}; losses "
              f"{[round(x[1], 5) for x in lw]})")
    p3, r3 = recipe("two_to_three", **{"dist.zero": 1, "train.max_steps": 3})
    v1 = train(2, p3, "--stop-after", "1")
    v2 = train(3, p3, "--resume", "auto")
    ok = v1.returncode == 0 and v2.returncode == 0
    tj = json.load(open(os.path.join(r3, "checkpoints", "step_00000003", "trainer.json"))) if ok else {}
    opt = sorted(os.listdir(os.path.join(r3, "checkpoints", "step_00000003", "optimizer"))) if ok else []
    check(ok and tj.get("world_size") == 3 and len(opt) == 3 and all(np.isfinite(l) for _, l in losses(r3)),
          f"a checkpoint of 2 ranks resumes on 3 (optimizer state re-split by name and offset: {opt})")

# ---- resume on 2 ranks is bit-identical ----------------------------------------------------------------------------
pc, rc = recipe("two_resumed")
c1 = train(2, pc, "--stop-after", "2")
c2 = train(2, pc, "--resume", "auto")
check(c1.returncode == 0 and c2.returncode == 0, "2 ranks: 2 steps, then --resume auto")
if c1.returncode == 0 and c2.returncode == 0 and b.returncode == 0:
    mb, ob = ckpt(rb, 4)
    mc, oc = ckpt(rc, 4)
    same = mb.keys() == mc.keys() and all(np.array_equal(mb[k], mc[k]) for k in mb) and \
        all(np.array_equal(ob[k], oc[k]) for k in ob)
    check(same and losses(rb) == losses(rc), "2 ranks: 2 + resume + 2 steps = 4 steps, bit for bit")

# ---- a signal to the job -----------------------------------------------------------------------------------------
def preempt(sig, name, to_ranks=False):
    pt, rt = recipe("sig_" + name, **{"train.max_steps": 100000, "checkpoint.every": 100000})
    proc = subprocess.Popen(["mpirun", "-np", "2", "--oversubscribe", S2S, "train", "--config", pt, "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    mp = os.path.join(rt, "metrics.jsonl")
    for _ in range(1200):
        if os.path.exists(mp) and sum(1 for _ in open(mp)) >= 3:
            break
        time.sleep(0.1)
    if to_ranks:  # as scancel / SLURM do: the signal reaches every task itself
        kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        for k in kids:
            os.kill(int(k), sig)
    else:
        proc.send_signal(sig)  # to mpirun, which forwards it to every rank
    out, err = proc.communicate(timeout=300)
    steps = sorted(d for d in os.listdir(os.path.join(rt, "checkpoints")) if d.startswith("step_"))
    stopped = [l for r in (0, 1) for l in open(os.path.join(rt, "logs", f"rank_{r}.log")) if "received: stopped" in l]
    same = len(stopped) == 2 and stopped[0] == stopped[1]
    ok_rc = proc.returncode == 0
    check(ok_rc and len(steps) == 1 and same, f"{name}: exit {proc.returncode}, both ranks stopped after the same "
          f"step {[l.strip() for l in stopped]}, one checkpoint {steps}")
    if steps:
        done = int(steps[0][5:])
        q = train(2, pt, "--resume", "auto", "--stop-after", "1")
        check(q.returncode == 0 and losses(rt)[-1][0] == done + 1, f"{name}: the job resumes from step {done}")


# ---- a rank killed mid-run: the job ends, non-zero, instead of hanging ------------------------------------------
pk, rk = recipe("killed", **{"train.max_steps": 100000, "checkpoint.every": 100000, "dist.timeout_s": 60})
proc = subprocess.Popen(["mpirun", "-np", "2", "--oversubscribe", S2S, "train", "--config", pk, "--quiet"],
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
mk = os.path.join(rk, "metrics.jsonl")
for _ in range(1200):
    if os.path.exists(mk) and sum(1 for _ in open(mk)) >= 2:
        break
    time.sleep(0.1)
kids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
t0 = time.time()
if kids:
    os.kill(int(kids[-1]), signal.SIGKILL)
proc.communicate(timeout=300)
check(kids and proc.returncode != 0 and time.time() - t0 < 90,
      f"a SIGKILLed rank ends the job: exit {proc.returncode} after {time.time() - t0:.1f} s")

# ---- launch/mpirun.sh ---------------------------------------------------------------------------------------------
pl, rl = recipe("launcher")
p = subprocess.run(["launch/mpirun.sh", pl, "--quiet", "--stop-after", "1"], capture_output=True, text=True,
                   timeout=600, env=dict(ENV, RANKS="2", THREADS="1", S2S=S2S))
check(p.returncode == 0 and os.path.exists(os.path.join(rl, "logs", "rank_1.log")),
      f"launch/mpirun.sh runs 2 ranks {p.stderr[-600:] if p.returncode else ''}")

preempt(signal.SIGUSR1, "SIGUSR1")
preempt(signal.SIGTERM, "SIGTERM to every rank", to_ranks=True)

shutil.rmtree(TMP, ignore_errors=True)
print("test_train_dist:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
