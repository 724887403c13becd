"""`s2s export` (eval/export.c, docs/export.md) on tiny stage-3 runs, with and without LoRA.

Run by ctest as: python3 tests/eval/test_export.py S2S_BINARY BUILD_DIR (from the repository root).

- names and shapes: a PyTorch OmniSpeech (tools/fixtures/gen_omnispeech.py, the rendering of OpenS2S's model)
  built from the exported config.json loads the export strictly (no missing / unexpected keys); dtypes all F32 or
  all BF16, config.json's torch_dtype says which;
- values: the f32 export is bit-equal to the checkpoint (plus the tied TTS lm_head, a copy of its embeddings), the LoRA projections equal W + (alpha/r) B @ A computed
  in torch; the bf16 export is bit-equal to torch's .to(torch.bfloat16) of the f32 one; sharded == unsharded;
- the index: total_size, every tensor in exactly the shard it names, shards within --shard-size (or one tensor);
  --shard-size parses as transformers' convert_file_size_to_int (5GB one file, 8Mb == 1MB, garbage refused);
- the files: transformers' AutoTokenizer, GenerationConfig and WhisperFeatureExtractor load DIR, DIR/tts, DIR/audio;
- `s2s forward --model EXPORT` gives the loss of `s2s forward --model CKPT/model` (f32: bit-equal; sharded the same);
- --ckpt as a run directory and as an OpenS2S directory (an export of an export is the same); a run whose
  model.init is an export carries its generation configs and feature-extractor config into the next export;
- all or nothing: an existing DIR is refused without --force and left as it was; a failure after the weights
  were written (a bad --tokenizer) leaves no DIR and no temporary; --force swaps in the new one; SIGKILL at random
  moments leaves DIR absent or complete, and the next export cleans up.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = os.getcwd()
S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
import torch_train_ref as R  # noqa: E402

TMP = tempfile.mkdtemp(prefix="s2s_export_")
SEED = int(os.environ.get("S2S_TEST_SEED", random.randrange(1 << 30)))
rng = random.Random(SEED)
print(f"test_export: seed {SEED} (S2S_TEST_SEED={SEED} reproduces)")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


def run(*args, ok=True, timeout=120):
    p = subprocess.run([S2S, *args], capture_output=True, text=True, timeout=timeout)
    if ok and p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-2000:])
    return p


def export(ckpt, out, *extra, ok=True):
    return run("export", "--ckpt", ckpt, "--out", out, *extra, ok=ok)


def train(name, **over):
    r = {"stage": "stage3", "seed": 7,
         "model": {"init": MODEL, "tokenizer": "configs/tiny/tokenizer", "tts_tokenizer": "configs/tiny/tts-tokenizer"},
         "data": {"train": [SHARDS], "prefetch": 1},
         "train": {"batch_size": 2, "max_steps": 2}, "optim": {"lr": 2e-3},
         "run": {"dir": os.path.join(TMP, "runs", name)}, "checkpoint": {"every": 2}}
    for k, v in over.items():
        a, b = k.split(".")
        r.setdefault(a, {})[b] = v
    path = os.path.join(TMP, name + ".yaml")
    with open(path, "w") as f:
        json.dump(r, f)
    p = run("train", "--config", path, "--quiet", timeout=600)
    check(p.returncode == 0, f"train {name}")
    return r["run"]["dir"], os.path.join(r["run"]["dir"], "checkpoints", "step_00000002")


def header(path):
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def weights(d):
    """name -> (dtype, shape, numpy f32 values) over a single file or the shards of an index."""
    import torch
    from safetensors.torch import load_file as tload
    files = [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".safetensors")]
    out = {}
    for f in files:
        h = header(f)
        t = tload(f)
        for k, v in t.items():
            out[k] = (h[k]["dtype"], tuple(h[k]["shape"]), v.to(torch.float32).numpy())
    return out


def same_dir(a, b):
    def walk(d):
        return {os.path.relpath(os.path.join(r, f), d): open(os.path.join(r, f), "rb").read()
                for r, _, fs in os.walk(d) for f in fs}
    return walk(a) == walk(b)


def leftovers(parent):
    return [f for f in os.listdir(parent) if ".export-" in f]


# ---- the batch `s2s forward` runs (a 2 s audio in, speech out; tests/model/test_omnispeech.py init_checks) -----

def tiny_batch(path):
    ids = np.array([[5, 6, 2685, -200, 2686, 7, 2687, 40, 41, 42, 2688, 2661]], dtype=np.int32)
    labels = np.full_like(ids, -100)
    labels[0, 6:] = ids[0, 6:]
    tt = np.zeros_like(ids)
    tt[0, 6:11] = 1
    mel = np.random.default_rng(3).standard_normal((1, 128, 3000)).astype(np.float32)
    units = np.array([[2685 + 5, 2685 + 9, 2685 + 1, 2661]], dtype=np.int32)
    save_file({"input_ids": ids, "attention_mask": np.ones_like(ids), "labels": labels, "token_types": tt,
               "mel": mel, "mel_frames": np.array([200], dtype=np.int32), "units": units,
               "units_len": np.array([4], dtype=np.int32)}, path)
    return path


def loss(model):
    out = os.path.join(TMP, "fwd.safetensors")
    p = run("forward", "--model", model, "--inputs", BATCH, "--out", out, "--threads", "2")
    check(p.returncode == 0, f"s2s forward --model {os.path.relpath(model, TMP)}")
    return float(load_file(out)["loss"]) if p.returncode == 0 else float("nan")


# ---- checks ----------------------------------------------------------------------------------------------------

def check_names(d):
    """A PyTorch OmniSpeech built from DIR/config.json loads DIR strictly."""
    import torch
    import gen_omnispeech as ref
    with open(os.path.join(d, "config.json")) as f:
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
    w = weights(d)
    exp = model.state_dict()
    missing = sorted(k for k in exp if k not in w and not (ref.TTS["tied"] and k == "tts_lm_model.lm_head.weight"))
    unexpected = sorted(k for k in w if k not in exp)
    check(not missing and not unexpected, f"{os.path.basename(d)}: OpenS2S names: missing {missing[:4]}, "
          f"unexpected {unexpected[:4]}")
    bad = [k for k in w if k in exp and tuple(exp[k].shape) != w[k][1]]
    check(not bad, f"{os.path.basename(d)}: shapes as the PyTorch model's ({len(w)} tensors) {bad[:3]}")
    sd = {k: torch.from_numpy(v[2]) for k, v in w.items()}
    m, u = model.load_state_dict(sd, strict=False)
    m = [k for k in m if not (ref.TTS["tied"] and k == "tts_lm_model.lm_head.weight")]
    check(not m and not u, f"{os.path.basename(d)}: load_state_dict: missing {m[:3]}, unexpected {u[:3]}")
    return cfg, w


def check_index(d, limit):
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    shards = sorted(f for f in os.listdir(d) if f.startswith("model-") and f.endswith(".safetensors"))
    n = len(shards)
    check(shards == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)], f"shard names {shards}")
    total, seen, ok = 0, set(), True
    for s in shards:
        h = header(os.path.join(d, s))
        meta = h.pop("__metadata__", {})
        ok &= meta.get("format") == "pt"
        size = sum(v["data_offsets"][1] - v["data_offsets"][0] for v in h.values())
        ok &= size <= limit or len(h) == 1
        total += size
        for k in h:
            ok &= idx["weight_map"].get(k) == s and k not in seen
            seen.add(k)
    check(ok and seen == set(idx["weight_map"]), f"index: every tensor in the shard it names, {n} shards <= {limit} "
          "bytes (or one tensor), format pt")
    check(idx["metadata"]["total_size"] == total, f"index total_size {idx['metadata']['total_size']} == {total}")
    return n


def check_files(d, cfg):
    from transformers import AutoTokenizer, GenerationConfig, WhisperFeatureExtractor
    tok = AutoTokenizer.from_pretrained(d)
    tts = AutoTokenizer.from_pretrained(os.path.join(d, "tts"))
    ref = AutoTokenizer.from_pretrained("configs/tiny/tokenizer")
    check(tok("hello <|im_audio_start|>")["input_ids"] == ref("hello <|im_audio_start|>")["input_ids"] and
          len(tok) <= cfg["llm_config"]["vocab_size"], "AutoTokenizer loads DIR: the recipe's tokenizer")
    check(tts.convert_tokens_to_ids("<|audio_0|>") == 2685 and len(tts) <= cfg["tts_lm_config"]["vocab_size"],
          "AutoTokenizer loads DIR/tts: the TTS tokenizer")
    g, gt = GenerationConfig.from_pretrained(d), GenerationConfig.from_pretrained(os.path.join(d, "tts"))
    check(g.pad_token_id == cfg["llm_config"]["pad_token_id"] and gt.pad_token_id == cfg["tts_lm_config"]["pad_token_id"],
          "GenerationConfig loads DIR and DIR/tts (pad ids as the configs)")
    fe = WhisperFeatureExtractor.from_pretrained(os.path.join(d, "audio"))
    check(fe.feature_size == 128 and fe.sampling_rate == 16000 and fe.nb_max_frames == 3000 and fe.hop_length == 160,
          "WhisperFeatureExtractor loads DIR/audio (128 bins, 16 kHz, 3000 frames)")


def main():
    import torch
    global MODEL, SHARDS, BATCH
    MODEL = R.init_model(os.path.join(TMP, "init"), seed=3, s2s=S2S)
    SHARDS = os.path.dirname(R.make_shards(os.path.join(TMP, "instruct"), "instruct", 4, 5, s2s=S2S))
    BATCH = tiny_batch(os.path.join(TMP, "batch.safetensors"))
    E = os.path.join(TMP, "exports")
    os.makedirs(E)

    # ---- full fine-tuning: values and loss ----
    run_ft, ck = train("ft")
    check(os.path.exists(os.path.join(ck, "hf", "tokenizer.json")) and
          os.path.exists(os.path.join(ck, "hf", "tts", "tokenizer.json")), "the checkpoint carries hf/ (tokenizers)")
    f32, f32s, bf, bfs = (os.path.join(E, n) for n in ("ft_f32", "ft_f32_sharded", "ft_bf16", "ft_bf16_sharded"))
    check(export(ck, f32, "--dtype", "f32").returncode == 0, "export f32")
    check(export(ck, f32s, "--dtype", "f32", "--shard-size", "1MB").returncode == 0, "export f32 --shard-size 1MB")
    check(export(ck, bf).returncode == 0, "export (bf16 by default)")
    check(export(ck, bfs, "--shard-size", "200KB").returncode == 0, "export bf16 --shard-size 200KB")
    cfg, w32 = check_names(f32)
    _, w32s = check_names(f32s)
    _, wbf = check_names(bf)
    _, wbfs = check_names(bfs)
    check(cfg["lora_config"] is None and cfg["torch_dtype"] == "float32" and
          json.load(open(os.path.join(bf, "config.json")))["torch_dtype"] == "bfloat16", "config.json: torch_dtype, lora_config null")
    for k in ("audio_encoder_config", "llm_config", "tts_lm_config", "conv_kernel_sizes", "adapter_inner_dim",
              "interleave_strategy"):
        check(k in cfg, f"config.json has {k}")
    src = load_file(os.path.join(ck, "model", "model.safetensors"))
    check(all(w32[k][0] == "F32" for k in w32) and all(wbf[k][0] == "BF16" for k in wbf), "dtypes F32 / BF16")
    head, emb = "tts_lm_model.lm_head.weight", "tts_lm_model.model.embed_tokens.weight"
    check(head not in src and head in w32 and np.array_equal(w32[head][2], src[emb]),
          "the tied TTS-LM's lm_head.weight is written, a copy of embed_tokens (OpenS2S's from_pretrained needs it)")
    check(set(w32) == set(src) | {head} and all(np.array_equal(w32[k][2], src[k]) for k in src),
          f"f32 export bit-equal to the checkpoint ({len(src)} tensors)")
    check(all(np.array_equal(w32s[k][2], w32[k][2]) for k in w32) and set(w32s) == set(w32), "sharded == unsharded (f32)")
    rne = {k: torch.from_numpy(v[2]).to(torch.bfloat16).to(torch.float32).numpy() for k, v in w32.items()}
    check(all(np.array_equal(wbf[k][2], rne[k]) for k in w32), "bf16 export == torch .to(bfloat16) of the f32 values")
    check(all(np.array_equal(wbfs[k][2], wbf[k][2]) for k in wbf), "sharded == unsharded (bf16)")
    n32, nbf = check_index(f32s, 1000000), check_index(bfs, 200000)
    check(n32 > 1 and nbf > 1 and not os.path.exists(os.path.join(f32s, "model.safetensors")),
          f"sharded: {n32} and {nbf} shards, no model.safetensors")
    check(not os.path.exists(os.path.join(f32, "model.safetensors.index.json")), "5GB: one model.safetensors, no index")
    check_files(f32, cfg)

    l_ck, l32, l32s, lbf = loss(os.path.join(ck, "model")), loss(f32), loss(f32s), loss(bf)
    print(f"loss: checkpoint {l_ck!r}, f32 export {l32!r}, sharded {l32s!r}, bf16 export {lbf!r}")
    check(l32 == l_ck and l32s == l_ck, "s2s forward: f32 export (and sharded) loss == the checkpoint's, bit for bit")
    check(abs(lbf - l_ck) < 0.02 * abs(l_ck), f"s2s forward: bf16 export loss within 2% ({abs(lbf - l_ck):.3g})")

    # --shard-size as transformers parses it.
    a, b = os.path.join(E, "bits"), os.path.join(E, "bytes")
    check(export(ck, a, "--shard-size", "8Mb").returncode == 0 and export(ck, b, "--shard-size", "1000000").returncode == 0,
          "--shard-size 8Mb and 1000000")
    check(check_index(a, 1000000) == check_index(b, 1000000) and same_dir(a, b), "8Mb (bits) shards as 1000000 bytes")
    shutil.rmtree(a), shutil.rmtree(b)
    for bad in ("5XB", "GB", "1.5GB", "-1MB"):
        p = export(ck, os.path.join(E, "bad"), "--shard-size", bad, ok=False)
        check(p.returncode == 2 and not os.path.exists(os.path.join(E, "bad")), f"--shard-size {bad} refused")

    # --ckpt as a run directory, as an OpenS2S directory.
    r = os.path.join(E, "from_run")
    check(export(run_ft, r, "--dtype", "f32").returncode == 0 and same_dir(r, f32), "--ckpt RUN == --ckpt RUN/step_N")
    r2 = os.path.join(E, "from_export")
    p = export(f32, r2, "--dtype", "f32")
    w2 = weights(r2) if p.returncode == 0 else {}
    check(set(w2) == set(w32) and all(np.array_equal(w2[k][2], w32[k][2]) for k in w32) and
          "generation_config.json" in p.stdout.split("copied")[1].split("\n")[0],
          "--ckpt OpenS2S dir: an export of the export is the same, its files copied")
    shutil.rmtree(r), shutil.rmtree(r2)

    # A run started from an export (an OpenS2S directory) carries its files on: the next export copies them all.
    MODEL, keep = f32, MODEL
    _, ckx = train("from_export")
    MODEL = keep
    r3 = os.path.join(E, "chained")
    p = export(ckx, r3)
    check(p.returncode == 0 and "made from" not in p.stdout and "audio/preprocessor_config.json" in p.stdout,
          "model.init = an export: the checkpoint's hf/ has its generation configs and audio/, nothing is made")
    shutil.rmtree(r3)

    # ---- all or nothing ----
    snap = os.path.join(TMP, "snap")
    shutil.copytree(f32, snap)
    p = export(ck, f32, ok=False)
    check(p.returncode == 1 and "--force" in p.stderr and same_dir(f32, snap) and not leftovers(E),
          "an existing DIR is refused without --force, left as it was, no temporary")
    bad = os.path.join(E, "failed")
    p = export(ck, bad, "--tokenizer", os.path.join(TMP, "no-such-tokenizer"), ok=False)
    check(p.returncode == 1 and not os.path.exists(bad) and not leftovers(E),
          f"a failure after the weights were written leaves no DIR, no temporary ({p.stderr.strip()[:80]})")
    p = export(ck, f32, "--tokenizer", os.path.join(TMP, "no-such-tokenizer"), "--force", ok=False)
    check(p.returncode == 1 and same_dir(f32, snap) and not leftovers(E), "a failed --force leaves the old DIR")
    check(export(ck, f32, "--force").returncode == 0 and header(os.path.join(f32, "model.safetensors"))[
        "llm_ln.weight"]["dtype"] == "BF16" and not leftovers(E), "--force replaces DIR (now bf16)")
    kills = 0
    k = os.path.join(E, "killed")
    for i in range(6):
        p = subprocess.Popen([S2S, "export", "--ckpt", ck, "--out", k, "--dtype", "f32", "--shard-size", "300KB",
                              "--force"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.25))
        p.send_signal(signal.SIGKILL)
        p.wait()
        kills += p.returncode == -signal.SIGKILL
        if os.path.exists(k):
            w = weights(k)
            check(set(w) == set(w32) and all(np.array_equal(w[n][2], w32[n][2]) for n in w32) and
                  os.path.exists(os.path.join(k, "tts", "tokenizer.json")), f"SIGKILL {i}: DIR complete")
    p = export(ck, k, "--dtype", "f32", "--force")
    check(p.returncode == 0 and not leftovers(E), f"after {kills} SIGKILLs the next export completes and removes "
          "the temporaries")

    # ---- LoRA: merged as PEFT merge_and_unload ----
    _, ckl = train("lora", **{"lora.r": 4, "lora.alpha": 8})
    lo = os.path.join(E, "lora_f32")
    p = export(ckl, lo, "--dtype", "f32")
    check(p.returncode == 0 and "8 LoRA adapters merged" in p.stdout, f"export LoRA: {p.stdout.strip()[:120]}")
    _, wl = check_names(lo)
    srcl = load_file(os.path.join(ckl, "model", "model.safetensors"))
    merged, exact, worst = 0, 0, 0.0
    ok = True
    for name, (dt, shape, v) in wl.items():
        a = name[:-len(".weight")] + ".lora_A.weight" if name.endswith(".weight") else None
        if a in srcl:
            W, A, B = (torch.from_numpy(srcl[n]) for n in (name, a, a.replace(".lora_A.", ".lora_B.")))
            want = (W + (B @ A) * (8 / 4)).numpy()
            merged += 1
            exact += np.array_equal(v, want)
            worst = max(worst, float(np.abs(v - want).max() / np.abs(want).max()))
            ok &= not np.array_equal(v, srcl[name])
        else:
            ok &= np.array_equal(v, srcl[name if name in srcl else "tts_lm_model.model.embed_tokens.weight"])
    print(f"LoRA merge: {merged} projections, {exact} bit-equal to torch's W + s B@A, worst relative {worst:.3g}")
    check(merged == 8 and ok and worst <= 1e-6, "LoRA projections == W + (alpha/r) B @ A (torch), the rest bit-equal")
    check(not any("lora" in n for n in wl) and np.isfinite(loss(lo)), "no lora tensors left; s2s forward runs it")


if __name__ == "__main__":
    try:
        main()
    finally:
        shutil.rmtree(TMP, ignore_errors=True)
    if failures:
        print(f"{len(failures)} failures", file=sys.stderr)
        sys.exit(1)
    print("ok")
