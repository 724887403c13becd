"""`s2s train` started from Hugging Face directories, as OpenS2S's train.py without --omnispeech_model: a
Qwen2-Audio encoder, a Qwen3 LLM and a Qwen3 *text* model as the TTS-LM, all written by transformers'
save_pretrained. Stage 2a must extend the TTS-LM's vocabulary to the TTS tokenizer's speech tokens and the LLM's to
len(tokenizer), the new rows as resize_token_embeddings(mean_resizing=True) makes them (the mean of the old rows
plus N(0, 1e-9 Sigma) noise), keep the old rows, start the adapter and bridges fresh, and train the TTS-LM alone;
its first loss equals the PyTorch rendering's on the extended model.

Run by ctest as: python3 tests/train/test_train_hf.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_train_ref as R  # noqa: E402
from transformers import Qwen2AudioEncoder, Qwen2AudioEncoderConfig, Qwen3Config, Qwen3ForCausalLM  # noqa: E402

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
TMP = tempfile.mkdtemp(prefix="s2s_train_hf_")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


tiny = json.load(open("configs/tiny/model.json"))
torch.manual_seed(11)
enc_cfg = {k: v for k, v in tiny["audio_encoder_config"].items() if k != "model_type"}
Qwen2AudioEncoder(Qwen2AudioEncoderConfig(**enc_cfg)).save_pretrained(os.path.join(TMP, "audio"),
                                                                       safe_serialization=True)


def qwen3(sub, d, vocab):
    keep = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "head_dim", "max_position_embeddings", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "hidden_act",
            "attention_bias", "bos_token_id", "eos_token_id", "pad_token_id", "initializer_range")
    cfg = Qwen3Config(vocab_size=vocab, **{k: d[k] for k in keep if k in d})
    Qwen3ForCausalLM(cfg).save_pretrained(os.path.join(TMP, sub), safe_serialization=True)
    return load_file(os.path.join(TMP, sub, "model.safetensors"))


LLM_ROWS, TTS_ROWS = 2680, 2685  # the files' rows: fewer than the tokenizers' 2689 and 19069
llm_hf = qwen3("llm", tiny["llm_config"], LLM_ROWS)
tts_hf = qwen3("tts", tiny["tts_lm_config"], TTS_ROWS)

shard = R.make_shards(os.path.join(TMP, "data"), "tts_pretrain", 6, 5, s2s=S2S)
run = os.path.join(TMP, "run")
recipe = {"stage": "stage2a", "seed": 3,
          "model": {"audio": os.path.join(TMP, "audio"), "llm": os.path.join(TMP, "llm"),
                    "tts": os.path.join(TMP, "tts"), "tokenizer": "configs/tiny/tokenizer",
                    "tts_tokenizer": "configs/tiny/tts-tokenizer"},
          "data": {"train": [os.path.dirname(shard)]},
          "train": {"batch_size": 6, "max_steps": 3},
          "optim": {"lr": 3e-3, "warmup_steps": 1},
          "run": {"dir": run}, "checkpoint": {"every": 1, "keep": 5}}
path = os.path.join(TMP, "r.yaml")
json.dump(recipe, open(path, "w"))
p = subprocess.run([S2S, "train", "--config", path, "--quiet"], capture_output=True, text=True, timeout=600)
check(p.returncode == 0, f"stage 2a from three Hugging Face directories exits 0 {p.stderr[-800:]}")
if p.returncode == 0:
    step = lambda k: load_file(os.path.join(run, "checkpoints", "step_%08d" % k, "model", "model.safetensors"))  # noqa
    m1, m3 = step(1), step(3)  # step 1 runs at lr 0 (warm-up): the initial weights
    cfg = json.load(open(os.path.join(run, "checkpoints", "step_00000001", "model", "config.json")))
    check(cfg["tts_lm_config"]["vocab_size"] == 19069 and cfg["llm_config"]["vocab_size"] == 2689,
          f"vocabularies follow the tokenizers: LLM {cfg['llm_config']['vocab_size']}, TTS-LM "
          f"{cfg['tts_lm_config']['vocab_size']}")
    for name, hf, rows, key in (("TTS-LM", tts_hf, TTS_ROWS, "tts_lm_model.model.embed_tokens.weight"),
                                ("LLM", llm_hf, LLM_ROWS, "llm_model.model.embed_tokens.weight"),
                                ("LLM head", llm_hf, LLM_ROWS, "llm_model.lm_head.weight")):
        old = hf[key.split(".", 1)[1]]
        got = m1[key]
        check(np.array_equal(got[:rows], old), f"{name}: the file's {rows} rows are kept exactly")
        mu, sd = old.mean(0), old.std(0)
        new = got[rows:]
        dev = np.abs(new - mu).max() / sd.max()
        spread = float((new.std(0) / sd).mean()) if len(new) > 1 else 0.0
        # N(mu, 1e-9 Sigma): each new row is the mean give or take sqrt(1e-9) ~ 3e-5 of the old spread
        check(dev < 3e-4 and (len(new) < 2 or 1e-5 < spread < 1e-4),
              f"{name}: {len(new)} new rows = the old rows' mean + N(0, 1e-9 Sigma) noise (max |row - mu| = "
              f"{dev:.2e} of the old spread, noise spread {spread:.2e})")
    fresh = [k for k in m1 if k.startswith(("audio_adapter.", "llm2tts.", "llm_ln.", "tts_lm_model.spk"))]
    check(len(fresh) >= 6, f"adapter, bridges and the speaker projection start fresh ({len(fresh)} tensors)")
    enc = load_file(os.path.join(TMP, "audio", "model.safetensors"))
    check(all(np.array_equal(m1["audio_encoder_model." + k], v) for k, v in enc.items()),
          "the encoder is the Hugging Face file's")
    changed = sorted(k for k in m3 if not np.array_equal(m3[k], m1[k]))
    check(changed and all(k.startswith("tts_lm_model.") for k in changed),
          f"stage 2a trains the TTS-LM only ({len(changed)} tensors changed)")
    # The first loss against the PyTorch rendering of stage 2a on the extended model.
    model = R.load_model(os.path.join(run, "checkpoints", "step_00000001", "model"))
    samples, kind = R.read_shard(shard)
    with torch.no_grad():
        o = R.forward(model, R.collate(samples, kind, model.cfg), kind)
    ref = float(o["s_tts"]) / o["n_tts"]
    got = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))][0]["loss"]
    check(abs(got - ref) < 1e-5 * ref, f"first loss {got:.8g} equals the PyTorch rendering's {ref:.8g}")

shutil.rmtree(TMP, ignore_errors=True)
print("test_train_hf:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
