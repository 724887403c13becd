"""`s2s plan` (train/plan.c): parameter counts, bytes per rank and the activation arena, without weights.

Run by ctest as: python3 tests/train/test_plan.py S2S_BINARY BUILD_DIR (from the repository root).

- parameter counts: the tiny config against a hand count of its architecture; Qwen3-8B and Qwen3-1.7B (with the
  16,384 speech rows) and the Qwen2-Audio encoder against their published / hand-computed totals, through the
  committed configs/opens2s-8b/model.json;
- trainable per stage follows the trainer (stage 1: the adapter, 2a: the TTS-LM, 3: all but the encoder, LoRA);
- bytes: parameters, gradients and optimizer state for ZeRO 0 / 1 / 2 and the world size;
- activations: the planned arena high-water mark within 10% of arena_peak_mb of real `s2s train` CPU runs (tiny and
  a bench_train.py-like model; stages 1 and 3; recompute on and off; two micro-batch sizes);
- OpenS2S stage 3 (ZeRO-1, recompute, 4 x 2048 tokens, bf16) fits 8 x 80 GB without offload.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train_ref as R  # noqa: E402

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TMP = tempfile.mkdtemp(prefix="s2s_plan_")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


def yaml_of(d, ind=0):
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out.append(" " * ind + f"{k}:")
            out.append(yaml_of(v, ind + 2))
        else:
            out.append(" " * ind + f"{k}: {json.dumps(v)}")
    return "\n".join(out)


def write_recipe(path, r):
    with open(path, "w") as f:
        f.write(yaml_of(r) + "\n")
    return path


def plan(recipe, *args):
    p = subprocess.run([S2S, "plan", "--config", recipe, "--json", *map(str, args)], capture_output=True, text=True,
                       timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"s2s plan failed: {p.stderr}")
    return json.loads(p.stdout)


# ---- parameter counts ----------------------------------------------------------------------------------------

def qwen3_count(V, H, I, L, Hq, Hkv, D, tied):
    layer = H * Hq * D + 2 * H * Hkv * D + Hq * D * H + 3 * H * I + 2 * H + 2 * D
    return V * H + L * layer + H + (0 if tied else V * H)


def encoder_count(mels, d, L, ffn, pos):
    layer = 4 * d * d + 3 * d + 2 * d * ffn + ffn + d + 4 * d  # q k v o, q v o biases, fc1, fc2, 2 LNs
    return d * mels * 3 + d + d * d * 3 + d + pos * d + L * layer + 2 * d


def omni_count(c):
    a, l, t = c["audio_encoder_config"], c["llm_config"], c["tts_lm_config"]
    enc = encoder_count(a["num_mel_bins"], a["d_model"], a["encoder_layers"], a["encoder_ffn_dim"],
                        a["max_source_positions"])
    q = lambda x: qwen3_count(x["vocab_size"], x["hidden_size"], x["intermediate_size"], x["num_hidden_layers"],  # noqa
                              x["num_attention_heads"], x["num_key_value_heads"], x.get("head_dim", 128),
                              x["tie_word_embeddings"])
    d, H, Ht, inner = a["d_model"], l["hidden_size"], t["hidden_size"], c["adapter_inner_dim"]
    ks = [int(k) for k in str(c["conv_kernel_sizes"]).split(",")]
    adapter = 2 * d * d * ks[0] + 2 * d + 2 * H * d * ks[1] + 2 * H + 2 * H * inner + 2 * H
    tts_extra = Ht * 512 + 2 * Ht
    bridges = Ht * H + 2 * Ht
    return enc, q(l), q(t) + tts_extra, adapter, bridges


tiny = json.load(open(os.path.join(ROOT, "configs/tiny/model.json")))
enc, llm, tts, adapter, bridges = omni_count(tiny)
base = {"seed": 1, "model": {"config": os.path.join(ROOT, "configs/tiny/model.json")}, "data": {"train": ["x"]},
        "train": {"batch_size": 2, "max_steps": 1}, "run": {"dir": os.path.join(TMP, "r")}}
total = enc + llm + tts + adapter + bridges
pos = tiny["audio_encoder_config"]["max_source_positions"] * tiny["audio_encoder_config"]["d_model"]
for stage, trainable in (("stage1", adapter), ("stage2a", tts), ("stage2b", tts + bridges),
                         ("stage3", adapter + llm + tts + bridges)):
    j = plan(write_recipe(os.path.join(TMP, f"{stage}.yaml"), dict(base, stage=stage)), "--precision", "f32")
    check(j["params_total"] == total, f"tiny {stage}: params_total {j['params_total']} == hand count {total}")
    check(j["params_trainable"] == trainable, f"tiny {stage}: trainable {j['params_trainable']} == {trainable}")
    check(j["bytes_params"] == 4 * total, f"tiny {stage}: f32 parameter bytes = 4 x total")

# LoRA: r x (in + out) per adapted projection, only those train.
t3 = write_recipe(os.path.join(TMP, "lora.yaml"), dict(base, stage="stage3", lora={"r": 4}))
j = plan(t3, "--precision", "f32")
L, H = tiny["llm_config"], tiny["llm_config"]["hidden_size"]
qd, kd = L["num_attention_heads"] * L["head_dim"], L["num_key_value_heads"] * L["head_dim"]
lora = L["num_hidden_layers"] * 4 * ((H + qd) + 2 * (H + kd) + (qd + H))
check(j["params_total"] == total + lora, f"tiny stage3 LoRA r 4: {lora} adapter parameters added")
check(j["params_trainable"] == adapter + tts + bridges + lora, "tiny stage3 LoRA: the LLM's base weights frozen")

# ZeRO: gradients full for 0 / 1, 1/N for 2; optimizer state 1/N for >= 1 (f32: m and v).
s3 = write_recipe(os.path.join(TMP, "s3.yaml"), dict(base, stage="stage3"))
j0 = plan(s3, "--precision", "f32", "--world", 4)
j1 = plan(s3, "--precision", "f32", "--world", 4, "--set", "dist.zero=1")
j2 = plan(s3, "--precision", "f32", "--world", 4, "--set", "dist.zero=2", "--set", "dist.bucket_mb=0.000001")
check(j0["bytes_optim"] >= 8 * j0["params_trainable"] and j0["bytes_optim"] < 8.1 * j0["params_trainable"],
      "ZeRO 0: AdamW state 8 B per trainable parameter")
check(abs(j1["bytes_optim"] * 4 - j0["bytes_optim"]) <= 4 * 64, "ZeRO 1 over 4 ranks: optimizer state / 4")
check(j1["bytes_grads"] == j0["bytes_grads"], "ZeRO 1: full gradients")
check(abs(j2["bytes_grads"] * 4 - j0["bytes_grads"]) <= 4 * 64 + 8, "ZeRO 2 over 4 ranks: gradients / 4")

# The real OpenS2S architecture (configs/opens2s-8b/model.json): Qwen3-8B 8,190,735,360 (untied head), Qwen3-1.7B
# 1,720,574,976 tied (2,031,739,904 published: its safetensors store the tied head too) + 16,384 speech rows, the
# Qwen2-Audio encoder 636,968,960.
big = json.load(open(os.path.join(ROOT, "configs/opens2s-8b/model.json")))
e8, l8, t8, a8, b8 = omni_count(big)
check(qwen3_count(151936, 4096, 12288, 36, 32, 8, 128, False) == 8190735360, "Qwen3-8B: 8,190,735,360")
check(qwen3_count(151936, 2048, 6144, 28, 16, 8, 128, True) == 1720574976,
      "Qwen3-1.7B tied: 1,720,574,976 (2,031,739,904 as published, which counts the stored lm_head copy)")
check(qwen3_count(151936, 2048, 6144, 28, 16, 8, 128, True) + 151936 * 2048 == 2031739904, "Qwen3-1.7B + head copy")
check(l8 == 8190735360 + (big["llm_config"]["vocab_size"] - 151936) * 4096 * 2,
      f"model.json LLM = Qwen3-8B resized to {big['llm_config']['vocab_size']} rows")
check(t8 - 2048 * 512 - 2 * 2048 == 1720574976 + (big["tts_lm_config"]["vocab_size"] - 151936) * 2048,
      f"model.json TTS-LM = Qwen3-1.7B + {big['tts_lm_config']['vocab_size'] - 151936} rows")
check(e8 == 636968960, "Qwen2-Audio encoder: 636,968,960 (whisper-large-v3's encoder, 1500 positions)")
s3big = os.path.join(ROOT, "configs/opens2s-8b/stage3.yaml")
jb = plan(s3big, "--model", os.path.join(ROOT, "configs/opens2s-8b/model.json"), "--world", 8, "--set", "dist.zero=1",
          "--batch", 4, "--tokens", 2048, "--gpu-mem", "80GB")
check(jb["params_total"] == e8 + l8 + t8 + a8 + b8, f"OpenS2S params_total {jb['params_total']:,}")
check(jb["params_trainable"] == l8 + t8 + a8 + b8, "OpenS2S stage 3: all but the encoder trains")
check(jb["recompute"] and jb["fits"], f"OpenS2S stage 3, ZeRO-1 + recompute, 4 x 2048, bf16 on 8 x 80 GB: fits "
      f"({jb['bytes_per_rank'] / 2**30:.1f} GiB per rank, largest micro-batch {jb['max_batch']})")
print(f"OpenS2S stage 3 per rank: params {jb['bytes_params'] / 2**30:.2f} GiB, grads {jb['bytes_grads'] / 2**30:.2f}, "
      f"optim {jb['bytes_optim'] / 2**30:.2f}, activations {jb['bytes_act'] / 2**30:.2f} "
      f"(no recompute {jb['bytes_act_no_recompute'] / 2**30:.2f}), total {jb['bytes_per_rank'] / 2**30:.2f} GiB")


# ---- activations against real runs -------------------------------------------------------------------------

def identical_shard(out_dir, kind, n, n_units=40):
    """n identical samples (one wav of exactly 3 s), so every micro-batch has one shape."""
    rng = np.random.default_rng(3)
    fdir = os.path.join(out_dir, "files")
    os.makedirs(fdir, exist_ok=True)
    wav, spk = os.path.join(fdir, "a.wav"), os.path.join(fdir, "spk.npy")
    R._write_wav(wav, R._speechlike(rng, 3.0))
    np.save(spk, rng.standard_normal((1, 1, R.SPK)).astype(np.float32))
    if kind == "instruct":
        item = lambda **k: dict(dict(text="", audio="", speech_units="", spk_emb=""), **k)  # noqa: E731
        rec = {"messages": [{"role": "user", "content": [item(audio=wav)]},
                            {"role": "assistant", "content": [item(text=R._text(rng, 8, 8),
                                                                   speech_units=R._units(rng, n_units, n_units),
                                                                   spk_emb=spk)]}]}
    elif kind == "tts_pretrain":
        rec = {"text": R._text(rng, 8, 8), "units": R._units(rng, n_units, n_units)}
    else:
        rec = {"audio": wav, "continuation": R._text(rng, 8, 8), "transcript": R._text(rng, 4, 4)}
    man = os.path.join(out_dir, "manifest.jsonl")
    with open(man, "w") as f:
        for _ in range(n):
            f.write(json.dumps(rec) + "\n")
    sd = os.path.join(out_dir, "shards")
    subprocess.run([S2S, "prep", "--manifest", man, "--tokenizer", os.path.join(ROOT, "configs/tiny/tokenizer"),
                    "--tts-tokenizer", os.path.join(ROOT, "configs/tiny/tts-tokenizer"), "--out", sd, "--overwrite",
                    "--quiet"], check=True, capture_output=True, timeout=300)
    path = os.path.join(sd, f"{kind}-00000.h5")
    with h5py.File(path, "r") as h:
        o = h["text_offsets"][:2]
        ids, lab, typ = (h[k][o[0]:o[1]] for k in ("input_ids", "labels", "token_types"))
        units = int(np.diff(h["unit_offsets"][:2])[0]) if "unit_offsets" in h else 0
    frames = 300  # 48000 samples / hop 160
    l1 = (frames - 1) // 2 + 1
    rows = (l1 - 2) // 2 + 1
    for _ in range(2):
        rows = (rows - 1) // 2 + 1
    if kind == "tts_pretrain":  # stage 2a: --response is the text, --units the units
        return sd, {"tokens": 1, "response": int(len(ids)), "units": units, "targets": 0}
    shape = {"tokens": int((ids != -200).sum()) + rows, "response": int(((typ == 1) & (ids != -200)).sum()),
             "units": units, "targets": int((lab[1:] != -100).sum())}
    return sd, shape


def measured(model_json, stage, shards, batch, recompute):
    run = os.path.join(TMP, "runs", f"{os.path.basename(model_json)}-{stage}-{batch}-{recompute}")
    os.makedirs(os.path.dirname(run), exist_ok=True)
    shutil.rmtree(run, ignore_errors=True)
    r = write_recipe(run + ".yaml", {"stage": stage, "seed": 1, "model": {"config": model_json},
                                      "data": {"train": [shards], "prefetch": 1},
                                      "train": {"batch_size": batch, "max_steps": 1, "threads": 2,
                                                "recompute": recompute},
                                      "run": {"dir": run}, "checkpoint": {"every": 1000}})
    subprocess.run([S2S, "train", "--config", r, "--quiet"], check=True, capture_output=True, timeout=300)
    rows = [json.loads(x) for x in open(os.path.join(run, "metrics.jsonl")) if x.strip()]
    return r, rows[-1]["arena_peak_mb"] * 2**20


bench_cfg = json.loads(json.dumps(tiny))
bench_cfg["audio_encoder_config"].update(d_model=256, encoder_layers=4, encoder_attention_heads=4, encoder_ffn_dim=1024)
bench_cfg["llm_config"].update(vocab_size=7616, hidden_size=256, intermediate_size=768, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=64, tie_word_embeddings=False)
bench_cfg["tts_lm_config"].update(vocab_size=19072, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=1, head_dim=64, tie_word_embeddings=True)
bench_cfg["adapter_inner_dim"] = 512
bench_json = os.path.join(TMP, "bench.json")
json.dump(bench_cfg, open(bench_json, "w"))

shards = {k: identical_shard(os.path.join(TMP, k), k, 8) for k in ("instruct", "align")}
# Long unit runs: the TTS-LM's activations, not the encoder's front end, dominate the arena.
shards["long"] = identical_shard(os.path.join(TMP, "long"), "instruct", 8, 500)
shards["tts_pretrain"] = identical_shard(os.path.join(TMP, "tts_pretrain"), "tts_pretrain", 8, 500)
worst = 0.0
TINY = os.path.join(ROOT, "configs/tiny/model.json")
cases = [(TINY, "stage3", "instruct", 2, False), (TINY, "stage3", "instruct", 4, True), (TINY, "stage1", "align", 4, False),
         (bench_json, "stage3", "instruct", 4, True), (bench_json, "stage3", "long", 2, False),
         (bench_json, "stage3", "long", 2, True), (bench_json, "stage2a", "tts_pretrain", 4, False),
         (bench_json, "stage2a", "tts_pretrain", 2, True)]
for model_json, stage, kind, batch, rc in cases:
    sd, sh = shards[kind]
    recipe, got = measured(model_json, stage, sd, batch, rc)
    j = plan(recipe, "--precision", "f32", "--threads", 2, "--batch", batch, "--tokens", sh["tokens"], "--audio-s", 3,
             "--response", sh["response"], "--units", sh["units"], "--targets", sh["targets"])
    err = j["bytes_act"] / got - 1
    worst = max(worst, abs(err))
    check(abs(err) <= 0.10, f"{os.path.basename(model_json)} {stage} batch {batch} recompute {rc}: planned "
          f"{j['bytes_act'] / 2**20:.2f} MiB vs measured {got / 2**20:.2f} MiB ({100 * err:+.1f}%)")
print(f"worst activation error {100 * worst:.1f}%")

shutil.rmtree(TMP, ignore_errors=True)
if failures:
    print(f"{len(failures)} FAILED")
    sys.exit(1)
print("all passed")
