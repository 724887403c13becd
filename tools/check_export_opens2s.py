#!/usr/bin/env python3
"""Check an `s2s export` against OpenS2S's own code: OmniSpeechModel.from_pretrained loads it with no missing,
unexpected or mismatched keys, names / shapes / dtypes equal the files', and its forward gives the loss that
`s2s forward --model EXPORT` gives on the same batch.

    git clone https://github.com/CASIA-LM/OpenS2S /path/OpenS2S       # OpenS2S's src/ is what gets imported
    s2s export --ckpt runs/stage3 --out /tmp/export --dtype f32
    python3 tools/check_export_opens2s.py --opens2s /path/OpenS2S --export /tmp/export [--s2s build/s2s]

OpenS2S pins transformers 4.51.0: the script makes a virtual environment (--venv, default
~/.cache/s2s/opens2s-venv) with --system-site-packages (torch, safetensors, peft from the system) and
`pip install transformers==4.51.0` in it, then re-runs itself there. Not part of ctest: it needs the fetched code
(and pip, the first time). Exit 0 when everything matches.

The batch (or --batch FILE in docs/forward-batch.md's format): one speech-in / speech-out dialogue made with the
export's own tokenizers the way OpenS2S's process_dataset encodes it (each piece separately), a random 2 s log-mel,
three speech units + the TTS EOS, a zero speaker embedding.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

TRANSFORMERS = "4.51.0"


def ensure_venv(venv):
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        print(f"check_export_opens2s: creating {venv} (--system-site-packages)")
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv], check=True)
    r = subprocess.run([py, "-c", "import transformers; print(transformers.__version__)"], capture_output=True,
                       text=True)
    if r.stdout.strip() != TRANSFORMERS:
        print(f"check_export_opens2s: pip install transformers=={TRANSFORMERS} into {venv}")
        subprocess.run([py, "-m", "pip", "install", "-q", f"transformers=={TRANSFORMERS}"], check=True)
    return py


def make_batch(export, path):
    """A one-sample batch in s2s forward's format, from the export's tokenizers (OpenS2S's piecewise encoding)."""
    import numpy as np
    from safetensors.numpy import save_file
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(export)
    tts = AutoTokenizer.from_pretrained(os.path.join(export, "tts"))
    cfg = json.load(open(os.path.join(export, "config.json")))
    eos = cfg["tts_lm_config"]["eos_token_id"]
    eos = eos[0] if isinstance(eos, list) else eos

    def enc(s):
        return tok(s, add_special_tokens=False)["input_ids"]
    ids, labels, types = [], [], []

    def piece(x, lab=False, tt=0):
        ids.extend(x)
        labels.extend(x if lab else [-100] * len(x))
        types.extend([tt] * len(x))
    piece(enc("<|im_start|>") + enc("system") + enc("\n") + enc("You are a helpful assistant.") + enc("<|im_end|>\n"))
    piece(enc("<|im_start|>") + enc("user") + enc("\n"))
    piece(enc("<|im_audio_start|>") + [-200] + enc("<|im_audio_end|>"))
    piece(enc("<|im_end|>\n"))
    piece(enc("<|im_start|>") + enc("assistant") + enc("\n") + enc("<think></think>"))
    piece(enc("<|im_tts_start|>" + "Hello there, nice to hear you." + "<|im_tts_end|>"), lab=True, tt=1)
    piece(enc("<|im_end|>\n"), lab=True)
    units = tts("".join(f"<|audio_{u}|>" for u in (5, 9, 1, 7, 3)), add_special_tokens=False)["input_ids"] + [eos]
    mel = np.random.default_rng(0).standard_normal((1, cfg["audio_encoder_config"]["num_mel_bins"], 3000))
    t = {"input_ids": np.array([ids], np.int32), "attention_mask": np.ones((1, len(ids)), np.int32),
         "labels": np.array([labels], np.int32), "token_types": np.array([types], np.int32),
         "mel": mel.astype(np.float32), "mel_frames": np.array([200], np.int32),
         "units": np.array([units], np.int32), "units_len": np.array([len(units)], np.int32),
         "spk_emb": np.zeros((1, 512), np.float32)}
    save_file(t, path)
    return path


def inner(a):
    import numpy as np
    import torch
    from safetensors import safe_open
    from safetensors.numpy import load_file
    import transformers
    sys.path.insert(0, os.path.abspath(a.opens2s))
    from src.modeling_omnispeech import OmniSpeechModel  # OpenS2S's own code
    print(f"check_export_opens2s: transformers {transformers.__version__}, torch {torch.__version__}, "
          f"OpenS2S src from {os.path.abspath(a.opens2s)}")
    fails = []

    def check(ok, what):
        print(("ok    " if ok else "FAILED ") + what)
        if not ok:
            fails.append(what)

    files = {}
    for f in sorted(os.listdir(a.export)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(a.export, f), "pt") as s:
                for k in s.keys():
                    sl = s.get_slice(k)
                    files[k] = (sl.get_dtype(), tuple(sl.get_shape()))
    model, info = OmniSpeechModel.from_pretrained(a.export, torch_dtype="auto", output_loading_info=True)
    model.eval()
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        check(not info.get(k), f"from_pretrained: no {k} {list(info.get(k) or [])[:4]}")
    sd = model.state_dict()
    names = set(sd)  # a tied lm_head included: the export writes it (docs/export.md)
    check(names == set(files), f"names: the model's {len(names)} == the files' {len(files)} "
          f"(only in model {sorted(names - set(files))[:3]}, only in files {sorted(set(files) - names)[:3]})")
    to_st = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16"}
    bad = [k for k in names & set(files) if tuple(sd[k].shape) != files[k][1] or to_st.get(sd[k].dtype) != files[k][0]]
    check(not bad, f"shapes and dtypes equal the files' ({sorted({v[0] for v in files.values()})}) {bad[:3]}")
    from safetensors.torch import load_file as load_torch
    same = True
    for f in sorted(os.listdir(a.export)):
        if f.endswith(".safetensors"):
            for k, v in load_torch(os.path.join(a.export, f)).items():
                same &= k in sd and torch.equal(sd[k].float(), v.float())
    check(same, "values: the loaded parameters equal the files'")

    batch = a.batch or make_batch(a.export, os.path.join(a.tmp, "batch.safetensors"))
    out = os.path.join(a.tmp, "s2s_forward.safetensors")
    r = subprocess.run([a.s2s, "forward", "--model", a.export, "--inputs", batch, "--out", out], capture_output=True,
                       text=True)
    check(r.returncode == 0, f"s2s forward --model {a.export} {r.stderr.strip()[:200]}")
    if r.returncode:
        return fails
    s2s_loss = load_file(out)
    t = load_file(batch)
    model = model.float()
    n, F = t["mel"].shape[0], t["mel"].shape[2]
    mask = torch.zeros((n, F), dtype=torch.long)
    for i, f in enumerate(t["mel_frames"]):
        mask[i, :int(f)] = 1
    eos = model.config.tts_lm_config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    rows = []  # OpenS2S's speech_units: one row per speech span (split at the TTS EOS)
    for s in range(t["units"].shape[0]):
        cur = []
        for u in t["units"][s, :int(t["units_len"][s])].tolist():
            cur.append(u)
            if u == eos:
                rows.append((cur, s))
                cur = []
    U = max(len(x) for x, _ in rows)
    units = torch.full((len(rows), U), model.config.tts_lm_config.pad_token_id or 0, dtype=torch.long)
    umask = torch.zeros((len(rows), U), dtype=torch.long)
    spk = torch.zeros((len(rows), 1, 512))
    for i, (x, s) in enumerate(rows):
        units[i, :len(x)], umask[i, :len(x)] = torch.tensor(x), 1
        if "spk_emb" in t:
            spk[i, 0] = torch.from_numpy(t["spk_emb"][s])
    L = lambda k: torch.from_numpy(t[k].astype(np.int64))  # noqa: E731
    with torch.no_grad():
        o = model(input_ids=L("input_ids"), attention_mask=L("attention_mask"), token_types=L("token_types"),
                  labels=L("labels"), speech_values=torch.from_numpy(t["mel"]), speech_mask=mask, speech_units=units,
                  speech_units_mask=umask, spk_embs=spk)
    ref, got = float(o.loss), float(s2s_loss["loss"])
    rel = abs(ref - got) / abs(ref)
    print(f"loss: OpenS2S OmniSpeechModel {ref!r}, s2s forward {got!r}, relative difference {rel:.3g}")
    check(rel <= a.tol, f"loss equal within {a.tol:g}")
    return fails


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opens2s", required=True, help="a checkout of CASIA-LM/OpenS2S (the directory holding src/)")
    ap.add_argument("--export", required=True, help="the `s2s export` directory")
    ap.add_argument("--s2s", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                  "build", "s2s"))
    ap.add_argument("--batch", default=None, help="a batch in s2s forward's format (default: made from the export)")
    ap.add_argument("--venv", default=os.path.expanduser("~/.cache/s2s/opens2s-venv"))
    ap.add_argument("--tol", type=float, default=1e-4, help="relative loss tolerance (both sides f32)")
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tmp", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if not os.path.isdir(os.path.join(a.opens2s, "src")):
        sys.exit(f"check_export_opens2s: {a.opens2s} has no src/ (a checkout of CASIA-LM/OpenS2S)")
    if not a.inner:
        py = ensure_venv(a.venv)
        with tempfile.TemporaryDirectory(prefix="s2s_check_opens2s_") as tmp:
            args = [py, os.path.abspath(__file__), "--inner", "--tmp", tmp, "--opens2s", a.opens2s, "--export",
                    a.export, "--s2s", os.path.abspath(a.s2s), "--tol", str(a.tol)]
            if a.batch:
                args += ["--batch", a.batch]
            sys.exit(subprocess.run(args).returncode)
    fails = inner(a)
    print(f"check_export_opens2s: {len(fails)} failures" if fails else "check_export_opens2s: ok")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
