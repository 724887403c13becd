"""softmax, cross_entropy, cross_entropy_fused, kl_fused against PyTorch (float64 references), plus
checks that compare s2s runs with each other: GEMM counts (frozen weights skip their GEMM), fused ==
unfused, peak memory independent of N * V, determinism, and the eager-gradient bookkeeping
(no_grad path, refusal inside a recompute region, pending_eager).

Tolerances (max |err| / max |ref|, see harness.max_rel_err), with the largest errors seen over
repeated seeded runs:
- softmax, cross_entropy on given logits: 1e-5 (f32 rows, f64 row sums; seen <= 4e-6).
- fused losses: the logits come from f32 GEMMs over C: 3e-5 for C <= 64, 1e-4 above and for KL
  (seen <= 1e-5, the teacher gradient of KL; CE <= 3e-6).
- s2s fused vs s2s unfused on the same data: 1e-5 (same math, different GEMM blocking; seen ~1e-6).
Mutants are checked on the loss and on every gradient (mutant_grads); the smallest margin seen is
~90x the tolerance (label off by one).

Deliberate difference from PyTorch: when every label is ignored (every mask entry 0) the loss is 0
with zero gradients; PyTorch's mean reduction gives NaN (0/0). The references below encode ours.
"""
import os
import re
import sys

import torch
import torch.nn.functional as F
from harness import SEED, Case, max_rel_err, randint, randn, run_case, run_raw

def _chunk_bytes():
    """The fused losses' workspace budget, read from ops/cpu/cross_entropy_fused.h."""
    hdr = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../ops/cpu/cross_entropy_fused.h")
    m = re.search(r"#define S2S_LOSS_CHUNK_BYTES \(\(size_t\)(\d+) << 20\)", open(hdr).read())
    return int(m.group(1)) << 20


CHUNK_BYTES = _chunk_bytes()


# ---- references -----------------------------------------------------------------------------------
def ce_ref(logits, labels, ignore, count_ignored=False, label_shift=0):
    lab = labels.long()
    valid = lab != ignore
    if label_shift:  # mutant: label off by one
        lab = torch.where(valid, (lab + label_shift) % logits.shape[-1], lab)
    if not valid.any():
        return (logits * 0).sum()  # s2s: 0, not PyTorch's NaN
    if count_ignored:  # mutant: ignored rows counted in the mean
        return F.cross_entropy(logits, lab, ignore_index=ignore, reduction="sum") / lab.numel()
    return F.cross_entropy(logits, lab, ignore_index=ignore)


def kl_ref(hs, ht, w, mask, T, t_square=False, ignore_mask=False):
    s, t = hs @ w.T, ht @ w.T
    kl = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), log_target=True, reduction="none").sum(-1)
    m = torch.ones_like(kl) if ignore_mask else mask.double()
    if m.sum() == 0:
        return (kl * 0).sum()
    loss = (kl * m).sum() / m.sum()
    return loss * T * T if t_square else loss


def labels_with_ignored(n, v, frac, ignore=-100):
    lab = randint(0, v, n)
    drop = torch.rand(n, generator=torch.Generator().manual_seed(SEED + n)) < frac
    if n > 1:
        drop[0], drop[-1] = True, False  # at least one of each
    lab[drop] = ignore
    return lab


def ce_fused_ref(t, a):
    return a["weight"] * ce_ref(t["h"] @ t["w"].T, t["labels"], a["ignore_index"])


CE_FUSED_MUTANTS = [
    ("ignored rows counted in the mean",
     lambda t, a: a["weight"] * ce_ref(t["h"] @ t["w"].T, t["labels"], a["ignore_index"], count_ignored=True)),
    ("label off by one",
     lambda t, a: a["weight"] * ce_ref(t["h"] @ t["w"].T, t["labels"], a["ignore_index"], label_shift=1)),
]


# ---- cases against PyTorch ------------------------------------------------------------------------
def cases():
    out = []
    # (shape, scale, offset): +1000 overflows exp unless the row max is subtracted first
    for shape, scale, off in [((1, 1), 1.0, 0.0), ((2, 1), 1.0, 0.0), ((7, 13), 1.0, 0.0), ((3, 5, 129), 3.0, 0.0),
                              ((4, 3001), 6.0, 1000.0)]:
        muts = []
        if shape[-1] > 1:
            muts.append(("temperature 1.05", lambda t, a: torch.softmax(t["x"] * 1.05, -1)))
        if len(shape) == 2 and shape[0] > 1 and shape[1] > 1:
            muts.append(("softmax over the first dim", lambda t, a: torch.softmax(t["x"], 0)))
        out.append(Case(f"softmax {list(shape)} scale={scale} offset={off}", "softmax", {"x": randn(*shape, scale=scale) + off},
                        lambda t, a: torch.softmax(t["x"], -1), grad=["x"], tol=1e-5, mutants=muts))

    # plain cross-entropy: (N, V, fraction ignored, ignore_index, logit scale)
    for n, v, frac, ig, sc in [(1, 1, 0.0, -100, 1.0), (5, 7, 0.3, -100, 1.0), (37, 1009, 0.3, -100, 2.0),
                               (13, 101, 0.2, -100, 30.0), (9, 50, 0.3, 3, 1.0), (6, 11, 1.0, -100, 1.0)]:
        lab = labels_with_ignored(n, v, frac, ig) if frac < 1 else torch.full((n,), ig, dtype=torch.int32)
        if ig >= 0:
            lab[(lab != ig) & (lab < 0)] = ig
        inp = {"logits": randn(n, v, scale=sc), "labels": lab}
        some = 0 < (lab == ig).sum() < n
        muts = [("ignored rows counted in the mean",
                 lambda t, a: ce_ref(t["logits"], t["labels"], a["ignore_index"], count_ignored=True)),
                ("label off by one", lambda t, a: ce_ref(t["logits"], t["labels"], a["ignore_index"], label_shift=1))]
        out.append(Case(f"cross_entropy n={n} v={v} ignored={int((lab == ig).sum())} ig={ig}", "cross_entropy",
                        inp, lambda t, a: ce_ref(t["logits"], t["labels"], a["ignore_index"]), grad=["logits"],
                        attrs={"ignore_index": ig}, tol=1e-5, mutants=muts if some else (), mutant_grads=True))

    # fused cross-entropy: (N, C, V, fraction ignored, weight, grads, dy=1)
    specs = [(1, 3, 5, 0.0, 1.0, ["h", "w"], False),
             (7, 13, 4099, 0.3, 0.37, ["h", "w"], False),    # V = 2 blocks + 3
             (7, 13, 4099, 0.3, 0.37, ["h", "w"], True),     # upstream 1: no correction pass
             (131, 33, 5003, 0.25, 1.0, ["h", "w"], False),  # primes, odd C
             (300, 17, 2053, 0.1, 2.5, ["h", "w"], True),    # two token chunks
             (300, 17, 2053, 0.1, 2.5, ["h", "w"], False),
             (29, 64, 3001, 0.2, 1.0, ["h"], False),         # frozen w
             (29, 64, 3001, 0.2, 1.0, ["w"], False),         # frozen h
             (23, 96, 1000, 0.2, 1.0, [], False),            # nothing requires grad: loss only
             (5, 8, 100, 1.0, 1.0, ["h", "w"], False)]       # all ignored: 0, zero grads
    for n, c, v, frac, wt, grad, ones in specs:
        lab = labels_with_ignored(n, v, frac) if frac < 1 else torch.full((n,), -100, dtype=torch.int32)
        # one row: keep its loss O(1) (a near-certain row's loss lse - z_y cancels in f32, and with
        # one row nothing else sets the scale the error is measured against)
        inp = {"h": randn(n, c), "w": randn(v, c, scale=c ** -0.5 * (0.5 if n == 1 else 2)), "labels": lab}
        some = 0 < (lab == -100).sum() < n
        cs = Case(f"ce_fused n={n} c={c} v={v} ign={int((lab == -100).sum())} wt={wt} grad={grad}{' dy=1' if ones else ''}",
                  "cross_entropy_fused", inp, ce_fused_ref, grad=grad, attrs={"ignore_index": -100, "weight": wt},
                  tol=3e-5 if c <= 64 else 1e-4, mutants=CE_FUSED_MUTANTS if some else (), mutant_grads=True)
        cs.dy_ones = ones
        out.append(cs)
    # a custom ignore index
    lab = randint(0, 300, 19)
    lab[::4] = 7
    out.append(Case("ce_fused ignore_index=7", "cross_entropy_fused",
                    {"h": randn(19, 10), "w": randn(300, 10), "labels": lab}, ce_fused_ref, grad=["h", "w"],
                    attrs={"ignore_index": 7, "weight": 1.0}, tol=3e-5, mutants=CE_FUSED_MUTANTS, mutant_grads=True))

    # KL: (N, C, V, T, fraction masked out, grads, dy=1)
    kspecs = [(1, 4, 7, 2.0, 0.0, ["h_s"], False),
              (13, 17, 4099, 2.0, 0.3, ["h_s"], False),             # stage 1: only the student trains
              (13, 17, 4099, 2.0, 0.3, ["h_s", "h_t", "w"], False),  # everything, g != 1 correction
              (13, 17, 4099, 2.0, 0.3, ["h_s", "h_t", "w"], True),
              (300, 9, 2053, 0.7, 0.2, ["h_s", "w"], False),         # two token chunks, T < 1
              (6, 5, 50, 2.0, 1.0, ["h_s"], False)]                  # empty mask
    for n, c, v, T, frac, grad, ones in kspecs:
        mask = (torch.rand(n, generator=torch.Generator().manual_seed(SEED + 7 * n)) >= frac).int()
        if 0 < frac < 1 and n > 1:
            mask[0], mask[-1] = 0, 1
        h_t = randn(n, c, scale=2.5)  # sharper than the student: KL(p||q) and KL(q||p) clearly differ
        h_t[mask == 0] *= 4  # masked-out rows far from the student: counting them must show
        inp = {"h_s": randn(n, c), "h_t": h_t, "w": randn(v, c, scale=c ** -0.5 * 3), "mask": mask}
        muts = [("wrong temperature (T=1)", lambda t, a: kl_ref(t["h_s"], t["h_t"], t["w"], t["mask"], 1.0)),
                ("T^2 factor", lambda t, a: kl_ref(t["h_s"], t["h_t"], t["w"], t["mask"], a["T"], t_square=True)),
                ("KL(q||p) instead of KL(p||q)", lambda t, a: kl_ref(t["h_t"], t["h_s"], t["w"], t["mask"], a["T"]))]
        if 0 < mask.sum() < n:
            muts.append(("mask ignored", lambda t, a: kl_ref(t["h_s"], t["h_t"], t["w"], t["mask"], a["T"],
                                                              ignore_mask=True)))
        ks = Case(f"kl_fused n={n} c={c} v={v} T={T} masked={int((mask == 0).sum())} grad={grad}{' dy=1' if ones else ''}",
                  "kl_fused", inp, lambda t, a: kl_ref(t["h_s"], t["h_t"], t["w"], t["mask"], a["T"]), grad=grad,
                  attrs={"T": T}, tol=1e-4, mutants=muts if mask.sum() > 0 else (), mutant_grads=True)
        ks.dy_ones = ones
        out.append(ks)
    return out


# ---- checks comparing s2s runs ------------------------------------------------------------------
ONE = [torch.ones(())]


def ce_inputs(n, c, v, frac=0.25):
    return {"h": randn(n, c), "w": randn(v, c, scale=c ** -0.5 * 2), "labels": labels_with_ignored(n, v, frac)}


def must(rc, got, meta, what, err):
    if rc != 0:
        raise AssertionError(f"{what}: opcheck failed: {err.strip()}")
    return got, meta


def check_gemm_counts(binary):
    inp = ce_inputs(7, 13, 4099)
    calls = {}
    for name, grad, dys in [("h+w", ["h", "w"], ONE), ("h only (w frozen)", ["h"], ONE), ("w only", ["w"], ONE),
                            ("loss only", [], ()), ("h+w, g != 1", ["h", "w"], [torch.tensor(0.7)])]:
        rc, err, got, meta = run_raw(binary, "cross_entropy_fused", inp, {"weight": 1.0}, grad, dys)
        got, meta = must(rc, got, meta, name, err)
        calls[name] = int(meta["gemm_calls"])
        if "w" not in grad and "grad.w" in got:
            raise AssertionError("a gradient was produced for frozen w")
    full = calls["h+w"]
    # per token chunk (V < 16k here: one block each): logits, dh, dw GEMMs; g != 1 re-runs logits + dw
    ok = (calls["h only (w frozen)"] * 3 == full * 2 and calls["w only"] * 3 == full * 2
          and calls["loss only"] * 3 == full and calls["h+w, g != 1"] * 3 == full * 5)
    if not ok:
        raise AssertionError(f"GEMM counts {calls}")
    # KL, stage 1 (student only) against everything trainable
    kin = {"h_s": randn(9, 11), "h_t": randn(9, 11), "w": randn(3000, 11), "mask": torch.ones(9, dtype=torch.int32)}
    kc = {}
    for name, grad in [("h_s", ["h_s"]), ("all", ["h_s", "h_t", "w"])]:
        rc, err, got, meta = run_raw(binary, "kl_fused", kin, {"T": 2.0}, grad, ONE)
        kc[name] = int(must(rc, got, meta, "kl " + name, err)[1]["gemm_calls"])
    if not kc["h_s"] * 2 == kc["all"]:  # per block: 2 logits + dh_s  vs  2 logits + dh_s + dh_t + 2 dw
        raise AssertionError(f"KL GEMM counts {kc}")
    return f"ce {calls}; kl {kc}"


def upstream(salt):
    """An upstream gradient g with |g| in [0.5, 2], either sign: the fused losses carry ~eps / |g| relative
    error in w.grad (see main), so a g near 0 would measure that cancellation, not the op."""
    u = float(torch.rand((), generator=torch.Generator().manual_seed(SEED + salt)))
    return torch.tensor((0.5 + 1.5 * u) * (-1.0 if u < 0.5 else 1.0))


def check_fused_equals_unfused(binary):
    inp = ce_inputs(37, 29, 3001)
    dy = [upstream(3001)]  # randn() here failed about one run in a hundred
    res = []
    for op in ["cross_entropy_fused", "ce_unfused"]:
        rc, err, got, meta = run_raw(binary, op, inp, {"weight": 1.0}, ["h", "w"], dy)
        res.append(must(rc, got, meta, op, err)[0])
    errs = {k: max_rel_err(res[0][k], res[1][k]) for k in ["out", "grad.h", "grad.w"]}
    if max(errs.values()) > 1e-5:
        raise AssertionError(f"fused vs unfused rel err {errs} > 1e-5")
    return " ".join(f"{k}={e:.1e}" for k, e in errs.items())


def check_peak_memory(binary):
    c, v = 32, 50000
    rep = []
    for op, n in [("cross_entropy_fused", 64), ("cross_entropy_fused", 1024), ("ce_unfused", 1024)]:
        inp = ce_inputs(n, c, v, 0.0)
        rc, err, got, meta = run_raw(binary, op, inp, {"weight": 1.0}, ["h", "w"], ONE)
        _, meta = must(rc, got, meta, op, err)
        held = 4 * (2 * n * c + 2 * v * c + n + 1)  # inputs and their gradients live in the same arena
        extra = int(meta["peak_bytes"]) - held
        bound = CHUNK_BYTES + 4 * (4 * n * c) + (1 << 20)  # chunk budget + O(N C) for dh
        fits = extra <= bound
        rep.append(f"{op} N={n}: {extra / 2**20:.1f} MiB (bound {bound / 2**20:.1f}, N*V*4 = {n * v * 4 / 2**20:.0f})")
        if op == "ce_unfused":
            if fits:  # the mutant: [N, V] logits must not fit the bound, else the bound proves nothing
                raise AssertionError("unfused CE fits the fused memory bound: the bound is too loose")
        elif not fits:
            raise AssertionError(f"fused CE peak {extra} B over the bound {bound} B")
    return "; ".join(rep)


def check_deterministic(binary):
    inp = ce_inputs(300, 17, 2053)
    runs = []
    for _ in range(2):
        rc, err, got, meta = run_raw(binary, "cross_entropy_fused", inp, {"weight": 1.0}, ["h", "w"], [torch.tensor(1.3)])
        runs.append(must(rc, got, meta, "det", err)[0])
    for k in runs[0]:
        if not torch.equal(runs[0][k], runs[1][k]):
            raise AssertionError(f"two identical runs differ in {k}")
    return "bit-identical"


def check_bookkeeping(binary):
    ce_in = ce_inputs(11, 6, 300)
    kin = {"h_s": randn(5, 6), "h_t": randn(5, 6), "w": randn(300, 6), "mask": torch.ones(5, dtype=torch.int32)}
    # no_grad: the loss-only path (value checked against PyTorch, one GEMM per tile)
    rc, err, got, meta = run_raw(binary, "ce_fused_nograd", ce_in, {"weight": 1.0})
    got, meta = must(rc, got, meta, "no_grad", err)
    ref = ce_ref(ce_in["h"].double() @ ce_in["w"].double().T, ce_in["labels"], -100)
    if max_rel_err(got["out"], ref) > 3e-5 or int(meta["gemm_calls"]) != 1:
        raise AssertionError(f"no_grad path: err {max_rel_err(got['out'], ref):.1e}, {meta['gemm_calls']} GEMMs")
    for op, inp in [("ce_fused_region", ce_in), ("kl_fused_region", kin)]:
        rc, err, _, _ = run_raw(binary, op, inp)
        if rc == 0 or "recompute region" not in err:
            raise AssertionError(f"{op}: a fused loss inside a recompute region was not refused ({err.strip()})")
    rc, err, got, _ = run_raw(binary, "ce_fused_pending", ce_in, {"drop": 0})
    must(rc, got, None, "pending_eager after backward", err)
    rc, err, _, _ = run_raw(binary, "ce_fused_pending", ce_in, {"drop": 1})
    if rc == 0 or "without backward" not in err:
        raise AssertionError("a step holding an eager w.grad update was reset without backward and not caught")
    return "no_grad loss-only, region refused (ce, kl), pending_eager 1 -> 0, dropped step caught"


CHECKS = [("GEMM counts: frozen operands skip their GEMMs", check_gemm_counts),
          ("fused CE == linear + cross_entropy", check_fused_equals_unfused),
          ("peak memory independent of N*V", check_peak_memory),
          ("deterministic", check_deterministic),
          ("no_grad / region / pending_eager", check_bookkeeping)]


def main():
    binary = sys.argv[1]
    print(f"seed {SEED} (set S2S_TEST_SEED={SEED} to reproduce)")
    failures = []
    all_cases = cases()
    for case in all_cases:
        dys = None
        if case.op in ("cross_entropy_fused", "kl_fused") and case.grad and not getattr(case, "dy_ones", False):
            # The fused losses put w's share into w.grad at upstream 1 and correct it by (g - 1) x
            # share in backward: the result carries ~eps * |share| absolute error, i.e. eps / |g|
            # relative to g * share. Draw g with |g| in [0.5, 2] so the tolerance means the same
            # thing in every run (g near 0 would measure that cancellation, not the op).
            dys = [upstream(len(case.name))]
        errs, info = run_case(binary, case, dys)
        print(f"{'FAIL' if errs else 'ok':4} {case.name:72} tol {case.tol:.0e}  " + (" ".join(info[0]) if info else ""))
        failures += errs
    for name, fn in CHECKS:
        try:
            msg = fn(binary)
            print(f"ok   {name}: {msg}")
        except AssertionError as e:
            print(f"FAIL {name}")
            failures.append(f"{name}: {e}")
    for f in failures:
        print("  " + f)
    n = len(all_cases) + len(CHECKS)
    print(f"{n - len(failures)}/{n} cases passed" if failures else f"{n}/{n} cases passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
