"""reshape / transpose / concat / slice / gather_rows / scatter_rows against PyTorch.

Pure data movement is exact, so those cases use tolerance 0 (bit-identical); gradients that add several
contributions (repeated gather indices, a reshape used twice) use 1e-6."""
import sys

import torch
from harness import GEN, Case, main, randint, randn, run_raw, refusals


class _GatherLastWins(torch.autograd.Function):
    """x[idx] whose backward writes (not adds) dy rows, so a repeated index keeps only one of its rows:
    the planted error for gather_rows."""

    @staticmethod
    def forward(ctx, x, idx):
        ctx.save_for_backward(idx)
        ctx.n = x.shape[0]
        return x[idx]

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        dx = g.new_zeros(ctx.n, g.shape[1])
        dx.index_put_((idx,), g, accumulate=False)
        return dx, None


def scatter_ref(t, a):
    y = t["base"].clone()
    y[t["idx"].long()] = t["src"]
    return y


class _ScatterBaseGradAll(torch.autograd.Function):
    """scatter whose backward hands base the whole dy, replaced rows included: the planted error."""

    @staticmethod
    def forward(ctx, base, idx, src):
        ctx.save_for_backward(idx)
        y = base.clone()
        y[idx] = src
        return y

    @staticmethod
    def backward(ctx, g):
        (idx,) = ctx.saved_tensors
        return g.clone(), None, g[idx]


def slice_off_by_one(t, a):
    # the slice one element later along the axis (one earlier when it already ends at the edge)
    s = a["start"] + 1 if a["start"] + a["len"] < t["x"].shape[a["axis"]] else a["start"] - 1
    return t["x"].narrow(a["axis"], s, a["len"])


def cases():
    out = []
    # reshape: a header over x's data; backward adds dy into x's gradient. twice=1 uses two reshapes of x.
    for xs, ys, twice in [((1,), (1, 1), 0), ((6, 35), (2, 3, 5, 7), 0), ((2, 3, 5, 7), (210,), 0),
                          ((4, 6), (3, 8), 1), ((5, 1, 7), (35, 1), 1)]:
        attrs = {"ndim": len(ys), "twice": twice, **{f"d{k}": v for k, v in enumerate(ys)}}
        out.append(Case(f"reshape {list(xs)} -> {list(ys)}{' twice' if twice else ''}", "reshape", {"x": randn(*xs)},
                        lambda t, a: t["x"].reshape([a[f"d{k}"] for k in range(a["ndim"])]) * (1 + a["twice"]),
                        grad=["x"], attrs=attrs, tol=1e-6 if twice else 0.0,
                        mutants=[("transposed instead of reshaped", lambda t, a: t["x"].transpose(0, -1).reshape(
                            [a[f"d{k}"] for k in range(a["ndim"])]) * (1 + a["twice"]))] if xs[0] > 1 else ()))
    # transpose: every axis pair of 2/3/4-D tensors (C == 1 takes the tiled path, C > 1 the row-run path)
    for shape in [(1, 1), (37, 53), (3, 5, 7), (2, 3, 5, 7), (1, 1500, 64)]:
        nd = len(shape)
        for a0 in range(nd):
            for a1 in range(a0 + 1, nd):
                if shape == (1, 1500, 64) and (a0, a1) != (1, 2):
                    continue
                out.append(Case(f"transpose {list(shape)} ({a0}, {a1})", "transpose", {"x": randn(*shape)},
                                lambda t, a: t["x"].transpose(a["axis0"], a["axis1"]).contiguous(), grad=["x"],
                                attrs={"axis0": a0, "axis1": a1}, tol=0.0))
    out.append(Case("transpose negative axes (-1, -3)", "transpose", {"x": randn(3, 4, 5)},
                    lambda t, a: t["x"].transpose(-1, -3).contiguous(), grad=["x"], attrs={"axis0": -1, "axis1": -3},
                    tol=0.0))
    # concat on every axis; parts of length 1; more parts than a node holds (11 > 8: grouped)
    for shape, axis, lens in [((4,), 0, (1, 3, 2)), ((3, 5), 0, (2, 1, 4)), ((3, 5), 1, (1, 6)),
                              ((2, 3, 4), 0, (1, 2)), ((2, 3, 4), 1, (3, 1, 5)), ((2, 3, 4), 2, (2, 7, 1)),
                              ((2, 3, 4, 5), 3, (1, 2, 3)), ((2, 3, 4, 5), 2, (4, 4)), ((2, 3, 4, 5), -3, (1, 1)),
                              ((7, 16), 0, (1,) * 11)]:
        inp = {}
        ax = axis % len(shape)
        for k, n in enumerate(lens):
            s = list(shape)
            s[ax] = n
            inp[f"x{k}"] = randn(*s)
        grad = [k for i, k in enumerate(inp) if i != 1]  # one part frozen: backward must skip it
        out.append(Case(f"concat axis={axis} lens={list(lens)}", "concat", inp,
                        lambda t, a: torch.cat([t[f"x{k}"] for k in range(a["n"])], a["axis"]), grad=grad,
                        attrs={"n": len(lens), "axis": axis}, tol=0.0,
                        mutants=[("parts reversed", lambda t, a: torch.cat([t[f"x{k}"] for k in
                                                                           reversed(range(a["n"]))], a["axis"]))]))
    ints = {"x0": randint(0, 1000, 3, 2), "x1": randint(0, 1000, 3, 5)}
    out.append(Case("concat i32 axis=1", "concat", ints, lambda t, a: torch.cat([t["x0"], t["x1"]], 1),
                    attrs={"n": 2, "axis": 1}, tol=0.0))
    # slice on every axis, including length 1 and the full extent
    for shape, axis, start, ln in [((1,), 0, 0, 1), ((9,), 0, 2, 5), ((4, 7), 0, 1, 2), ((4, 7), 1, 3, 4),
                                   ((3, 5, 11), 0, 2, 1), ((3, 5, 11), 1, 1, 3), ((3, 5, 11), 2, 0, 10),
                                   ((2, 3, 5, 7), 3, 6, 1), ((2, 3, 5, 7), 2, 1, 3), ((2, 3, 5, 7), 1, 0, 3),
                                   ((2, 3, 5, 7), -4, 1, 1), ((1, 300, 200), 1, 17, 250)]:
        full = ln == shape[axis]
        out.append(Case(f"slice {list(shape)} axis={axis} [{start}:{start + ln}]", "slice", {"x": randn(*shape)},
                        lambda t, a: t["x"].narrow(a["axis"], a["start"], a["len"]), grad=["x"],
                        attrs={"axis": axis, "start": start, "len": ln}, tol=0.0,
                        mutants=() if full else [("off by one", slice_off_by_one)]))
    out.append(Case("slice i32", "slice", {"x": randint(0, 99, 4, 6)}, lambda t, a: t["x"][:, 2:5],
                    attrs={"axis": 1, "start": 2, "len": 3}, tol=0.0))
    # gather_rows: repeated indices (their gradients add up), the first and the last row, one row
    for n, c, m in [(1, 1, 1), (1, 5, 4), (7, 1, 9), (13, 17, 29), (300, 257, 400)]:
        idx = randint(0, n, m)
        idx[0] = n - 1
        if m > 2:
            idx[1] = idx[2]  # a repeated index
            idx[-1] = 0
        out.append(Case(f"gather_rows x=[{n}, {c}] m={m}", "gather_rows", {"x": randn(n, c), "idx": idx},
                        lambda t, a: t["x"][t["idx"].long()], grad=["x"], tol=1e-6, mutant_grads=True,
                        mutants=[("repeated index overwrites, not adds", lambda t, a: _GatherLastWins.apply(
                            t["x"], t["idx"].long()))] if m > n else ()))
    # scatter_rows: distinct indices; base gets no gradient on replaced rows, src gets dy's rows
    for n, c, m in [(1, 1, 1), (5, 1, 2), (9, 13, 4), (40, 33, 40), (1000, 96, 317)]:
        idx = torch.randperm(n, generator=GEN)[:m].to(torch.int32)
        inp = {"base": randn(n, c), "idx": idx, "src": randn(m, c)}
        out.append(Case(f"scatter_rows base=[{n}, {c}] m={m}", "scatter_rows", inp, scatter_ref, grad=["base", "src"],
                        tol=0.0, mutant_grads=True,
                        mutants=[("base grad includes replaced rows",
                                  lambda t, a: _ScatterBaseGradAll.apply(t["base"], t["idx"].long(), t["src"]))]))
    inp = {"base": randn(8, 3), "idx": torch.tensor([6, 1], dtype=torch.int32), "src": randn(2, 3)}
    out.append(Case("scatter_rows frozen base", "scatter_rows", inp, scatter_ref, grad=["src"], tol=0.0))
    return out


def extra_checks(binary):
    fails = []
    # gather backward with many repeated indices on the threaded path: bit-identical over runs
    inp = {"x": randn(50, 700), "idx": randint(0, 50, 400)}
    dy = randn(400, 700)
    runs = [run_raw(binary, "gather_rows", inp, {}, ["x"], [dy]) for _ in range(3)]
    f = None
    if any(r[0] != 0 for r in runs):
        f = "gather_rows determinism: opcheck failed"
    elif any(not torch.equal(runs[0][2]["grad.x"], r[2]["grad.x"]) for r in runs[1:]):
        f = "gather_rows determinism: gradients differ between runs"
    print(f"{'FAIL' if f else 'ok':4} {'gather_rows grad bit-identical over 3 runs':48}")
    fails += [f] if f else []
    # Inputs the ops must refuse with a message naming the problem.
    i32 = lambda *v: torch.tensor(v, dtype=torch.int32)
    fails += refusals(binary, [
            ("a repeated scatter index", "scatter_rows", {"base": randn(5, 3), "idx": i32(1, 3, 1),
                                                          "src": randn(3, 3)}, {}, "appears twice"),
            ("a gather index past the end", "gather_rows", {"x": randn(4, 2), "idx": i32(0, 4)}, {}, "outside"),
            ("a negative gather index", "gather_rows", {"x": randn(4, 2), "idx": i32(-1)}, {}, "outside"),
            ("a slice past the end", "slice", {"x": randn(4, 6)}, {"axis": 1, "start": 4, "len": 3}, "outside"),
            ("concat with mismatched dims", "concat", {"x0": randn(2, 3), "x1": randn(3, 3)},
             {"n": 2, "axis": 1}, "does not match"),
            ("a reshape changing numel", "reshape", {"x": randn(2, 3)}, {"ndim": 2, "d0": 4, "d1": 2}, "elements"),
            ("a transpose axis out of range", "transpose", {"x": randn(2, 3)}, {"axis0": 0, "axis1": 2},
             "out of range")])
    return fails


if __name__ == "__main__":
    main(cases(), extra_checks)
