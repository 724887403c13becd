"""The OmniSpeech composite (model/omnispeech.c, model/interleave.c) against the PyTorch rendering of OpenS2S's
OmniSpeechModel.forward in tools/fixtures/gen_omnispeech.py, driven through `s2s forward`; and `s2s init`.

Run by ctest as: python3 test_omnispeech.py S2S_BINARY BUILD_DIR (from the repository root).

Conformance (fixtures tests/fixtures/omni_{s2s,t2s,text,mixed}, model tests/fixtures/omni_model): for each batch
`s2s forward --grads --unfreeze-audio` must give loss, loss_llm, loss_tts, llm_hidden and every parameter's
gradient with  max|s2s - ref| / max|ref| <= TOL  per tensor (scalars: relative error). The reference is
float64 (its losses f32: transformers upcasts logits to float32); s2s computes in f32.
Also: per-layer recompute gives the same numbers; freezing the LLM leaves every other gradient unchanged and
writes none for the LLM; a sample's several speech spans given as one row of EOS-terminated runs or as one row
per span give the same result.
Mutants that must fail by more than MUTANT_MIN: the interleave ratio swapped in the checkpoint's config (s2s
then matches the reference's swapped-ratio loss instead), and the reference without the speaker slot.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from safetensors.numpy import load_file, save_file

S2S = sys.argv[1]
FIX = os.path.join("tests", "fixtures")
MODEL = os.path.join(FIX, "omni_model")
BATCHES = ["s2s", "t2s", "text", "mixed"]
TOL = 1e-5          # losses, llm_hidden
TOL_GRAD = 5e-5     # gradients: f32 accumulation over hundreds of rows
MUTANT_MIN = 10 * TOL
MEL_SEED = 11       # tools/fixtures/gen_omnispeech.py MEL_SEED
TMP = tempfile.mkdtemp(prefix="s2s_test_omni_")
failures = []
worst = {}


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def hash_unit(seed, n):
    """tools/fixtures/gen_omnispeech.py hash_unit: the mel values, exact in f32."""
    x = (np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B9)) & np.uint64(0xFFFFFFFF)
    x = x.astype(np.uint32)
    x ^= x >> np.uint32(16)
    x *= np.uint32(0x7FEB352D)
    x ^= x >> np.uint32(15)
    x *= np.uint32(0x846CA68B)
    x ^= x >> np.uint32(16)
    return ((x >> np.uint32(8)).astype(np.float64) * 2.0 ** -23 - 1.0).astype(np.float32)


INPUTS = ("input_ids", "attention_mask", "labels", "token_types", "mel_frames", "units", "units_len", "spk_emb")


def batch_file(name, exp, per_span=False):
    """The `s2s forward` batch: the fixture's inputs plus the mel rebuilt from its hash. per_span: split rows of
    several EOS runs into one row per span (OpenS2S's speech_units layout)."""
    t = {k: exp[k] for k in INPUTS if k in exp}
    if "mel_shape" in exp:
        shape = tuple(int(v) for v in exp["mel_shape"])
        t["mel"] = hash_unit(MEL_SEED, int(np.prod(shape))).reshape(shape)
    if per_span and "units" in t:
        with open(os.path.join(MODEL, "config.json")) as f:
            eos = json.load(f)["tts_lm_config"]["eos_token_id"]
        rows, spk = [], []
        for s in range(t["units"].shape[0]):
            r = list(t["units"][s, :t["units_len"][s]])
            cuts = [i + 1 for i, u in enumerate(r) if u == eos]
            for a, b in zip([0] + cuts[:-1], cuts):
                rows.append(r[a:b])
                if "spk_emb" in t:
                    spk.append(t["spk_emb"][s])
        U = max(len(r) for r in rows)
        t["units"] = np.array([r + [1] * (U - len(r)) for r in rows], dtype=np.int32)
        t["units_len"] = np.array([len(r) for r in rows], dtype=np.int32)
        if spk:
            t["spk_emb"] = np.stack(spk)
    path = os.path.join(TMP, f"{name}{'_span' if per_span else ''}.safetensors")
    save_file({k: np.ascontiguousarray(v) for k, v in t.items()}, path)
    return path


def forward(batch, model=MODEL, *extra, ok=True):
    out = os.path.join(TMP, "out.safetensors")
    if os.path.exists(out):
        os.remove(out)
    r = subprocess.run([S2S, "forward", "--model", model, "--inputs", batch, "--out", out, "--threads", "2", *extra],
                       capture_output=True, text=True, timeout=120)
    if ok and r.returncode != 0:
        raise AssertionError(f"s2s forward {batch} {extra} failed: {r.stderr}")
    return load_file(out) if r.returncode == 0 else r


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.abs(b).max() if b.size else 0.0
    d = np.abs(a - b).max() if b.size else 0.0
    return d / m if m > 0 else d


def compare(tag, got, exp, tol, kind):
    e = rel(got, exp)
    worst[kind] = max(worst.get(kind, 0.0), e)
    check(e <= tol, f"{tag}: relative error {e:.3g} > {tol:g}")
    return e


def conformance(name):
    exp = load_file(os.path.join(FIX, "omni_" + name, "expected.safetensors"))
    bf = batch_file(name, exp)
    got = forward(bf, MODEL, "--grads", "--unfreeze-audio")
    for k in ("loss", "loss_llm", "loss_tts"):
        compare(f"{name} {k}", got[k], exp[k], TOL, "loss")
    check(np.array_equal(got["llm_cu_seqlens"], exp["llm_cu_seqlens"]), f"{name}: llm_cu_seqlens differ")
    check(got["llm_hidden"].shape == exp["llm_hidden"].shape, f"{name}: llm_hidden shape {got['llm_hidden'].shape}")
    if got["llm_hidden"].shape == exp["llm_hidden"].shape:
        compare(f"{name} llm_hidden", got["llm_hidden"], exp["llm_hidden"], TOL, "llm_hidden")
    grads = sorted(k for k in exp if k.startswith("grad."))
    check(sorted(k for k in got if k.startswith("grad.")) == grads, f"{name}: gradient names differ")
    for k in grads:
        if k in got:
            if not np.abs(exp[k]).max() > 0:  # a part OpenS2S runs only as a dummy: zero on both sides
                check(not np.abs(got[k]).max() > 0, f"{name} {k}: expected zero gradient")
                continue
            compare(f"{name} {k}", got[k], exp[k], TOL_GRAD, "grad")
    print(f"omni_{name}: loss {float(got['loss']):.6f} vs {float(exp['loss']):.6f}, {len(grads)} gradients")
    return exp, bf, got


def main():
    results = {n: conformance(n) for n in BATCHES}

    # Recompute regions give the same numbers.
    exp, bf, got = results["mixed"]
    rc = forward(bf, MODEL, "--grads", "--unfreeze-audio", "--recompute")
    check(all(np.array_equal(rc[k], got[k]) for k in got), "mixed: --recompute changes the results")

    # Freezing the LLM: no LLM gradients written, the rest unchanged (gradients still flow through it).
    fr = forward(bf, MODEL, "--grads", "--unfreeze-audio", "--freeze", "llm_model.")
    check(not any(k.startswith("grad.llm_model.") for k in fr), "frozen LLM: LLM gradients written")
    want = sorted(k for k in got if k.startswith("grad.") and not k.startswith("grad.llm_model."))
    check(sorted(k for k in fr if k.startswith("grad.")) == want, "frozen LLM: the other gradients are not all written")
    for k in fr:
        if k.startswith("grad."):
            check(np.array_equal(fr[k], got[k]), f"frozen LLM: {k} changed")
    # Default trainability: the encoder is frozen.
    df = forward(bf, MODEL, "--grads")
    check(not any(k.startswith("grad.audio_encoder_model.") for k in df), "default: encoder gradients written")

    # A sample's spans as one row per span (OpenS2S's speech_units) equals the row of EOS runs.
    exp, bf, got = results["s2s"]
    sp = forward(batch_file("s2s", exp, per_span=True), MODEL, "--grads", "--unfreeze-audio")
    check(all(np.array_equal(sp[k], got[k]) for k in got), "s2s: per-span unit rows differ from EOS runs")

    # Mutants. The speaker slot: the reference without it is far from s2s.
    for n in ("s2s", "t2s", "mixed"):
        exp, bf, got = results[n]
        d = rel(got["loss_tts"], exp["mutant.no_spk.loss_tts"])
        print(f"mutant no speaker slot ({n}): {d:.3g}")
        check(d > MUTANT_MIN, f"{n}: missing speaker slot would pass ({d:.3g})")
    # The interleave ratio swapped in the config: s2s must fail the fixture and follow the swapped reference.
    with open(os.path.join(MODEL, "config.json")) as f:
        cfg = json.load(f)
    m, n = cfg["interleave_strategy"].split(":")
    cfg["interleave_strategy"] = f"{n}:{m}"
    mut = os.path.join(TMP, "model_ratio")
    os.makedirs(mut)
    shutil.copy(os.path.join(MODEL, "model.safetensors"), mut)
    with open(os.path.join(mut, "config.json"), "w") as f:
        json.dump(cfg, f)
    for name in ("t2s", "mixed"):
        exp, bf, _ = results[name]
        got = forward(bf, mut)
        d = rel(got["loss_tts"], exp["loss_tts"])
        print(f"mutant interleave {n}:{m} ({name}): {d:.3g}")
        check(d > MUTANT_MIN, f"{name}: a swapped interleave ratio would pass ({d:.3g})")
        compare(f"{name} swapped-ratio loss_tts", got["loss_tts"], exp["mutant.ratio.loss_tts"], TOL, "loss")

    # Malformed batches fail with a message.
    exp, bf, _ = results["mixed"]
    t = load_file(bf)
    t["units_len"] = t["units_len"][:1].copy()
    t["units"] = t["units"][:1].copy()
    t["spk_emb"] = t["spk_emb"][:1].copy()
    bad = os.path.join(TMP, "bad.safetensors")
    save_file(t, bad)
    r = forward(bad, MODEL, ok=False)
    check(r.returncode != 0 and "speech spans" in r.stderr, f"one unit row for two spans: {r.stderr[-300:]}")
    t = load_file(bf)
    t["attention_mask"][1, 0] = 0
    save_file(t, bad)
    r = forward(bad, MODEL, ok=False)
    check(r.returncode != 0 and "right-padded" in r.stderr, f"left padding: {r.stderr[-300:]}")

    init_checks()
    print("worst relative errors:", {k: f"{v:.3g}" for k, v in worst.items()})


def init_checks():
    """`s2s init` on configs/tiny/model.json: OpenS2S names and shapes (a PyTorch OmniSpeech built from the
    written config.json loads it strictly), transformers' / PyTorch's initial statistics, determinism; and the
    tiny model runs a batch."""
    import torch
    sys.path.insert(0, os.path.join("tools", "fixtures"))
    import gen_omnispeech as ref

    a, b, c = (os.path.join(TMP, d) for d in ("init_a", "init_b", "init_c"))
    for d, seed in ((a, 5), (b, 5), (c, 6)):
        r = subprocess.run([S2S, "init", "--config", os.path.join("configs", "tiny", "model.json"), "--out", d,
                            "--seed", str(seed)], capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"s2s init failed: {r.stderr}")
    wa, wb, wc = (load_file(os.path.join(d, "model.safetensors")) for d in (a, b, c))
    check(all(np.array_equal(wa[k], wb[k]) for k in wa), "init: the same seed gives different weights")
    check(not np.array_equal(wa["llm2tts.weight"], wc["llm2tts.weight"]), "init: the seed changes nothing")

    with open(os.path.join(a, "config.json")) as f:
        cfg = json.load(f)
    ref.ENC = {k: cfg["audio_encoder_config"][k] for k in ref.ENC}
    ref.CHUNK = 2 * ref.ENC["max_source_positions"]
    for dst, src in ((ref.LLM, cfg["llm_config"]), (ref.TTS, cfg["tts_lm_config"])):
        for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "pad_token_id"):
            dst[k] = src[k]
        dst["tied"] = src["tie_word_embeddings"]
        eos = src["eos_token_id"]
        dst["eos_token_id"] = eos[0] if isinstance(eos, list) else eos
    ref.KERNELS, ref.INNER = cfg["conv_kernel_sizes"], cfg["adapter_inner_dim"]
    model = ref.OmniSpeech(cfg["interleave_strategy"])
    sd = {k: torch.from_numpy(v) for k, v in wa.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (ref.TTS["tied"] and k == "tts_lm_model.lm_head.weight")]
    check(not missing and not unexpected, f"init: names differ from OpenS2S: missing {missing[:5]}, "
          f"unexpected {unexpected[:5]}")

    def std(k):
        return float(wa[k].std())
    check(abs(std("llm_model.model.layers.0.self_attn.q_proj.weight") - 0.02) < 2e-3, "init: LLM matrices std")
    check(abs(std("tts_lm_model.model.embed_tokens.weight") - 0.02) < 1e-3, "init: TTS embeddings std")
    check(abs(std("audio_encoder_model.layers.0.fc1.weight") - 0.02) < 2e-3, "init: encoder matrices std")
    pad = cfg["llm_config"]["pad_token_id"]
    check(not wa["llm_model.model.embed_tokens.weight"][pad].any(), "init: the LLM pad row is not zero")
    check((wa["llm_model.model.norm.weight"] == 1).all() and not wa["llm_ln.bias"].any(), "init: norms")
    check(not wa["audio_encoder_model.layers.0.fc1.bias"].any(), "init: encoder biases")
    bound = 1 / np.sqrt(cfg["llm_config"]["hidden_size"])
    w = wa["llm2tts.weight"]
    check(np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound, "init: llm2tts is not U(+-1/sqrt(in))")

    # The tiny model runs a speech-in / speech-out batch of a 2 s audio.
    tok_audio = 2685
    ids = np.array([[5, 6, tok_audio, -200, tok_audio + 1, 7, 2687, 40, 41, 42, 2688, 2661]], dtype=np.int32)
    labels = np.full_like(ids, -100)
    labels[0, 6:] = ids[0, 6:]
    tt = np.zeros_like(ids)
    tt[0, 6:11] = 1
    units = np.array([[2685 + 5, 2685 + 9, 2685 + 1, 2661]], dtype=np.int32)
    t = {"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels, "token_types": tt,
         "mel": hash_unit(3, 128 * 3000).reshape(1, 128, 3000), "mel_frames": np.array([200], dtype=np.int32),
         "units": units, "units_len": np.array([4], dtype=np.int32)}
    p = os.path.join(TMP, "tiny.safetensors")
    save_file(t, p)
    o = forward(p, a)
    check(np.isfinite(o["loss"]) and abs(float(o["loss_tts"]) - np.log(cfg["tts_lm_config"]["vocab_size"])) < 1.0,
          f"tiny model: loss_tts {float(o['loss_tts'])} far from log V at initialisation")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        sys.exit(1)
    print("ok")
