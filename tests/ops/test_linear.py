"""linear, bmm, embedding against PyTorch."""
import torch
import torch.nn.functional as F
from harness import Case, main, randn, randint


def cases():
    out = []
    for (n, k, m, bias) in [(1, 1, 1, True), (7, 13, 5, True), (64, 96, 80, False), (131, 257, 67, True), (3, 1024, 2, False)]:
        inp = {"x": randn(n, k), "w": randn(m, k, scale=k ** -0.5)}
        if bias:
            inp["b"] = randn(m)
        out.append(Case(f"linear n={n} k={k} m={m} bias={bias}", "linear", inp,
                        lambda t, a: F.linear(t["x"], t["w"], t.get("b")), grad=list(inp)))
    # 3-D input, frozen weight (only dx)
    inp = {"x": randn(2, 5, 11), "w": randn(6, 11)}
    out.append(Case("linear 3d, frozen w", "linear", inp, lambda t, a: F.linear(t["x"], t["w"]), grad=["x"]))
    for (b, m, k, n, tb) in [(1, 1, 1, 1, False), (3, 7, 5, 9, False), (4, 17, 33, 12, True)]:
        inp = {"a": randn(b, m, k), "b": randn(b, n, k) if tb else randn(b, k, n)}
        out.append(Case(f"bmm b={b} m={m} k={k} n={n} trans_b={tb}", "bmm", inp,
                        lambda t, a: torch.bmm(t["a"], t["b"].transpose(1, 2) if a["trans_b"] else t["b"]),
                        grad=["a", "b"], attrs={"trans_b": int(tb)}))
    for (v, c, shape) in [(1, 1, (1,)), (50, 8, (13,)), (1000, 33, (3, 17))]:
        ids = randint(0, v, *shape)
        ids.view(-1)[0] = v - 1
        if ids.numel() > 2:
            ids.view(-1)[1] = ids.view(-1)[2]  # a repeated id: gradients must add up
        inp = {"ids": ids, "w": randn(v, c)}
        out.append(Case(f"embedding v={v} c={c} ids={list(shape)}", "embedding", inp,
                        lambda t, a: F.embedding(t["ids"].long(), t["w"]), grad=["w"]))
    return out


if __name__ == "__main__":
    main(cases())
