"""s2s vs PyTorch: forward + backward per op, same machine, same thread count, one run.

usage: python3 bench/bench_torch.py BENCH_OPS_BINARY [--threads N] [--quick] [--cuda]

Each measurement runs in a fresh process, so peak memory (maxrss after the runs minus maxrss once
inputs and parameter gradients exist) is measured the same way for both. Prints one row per op with
the time ratio (s2s / PyTorch; lower is better) against the target, and for the fused cross-entropy
the memory ratio. --cuda runs both on the GPU: s2s's GEMMs take bf16 operands with f32 accumulation, so
PyTorch runs its GEMM-bound ops (linear, attention, cross-entropy) under bf16 autocast, and each step
ends at a device synchronisation; extra memory is s2s's arena peak against torch's peak allocation
above what the inputs hold.
"""
import json
import os
import resource
import subprocess
import sys

# (name, bench_ops args, target ratio)
CASES = [
    ("linear", ["linear", "2048", "1024", "4096"], 1.0),
    ("attention", ["attention", "2", "1024", "16", "8", "128", "1"], 0.7),
    ("attention", ["attention", "1", "1500", "20", "20", "64", "0"], 0.7),  # encoder chunk, bidirectional
    ("rmsnorm", ["rmsnorm", "4096", "1024"], 0.5),
    ("ce", ["ce", "1024", "1024", "151936"], 0.7),
]
QUICK = [
    ("linear", ["linear", "256", "256", "512"], 1.0),
    ("attention", ["attention", "2", "256", "4", "2", "64", "1"], 0.7),
    ("rmsnorm", ["rmsnorm", "512", "256"], 0.5),
    ("ce", ["ce", "128", "128", "8192"], 0.7),
]


def torch_child(args, threads, reps, cuda):
    """Runs in a subprocess: time one op in PyTorch and print a JSON line."""
    import time

    import torch

    torch.set_num_threads(threads)
    dev = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    op = args[0]
    tiny = {"linear": [8, 8, 8], "attention": [1, 8, 2, 1, 8, 1], "rmsnorm": [8, 8], "ce": [8, 8, 16]}[op]
    step, leaves = make_step(op, tiny, dev)  # library warm-up (thread pool, allocator) before the baseline
    step()
    step, leaves = make_step(op, [int(v) for v in args[1:]], dev)
    sync()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        held = torch.cuda.memory_allocated()
    times = []
    for rep in range(reps + 1):
        for t in leaves:
            t.grad = None
        t0 = time.perf_counter()
        step()
        sync()
        t1 = time.perf_counter()
        if rep:
            times.append((t1 - t0) * 1e3)
    times.sort()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dev_mb = (torch.cuda.max_memory_allocated() - held) / 2**20 if cuda else 0.0
    print(json.dumps({"op": op, "ms": times[len(times) // 2], "extra_rss_mb": (rss - rss0) / 1024,
                      "extra_dev_mb": dev_mb, "threads": threads}))


def make_step(op, a, dev="cpu"):
    import contextlib

    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(7)
    # s2s's CUDA GEMMs take bf16 operands and accumulate in f32: PyTorch's autocast does the same
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev == "cuda" else contextlib.nullcontext()
    if op == "linear":
        x = torch.randn(a[0], a[1], generator=g).to(dev).requires_grad_()
        w = (torch.randn(a[2], a[1], generator=g) * 0.02).to(dev).requires_grad_()
        w.grad = torch.zeros_like(w)
        ones = torch.ones(a[0], a[2], device=dev)

        def step():
            with amp:
                y = F.linear(x, w)
            y.backward(ones.to(y.dtype))
    elif op == "attention":
        S, Ts, Hq, Hkv, D, causal = a
        q = torch.randn(S, Hq, Ts, D, generator=g).to(dev).requires_grad_()
        k = torch.randn(S, Hkv, Ts, D, generator=g).to(dev).requires_grad_()
        v = torch.randn(S, Hkv, Ts, D, generator=g).to(dev).requires_grad_()
        ones = torch.ones(S, Hq, Ts, D, device=dev)

        # On the GPU the reference is cuDNN's fused attention (the target: s2s within 1.3x of it, fwd + bwd),
        # else whatever SDPA picks.
        kern = contextlib.nullcontext()
        if dev == "cuda":
            from torch.nn.attention import SDPBackend, sdpa_kernel
            kern = sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION])

        def step():
            with amp, kern:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal), enable_gqa=True)
            y.backward(ones.to(y.dtype))
    elif op == "rmsnorm":
        x = torch.randn(a[0], a[1], generator=g).to(dev).requires_grad_()
        w = torch.ones(a[1], device=dev, requires_grad=True)
        w.grad = torch.zeros_like(w)
        ones = torch.ones(a[0], a[1], device=dev)

        def step():
            # Hugging Face Qwen3RMSNorm
            var = x.pow(2).mean(-1, keepdim=True)
            (w * (x * torch.rsqrt(var + 1e-6))).backward(ones)
    elif op == "ce":
        x = torch.randn(a[0], a[1], generator=g).to(dev).requires_grad_()
        w = (torch.randn(a[2], a[1], generator=g) * 0.02).to(dev).requires_grad_()
        w.grad = torch.zeros_like(w)
        lab = torch.randint(0, a[2], (a[0],), generator=g).to(dev)

        def step():
            with amp:
                logits = F.linear(x, w)
            F.cross_entropy(logits.float(), lab).backward()
    return step, ([x] if op != "attention" else [q, k, v])


def run_json(cmd, env):
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    if sys.argv[1] == "--child":
        torch_child(sys.argv[5:], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "cuda")
        return
    binary = sys.argv[1]
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count()
    quick = "--quick" in sys.argv
    cuda = "--cuda" in sys.argv
    reps = 3 if quick else 5
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), BENCH_REPS=str(reps))
    mem = "extra_dev_mb" if cuda else "extra_rss_mb"
    where = "on the GPU (s2s bf16-operand GEMMs, torch bf16 autocast)" if cuda else f"threads {threads}"
    print(f"{where}, median of {reps} runs, forward + backward; ratio = s2s / PyTorch (lower is better)")
    print(f"{'op':10} {'shape':34} {'s2s ms':>9} {'torch ms':>9} {'ratio':>6} {'target':>7}  {'s2s MB':>7} {'torch MB':>8}")
    missed = []
    for name, args, target in (QUICK if quick else CASES):
        ours = run_json([binary] + (["--cuda"] if cuda else []) + args, env)
        ref = run_json([sys.executable, __file__, "--child", str(threads), str(reps), "cuda" if cuda else "cpu"] + args,
                       env)
        ratio = ours["ms"] / ref["ms"]
        if cuda and name == "attention":
            target = 1.3  # against cuDNN's fused attention, forward + backward
        ok = ratio <= target
        line = (f"{name:10} {' '.join(args[1:]):34} {ours['ms']:9.2f} {ref['ms']:9.2f} {ratio:6.2f} "
                f"{'<=' + str(target):>7}  {ours[mem]:7.1f} {ref[mem]:8.1f}")
        if name == "ce":
            m = ours[mem] / max(ref[mem], 1e-9)
            line += f"  memory ratio {m:.3f} (target <= 0.1)"
            ok = ok and m <= 0.1
        print(line + ("" if ok else "  MISSED"))
        if not ok:
            missed.append(name)
    print("all targets met" if not missed else f"targets missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
