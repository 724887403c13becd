"""s2s_rope against Hugging Face Qwen3's rotary embedding.

The reference builds cos/sin exactly as transformers' Qwen3RotaryEmbedding does (float32 inv_freq,
float32 batched matmul with the positions, float32 cos/sin) and applies them in float64. At position
8000 one ulp of a float32 angle is ~5e-4 rad, so the tolerance of 1e-6 (max abs error / max abs
value) can only hold if s2s reproduces HF's float32 angles bit for bit; the "angles in float64"
mutant shows a merely accurate implementation is caught.

One known, bounded difference: torch's vectorised pow (Sleef, <= 1 ulp) is off by one ulp from the
correctly rounded value s2s uses for a few (theta, D, i); for theta=1e6, D=128 that is i=37, an angle
difference of 2.3e-7 rad at position 8192 (well inside 1e-6). Positions here stay below 8192.
"""
import torch
from harness import Case, main, randint, randn


def hf_cos_sin(pos, D, theta):
    """transformers Qwen3RotaryEmbedding (default rope type, attention_scaling 1) in float32."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).float() / D))
    inv_freq_expanded = inv_freq[None, :, None].float()   # [1, D/2, 1]
    position_ids_expanded = pos[None, None, :].float()    # [1, 1, T]
    freqs = (inv_freq_expanded @ position_ids_expanded).transpose(1, 2)[0]  # [T, D/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rope_ref(t, a, theta_mul=1.0, f64_angles=False):
    x, pos = t["x"], t["pos"]  # [T, H, D] float64, [T] i32
    D, theta = x.shape[-1], float(a["theta"]) * theta_mul
    if f64_angles:  # mathematically the same, but not HF's float32 roundings
        inv = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
        ang = pos.double()[:, None] * inv[None, :]
        emb = torch.cat((ang, ang), -1)
        cos, sin = emb.cos(), emb.sin()
    else:
        cos, sin = hf_cos_sin(pos, D, theta)
    cos, sin = cos.double()[:, None, :], sin.double()[:, None, :]
    return x * cos + rotate_half(x) * sin


def rope_interleaved(t, a):
    """GPT-J style: rotates adjacent pairs (2i, 2i+1) instead of (i, i + D/2)."""
    x, pos = t["x"], t["pos"]
    D = x.shape[-1]
    cos, sin = hf_cos_sin(pos, D, float(a["theta"]))
    c, s = cos[:, None, : D // 2].double(), sin[:, None, : D // 2].double()
    xe, xo = x[..., 0::2], x[..., 1::2]
    return torch.stack((xe * c - xo * s, xo * c + xe * s), dim=-1).flatten(-2)


def rope_bwd_forward_rotation(t, a):
    """Right forward, but a backward that applies the forward rotation R instead of its inverse R^T:
    the values of rope_ref with the gradient of x -> R^T x (whose backward is R dy)."""
    x = t["x"]
    cos, sin = hf_cos_sin(t["pos"], x.shape[-1], float(a["theta"]))
    inverse = x * cos.double()[:, None, :] - rotate_half(x) * sin.double()[:, None, :]
    return rope_ref(t, a).detach() + (inverse - inverse.detach())


def rope_case(name, T, H, D, theta, pos):
    inp = {"x": randn(T, H, D), "pos": pos.to(torch.int32)}
    mutants = [("wrong theta (x10)", lambda t, a: rope_ref(t, a, theta_mul=10.0)),
               ("interleaved (GPT-J) rotation", rope_interleaved),
               ("backward = forward rotation", rope_bwd_forward_rotation)]
    if int(pos.max()) > 1000:
        mutants.append(("angles in float64 (not HF's float32)", lambda t, a: rope_ref(t, a, f64_angles=True)))
    return Case(f"rope {name} T={T} H={H} D={D} theta={theta:g}", "rope", inp, rope_ref, grad=["x"],
                attrs={"theta": repr(float(theta))}, tol=1e-6, mutants=mutants, mutant_grads=True)


def cases():
    return [
        rope_case("tiny", 2, 1, 4, 1e4, torch.tensor([1, 5])),  # D=2 would not tell theta or pairing apart
        rope_case("random pos", 17, 3, 24, 1e4, randint(0, 8192, 17)),
        rope_case("packed (positions restart)", 64, 8, 128, 1e6, torch.cat([torch.arange(30), torch.arange(34)])),
        rope_case("qwen3 long positions", 41, 4, 128, 1e6, randint(4000, 8192, 41)),
        rope_case("random pos", 33, 2, 64, 5e5, randint(0, 8192, 33)),
        rope_case("odd rows", 129, 5, 64, 1e4, torch.arange(129) + 7000),
    ]


if __name__ == "__main__":
    main(cases())
