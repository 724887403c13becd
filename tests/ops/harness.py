"""Op conformance harness: s2s CPU ops against PyTorch on fresh random inputs.

A case is a dict of input tensors, attributes, the names of inputs that require grad, a PyTorch
reference function, and a tolerance. The harness draws upstream gradients, computes the reference
forward and backward in float64 (so the reference itself is exact to far below our tolerance), runs
the opcheck binary on the same inputs, and compares outputs and every gradient.

A case may also carry `mutants`: references with a planted error (a wrong epsilon, an off-by-one
mask). The harness checks that our output does NOT match them within tolerance, which proves the
tolerance is tight enough to catch that bug.

Seeds: each run draws a fresh seed (printed); S2S_TEST_SEED=N reproduces a run.
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file

SEED = int(os.environ.get("S2S_TEST_SEED", int.from_bytes(os.urandom(4), "little")))
GEN = torch.Generator().manual_seed(SEED)


def randn(*shape, scale=1.0):
    return torch.randn(shape, generator=GEN, dtype=torch.float32) * scale  # shape () gives a scalar


def randint(lo, hi, *shape):
    return torch.randint(lo, hi, shape, generator=GEN, dtype=torch.int32)


def max_rel_err(a, b):
    """max |a-b| / (max|b| + tiny): error relative to the tensor's scale (robust to near-zero entries)."""
    a = a.double()
    b = b.double()
    return ((a - b).abs().max() / (b.abs().max() + 1e-30)).item() if b.numel() else 0.0


def _same_shape(a, b):
    """Shapes equal, or both a single element (a scalar loss may come back as [1])."""
    return tuple(a.shape) == tuple(b.shape) or (a.numel() == 1 and b.numel() == 1)


class Case:
    # mutant_grads: a mutant also counts as caught when one of its gradients (same upstream dy) is off,
    # so backward-only bugs can be planted (e.g. with out = ref.detach() + (bug - bug.detach())).
    def __init__(self, name, op, inputs, ref, grad=(), attrs=None, tol=1e-5, mutants=(), n_out=1,
                 mutant_grads=False):
        self.name, self.op, self.inputs, self.ref = name, op, inputs, ref
        self.grad, self.attrs, self.tol, self.mutants, self.n_out = list(grad), attrs or {}, tol, mutants, n_out
        self.mutant_grads = mutant_grads


def _reference(case, fn):
    leaves = {}
    for k, v in case.inputs.items():
        if v.dtype.is_floating_point:
            t = v.double().clone().requires_grad_(k in case.grad)
        else:
            t = v.clone()
        leaves[k] = t
    outs = fn(leaves, case.attrs)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    return leaves, outs


def run_case(binary, case, dys=None):
    leaves, outs = _reference(case, case.ref)
    if dys is None:  # a case may set dy_ones = True to force the upstream gradient 1
        dys = [torch.ones(o.shape) if getattr(case, "dy_ones", False) else randn(*o.shape) for o in outs]
    grads = {}
    if case.grad:
        torch.autograd.backward([o for o in outs], [d.double() for d in dys])
        grads = {k: leaves[k].grad.float() for k in case.grad}
    with tempfile.TemporaryDirectory() as td:
        cin, cout = os.path.join(td, "case.safetensors"), os.path.join(td, "out.safetensors")
        tensors = {k: v.contiguous() for k, v in case.inputs.items()}
        if case.grad:
            tensors["dy"] = dys[0].float().contiguous()
            if len(dys) > 1:
                tensors["dy1"] = dys[1].float().contiguous()
        meta = {"op": case.op, **{k: str(v) for k, v in case.attrs.items()}}
        if case.grad:
            meta["grad"] = ",".join(case.grad)
        save_file(tensors, cin, metadata=meta)
        r = subprocess.run([binary, cin, cout], capture_output=True, text=True)
        if r.returncode != 0:
            return [f"{case.name}: opcheck failed: {r.stderr.strip()}"], None
        got = load_file(cout)
        from safetensors import safe_open
        with safe_open(cout, "pt") as f:
            meta_out = f.metadata()
    errors = []
    report = []
    names = ["out", "out1", "out2", "out3"]
    for i, o in enumerate(outs[: case.n_out]):
        if not _same_shape(got[names[i]], o):  # max_rel_err would broadcast a wrong shape into a pass
            errors.append(f"{case.name}: {names[i]} shape {list(got[names[i]].shape)} != reference {list(o.shape)}")
        e = max_rel_err(got[names[i]], o.detach())
        report.append(f"{names[i]}={e:.1e}")
        if not (e <= case.tol):
            errors.append(f"{case.name}: {names[i]} rel err {e:.3e} > tol {case.tol:.0e}")
    for k, g in grads.items():
        if not _same_shape(got["grad." + k], g):
            errors.append(f"{case.name}: grad of {k} shape {list(got['grad.' + k].shape)} != {list(g.shape)}")
        e = max_rel_err(got["grad." + k], g)
        report.append(f"d{k}={e:.1e}")
        if not (e <= case.tol):
            errors.append(f"{case.name}: grad of {k} rel err {e:.3e} > tol {case.tol:.0e}")
    for mname, mfn in case.mutants:
        mleaves, mouts = _reference(case, mfn)
        e = max_rel_err(got["out"], mouts[0].detach())
        if case.mutant_grads and case.grad:
            torch.autograd.backward([o for o in mouts], [d.double() for d in dys])
            for k in case.grad:
                mg = mleaves[k].grad if mleaves[k].grad is not None else torch.zeros_like(mleaves[k])
                e = max(e, max_rel_err(got["grad." + k], mg.float()))
        if e <= case.tol:
            errors.append(f"{case.name}: planted error '{mname}' NOT caught (rel err {e:.3e} <= tol {case.tol:.0e})")
        else:
            report.append(f"[{mname}: caught, {e:.1e}]")
    return errors, (report, meta_out)


def run_raw(binary, op, inputs, attrs=None, grad=(), dys=()):
    """Run one opcheck case without a reference: (returncode, stderr, outputs dict, output metadata).
    For checks that compare two s2s runs, read peak_bytes / gemm_calls, or expect a refusal."""
    with tempfile.TemporaryDirectory() as td:
        cin, cout = os.path.join(td, "case.safetensors"), os.path.join(td, "out.safetensors")
        tensors = {k: v.contiguous() for k, v in inputs.items()}
        for i, d in enumerate(dys):
            tensors["dy" + (str(i) if i else "")] = d.float().contiguous()
        meta = {"op": op, **{k: str(v) for k, v in (attrs or {}).items()}}
        if grad:
            meta["grad"] = ",".join(grad)
        save_file(tensors, cin, metadata=meta)
        r = subprocess.run([binary, cin, cout], capture_output=True, text=True)
        if r.returncode != 0:
            return r.returncode, r.stderr, None, None
        from safetensors import safe_open
        with safe_open(cout, "pt") as f:
            meta_out = f.metadata()
        return 0, r.stderr, load_file(cout), meta_out


def refusals(binary, items):
    """items: (name, op, inputs, attrs, text): the op must fail with `text` in its message."""
    fails = []
    for name, op, inp, attrs, want in items:
        rc, err, _, _ = run_raw(binary, op, inp, attrs)
        f = None if rc != 0 and want in err else f"{name}: not refused (rc {rc}, stderr {err.strip()[:200]!r})"
        print(f"{'FAIL' if f else 'ok':4} {'refuses ' + name:48}")
        fails += [f] if f else []
    return fails


def main(cases, extra=None):
    """Runs the cases, then extra(binary) -> list of failure strings (checks beyond the reference)."""
    binary = sys.argv[1]
    print(f"seed {SEED} (set S2S_TEST_SEED={SEED} to reproduce)")
    failures = []
    for case in cases:
        errs, info = run_case(binary, case)
        status = "FAIL" if errs else "ok"
        print(f"{status:4} {case.name:48} tol {case.tol:.0e}  " + (" ".join(info[0]) if info else ""))
        failures += errs
    n_case_fail = len({f.split(':')[0] for f in failures})
    if extra:
        failures += extra(binary)
    for f in failures:
        print("  " + f)
    print(f"{len(cases) - n_case_fail}/{len(cases)} cases passed")
    sys.exit(1 if failures else 0)
