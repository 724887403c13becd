"""conv1d and avgpool1d against PyTorch (F.conv1d / F.avg_pool1d)."""
import torch.nn.functional as F
from harness import Case, main, randn


def conv_ref(t, a):
    return F.conv1d(t["x"], t["w"], t.get("b"), stride=a["stride"], padding=a["pad"])


def straight_through(good, bad):
    """Forward value of `good`, gradients of `bad`: plants a backward-only bug."""
    return good.detach() + (bad - bad.detach())


def conv_mutants(stride, pad, L, K, dx=True):
    def pad_off_by_one(t, a):  # taps read one position late: left padding pad+1, right pad-1
        return F.conv1d(F.pad(t["x"], (a["pad"] + 1, a["pad"] - 1)), t["w"], t.get("b"), stride=a["stride"])

    def stride_ignored(t, a):  # output sized right, but position t reads window t instead of t*stride
        y = conv_ref(t, a)
        return F.conv1d(t["x"], t["w"], t.get("b"), stride=1, padding=a["pad"])[..., : y.shape[-1]]

    def col2im_off_by_one(t, a):  # correct forward, dx scattered one position late
        xs = F.pad(t["x"], (1, -1))
        return straight_through(conv_ref(t, a), F.conv1d(xs, t["w"].detach(), None, stride=a["stride"],
                                                         padding=a["pad"]) + F.conv1d(
            t["x"].detach(), t["w"], t.get("b"), stride=a["stride"], padding=a["pad"]))

    m = [("padding off by one", pad_off_by_one)]
    if stride > 1 and (L + 2 * pad - K) // stride >= 1:  # needs two outputs to tell strides apart
        m.append(("stride ignored", stride_ignored))
    if dx and L > 1:  # a one-sample signal has nowhere to shift to
        m.append(("col2im off by one", col2im_off_by_one))
    return m


def cases():
    out = []
    # (B, Cin, Cout, L, K, stride, pad, bias, tol); speech-model shapes are marked.
    shapes = [
        (1, 1, 1, 1, 1, 1, 0, True, 1e-5),       # 1x1 conv: the direct (no im2col) path
        (1, 1, 1, 1, 3, 1, 1, True, 1e-5),       # L=1 inside padding
        (2, 3, 5, 2, 3, 2, 1, True, 1e-5),
        (3, 7, 11, 7, 3, 1, 1, True, 1e-5),      # Whisper / Qwen2-Audio conv1 (k3 p1)
        (2, 5, 13, 7, 3, 2, 1, True, 1e-5),      # Whisper / Qwen2-Audio conv2 (k3 s2 p1)
        (2, 13, 6, 17, 5, 2, 2, True, 1e-5),     # OpenS2S adapter conv (k5 s2 p2), Cout = 2*3 for GLU
        (1, 2, 3, 10, 4, 3, 0, False, 1e-5),     # even kernel, stride 3, no padding
        (1, 5, 7, 5, 5, 1, 0, True, 1e-5),       # kernel == L: one output
        (2, 3, 2, 2, 5, 1, 2, True, 1e-5),       # kernel longer than the signal
        (1, 2, 3, 4, 2, 1, 3, True, 1e-5),       # padding wider than the kernel: all-padding outputs
        (2, 3, 4, 11, 2, 3, 0, True, 1e-5),      # stride > kernel: some inputs get no gradient
        (2, 8, 5, 9, 1, 1, 0, True, 1e-5),       # 1-wide, direct path, batch
        (2, 4, 3, 3001, 3, 2, 1, True, 2e-5),    # 30 s of frames (odd), k3 s2 p1, small channels
        (1, 3, 2, 3000, 3, 1, 1, False, 2e-5),   # 30 s of frames, k3 p1
        (1, 3, 5, 1500, 5, 2, 2, True, 2e-5),    # encoder-rate input to the adapter conv
        (2, 97, 31, 23, 3, 2, 1, True, 2e-5),    # wide channels (Cin*K = 291)
    ]
    for (B, ci, co, L, K, s, p, bias, tol) in shapes:
        inp = {"x": randn(B, ci, L), "w": randn(co, ci, K, scale=(ci * K) ** -0.5)}
        if bias:
            inp["b"] = randn(co)
        out.append(Case(f"conv1d B={B} ci={ci} co={co} L={L} k={K} s={s} p={p}", "conv1d", inp, conv_ref,
                        grad=list(inp), attrs={"stride": s, "pad": p}, tol=tol, mutants=conv_mutants(s, p, L, K),
                        mutant_grads=True))
    # Frozen encoder conv (gradient to x only) and a data input (gradient to w, b only).
    inp = {"x": randn(2, 6, 13), "w": randn(4, 6, 3, scale=0.3), "b": randn(4)}
    out.append(Case("conv1d frozen weight (dx only)", "conv1d", inp, conv_ref, grad=["x"],
                    attrs={"stride": 2, "pad": 1}, mutants=conv_mutants(2, 1, 13, 3), mutant_grads=True))
    inp = {"x": randn(3, 5, 8), "w": randn(7, 5, 5, scale=0.2), "b": randn(7)}
    out.append(Case("conv1d data input (dw, db only)", "conv1d", inp, conv_ref, grad=["w", "b"],
                    attrs={"stride": 2, "pad": 2}, mutants=conv_mutants(2, 2, 8, 5, dx=False)))

    def pool_ref(t, a):
        return F.avg_pool1d(t["x"], a["k"], a["stride"])

    def pool_shift(t, a):  # windows start one position late (output shape kept)
        y = pool_ref(t, a)
        return F.avg_pool1d(F.pad(t["x"], (-1, 1)), a["k"], a["stride"])[..., : y.shape[-1]]

    def pool_stride_ignored(t, a):
        y = pool_ref(t, a)
        return F.avg_pool1d(t["x"], a["k"], 1)[..., : y.shape[-1]]

    def pool_div_stride(t, a):  # divides by the stride instead of the window
        return F.avg_pool1d(t["x"], a["k"], a["stride"]) * a["k"] / a["stride"]

    # (B, C, L, k, stride)
    for (B, C, L, k, s) in [(1, 1, 2, 2, 2), (2, 3, 7, 2, 2), (2, 5, 3001, 2, 2), (1, 2, 10, 3, 2),
                            (1, 1, 5, 5, 1), (3, 2, 11, 2, 3), (2, 13, 1500, 2, 2)]:
        m = [("window off by one", pool_shift)]
        if s > 1 and (L - k) // s >= 1:
            m.append(("stride ignored", pool_stride_ignored))
        if s != k:
            m.append(("divides by stride", pool_div_stride))
        out.append(Case(f"avgpool1d B={B} C={C} L={L} k={k} s={s}", "avgpool1d", {"x": randn(B, C, L)}, pool_ref,
                        grad=["x"], attrs={"k": k, "stride": s}, mutants=m))
    return out


if __name__ == "__main__":
    main(cases())
