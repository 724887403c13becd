"""add / mul / scale and the activations (silu_mul, gelu, glu) against PyTorch."""
import sys

import torch
import torch.nn.functional as F
from harness import Case, main, randn, run_raw, refusals


class _AddFirstRowGrad(torch.autograd.Function):
    """a + b whose backward gives b only dy's first row instead of the sum over the broadcast rows:
    the planted error a broadcast add must catch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.bshape = b.shape
        return a + b

    @staticmethod
    def backward(ctx, g):
        return g, g.reshape(-1, ctx.bshape.numel())[0].reshape(ctx.bshape)


def cases():
    out = []
    # add: same shape and broadcast of b over a's leading dims; the gradient of a broadcast b is a sum
    # over rows (tolerance 1e-6: sums of up to 200 f32 terms).
    for ashape, bshape in [((1,), (1,)), ((7, 13), (7, 13)), ((2, 3, 5, 7), (2, 3, 5, 7)), ((1, 1), (1,)),
                           ((37, 1), (1,)), ((5, 11), (11,)), ((2, 3, 17), (3, 17)), ((2, 3, 4, 5), (4, 5)),
                           ((200, 300), (300,)), ((4, 9, 16), (1, 16)), ((3, 4), ())]:
        inp = {"a": randn(*ashape), "b": randn(*bshape) if bshape else randn(1).reshape(())}
        rows = inp["a"].numel() // inp["b"].numel()  # how many times b is broadcast
        out.append(Case(f"add a={list(ashape)} b={list(bshape)}", "add", inp, lambda t, a: t["a"] + t["b"],
                        grad=["a", "b"], tol=1e-6, mutant_grads=True,
                        mutants=[("b grad = first row of dy", lambda t, a: _AddFirstRowGrad.apply(t["a"], t["b"]))]
                        if rows > 1 else ()))
    inp = {"a": randn(6, 10), "b": randn(10)}
    out.append(Case("add frozen a", "add", inp, lambda t, a: t["a"] + t["b"], grad=["b"], tol=1e-6))
    out.append(Case("add frozen b", "add", inp, lambda t, a: t["a"] + t["b"], grad=["a"], tol=1e-6))
    for shape in [(1,), (7, 13), (3, 5, 64, 11), (257, 129)]:
        inp = {"a": randn(*shape), "b": randn(*shape)}
        out.append(Case(f"mul {list(shape)}", "mul", inp, lambda t, a: t["a"] * t["b"], grad=["a", "b"], tol=1e-6,
                        mutants=[("a * a", lambda t, a: t["a"] * t["a"])]))
    for shape, s in [((1,), 3.0), ((5, 7, 9), -0.125), ((300, 200), 0.0883883)]:
        out.append(Case(f"scale {list(shape)} s={s}", "scale", {"a": randn(*shape)}, lambda t, a: t["a"] * a["s"],
                        grad=["a"], attrs={"s": s}, tol=1e-6))

    # activations: relative tolerance 1e-6 (expf / erff are accurate to a few ulp)
    for shape in [(1,), (7, 13), (2, 3, 5, 7), (129, 512)]:
        inp = {"gate": randn(*shape, scale=3.0), "up": randn(*shape)}
        if len(shape) == 1:
            # silu'(g) crosses 0 at g ~ -1.28, where any f32 evaluation cancels; a one-element case is
            # judged relative to that single value, so keep its gate positive (silu' > 0.5 there).
            inp["gate"] = inp["gate"].abs() + 0.1
        out.append(Case(f"silu_mul {list(shape)}", "silu_mul", inp, lambda t, a: F.silu(t["gate"]) * t["up"],
                        grad=["gate", "up"], tol=1e-6,
                        mutants=[("sigmoid(gate) * up", lambda t, a: torch.sigmoid(t["gate"]) * t["up"])]))
    inp = {"gate": randn(9, 33, scale=3.0), "up": randn(9, 33)}
    out.append(Case("silu_mul frozen up", "silu_mul", inp, lambda t, a: F.silu(t["gate"]) * t["up"], grad=["gate"],
                    tol=1e-6))
    # GELU: tanh-approximate vs erf differ by up to ~5e-4 absolute around |x| ~ 2; with x ~ 3 N(0, 1) the
    # largest |y| is ~10, so the mutant sits at ~5e-5 relative, 50x the 1e-6 tolerance.
    tanh = [("tanh-approximate GELU", lambda t, a: F.gelu(t["x"], approximate="tanh"))]
    for shape in [(1,), (7, 13), (2, 3, 5, 7), (64, 1031), (3, 5120)]:
        x = randn(*shape, scale=3.0)
        x.view(-1)[0] = 2.0  # where the two GELUs differ most
        out.append(Case(f"gelu {list(shape)}", "gelu", {"x": x}, lambda t, a: F.gelu(t["x"]), grad=["x"], tol=1e-6,
                        mutants=tanh))
    # the tails and the exp clamps: x from -30 to 30 (Phi underflows below x ~ -13.4; silu(-100) ~ 0)
    x = torch.linspace(-30.0, 30.0, 601)
    out.append(Case("gelu tails [-30, 30]", "gelu", {"x": x}, lambda t, a: F.gelu(t["x"]), grad=["x"], tol=1e-6,
                    mutants=tanh))
    ext = torch.linspace(-100.0, 100.0, 401)
    out.append(Case("silu_mul tails [-100, 100]", "silu_mul", {"gate": ext, "up": randn(401)},
                    lambda t, a: F.silu(t["gate"]) * t["up"], grad=["gate", "up"], tol=1e-6))
    # GLU on every axis of 1..4-D inputs, and the adapter's channel GLU on a conv output [B, 2C, L]
    swapped = [("halves swapped", lambda t, a: (lambda p, q: q * torch.sigmoid(p))(*t["x"].chunk(2, a["axis"])))]
    for shape, axis in [((2,), 0), ((1, 2), 1), ((6, 5), 0), ((3, 14), -1), ((2, 8, 3), 1), ((4, 3, 10), 2),
                        ((2, 3, 4, 6), 3), ((2, 4, 3, 5), 1), ((2, 3, 4, 5), 0), ((1, 2560, 37), 1),
                        ((16, 600, 7), 1)]:
        out.append(Case(f"glu {list(shape)} axis={axis}", "glu", {"x": randn(*shape, scale=2.0)},
                        lambda t, a: F.glu(t["x"], a["axis"]), grad=["x"], attrs={"axis": axis}, tol=1e-6,
                        mutants=swapped))
    return out


def extra_checks(binary):
    fails = []
    fails += refusals(binary, [
            ("add with b not a's trailing dims", "add", {"a": randn(4, 6), "b": randn(4)}, {}, "trailing dims"),
            ("mul of different shapes", "mul", {"a": randn(4, 6), "b": randn(6)}, {}, "same shape"),
            ("silu_mul of different shapes", "silu_mul", {"gate": randn(3, 4), "up": randn(4, 3)}, {}, "same shape"),
            ("glu over an odd dim", "glu", {"x": randn(3, 5)}, {"axis": 1}, "even")])
    return fails


if __name__ == "__main__":
    main(cases(), extra_checks)
