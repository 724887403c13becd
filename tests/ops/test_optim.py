"""AdamW against torch.optim.AdamW (foreach=False) over several steps, and gradient clipping against
torch.nn.utils.clip_grad_norm_."""
import torch
from harness import Case, main, randn


def adamw_torch(t, a):
    """torch.optim.AdamW in float64, one param group per parameter (decay on p as asked, never on q)."""
    p = t["p"].detach().clone()
    groups = [{"params": [p], "weight_decay": a["wd"] if a["decay"] else 0.0}]
    q = None
    if "q" in t:
        q = t["q"].detach().clone()
        groups.append({"params": [q], "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=1.0, betas=(a["beta1"], a["beta2"]), eps=a["eps"], foreach=False)
    if a.get("step0", 0):  # resume: the state a checkpoint would restore
        opt.state[p] = {"step": torch.tensor(float(a["step0"])), "exp_avg": t["m0"].detach().clone(),
                        "exp_avg_sq": t["v0"].detach().clone()}
    for s in range(t["lr"].shape[0]):
        for grp in opt.param_groups:
            grp["lr"] = float(t["lr"][s])
        p.grad = t["g"][s].detach().clone()
        if q is not None:
            q.grad = t["gq"][s].detach().clone()
        opt.step()
    st = opt.state[p]
    return (p, st["exp_avg"], st["exp_avg_sq"]) + ((q,) if q is not None else ())


def adamw_manual(t, a, bias_correction=True, l2=False):
    """The textbook update, for planting errors: p only."""
    p = t["p"].detach().clone()
    m = t["m0"].detach().clone() if "m0" in t else torch.zeros_like(p)
    v = t["v0"].detach().clone() if "v0" in t else torch.zeros_like(p)
    b1, b2, wd = a["beta1"], a["beta2"], (a["wd"] if a["decay"] else 0.0)
    for s in range(t["lr"].shape[0]):
        lr, g, k = float(t["lr"][s]), t["g"][s].clone(), a.get("step0", 0) + s + 1
        if l2:
            g = g + wd * p          # Adam with L2: decay enters the moments
        else:
            p = p * (1 - lr * wd)   # AdamW: decoupled
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1 ** k), v / (1 - b2 ** k)) if bias_correction else (m, v)
        p = p - lr * mh / (vh.sqrt() + a["eps"])
    return p


def cases():
    out = []
    mut_bc = ("no bias correction", lambda t, a: adamw_manual(t, a, bias_correction=False))
    mut_l2 = ("Adam-L2 instead of decoupled decay", lambda t, a: adamw_manual(t, a, l2=True))
    # (label, n, steps, decay, wd, beta2, eps, grad scale, resume step, second param size, tol)
    specs = [
        ("n=1", 1, 5, True, 0.1, 0.999, 1e-8, 1.0, 0, 0, 2e-6),
        ("n=7 no decay", 7, 5, False, 0.1, 0.999, 1e-8, 1.0, 0, 0, 2e-6),
        ("n=1009 + no-decay q n=13 (OpenS2S wd)", 1009, 5, True, 0.05, 0.999, 1e-8, 1.0, 0, 13, 2e-6),
        ("n=100003 (threaded)", 100003, 3, True, 0.1, 0.999, 1e-8, 1.0, 0, 0, 2e-6),
        ("resumed at step 10, beta2=0.95", 257, 5, True, 0.1, 0.95, 1e-8, 1.0, 10, 0, 2e-6),
        ("tiny grads: eps dominates", 31, 5, True, 0.1, 0.999, 1e-3, 1e-4, 0, 0, 2e-6),
    ]
    for (label, n, S, decay, wd, b2, eps, gs, step0, nq, tol) in specs:
        p0 = randn(n)
        if n == 1:  # |p| >= 1, so that 5 steps of <= 0.2 cannot bring the lone value near 0, where the error
            p0 = torch.where(p0 < 0, -1.0, 1.0) + p0  # relative to max |ref| measures cancellation (seed 4223088902)
        g = randn(S, n, scale=gs)
        if n == 1:  # one sign for the lone gradient: the moment m (a sum of 5 decayed gradients) cannot cancel to
            g = g.abs() + 0.5 * gs  # near 0, where f32's absolute error is a large part of |m| (seed 3816149898)
        inp = {"p": p0, "g": g,
               "lr": torch.tensor([0.1, 0.03, 0.2, 0.01, 0.07][:S], dtype=torch.float32)}
        if step0:
            inp["m0"] = randn(n, scale=0.1 * gs)
            inp["v0"] = randn(n, scale=gs) ** 2
        if nq:
            inp["q"], inp["gq"] = randn(nq), randn(S, nq)
        attrs = {"decay": int(decay), "wd": wd, "beta1": 0.9, "beta2": b2, "eps": eps, "step0": step0}
        mut = [mut_bc] + ([mut_l2] if decay else [])
        out.append(Case(f"adamw {label}", "adamw", inp, adamw_torch, attrs=attrs, tol=tol, mutants=mut,
                        n_out=3 + (1 if nq else 0)))

    def clip_ref(t, a):
        gs = [t[k].detach().clone() for k in sorted(t) if k[1:].isdigit()]
        ps = [torch.zeros_like(g) for g in gs]
        for p_, g in zip(ps, gs):
            p_.grad = g
        before = torch.nn.utils.clip_grad_norm_(ps, a["max_norm"], foreach=False)
        after = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p_.grad) for p_ in ps]))
        return torch.cat([p_.grad.reshape(-1) for p_ in ps]), before.reshape(1), after.reshape(1)

    def clip_with_frozen(t, a):  # the frozen parameter's gradient counted in the norm
        gs = [t[k] for k in sorted(t) if k[1:].isdigit()]
        norm = torch.cat([g.reshape(-1) for g in gs + [t["gf"]]]).norm()
        f = min(1.0, a["max_norm"] / (float(norm) + 1e-6))
        return torch.cat([g.reshape(-1) * f for g in gs])

    def clip_per_tensor(t, a):  # each tensor clipped on its own norm
        gs = [t[k] for k in sorted(t) if k[1:].isdigit()]
        return torch.cat([(g * min(1.0, a["max_norm"] / (float(g.norm()) + 1e-6))).reshape(-1) for g in gs])

    def clip_always(t, a):  # scales up as well as down
        gs = [t[k] for k in sorted(t) if k[1:].isdigit()]
        norm = torch.cat([g.reshape(-1) for g in gs]).norm()
        return torch.cat([g.reshape(-1) * (a["max_norm"] / (float(norm) + 1e-6)) for g in gs])

    # (label, shapes, max_norm, grad scale)
    for (label, shapes, max_norm, gs) in [
        ("clips", [(3, 5), (7,), (1,)], 1.0, 1.0),
        ("below max: unchanged", [(2, 3), (11,)], 100.0, 1.0),
        ("one param n=1", [(1,)], 0.5, 1.0),
        ("large, multi-block sums", [(50021,), (257, 130), (13,)], 1.0, 0.01),
        # whole groups of 8 blocks summed side by side, a partial group, a short last block
        ("8-block groups", [(300007,), (2100001,)], 1.0, 0.001),
    ]:
        inp = {f"g{i}": randn(*s, scale=gs) for i, s in enumerate(shapes)}
        inp["gf"] = randn(17, scale=10.0)
        mut = [("frozen grads counted", clip_with_frozen)] if max_norm < 100 else []
        mut += [("per-tensor clipping", clip_per_tensor)] if len(shapes) > 1 and max_norm < 100 else []
        mut += [("clip factor applied when > 1", clip_always)] if max_norm >= 100 else []
        out.append(Case(f"grad_clip {label}", "grad_clip", inp, clip_ref, attrs={"max_norm": max_norm},
                        tol=2e-6, mutants=mut, n_out=3))
    return out


if __name__ == "__main__":
    main(cases())
