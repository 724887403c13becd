"""s2s_attention_kv (new query rows against a KV cache) against a float64 PyTorch reference.

Query row i of Tq sits at absolute position Tk - Tq + i and sees keys 0 .. Tk - Tq + i. The reference builds
that mask explicitly; mutants plant the likely bugs (causal offset off by one either way, positions counted
from 0 as if Tk == Tq, a wrong scale, GQA heads mapped h % Hkv instead of h // g) and must be told apart.
The op is forward only: asked for a gradient it must refuse with a message saying so.

Tolerance 1e-5 (max abs error / max abs value), as for s2s_attention: f32 dot products over D and an f32
online softmax over the visible keys.
"""
import sys

import torch

from harness import Case, main as harness_main, randn, run_raw


def attention_kv_ref(t, a, shift=0, from_zero=False, scale_mul=1.0, gqa_mod=False):
    """shift: query i sees keys up to Tk - Tq + i + shift; from_zero: offset 0 instead of Tk - Tq."""
    q, k, v = t["q"], t["k"], t["v"]  # [Tq, Hq, D], [Tk, Hkv, D]
    Tq, Hq, _ = q.shape
    Tk, Hkv, _ = k.shape
    g = Hq // Hkv
    heads = [h % Hkv if gqa_mod else h // g for h in range(Hq)]
    k, v = k[:, heads], v[:, heads]                                    # [Tk, Hq, D]
    sc = q.transpose(0, 1) @ k.permute(1, 2, 0) * (float(a["scale"]) * scale_mul)  # [Hq, Tq, Tk]
    off = 0 if from_zero else Tk - Tq
    i = torch.arange(Tq)[:, None]
    j = torch.arange(Tk)[None, :]
    allowed = j <= off + i + shift                                     # [Tq, Tk]
    sc = sc.masked_fill(~allowed, float("-inf"))
    return (sc.softmax(-1) @ v.transpose(0, 1)).transpose(0, 1)       # [Tq, Hq, D]


def kv_case(name, Tq, Tk, Hq, Hkv, D, mag=1.0, tol=1e-5, peaky=False):
    inp = {"q": randn(Tq, Hq, D, scale=mag), "k": randn(Tk, Hkv, D, scale=mag), "v": randn(Tk, Hkv, D)}
    mutants = []
    if Tk > 1:  # one key: out = v whatever the scale
        mutants.append(("wrong scale (x1.001)", lambda t, a: attention_kv_ref(t, a, scale_mul=1.001)))
    if Tk > 1 and not peaky:  # peaky scores: one key more or less rarely carries weight
        mutants.append(("causal offset -1 (query misses its own key)", lambda t, a: attention_kv_ref(t, a, shift=-1)))
    if Tq > 1 and not peaky:
        mutants.append(("causal offset +1 (query sees the next key)", lambda t, a: attention_kv_ref(t, a, shift=1)))
    if Tk > Tq:
        mutants.append(("positions from 0 (as if Tk == Tq)", lambda t, a: attention_kv_ref(t, a, from_zero=True)))
    if Hkv > 1 and Hq > Hkv:
        mutants.append(("GQA head h % Hkv", lambda t, a: attention_kv_ref(t, a, gqa_mod=True)))
    return Case(f"attention_kv {name} Tq={Tq} Tk={Tk} Hq={Hq} Hkv={Hkv} D={D}", "attention_kv", inp,
                attention_kv_ref, attrs={"scale": repr(D ** -0.5)}, tol=tol, mutants=mutants)


def cases():
    c = []
    for Hq, Hkv in ((1, 1), (2, 1), (4, 1), (4, 2), (4, 4), (8, 2)):
        c.append(kv_case("decode", 1, 37, Hq, Hkv, 24))   # one new row, odd cache length, odd D
        c.append(kv_case("chunk", 5, 130, Hq, Hkv, 64))   # Tq > 1 against a cache over one key tile
    c.append(kv_case("first token", 1, 1, 4, 2, 16))      # cache of one: out = v
    c.append(kv_case("prefill", 23, 23, 4, 2, 32))        # Tk == Tq: plain causal attention
    c.append(kv_case("prefill", 129, 129, 2, 1, 128))     # tile edge + 1
    c.append(kv_case("decode", 1, 256, 4, 1, 128))        # tile multiple
    c.append(kv_case("decode", 1, 257, 6, 3, 7))          # tile multiple + 1, D = 7
    c.append(kv_case("chunk", 3, 1000, 8, 4, 64))
    c.append(kv_case("peaky", 2, 300, 4, 2, 64, mag=3.0, peaky=True))  # logits ~ +-70: online max keeps exp2 in range
    return c


def refusal(binary):
    """With a gradient asked for, the op must fail and say it is forward only."""
    inp = {"q": randn(2, 4, 8), "k": randn(5, 2, 8), "v": randn(5, 2, 8)}
    fails = []
    for g in ("q", "k", "v"):
        rc, err, _, _ = run_raw(binary, "attention_kv", inp, {"scale": 0.35}, grad=(g,), dys=(randn(2, 4, 8),))
        ok = rc != 0 and "forward only" in err
        print(f"{'ok' if ok else 'FAIL':4} refuses a gradient for {g}")
        if not ok:
            fails.append(f"attention_kv with grad on {g}: not refused (rc {rc}, stderr {err.strip()[:200]!r})")
    for name, bad, want in (("Tk < Tq", {"q": randn(6, 4, 8), "k": randn(5, 2, 8), "v": randn(5, 2, 8)}, "cache"),
                            ("Hq % Hkv", {"q": randn(1, 3, 8), "k": randn(5, 2, 8), "v": randn(5, 2, 8)}, "GQA")):
        rc, err, _, _ = run_raw(binary, "attention_kv", bad, {"scale": 0.35})
        ok = rc != 0 and want in err
        print(f"{'ok' if ok else 'FAIL':4} refuses {name}")
        if not ok:
            fails.append(f"attention_kv {name}: not refused (rc {rc}, stderr {err.strip()[:200]!r})")
    return fails


if __name__ == "__main__":
    harness_main(cases(), extra=refusal)
