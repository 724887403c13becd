"""The data path of tests/train/torch_train_ref.py (the PyTorch reference of `s2s train`) against `s2s forward`.

Run by ctest as: python3 tests/train/test_torch_ref.py S2S_BINARY BUILD_DIR (from the repository root).

On tiny shards that make_shards writes with `s2s prep` (instruct: speech->speech, text->speech, a two-turn sample
with a 31 s audio and two speech spans, text->text; align) and the tiny model of `s2s init`, the reference's
step-0 losses and gradients (float64, OpenS2S's padded batch, WhisperFeatureExtractor mel) must equal
`s2s forward --grads` on the same samples (f32, packed): max |s2s - ref| / max |ref| per tensor <= TOL (losses)
and TOL_GRAD (gradients), on the whole shard and on sub-batches that take OpenS2S's dummy paths (no audio, no
units). Also: stage 2a (tts_pretrain) equals transformers' own causal-LM loss of the TTS-LM on text + units;
with --loss-norm tokens, a step split into micro-batches gives the gradient of the whole batch; with one
micro-batch per step, tokens and micro_mean give identical runs.
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train_ref as R  # noqa: E402

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
TOL = 1e-5
TOL_GRAD = 2e-5  # f32 s2s vs f64 reference (measured <= 1.5e-6)
TMP = tempfile.mkdtemp(prefix="s2s_torch_ref_")
failures, worst = [], {}


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED:", what, file=sys.stderr)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = np.abs(b).max() if b.size else 0.0
    d = np.abs(a - b).max() if b.size else 0.0
    return d / m if m > 0 else d


def ref_step0(model, samples, kind, frozen):
    """The reference's loss terms and gradients of one batch (one micro-batch, weights 1)."""
    trainable = R.set_trainable(model, frozen)
    model.zero_grad(set_to_none=True)
    p = R.forward(model, R.collate(samples, kind, model.cfg), kind)
    contrib, rec = R.combine([p], "tokens", 1.0, 1.0)
    contrib[0].backward()
    grads = {n: (q.grad if q.grad is not None else torch.zeros_like(q)).detach().numpy()
             for n, q in model.named_parameters() if n in set(trainable)}
    return rec, grads


def s2s_forward(model_dir, samples, cfg, tag):
    bf = os.path.join(TMP, tag + ".safetensors")
    save_file(R.forward_inputs(samples, cfg), bf)
    out = os.path.join(TMP, tag + ".out.safetensors")
    r = subprocess.run([S2S, "forward", "--model", model_dir, "--inputs", bf, "--out", out, "--grads",
                        "--threads", "2"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"s2s forward ({tag}) failed: {r.stderr}")
    return load_file(out)


def compare_forward(model, model_dir, samples, kind, tag):
    rec, grads = ref_step0(model, samples, kind, "audio_encoder_model.")
    got = s2s_forward(model_dir, samples, model.cfg, tag)
    e = {}
    for k in ("loss", "loss_llm", "loss_tts"):
        e[k] = rel(got[k], rec[k])
        check(e[k] <= TOL, f"{tag} {k}: s2s {float(got[k]):.8f} ref {rec[k]:.8f} ({e[k]:.3g})")
    names = sorted("grad." + n for n in grads)
    check(sorted(k for k in got if k.startswith("grad.")) == names,
          f"{tag}: gradient names differ: {sorted(set(names) ^ set(k for k in got if k.startswith('grad.')))[:6]}")
    eg, wname = 0.0, ""
    for n, g in grads.items():
        if "grad." + n not in got:
            continue
        if not np.abs(g).max() > 0:
            check(not np.abs(got["grad." + n]).max() > 0, f"{tag} {n}: expected a zero gradient")
            continue
        d = rel(got["grad." + n], g)
        if d > eg:
            eg, wname = d, n
        check(d <= TOL_GRAD, f"{tag} grad.{n}: relative error {d:.3g}")
    e["grad"] = eg
    for k, v in e.items():
        worst[k] = max(worst.get(k, 0.0), v)
    print(f"{tag}: loss {float(got['loss']):.7f} vs {rec['loss']:.7f} (llm {e['loss_llm']:.2g}, tts "
          f"{e['loss_tts']:.2g}); {len(grads)} gradients, worst {eg:.3g} ({wname}); "
          f"targets llm {rec['n_llm_targets']} tts {rec['n_tts_targets']}")


def tts_pretrain_check(model, samples):
    """Stage 2a = transformers' Qwen3ForCausalLM loss (its own shift and mean) on [text ids] + [units]."""
    b = R.collate(samples, "tts_pretrain", model.cfg)
    with torch.no_grad():
        p = R.forward(model, b, "tts_pretrain")
        hf = model.tts_lm_model(input_ids=torch.from_numpy(b["ids"]), attention_mask=torch.from_numpy(b["mask"]),
                                labels=torch.from_numpy(b["labels"])).loss
    mine = float(p["s_tts"] / p["n_tts"])
    n_units = sum(len(s["units"]) for s in samples)
    check(p["n_tts"] == n_units, f"tts_pretrain: {p['n_tts']} targets for {n_units} units")
    e = rel(mine, float(hf))
    check(e <= 1e-6, f"tts_pretrain: loss {mine} vs transformers {float(hf)} ({e:.3g})")
    print(f"tts_pretrain: loss {mine:.8f} vs transformers' {float(hf):.8f} ({e:.2g}), {n_units} unit targets")


def accumulation_checks(model_dir, samples, kind):
    """tokens normalisation: micro-batches {0..3} {4..7} give the gradient of the batch {0..7}; with one
    micro-batch, tokens == micro_mean."""
    n = len(samples)
    half = [list(range(n // 2)), list(range(n // 2, n))]
    g = {}
    for tag, plan, norm in (("whole", [[list(range(n))]], "tokens"), ("split", [half], "tokens"),
                            ("split_mm", [half], "micro_mean"), ("whole_mm", [[list(range(n))]], "micro_mean")):
        m = R.load_model(model_dir, torch.float64)
        res = R.train(m, samples, kind, plan + plan, lr=1e-3, warmup_steps=0, loss_norm=norm, dump_grads=True,
                      log=lambda s: None)
        g[tag] = (res["grads0"], res["steps"], {k: v.detach().clone() for k, v in m.named_parameters()})
    e = max(rel(g["split"][0][k], g["whole"][0][k]) for k in g["whole"][0] if g["whole"][0][k].abs().max() > 0)
    check(e <= 1e-9, f"tokens: split micro-batches differ from the whole batch by {e:.3g}")
    d = abs(g["split"][1][0]["loss"] - g["whole"][1][0]["loss"])
    check(d <= 1e-9, f"tokens: split loss differs by {d:.3g}")
    e2 = max(rel(g["split_mm"][0][k], g["whole"][0][k]) for k in g["whole"][0] if g["whole"][0][k].abs().max() > 0)
    check(e2 > 1e-6, f"micro_mean of unequal micro-batches should differ from tokens ({e2:.3g})")
    same = all(torch.equal(g["whole"][2][k], g["whole_mm"][2][k]) for k in g["whole"][2])
    check(same, "one micro-batch per step: tokens and micro_mean runs differ")
    print(f"accumulation: tokens split vs whole {e:.2g}; micro_mean split vs tokens {e2:.2g}; "
          f"G=1 tokens == micro_mean: {same}")


def main():
    torch.set_num_threads(2)
    model_dir = R.init_model(os.path.join(TMP, "model"), seed=3, s2s=S2S)
    model = R.load_model(model_dir, torch.float64)
    # The parameter set is the s2s registry's: every name of the checkpoint (tied lm_head not stored).
    ck = set(load_file(os.path.join(model_dir, "model.safetensors")))
    check(set(n for n, _ in model.named_parameters()) == ck, "parameter names differ from the s2s checkpoint")

    sh = R.make_shards(os.path.join(TMP, "instruct"), "instruct", 8, seed=5, s2s=S2S)
    samples, kind = R.read_shard(sh)
    check(kind == "instruct" and len(samples) == 8, f"instruct shard: {kind}, {len(samples)} samples")
    compare_forward(model, model_dir, samples, kind, "instruct_all")
    compare_forward(model, model_dir, [samples[i] for i in (1, 3, 5)], kind, "instruct_no_audio")
    compare_forward(model, model_dir, [samples[i] for i in (3, 7)], kind, "instruct_no_units")
    compare_forward(model, model_dir, [samples[2]], kind, "instruct_two_spans")

    sh = R.make_shards(os.path.join(TMP, "align"), "align", 4, seed=6, s2s=S2S)
    samples_a, kind_a = R.read_shard(sh)
    compare_forward(model, model_dir, samples_a, kind_a, "align_all")

    sh = R.make_shards(os.path.join(TMP, "tts"), "tts_pretrain", 6, seed=7, s2s=S2S)
    samples_t, kind_t = R.read_shard(sh)
    check(kind_t == "tts_pretrain", f"tts_pretrain shard kind {kind_t}")
    tts_pretrain_check(model, samples_t)

    accumulation_checks(model_dir, samples, kind)
    print("worst relative errors:", {k: f"{v:.3g}" for k, v in worst.items()})


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        sys.exit(1)
    print("ok")
