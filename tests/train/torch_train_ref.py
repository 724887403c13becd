#!/usr/bin/env python3
"""torch_train_ref.py — the PyTorch reference for `s2s train`: K optimizer steps of OpenS2S's Hugging Face Trainer
(transformers 4.51 semantics, docs/optimizer-semantics.md) on the OmniSpeech rendering of
tools/fixtures/gen_omnispeech.py, fed from an s2s shard (docs/shard-format.md).

    python3 tests/train/torch_train_ref.py --model DIR --shard FILE.h5 --steps K --out OUT.safetensors
        [--micro "0,1;2,3|4,5;6,7"] [--lr 1e-4] [--warmup-steps 0] [--schedule linear|cosine|constant|
        constant_with_warmup] [--total-steps N (default K)] [--weight-decay 0.05] [--betas 0.9,0.999]
        [--eps 1e-8] [--clip 1.0] [--no-decay hf|norms] [--loss-norm tokens|micro_mean]
        [--frozen PREFIX,...] [--w-llm 1] [--w-tts 1] [--none-grads skip|zero] [--dtype f64|f32]
        [--dump-grads] [--threads N]

--model   a checkpoint written by `s2s init` (config.json = OmniSpeechConfig, model.safetensors or an index)
--shard   an s2s shard; kind instruct (stages 2b / 3), align (stage 1, objective ce) or tts_pretrain (stage 2a)
--micro   per optimizer step ('|'), its micro-batches (';') as sample indices (','); one step given = every step.
          Default: every step is one micro-batch holding every sample of the shard in shard order.
--frozen  registry-name prefixes that do not train. Default per kind: instruct "audio_encoder_model." (stage 3);
          align "audio_encoder_model.,llm_model.,tts_lm_model.model.,tts_lm_model.lm_head." (stage 1:
          adapter + bridges, as OpenS2S's --unfreeze_adapter); tts_pretrain
          everything but "tts_lm_model.model." / "tts_lm_model.lm_head." (stage 2a). "" = nothing frozen.
          The encoder's embed_positions never trains.
--none-grads  skip (default, torch / HF): a trainable parameter that no micro-batch of a step reached has grad
          None and torch.optim.AdamW leaves it alone that step (no decay, no moment update, its own step count
          not advanced). zero: it gets a zero gradient and is stepped like every other (one shared step count).

Output: OUT.safetensors holds every parameter after K steps (f32, OpenS2S names; with --dump-grads also
grad.<name>, the step-0 gradient before clipping, of every trainable parameter, zeros where none reached it) and
OUT.json (OUT with .safetensors replaced by .json) the run: per step loss, loss_llm, loss_tts, n_llm_targets,
n_tts_targets, lr (the lr that step used), grad_norm (before clipping), plus the parameter lists (trainable,
no-decay) and the settings.

Losses. Per micro-batch the LLM term is transformers' causal-LM cross-entropy of the spliced batch (labels shifted
by one inside each sample), the TTS term that of the interleaved TTS batch; the script keeps sums and counts:
  micro_mean  (HF 4.51, the model takes no num_items_in_batch): micro-batch j of G contributes
              (w_llm * S_llm_j / n_llm_j + w_tts * S_tts_j / n_tts_j) / G
  tokens      (s2s default): w_llm * S_llm_j / N_llm + w_tts * S_tts_j / N_tts, N = the step's counts
A term with no target contributes 0 (transformers would give NaN). The logged loss is the sum of the
contributions (what HF logs as tr_loss per step); loss_llm / loss_tts the same normalisation per term.
The cross-entropy is computed here from the logits in the run's dtype (transformers upcasts logits to f32).

Precision (--dtype f64, default): parameters, activations, gradients and the AdamW state are float64; inside the
transformers modules RMSNorm and RoPE compute in float32 (transformers casts there), so activations carry f32
rounding at those points; the optimizer arithmetic is exact float64. --dtype f32 is the HF Trainer's own setting.

make_shards(out_dir, kind, n_samples, seed, s2s="build/s2s") -> shard path writes a JSONL manifest (and its wav /
npy files) under out_dir and runs `s2s prep` on it with configs/tiny/tokenizer and configs/tiny/tts-tokenizer;
init_model(out_dir, seed=0, s2s="build/s2s") -> model dir runs `s2s init --config configs/tiny/model.json`.
Importable: load_model, read_shard, collate, forward_inputs, forward, train, make_shards, init_model.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import wave

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
import gen_omnispeech as ref  # noqa: E402  (the OpenS2S OmniSpeech rendering)

import transformers  # noqa: E402
from transformers import Qwen3Config  # noqa: E402

IGNORE, AUDIO = -100, -200
SPK = 512
SR, CHUNK_SAMPLES = 16000, 480000
TF_MAJOR = int(transformers.__version__.split(".")[0])
DEFAULT_FROZEN = {
    "instruct": "audio_encoder_model.",
    "align": "audio_encoder_model.,llm_model.,tts_lm_model.model.,tts_lm_model.lm_head.",
    "tts_pretrain": "audio_encoder_model.,audio_adapter.,llm_model.,llm2tts.,llm_ln.,tts_lm_model.spk2tts.,"
                    "tts_lm_model.spk_ln.",
}


# ---- the model -----------------------------------------------------------------------------------------------

def _qwen3_config(d):
    """Qwen3Config from the rendering's dict, for transformers 4.x (rope_theta, torch_dtype) and 5.x
    (rope_parameters, dtype)."""
    kw = dict(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"], intermediate_size=d["intermediate_size"],
              num_hidden_layers=d["num_hidden_layers"], num_attention_heads=d["num_attention_heads"],
              num_key_value_heads=d["num_key_value_heads"], head_dim=d["head_dim"],
              max_position_embeddings=d.get("max_position_embeddings", 4096), rms_norm_eps=d.get("rms_norm_eps", 1e-6),
              tie_word_embeddings=d["tied"], pad_token_id=d["pad_token_id"], bos_token_id=None,
              eos_token_id=d["eos_token_id"], attn_implementation="eager")
    if TF_MAJOR >= 5:
        kw.update(rope_parameters={"rope_type": "default", "rope_theta": d["rope_theta"]}, dtype="float32")
    else:
        kw.update(rope_theta=d["rope_theta"], torch_dtype="float32")
    c = Qwen3Config(**kw)
    c._attn_implementation = "eager"
    return c


def configure(cfg):
    """Point the rendering's module-level sizes at an OmniSpeech config.json (as tests/model/test_omnispeech.py
    does for `s2s init` output)."""
    ref.qwen3_config = _qwen3_config
    ref.ENC = {k: cfg["audio_encoder_config"][k] for k in ("num_mel_bins", "d_model", "encoder_layers",
                                                            "encoder_attention_heads", "encoder_ffn_dim",
                                                            "max_source_positions")}
    ref.CHUNK = 2 * ref.ENC["max_source_positions"]
    for name, src in (("LLM", cfg["llm_config"]), ("TTS", cfg["tts_lm_config"])):
        d = {k: src[k] for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                 "num_attention_heads", "num_key_value_heads", "head_dim", "pad_token_id")}
        d["rope_theta"] = src.get("rope_theta", (src.get("rope_parameters") or {}).get("rope_theta", 1e6))
        d["rms_norm_eps"] = src.get("rms_norm_eps", 1e-6)
        d["max_position_embeddings"] = src.get("max_position_embeddings", 4096)
        d["tied"] = bool(src.get("tie_word_embeddings", False))
        eos = src["eos_token_id"]
        d["eos_token_id"] = eos[0] if isinstance(eos, list) else eos
        setattr(ref, name, d)
    ref.KERNELS, ref.INNER = cfg["conv_kernel_sizes"], cfg["adapter_inner_dim"]
    ref.TTS_EOS = ref.TTS["eos_token_id"]


def _load_tensors(model_dir):
    from safetensors.torch import load_file
    single = os.path.join(model_dir, "model.safetensors")
    if os.path.exists(single):
        return load_file(single)
    with open(os.path.join(model_dir, "model.safetensors.index.json")) as f:
        files = sorted(set(json.load(f)["weight_map"].values()))
    sd = {}
    for fn in files:
        sd.update(load_file(os.path.join(model_dir, fn)))
    return sd


def load_model(model_dir, dtype=torch.float64):
    """The OmniSpeech rendering with the checkpoint's weights (strict: OpenS2S names and shapes), in dtype,
    train mode (every dropout of these configs is 0)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    configure(cfg)
    model = ref.OmniSpeech(cfg["interleave_strategy"])
    sd = {k: v.float() for k, v in _load_tensors(model_dir).items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (ref.TTS["tied"] and k == "tts_lm_model.lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"{model_dir}: names differ from OpenS2S: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model = model.to(dtype).train()
    model.cfg = cfg
    return model


# ---- shards and batches --------------------------------------------------------------------------------------

def read_shard(path):
    """Every sample of an s2s shard: dict(input_ids, labels, token_types, audios [int16 arrays], units, spk
    (float32 [512] or None), flags, emotion (-1: none)); and the shard's kind."""
    import h5py
    out = []
    with h5py.File(path, "r") as f:
        kind = f.attrs["kind"]
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        n = int(f.attrs["num_samples"])
        to = f["text_offsets"][:]
        ids, lab, ty, flags = f["input_ids"][:], f["labels"][:], f["token_types"][:], f["flags"][:]
        has_a, has_u, has_s = "audio" in f, "units" in f, "spk_emb" in f
        sao = f["sample_audio_offsets"][:] if has_a else np.zeros(n + 1, np.int64)
        ao = f["audio_offsets"][:] if has_a else None
        audio = f["audio"][:] if has_a else None
        uo = f["unit_offsets"][:] if has_u else np.zeros(n + 1, np.int64)
        units = f["units"][:] if has_u else np.zeros(0, np.int32)
        spk = f["spk_emb"][:] if has_s else None
        emo = f["emotion"][:] if "emotion" in f else np.full(n, -1)
        for i in range(n):
            out.append(dict(input_ids=ids[to[i]:to[i + 1]].astype(np.int64),
                            labels=lab[to[i]:to[i + 1]].astype(np.int64),
                            token_types=ty[to[i]:to[i + 1]].astype(np.int64),
                            audios=[audio[ao[j]:ao[j + 1]] for j in range(sao[i], sao[i + 1])],
                            units=units[uo[i]:uo[i + 1]].astype(np.int64),
                            spk=spk[i].astype(np.float32) if (has_s and flags[i] & 2) else None,
                            flags=int(flags[i]), emotion=int(emo[i])))
    return out, kind


_FE = None


def log_mel(audios):
    """transformers' WhisperFeatureExtractor (128 bins) of int16 PCM (/32768), every audio padded to the whole
    30 s chunks of the longest one: mel [A, 128, 3000 k] float32 and the valid frames (its attention mask)."""
    global _FE
    from transformers import WhisperFeatureExtractor
    if _FE is None:
        _FE = WhisperFeatureExtractor(feature_size=128, sampling_rate=SR, hop_length=160, chunk_length=30,
                                      n_fft=400)
    k = max(-(-len(a) // CHUNK_SAMPLES) for a in audios)
    r = _FE([a.astype(np.float32) / 32768.0 for a in audios], sampling_rate=SR, padding="max_length",
            max_length=k * CHUNK_SAMPLES, truncation=True, return_attention_mask=True, return_tensors="np")
    return r["input_features"].astype(np.float32), r["attention_mask"].sum(1).astype(np.int64)


def _pad(rows, value):
    L = max(len(r) for r in rows)
    out = np.full((len(rows), L), value, np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out


def _runs(units, eos):
    runs, cur = [], []
    for u in units.tolist():
        cur.append(u)
        if u == eos:
            runs.append(cur)
            cur = []
    if cur:
        raise ValueError("a unit row does not end with the TTS EOS")
    return runs


def _n_spans(types):
    t = np.concatenate([[0], (types == 1).astype(np.int64), [0]])
    return int((np.diff(t) == 1).sum())


def collate(samples, kind, cfg):
    """OpenS2S's collated batch (InstructionDataCollator; for tts_pretrain the stage-2a batch) as numpy arrays.
    instruct / align: input_ids (llm pad), attention_mask, labels (-100), token_types (-100 padding), mel / frames
    (or None), units one row per speech span (tts pad) + units_mask, spk [S, 1, 512] (zeros where absent).
    tts_pretrain: ids = text ids + units, labels -100 on the text and the units on the units, right-padded."""
    llm_pad, tts_pad = cfg["llm_config"]["pad_token_id"], cfg["tts_lm_config"]["pad_token_id"]
    eos = cfg["tts_lm_config"]["eos_token_id"]
    eos = eos[0] if isinstance(eos, list) else eos
    if kind == "tts_pretrain":
        rows = [np.concatenate([s["input_ids"], s["units"]]) for s in samples]
        labs = [np.concatenate([np.full(len(s["input_ids"]), IGNORE), s["units"]]) for s in samples]
        return dict(ids=_pad(rows, tts_pad), mask=_pad([np.ones(len(r)) for r in rows], 0),
                    labels=_pad(labs, IGNORE))
    b = dict(ids=_pad([s["input_ids"] for s in samples], llm_pad),
             mask=_pad([np.ones(len(s["input_ids"])) for s in samples], 0),
             labels=_pad([s["labels"] for s in samples], IGNORE),
             types=_pad([s["token_types"] for s in samples], IGNORE))
    audios = [a for s in samples for a in s["audios"]]
    b["mel"], b["frames"] = log_mel(audios) if audios else (None, None)
    rows, spk = [], []
    for s in samples:
        if len(s["units"]) == 0:
            continue
        runs = _runs(s["units"], eos)
        if len(runs) != _n_spans(s["token_types"]):
            raise ValueError(f"a sample has {len(runs)} unit runs for {_n_spans(s['token_types'])} speech spans")
        for r in runs:
            rows.append(r)
            spk.append(s["spk"] if s["spk"] is not None else np.zeros(SPK, np.float32))
    if rows:
        b["units"], b["units_mask"] = _pad(rows, tts_pad), _pad([np.ones(len(r)) for r in rows], 0)
        b["spk"] = np.stack(spk)[:, None, :]
    else:
        b["units"] = b["units_mask"] = b["spk"] = None
    return b


def forward_inputs(samples, cfg):
    """The same batch as `s2s forward --inputs` tensors (docs/forward-batch.md): units one row per sample with
    speech output (its EOS-terminated runs), spk_emb per row (zeros where absent). instruct / align only."""
    llm_pad = cfg["llm_config"]["pad_token_id"]
    t = {"input_ids": _pad([s["input_ids"] for s in samples], llm_pad),
         "attention_mask": _pad([np.ones(len(s["input_ids"])) for s in samples], 0),
         "labels": _pad([s["labels"] for s in samples], IGNORE),
         "token_types": _pad([s["token_types"] for s in samples], 0)}
    t = {k: v.astype(np.int32) for k, v in t.items()}
    audios = [a for s in samples for a in s["audios"]]
    if audios:
        t["mel"], fr = log_mel(audios)
        t["mel_frames"] = fr.astype(np.int32)
    us = [s for s in samples if len(s["units"])]
    if us:
        t["units"] = _pad([s["units"] for s in us], cfg["tts_lm_config"]["pad_token_id"]).astype(np.int32)
        t["units_len"] = np.array([len(s["units"]) for s in us], np.int32)
        t["spk_emb"] = np.stack([s["spk"] if s["spk"] is not None else np.zeros(SPK, np.float32) for s in us])
    return t


# ---- the forward ---------------------------------------------------------------------------------------------

def _ce_sum(logits, labels):
    """transformers' causal-LM loss as (sum, count): shift by one inside each row, ignore -100."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1])
    lb = labels[:, 1:].reshape(-1).to(lg.device)
    keep = lb != IGNORE
    n = int(keep.sum())
    if n == 0:
        return lg.sum() * 0, 0
    return F.cross_entropy(lg[keep], lb[keep], reduction="sum"), n


def forward(model, b, kind):
    """One micro-batch: dict(s_llm, n_llm, s_tts, n_tts, zero) — the summed cross-entropies and their target
    counts, and `zero`, a 0-valued term carrying OpenS2S's dummy paths (a batch without units runs a 2-token TTS
    pass weighted 0, so every TTS-LM parameter gets a zero gradient rather than none)."""
    dt = next(model.parameters()).dtype
    T = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    if kind == "tts_pretrain":
        tts = model.tts_lm_model
        out = tts(input_ids=T(b["ids"]), attention_mask=T(b["mask"]))
        s, n = _ce_sum(out.logits, T(b["labels"]))
        return dict(s_llm=None, n_llm=0, s_tts=s, n_tts=n, zero=None)
    mel = None if b["mel"] is None else T(b["mel"]).to(dt)
    frames = None if b["frames"] is None else b["frames"].tolist()
    emb, am, lab, ty = model.prepare_llm(T(b["ids"]), T(b["mask"]), T(b["labels"]), T(b["types"]), mel, frames)
    out = model.llm_model(inputs_embeds=emb, attention_mask=am, output_hidden_states=True)
    s_llm, n_llm = _ce_sum(out.logits, lab)
    if b["units"] is None:
        dummy = torch.ones((emb.shape[0], 2), dtype=torch.long)
        d = model.tts_lm_model(inputs_embeds=model.tts_lm_model.get_input_embeddings()(dummy),
                               attention_mask=torch.ones_like(dummy))
        ds, dn = _ce_sum(d.logits, dummy)
        return dict(s_llm=s_llm, n_llm=n_llm, s_tts=None, n_tts=0, zero=0 * (ds / dn))
    x, tam, tlab = model.prepare_tts(out.hidden_states[-1], T(b["units"]), T(b["units_mask"]),
                                     T(b["spk"]).to(dt), ty)
    tout = model.tts_lm_model(inputs_embeds=x, attention_mask=tam)
    s_tts, n_tts = _ce_sum(tout.logits, tlab)
    return dict(s_llm=s_llm, n_llm=n_llm, s_tts=s_tts, n_tts=n_tts, zero=None)


# ---- parameters, decay groups, schedule -----------------------------------------------------------------------

def hf_no_decay_names(model):
    """transformers 4.51 Trainer.get_decay_parameter_names, complemented: a parameter does not decay when it sits
    inside an nn.LayerNorm (at any depth) or its lower-cased name contains "bias", "layernorm" or "rmsnorm"."""
    inside_ln = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm):
            for pname, _ in mod.named_parameters(prefix=mname):
                inside_ln.add(pname)
    return [n for n, _ in model.named_parameters()
            if n in inside_ln or any(w in n.lower() for w in ("bias", "layernorm", "rmsnorm"))]


def norms_no_decay_names(model):
    """--no-decay norms: no decay on any bias or on any weight of a norm module (LayerNorm, Qwen3 RMSNorm:
    the layer norms, model.norm, q_norm / k_norm)."""
    norm = set()
    for mname, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm) or type(mod).__name__.endswith("RMSNorm"):
            for pname, _ in mod.named_parameters(prefix=mname):
                norm.add(pname)
    return [n for n, _ in model.named_parameters() if n in norm or n.endswith(".bias")]


def set_trainable(model, frozen):
    prefixes = [p for p in frozen.split(",") if p]
    names = []
    for n, p in model.named_parameters():
        p.requires_grad_(not (any(n.startswith(f) for f in prefixes) or "embed_positions" in n))
        if p.requires_grad:
            names.append(n)
    return names


def lr_lambda(schedule, warmup, total):
    """transformers.optimization's lambdas (4.51); step k (k = 0 first) uses lr * lambda(k)."""
    def linear(k):
        if k < warmup:
            return float(k) / float(max(1, warmup))
        return max(0.0, float(total - k) / float(max(1, total - warmup)))

    def cosine(k):
        if k < warmup:
            return float(k) / float(max(1, warmup))
        progress = float(k - warmup) / float(max(1, total - warmup))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * progress)))

    def constant_with_warmup(k):
        return float(k) / float(max(1.0, warmup)) if k < warmup else 1.0

    return {"linear": linear, "cosine": cosine, "constant": lambda k: 1.0,
            "constant_with_warmup": constant_with_warmup}[schedule]


# ---- the training loop ---------------------------------------------------------------------------------------

def parse_micro(spec, n_samples, steps):
    if not spec:
        return [[list(range(n_samples))]] * steps
    plan = [[[int(i) for i in mb.split(",") if i.strip() != ""] for mb in st.split(";")] for st in spec.split("|")]
    if len(plan) == 1:
        plan = plan * steps
    if len(plan) != steps:
        raise ValueError(f"--micro gives {len(plan)} steps, --steps is {steps}")
    for st in plan:
        for mb in st:
            if not mb or any(i < 0 or i >= n_samples for i in mb):
                raise ValueError(f"--micro: micro-batch {mb} is empty or out of range (shard has {n_samples})")
    return plan


def combine(parts, norm, w_llm, w_tts):
    """Each micro-batch's loss contribution (with graph) under --loss-norm, and the step's logged values."""
    G = len(parts)
    N_llm, N_tts = sum(p["n_llm"] for p in parts), sum(p["n_tts"] for p in parts)
    contrib, log_llm, log_tts = [], 0.0, 0.0
    for p in parts:
        if norm == "micro_mean":
            d_llm, d_tts = G * p["n_llm"], G * p["n_tts"]
        else:
            d_llm, d_tts = N_llm, N_tts
        c = 0
        if p["s_llm"] is not None and p["n_llm"] > 0:
            t = p["s_llm"] / d_llm
            log_llm += float(t.detach())
            if w_llm != 0:
                c = c + w_llm * t
        if p["s_tts"] is not None and p["n_tts"] > 0:
            t = p["s_tts"] / d_tts
            log_tts += float(t.detach())
            if w_tts != 0:
                c = c + w_tts * t
        if p["zero"] is not None:
            c = c + p["zero"]
        contrib.append(c)
    return contrib, dict(loss=w_llm * log_llm + w_tts * log_tts, loss_llm=log_llm, loss_tts=log_tts,
                         n_llm_targets=N_llm, n_tts_targets=N_tts)


def train(model, samples, kind, plan, lr=1e-4, warmup_steps=0, schedule="linear", total_steps=None,
          weight_decay=0.05, betas=(0.9, 0.999), eps=1e-8, clip=1.0, no_decay="hf", loss_norm="tokens",
          frozen=None, w_llm=1.0, w_tts=1.0, none_grads="skip", dump_grads=False, log=print):
    """Run len(plan) optimizer steps in place; returns dict(steps=[...], trainable, no_decay, grads0)."""
    cfg = model.cfg
    trainable = set_trainable(model, DEFAULT_FROZEN[kind] if frozen is None else frozen)
    nd = set(hf_no_decay_names(model) if no_decay == "hf" else norms_no_decay_names(model))
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in named if n not in nd], "weight_decay": weight_decay},
              {"params": [p for n, p in named if n in nd], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), eps=eps, foreach=False)
    total = len(plan) if total_steps is None else total_steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(schedule, warmup_steps, total))
    params = [p for _, p in named]
    steps, grads0 = [], None
    for k, mbs in enumerate(plan):
        opt.zero_grad(set_to_none=True)
        parts = [forward(model, collate([samples[i] for i in mb], kind, cfg), kind) for mb in mbs]
        contrib, rec = combine(parts, loss_norm, w_llm, w_tts)
        for c in contrib:
            if torch.is_tensor(c) and c.requires_grad:
                c.backward()
        if none_grads == "zero":
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        if k == 0 and dump_grads:
            grads0 = {n: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().clone() for n, p in named}
        rec["lr"] = opt.param_groups[0]["lr"]
        with_grad = [p for p in params if p.grad is not None]
        if clip > 0:
            gn = torch.nn.utils.clip_grad_norm_(with_grad, clip)
        else:
            gn = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in with_grad])) \
                if with_grad else torch.zeros(())
        rec["grad_norm"] = float(gn)
        rec["n_params_stepped"] = len(with_grad)
        opt.step()
        sched.step()
        steps.append(rec)
        log(f"step {k}: loss {rec['loss']:.8f} (llm {rec['loss_llm']:.8f}, tts {rec['loss_tts']:.8f}) "
            f"lr {rec['lr']:.6g} grad_norm {rec['grad_norm']:.6g}")
    return dict(steps=steps, trainable=trainable, no_decay=sorted(n for n in nd if n in set(trainable)),
                grads0=grads0)


# ---- tiny shards for tests -------------------------------------------------------------------------------------

WORDS = ("hello world the rain stopped and then we walked home quickly it was a bright morning "
         "please tell me a story about the sea I feel happy today thank you very much").split()


def _write_wav(path, pcm):
    with wave.open(path, "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SR)
        f.writeframes(np.asarray(pcm, np.int16).tobytes())


def _speechlike(rng, seconds):
    """A deterministic voiced-sounding signal: a few harmonics of a gliding pitch under a syllable envelope,
    plus a little noise, peak about 0.3."""
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    x = sum(rng.uniform(0.2, 1.0) / h * np.sin(h * phase) for h in range(1, 6))
    env = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)))
    x = x * env + 0.02 * rng.standard_normal(n)
    return np.round(0.3 * x / np.abs(x).max() * 32767).astype(np.int16)


def _text(rng, lo, hi):
    return " ".join(rng.choice(WORDS, int(rng.integers(lo, hi + 1))))


def _units(rng, lo, hi):
    return [int(u) for u in rng.integers(0, 16384, int(rng.integers(lo, hi + 1)))]


def make_manifest(out_dir, kind, n_samples, seed):
    """Write out_dir/manifest.jsonl (+ wav / npy files under out_dir/files) of n_samples records of kind:
    instruct cycles through speech->speech (with a speaker embedding), text->speech (none), speech->speech with a
    > 30 s audio (2 chunks) and two turns / two speech spans, text->text; tts_pretrain gives text + unit indices;
    align gives audio + continuation + transcript (+ an emotion class 0..2 on three of four). Deterministic in seed."""
    rng = np.random.default_rng(seed)
    fdir = os.path.join(out_dir, "files")
    os.makedirs(fdir, exist_ok=True)
    lines = []

    def wav(i, j, seconds):
        p = os.path.join(fdir, f"a{i}_{j}.wav")
        _write_wav(p, _speechlike(rng, seconds))
        return p

    def spk(i):
        p = os.path.join(fdir, f"spk{i}.npy")
        np.save(p, rng.standard_normal((1, 1, SPK)).astype(np.float32))
        return p

    def item(text="", audio="", units="", spk_emb=""):
        return {"text": text, "audio": audio, "speech_units": units, "spk_emb": spk_emb}

    for i in range(n_samples):
        if kind == "tts_pretrain":
            lines.append({"text": _text(rng, 2, 8), "units": _units(rng, 4, 24)})
        elif kind == "align":
            rec = {"audio": wav(i, 0, rng.uniform(0.6, 3.0)), "continuation": _text(rng, 3, 8),
                   "transcript": _text(rng, 2, 6)}
            if i % 4 != 3:  # an emotion class on three samples of four (stage 1's emotion head)
                rec["emotion"] = i % 3
            lines.append(rec)
        elif kind == "instruct":
            form = i % 4
            if form == 0:  # speech -> speech, speaker embedding
                msgs = [{"role": "user", "content": [item(audio=wav(i, 0, rng.uniform(0.6, 3.0)))]},
                        {"role": "assistant", "content": [item(text=_text(rng, 2, 6), units=_units(rng, 3, 20),
                                                               spk_emb=spk(i))]}]
            elif form == 1:  # text -> speech, no speaker embedding
                msgs = [{"role": "user", "content": [item(text=_text(rng, 3, 8))]},
                        {"role": "assistant", "content": [item(text=_text(rng, 2, 6), units=_units(rng, 3, 20))]}]
            elif form == 2:  # two turns: a 2-chunk audio, two speech spans, one speaker embedding
                s = spk(i)
                msgs = [{"role": "user", "content": [item(text=_text(rng, 1, 3)), item(audio=wav(i, 0, 31.0))]},
                        {"role": "assistant", "content": [item(text=_text(rng, 2, 5), units=_units(rng, 3, 12),
                                                               spk_emb=s)]},
                        {"role": "user", "content": [item(audio=wav(i, 1, rng.uniform(0.6, 2.0)))]},
                        {"role": "assistant", "content": [item(text=_text(rng, 1, 4), units=_units(rng, 8, 16),
                                                               spk_emb=s)]}]
            else:  # text -> text
                msgs = [{"role": "user", "content": [item(text=_text(rng, 3, 8))]},
                        {"role": "assistant", "content": [item(text=_text(rng, 3, 8))]}]
            lines.append({"messages": msgs})
        else:
            raise ValueError(f"unknown kind {kind}")
    path = os.path.join(out_dir, "manifest.jsonl")
    with open(path, "w") as f:
        for r in lines:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def make_shards(out_dir, kind, n_samples, seed, s2s=None):
    """A tiny shard of n_samples `kind` records (instruct, tts_pretrain or align), made by `s2s prep` from a
    generated manifest with the tiny tokenizers; returns the shard's path (out_dir/shards/<kind>-00000.h5).
    s2s: the binary (default $S2S_BIN or build/s2s under the repository root)."""
    s2s = s2s or os.environ.get("S2S_BIN", os.path.join(ROOT, "build", "s2s"))
    os.makedirs(out_dir, exist_ok=True)
    man = make_manifest(out_dir, kind, n_samples, seed)
    sd = os.path.join(out_dir, "shards")
    r = subprocess.run([s2s, "prep", "--manifest", man, "--tokenizer", os.path.join(ROOT, "configs/tiny/tokenizer"),
                        "--tts-tokenizer", os.path.join(ROOT, "configs/tiny/tts-tokenizer"), "--out", sd,
                        "--overwrite", "--quiet"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"s2s prep failed: {r.stdout}{r.stderr}")
    path = os.path.join(sd, f"{kind}-00000.h5")
    if not os.path.exists(path):
        raise RuntimeError(f"s2s prep wrote no {path}: {r.stdout}{r.stderr}")
    return path


def init_model(out_dir, seed=0, s2s=None):
    """`s2s init --config configs/tiny/model.json --out out_dir --seed seed`; returns out_dir."""
    s2s = s2s or os.environ.get("S2S_BIN", os.path.join(ROOT, "build", "s2s"))
    r = subprocess.run([s2s, "init", "--config", os.path.join(ROOT, "configs/tiny/model.json"), "--out", out_dir,
                        "--seed", str(seed)], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"s2s init failed: {r.stderr}")
    return out_dir


# ---- command line --------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--shard", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--micro", default="")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--schedule", default="linear", choices=["linear", "cosine", "constant", "constant_with_warmup"])
    ap.add_argument("--total-steps", type=int, default=None)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--betas", default="0.9,0.999")
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--no-decay", default="hf", choices=["hf", "norms"])
    ap.add_argument("--loss-norm", default="tokens", choices=["tokens", "micro_mean"])
    ap.add_argument("--frozen", default=None)
    ap.add_argument("--w-llm", type=float, default=1.0)
    ap.add_argument("--w-tts", type=float, default=1.0)
    ap.add_argument("--none-grads", default="skip", choices=["skip", "zero"])
    ap.add_argument("--dtype", default="f64", choices=["f64", "f32"])
    ap.add_argument("--dump-grads", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    dtype = torch.float64 if a.dtype == "f64" else torch.float32
    model = load_model(a.model, dtype)
    samples, kind = read_shard(a.shard)
    plan = parse_micro(a.micro, len(samples), a.steps)
    res = train(model, samples, kind, plan, lr=a.lr, warmup_steps=a.warmup_steps, schedule=a.schedule,
                total_steps=a.total_steps, weight_decay=a.weight_decay,
                betas=[float(v) for v in a.betas.split(",")], eps=a.eps, clip=a.clip, no_decay=a.no_decay,
                loss_norm=a.loss_norm, frozen=a.frozen, w_llm=a.w_llm, w_tts=a.w_tts, none_grads=a.none_grads,
                dump_grads=a.dump_grads)
    from safetensors.torch import save_file
    out = {n: p.detach().float().contiguous() for n, p in model.named_parameters()}
    if res["grads0"] is not None:
        out.update({"grad." + n: g.float().contiguous() for n, g in res["grads0"].items()})
    save_file(out, a.out)
    meta = dict(kind=kind, steps=res["steps"], trainable=res["trainable"], no_decay=res["no_decay"],
                plan=plan, settings={k: v for k, v in vars(a).items()},
                frozen=DEFAULT_FROZEN[kind] if a.frozen is None else a.frozen)
    with open(os.path.splitext(a.out)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=1)
    return res


if __name__ == "__main__":
    main()
