"""`s2s train --device cuda` against `--device cpu` on the tiny model, for every stage, and the GPU run's resume;
then a training benchmark on the GPU. Part of tests/gpu/run.sh; needs a visible GPU (exits 77 without one).

- every stage (1 ce, 1 kl, 2a, 2b, 3, 3 + LoRA): 3 steps on the GPU with f32 GEMMs (S2S_GEMM=f32, no TF32) end
  at the CPU run's weights and losses within TOL (the GPU's GEMMs accumulate in another order); with the default
  bf16-operand GEMMs (f32 accumulation) within TOL_BF16;
- stage 3 on the GPU: 2 steps + --resume auto + 2 steps are bit-identical to 4 steps (weights, moments, losses);
- with 2 GPUs: 2 ranks through NCCL, dist.zero 0, 1 and 2, equal 1 GPU x grad_accum 2 within TOL;
- the benchmarks: the TTS-LM at Qwen3-1.7B shapes (8 of 28 layers) trained as in stage 2a on ~2048 positions, and
  stage 3 of bench/bench_train.py's model (real vocabulary widths) on the GPU, its steps' tokens/s,
  TFLOP/s and MFU (GEMM flops from metrics.jsonl over the step time, against --peak-tflops, default the H100 /
  H200 dense bf16 figure 989: the f32 path cannot reach it, which is the point of the mixed-precision work).

usage: python3 tests/gpu/train_gpu.py S2S_BINARY [--peak-tflops P]
Prints one line per check and a summary; exits 1 on any mismatch.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import torch_train_ref as R  # noqa: E402

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build-gpu/s2s")
PEAK = float(sys.argv[sys.argv.index("--peak-tflops") + 1]) if "--peak-tflops" in sys.argv else 989.0
TOL = 2e-4
TOL_BF16 = 3e-2  # bf16 operands: ~2^-8 relative per product, a few steps of AdamW on top
probe = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True) if shutil.which("nvidia-smi") else None
if not probe or probe.returncode:
    print("train_gpu: no GPU visible: skipped")
    sys.exit(77)
TMP = tempfile.mkdtemp(prefix="s2s_gpu_train_")
rows, failures = [], []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what, flush=True)
    rows.append(("ok" if cond else "FAILED", what))
    if not cond:
        failures.append(what)


MODEL = R.init_model(os.path.join(TMP, "model"), seed=3, s2s=S2S)
SHARDS = {k: os.path.dirname(R.make_shards(os.path.join(TMP, k), k, n, 5, s2s=S2S))
          for k, n in (("instruct", 4), ("align", 4), ("tts_pretrain", 6))}
KIND = {"stage1": "align", "stage2a": "tts_pretrain", "stage2b": "instruct", "stage3": "instruct"}


def recipe(name, stage, device, **over):
    r = {"stage": stage, "seed": 7, "device": device,
         "model": {"init": MODEL, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                   "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
         "data": {"train": [SHARDS[KIND[stage]]], "prefetch": 1},
         "train": {"batch_size": 2, "grad_accum": 2, "max_steps": 3, "threads": 2},
         "optim": {"lr": 2e-3, "warmup_steps": 1},
         "run": {"dir": os.path.join(TMP, "runs", name)}, "checkpoint": {"every": 100}}
    for k, v in over.items():
        d = r
        *head, last = k.split(".")
        for p in head:
            d = d.setdefault(p, {})
        d[last] = v
    path = os.path.join(TMP, name + ".yaml")
    json.dump(r, open(path, "w"))
    return path, r["run"]["dir"]


def train(path, *args, gemm="f32"):
    env = dict(os.environ, S2S_GEMM=gemm)
    p = subprocess.run([S2S, "train", "--config", path, "--quiet", *args], capture_output=True, text=True, timeout=1200,
                       env=env)
    if p.returncode:
        print(p.stderr[-2000:])
    return p.returncode == 0


def last_ckpt(run):
    step = open(os.path.join(run, "checkpoints", "latest")).read().strip()
    d = os.path.join(run, "checkpoints", step)
    return load_file(os.path.join(d, "model", "model.safetensors")), d


def losses(run):
    return [r["loss"] for r in map(json.loads, open(os.path.join(run, "metrics.jsonl"))) if "loss" in r]


CASES = [("stage1_ce", "stage1", {"optim.lr": 1e-2}), ("stage1_kl", "stage1", {"objective": "kl"}),
         ("stage2a", "stage2a", {}), ("stage2b", "stage2b", {}), ("stage3", "stage3", {}),
         ("stage3_lora", "stage3", {"lora.r": 4})]
for name, stage, over in CASES:
    pc, rc = recipe(name + "_cpu", stage, "cpu", **over)
    pg, rg = recipe(name + "_gpu", stage, "cuda", **over)
    if not (train(pc) and train(pg)):
        check(False, f"{name}: the CPU and the GPU runs exit 0")
        continue
    mc, _ = last_ckpt(rc)
    mg, _ = last_ckpt(rg)
    worst = max(float(np.abs(mc[k] - mg[k]).max() / max(np.abs(mc[k]).max(), 1e-30)) for k in mc)
    lc, lg = losses(rc), losses(rg)
    dl = max(abs(a - b) / max(abs(a), 1e-30) for a, b in zip(lc, lg))
    check(mc.keys() == mg.keys() and worst < TOL and dl < TOL,
          f"{name}: GPU (f32 GEMMs) = CPU after 3 steps (weights max relative {worst:.2e}, losses {dl:.2e}; "
          f"tolerance {TOL:g})")
    pb_, rb_ = recipe(name + "_gpu_bf16", stage, "cuda", **over)
    if train(pb_, gemm="bf16"):
        mb_, _ = last_ckpt(rb_)
        wb = max(float(np.abs(mc[k] - mb_[k]).max() / max(np.abs(mc[k]).max(), 1e-30)) for k in mc)
        db = max(abs(a - b) / max(abs(a), 1e-30) for a, b in zip(lc, losses(rb_)))
        check(wb < TOL_BF16 and db < TOL_BF16, f"{name}: GPU (bf16 GEMMs) ~ CPU (weights {wb:.2e}, losses {db:.2e}; "
              f"tolerance {TOL_BF16:g})")
    else:
        check(False, f"{name}: the GPU run with bf16 GEMMs exits 0")

pa, ra = recipe("resume_full", "stage3", "cuda", **{"train.max_steps": 4, "checkpoint.every": 2})
pb, rb = recipe("resume_split", "stage3", "cuda", **{"train.max_steps": 4, "checkpoint.every": 2})
if train(pa) and train(pb, "--stop-after", "2") and train(pb, "--resume", "auto"):
    ma, da = last_ckpt(ra)
    mb, db = last_ckpt(rb)
    oa = load_file(os.path.join(da, "optimizer", "rank_00000.safetensors"))
    ob = load_file(os.path.join(db, "optimizer", "rank_00000.safetensors"))
    same = all(np.array_equal(ma[k], mb[k]) for k in ma) and all(np.array_equal(oa[k], ob[k]) for k in oa)
    check(same and losses(ra) == losses(rb), "GPU stage 3: 2 + resume + 2 steps = 4 steps, bit for bit")
else:
    check(False, "GPU stage 3: 4 steps, and 2 + --resume auto + 2, exit 0")

# ---- 2 ranks through NCCL (NCCL refuses two ranks on one GPU: needs two) -------------------------------------------
n_gpu = len([l for l in probe.stdout.splitlines() if l.startswith("GPU ")])
if n_gpu >= 2 and shutil.which("mpirun"):
    env = dict(os.environ, S2S_GEMM="f32", OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    p1, r1 = recipe("nccl_one", "stage3", "cuda", **{"train.batch_size": 1, "train.grad_accum": 2})
    ok1 = train(p1)
    for zero in (0, 1, 2):
        pz, rz = recipe(f"nccl_zero{zero}", "stage3", "cuda", **{"train.batch_size": 1, "dist.zero": zero,
                                                                  "dist.bucket_mb": 0.05})
        q = subprocess.run(["mpirun", "-np", "2", S2S, "train", "--config", pz, "--quiet"], capture_output=True,
                           text=True, timeout=1200, env=env)
        if ok1 and q.returncode == 0:
            m1, _ = last_ckpt(r1)
            mz, _ = last_ckpt(rz)
            w = max(float(np.abs(m1[k] - mz[k]).max() / max(np.abs(m1[k]).max(), 1e-30)) for k in m1)
            log = open(os.path.join(rz, "logs", "rank_0.log")).read()
            check(w < TOL and "collectives nccl" in log,
                  f"2 GPUs through NCCL, dist.zero {zero}: = 1 GPU x grad_accum 2 (max relative {w:.2e})")
        else:
            check(False, f"2 GPUs through NCCL, dist.zero {zero}: runs ({q.stderr[-500:]})")
else:
    print(f"skip: 2 ranks through NCCL need 2 GPUs ({n_gpu} visible; NCCL refuses two ranks on one device)")

# ---- the benchmark ---------------------------------------------------------------------------------------------
import bench_train as B  # noqa: E402

cfg_path, bmodel = os.path.join(TMP, "bench_config.json"), os.path.join(TMP, "bench_model")
json.dump(B.model_config(1.0), open(cfg_path, "w"))
subprocess.run([S2S, "init", "--config", cfg_path, "--out", bmodel, "--seed", "1", "--shard-mb", "100000"],
               check=True, capture_output=True, timeout=600)
shard = B.make_shard(os.path.join(TMP, "bench_data"), 32, S2S)
run = os.path.join(TMP, "runs", "bench")
path = os.path.join(TMP, "bench.yaml")
json.dump({"stage": "stage3", "seed": 7, "device": "cuda",
           "model": {"init": bmodel, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                     "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
           "data": {"train": [os.path.dirname(shard)], "prefetch": 2},
           "train": {"batch_size": 8, "max_steps": 12, "threads": 4}, "optim": {"lr": 1e-4},
           "run": {"dir": run}, "checkpoint": {"every": 100000}}, open(path, "w"))
if train(path, gemm="bf16"):
    ms = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl")) if '"loss"' in l][3:]
    t = sum(r["time_s"] for r in ms)
    tok = sum(r["tokens_per_s"] * r["time_s"] for r in ms)
    fl = sum(r["flops_fwd"] + r["flops_bwd"] for r in ms)
    print(f"bench: stage 3, bench_train.py's model (221.5 M parameters), batch 8: {tok / t:.0f} tokens/s, "
          f"{fl / t / 1e12:.2f} TFLOP/s, MFU {100 * fl / t / 1e12 / PEAK:.1f}% of {PEAK:g} TFLOP/s")
else:
    check(False, "the GPU benchmark run exits 0")

# The TTS-LM at Qwen3-1.7B's shapes (hidden 2048, FFN 6144, 16 / 8 heads of 128, 168,320 rows, tied), 8 of its 28
# layers, trained alone as in stage 2a on samples of ~2048 positions (a few text tokens + 2,040 units).
rng = np.random.default_rng(3)
man = os.path.join(TMP, "long_tts.jsonl")
with open(man, "w") as f:
    for i in range(16):
        f.write(json.dumps({"text": R._text(rng, 4, 8), "units": R._units(rng, 2040, 2041)}) + "\n")
long_sh = os.path.join(TMP, "long_shards")
subprocess.run([S2S, "prep", "--manifest", man, "--tokenizer", os.path.join(ROOT, "configs/tiny/tokenizer"),
                "--tts-tokenizer", os.path.join(ROOT, "configs/tiny/tts-tokenizer"), "--out", long_sh, "--overwrite",
                "--quiet"], check=False, capture_output=True, timeout=600)
cfg17 = json.load(open(os.path.join(ROOT, "configs", "tiny", "model.json")))
cfg17["tts_lm_config"].update(vocab_size=168320, hidden_size=2048, intermediate_size=6144, num_hidden_layers=8,
                              num_attention_heads=16, num_key_value_heads=8, head_dim=128, tie_word_embeddings=True,
                              max_position_embeddings=40960)
c17, m17 = os.path.join(TMP, "tts17.json"), os.path.join(TMP, "tts17_model")
json.dump(cfg17, open(c17, "w"))
init = subprocess.run([S2S, "init", "--config", c17, "--out", m17, "--seed", "1", "--shard-mb", "100000"],
                      capture_output=True, text=True, timeout=600)
run17 = os.path.join(TMP, "runs", "tts17")
p17 = os.path.join(TMP, "tts17.yaml")
json.dump({"stage": "stage2a", "seed": 7, "device": "cuda",
           "model": {"init": m17, "tokenizer": os.path.join(ROOT, "configs/tiny/tokenizer"),
                     "tts_tokenizer": os.path.join(ROOT, "configs/tiny/tts-tokenizer")},
           "data": {"train": [long_sh], "prefetch": 2}, "train": {"batch_size": 1, "max_steps": 10, "threads": 4},
           "optim": {"lr": 1e-4}, "run": {"dir": run17}, "checkpoint": {"every": 100000}}, open(p17, "w"))
if init.returncode == 0 and os.path.isdir(long_sh) and train(p17, gemm="bf16"):
    ms = [json.loads(l) for l in open(os.path.join(run17, "metrics.jsonl")) if '"loss"' in l][3:]
    t = sum(r["time_s"] for r in ms)
    tok = sum(r["tokens_per_s"] * r["time_s"] for r in ms)
    fl = sum(r["flops_fwd"] + r["flops_bwd"] for r in ms)
    print(f"bench: TTS-LM at Qwen3-1.7B shapes (8 of 28 layers), ~2048 positions: {tok / t:.0f} tokens/s, "
          f"{fl / t / 1e12:.2f} TFLOP/s (GEMMs), MFU {100 * fl / t / 1e12 / PEAK:.1f}% of {PEAK:g} (target >= 50%)")
else:
    check(False, f"the TTS-LM benchmark runs ({init.stderr[-300:]})")

print("\n| result | check |\n|---|---|")
for r, w in rows:
    print(f"| {r} | {w} |")
shutil.rmtree(TMP, ignore_errors=True)
sys.exit(1 if failures else 0)
