"""rmsnorm and layernorm against PyTorch (float64 references of the f32 inputs)."""
import sys

import torch
import torch.nn.functional as F
from harness import Case, main, randn, run_raw, refusals


def rmsnorm_ref(eps):
    # Hugging Face Qwen3RMSNorm: variance of the f32 input, x * rsqrt(var + eps), then * weight.
    def f(t, a):
        x = t["x"]
        return t["w"] * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))
    return f


def layernorm_ref(unbiased=False):
    def f(t, a):
        x = t["x"]
        if not unbiased:
            return F.layer_norm(x, x.shape[-1:], t["w"], t.get("b"), a["eps"])
        mu = x.mean(-1, keepdim=True)
        y = (x - mu) / torch.sqrt(x.var(-1, keepdim=True, unbiased=True) + a["eps"]) * t["w"]
        return y + t["b"] if "b" in t else y
    return f


def cases():
    out = []
    # RMSNorm. Why the input scales: y is proportional to (mean(x^2) + eps)^-1/2, so replacing eps = 1e-6 by
    # 1e-5 changes y by a relative 9e-6 / (2 (mean(x^2) + eps)). At unit scale that is 4.5e-6, below the
    # 1e-5 tolerance: the mutant would pass. At scale s = 0.05 (mean(x^2) ~ 2.5e-3) it is 1.8e-3, and at
    # s = 1e-3 (eps dominates) ~0.4: both far above tolerance while f32 rounding stays ~1e-6.
    eps_mutant = [("eps 1e-5 instead of 1e-6", rmsnorm_ref(1e-5))]
    for shape, scale in [((1, 1), 1e-3), ((1, 7), 0.05), ((5, 1), 1e-3), ((13, 257), 0.05), ((3, 5, 31), 0.05),
                         ((2, 3, 4, 17), 0.05), ((64, 1024), 0.05), ((131, 509), 1.0)]:
        inp = {"x": randn(*shape, scale=scale), "w": 1.0 + randn(shape[-1], scale=0.1)}
        # C = 1, several rows: dw is a sum of one term per row; with random signs it can cancel to near 0,
        # where an error relative to |dw| measures the cancellation (seed 4288341514). Same-sign terms.
        same_sign = shape == (5, 1)
        if same_sign:
            inp["x"] = inp["x"].abs()
        case = Case(f"rmsnorm x={list(shape)} scale={scale}", "rmsnorm", inp, rmsnorm_ref(1e-6),
                    grad=["x", "w"], attrs={"eps": 1e-6}, tol=1e-5, mutants=eps_mutant if scale < 1 else ())
        case.dy_ones = same_sign
        out.append(case)
    # a zero row (rstd = eps^-1/2 = 1000) among ordinary ones
    x = randn(9, 96, scale=0.05)
    x[4] = 0.0
    out.append(Case("rmsnorm with a zero row", "rmsnorm", {"x": x, "w": randn(96)}, rmsnorm_ref(1e-6),
                    grad=["x", "w"], attrs={"eps": 1e-6}, tol=1e-5, mutants=eps_mutant))
    # frozen weight (stage 1: gradient flows through the frozen LLM) and frozen input (dw only)
    inp = {"x": randn(2, 37, 128, scale=0.05), "w": randn(128)}
    out.append(Case("rmsnorm frozen w", "rmsnorm", inp, rmsnorm_ref(1e-6), grad=["x"], attrs={"eps": 1e-6},
                    tol=1e-5, mutants=eps_mutant))
    out.append(Case("rmsnorm frozen x", "rmsnorm", inp, rmsnorm_ref(1e-6), grad=["w"], attrs={"eps": 1e-6},
                    tol=1e-5, mutants=eps_mutant))
    # Qwen3 q_norm over head_dim: [T, H, D]
    inp = {"x": randn(11, 4, 64), "w": randn(64)}
    out.append(Case("rmsnorm q_norm [T, H, D]", "rmsnorm", inp, rmsnorm_ref(1e-6), grad=["x", "w"],
                    attrs={"eps": 1e-6}, tol=1e-5))

    # LayerNorm. The unbiased-variance mutant changes rstd by a relative ~1/(2(C-1)) (2e-3 at C = 257),
    # far above the 1e-5 tolerance for C up to ~5e4; C = 1 is skipped (unbiased variance is undefined).
    unbiased = [("unbiased variance", layernorm_ref(unbiased=True))]
    # C = 2: dx is proportional to 1 - xh^2 = eps / (d^2 + eps) (d = half the gap between the two values),
    # which cancels catastrophically at unit scale in any f32 implementation (torch's too); and a gap near
    # 0 makes x - mean itself inexact. So the C = 2 rows get a gap 2d with |d| in [1e-3, 2e-3]:
    # 1 - xh^2 >= 0.7 and x - mean is exact to ~1e-7. (The unbiased mutant is not used there: with
    # d^2 < eps it moves y by about the tolerance.)
    for shape, bias, scale in [((3, 2), True, 3e-3), ((7, 13), True, 1.0), ((2, 3, 257), False, 1.0),
                               ((2, 3, 5, 7), True, 1.0), ((64, 1280), True, 1.0)]:
        inp = {"x": randn(*shape, scale=scale), "w": 1.0 + randn(shape[-1], scale=0.1)}
        if shape[-1] == 2:
            d = (1e-3 + 1e-3 * randn(shape[0]).abs().clamp(max=1.0)) * randn(shape[0]).sign()
            inp["x"][:, 1] = inp["x"][:, 0] + 2 * d
        if bias:
            inp["b"] = randn(shape[-1])
        out.append(Case(f"layernorm x={list(shape)} bias={bias}", "layernorm", inp, layernorm_ref(), grad=list(inp),
                        attrs={"eps": 1e-5}, tol=1e-5, mutants=unbiased if shape[-1] > 2 else ()))
    # C = 1: the output is the constant b and dx = dw = 0 exactly. torch's float64 layer_norm returns ~1e-15
    # noise there, which a relative comparison cannot use, so the reference is the exact math.
    for shape, bias in [((1, 1), True), ((97, 1), False)]:
        inp = {"x": randn(*shape), "w": randn(1)}
        if bias:
            inp["b"] = randn(1)
        out.append(Case(f"layernorm x={list(shape)} bias={bias}", "layernorm", inp,
                        lambda t, a: (t["x"] - t["x"]) * t["w"] + (t["b"] if "b" in t else 0.0), grad=list(inp),
                        attrs={"eps": 1e-5}, tol=1e-5))
    # rows with a mean far from 0 (two-pass statistics), eps of the encoder
    inp = {"x": randn(17, 160) + 10.0, "w": randn(160), "b": randn(160)}
    out.append(Case("layernorm offset rows", "layernorm", inp, layernorm_ref(), grad=list(inp),
                    attrs={"eps": 1e-5}, tol=1e-5, mutants=unbiased))
    # frozen parts: only x (frozen encoder-side LN feeding a trained adapter), only w/b (llm_ln on frozen
    # LLM hidden states in stage 2b)
    inp = {"x": randn(3, 41, 96), "w": randn(96), "b": randn(96)}
    out.append(Case("layernorm frozen w, b", "layernorm", inp, layernorm_ref(), grad=["x"], attrs={"eps": 1e-5},
                    tol=1e-5, mutants=unbiased))
    out.append(Case("layernorm frozen x", "layernorm", inp, layernorm_ref(), grad=["w", "b"], attrs={"eps": 1e-5},
                    tol=1e-5, mutants=unbiased))
    return out


def deterministic(binary, op, inputs, attrs, grad, runs=3):
    """Runs one case several times (same thread count) and demands bit-identical outputs and gradients:
    the weight gradients are reductions over rows split between threads, combined in a fixed order."""
    dy = randn(*inputs["x"].shape)
    first = None
    for _ in range(runs):
        rc, err, got, _ = run_raw(binary, op, inputs, attrs, grad, [dy])
        if rc != 0:
            return f"{op} determinism: opcheck failed: {err.strip()}"
        if first is None:
            first = got
        elif any(not torch.equal(first[k], got[k]) for k in first):
            return f"{op} determinism: outputs differ between runs"
    return None


def extra_checks(binary):
    fails = []
    x = randn(301, 1024)  # > 32768 elements: the threaded paths
    for op, inp, attrs, grad in [("rmsnorm", {"x": x, "w": randn(1024)}, {"eps": 1e-6}, ["x", "w"]),
                                 ("layernorm", {"x": x, "w": randn(1024), "b": randn(1024)}, {"eps": 1e-5},
                                  ["x", "w", "b"])]:
        f = deterministic(binary, op, inp, attrs, grad)
        print(f"{'FAIL' if f else 'ok':4} {op + ' bit-identical over 3 runs':48}")
        fails += [f] if f else []
    # Shapes the ops must refuse with a message naming the problem.
    fails += refusals(binary, [
            ("rmsnorm weight of the wrong length", "rmsnorm", {"x": randn(3, 8), "w": randn(7)}, {}, "needs weight"),
            ("layernorm bias of the wrong length", "layernorm", {"x": randn(3, 8), "w": randn(8), "b": randn(9)},
             {}, "bias")])
    return fails


if __name__ == "__main__":
    main(cases(), extra_checks)
