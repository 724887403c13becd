"""`s2s eval --data` (eval/eval_data.c) against the PyTorch rendering of OpenS2S's forward
(tests/train/torch_train_ref.py) over whole shard sets, sample by sample:

- instruct shards (a model trained a few steps, so the accuracies are not 0): loss_llm and loss_tts are the token
  means of the cross-entropy over the whole set (sum over samples / all targets, not a mean of means),
  loss = loss_llm + loss_tts, text_accuracy / unit_accuracy = the argmax hits over the same targets;
- align (stage 1) shards: the LLM term only; tts_pretrain (stage 2a) shards: the TTS term only;
- from the training run directory (its newest checkpoint) and from its export: the same numbers;
- shards made with another tokenizer are refused, naming the shard; --max-samples evaluates a prefix.

Run by ctest as: python3 tests/eval/test_eval.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
import torch_train_ref as R  # noqa: E402

torch.set_num_threads(2)
S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
TMP = tempfile.mkdtemp(prefix="s2s_eval_")
TOK, TTS_TOK = os.path.join(ROOT, "configs/tiny/tokenizer"), os.path.join(ROOT, "configs/tiny/tts-tokenizer")
TOL = 2e-5
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


def s2s_eval(model_flag, model, shards, *extra, ok=True):
    p = subprocess.run([S2S, "eval", model_flag, model, "--data", shards, "--json", "--threads", "2", *extra],
                       capture_output=True, text=True, timeout=600)
    if p.returncode and ok:
        print(p.stderr[-2000:])
    return (json.loads(p.stdout) if p.returncode == 0 else None), p


def ce_hits(logits, labels):
    """Summed CE, count and argmax hits of a causal LM (shift by one, -100 ignored)."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1]).double()
    lb = labels[:, 1:].reshape(-1)
    keep = lb != -100
    if int(keep.sum()) == 0:
        return 0.0, 0, 0
    return (float(F.cross_entropy(lg[keep], lb[keep], reduction="sum")), int(keep.sum()),
            int((lg[keep].argmax(-1) == lb[keep]).sum()))


def reference(model_dir, shard_dir):
    """Token-mean losses and accuracies over every sample of the shards, one sample at a time."""
    omni = R.load_model(model_dir, dtype=torch.float64).eval()
    cfg = omni.cfg
    tot = dict(sl=0.0, nl=0, hl=0, st=0.0, nt=0, ht=0)

    def add(prefix, a, n, h):
        tot["s" + prefix] += a
        tot["n" + prefix] += n
        tot["h" + prefix] += h
    T = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    for f in sorted(x for x in os.listdir(shard_dir) if x.endswith(".h5")):
        samples, kind = R.read_shard(os.path.join(shard_dir, f))
        for s in samples:
            b = R.collate([s], kind, cfg)
            with torch.no_grad():
                if kind == "tts_pretrain":
                    out = omni.tts_lm_model(input_ids=T(b["ids"]), attention_mask=T(b["mask"]))
                    add("t", *ce_hits(out.logits, T(b["labels"])))
                    continue
                mel = None if b["mel"] is None else T(b["mel"]).double()
                fr = None if b["frames"] is None else b["frames"].tolist()
                emb, am, lab, ty = omni.prepare_llm(T(b["ids"]), T(b["mask"]), T(b["labels"]), T(b["types"]), mel, fr)
                out = omni.llm_model(inputs_embeds=emb, attention_mask=am, output_hidden_states=True)
                add("l", *ce_hits(out.logits, lab))
                if b["units"] is not None:
                    x, tam, tlab = omni.prepare_tts(out.hidden_states[-1], T(b["units"]), T(b["units_mask"]),
                                                    T(b["spk"]).double(), ty)
                    tout = omni.tts_lm_model(inputs_embeds=x, attention_mask=tam)
                    add("t", *ce_hits(tout.logits, tlab))
    ll = tot["sl"] / tot["nl"] if tot["nl"] else 0.0
    lt = tot["st"] / tot["nt"] if tot["nt"] else 0.0
    return dict(loss=ll + lt, loss_llm=ll, loss_tts=lt, text_accuracy=tot["hl"] / tot["nl"] if tot["nl"] else 0.0,
                unit_accuracy=tot["ht"] / tot["nt"] if tot["nt"] else 0.0, text_targets=tot["nl"],
                unit_targets=tot["nt"])


def agrees(got, want):
    if got is None:
        return False, "no result"
    bad = [k for k in ("loss", "loss_llm", "loss_tts") if abs(got[k] - want[k]) > TOL * max(1.0, abs(want[k]))]
    bad += [k for k in ("text_accuracy", "unit_accuracy", "text_targets", "unit_targets") if got[k] != want[k]]
    return not bad, ", ".join(f"{k} {got[k]} vs {want[k]}" for k in bad) or \
        f"loss {got['loss']:.6f} = {want['loss']:.6f}, accuracies {got['text_accuracy']:.4f} / {got['unit_accuracy']:.4f}"


# A model trained a few steps at a high rate on the shards it is evaluated on, so it predicts some targets.
MODEL = R.init_model(os.path.join(TMP, "model"), seed=5, s2s=S2S)
SH = {k: os.path.dirname(R.make_shards(os.path.join(TMP, k), k, n, 9, s2s=S2S))
      for k, n in (("instruct", 6), ("align", 4), ("tts_pretrain", 5))}
rp = os.path.join(TMP, "r.yaml")
RUN = os.path.join(TMP, "run")
json.dump({"stage": "stage3", "seed": 7, "model": {"init": MODEL, "tokenizer": TOK, "tts_tokenizer": TTS_TOK},
           "data": {"train": [SH["instruct"]]}, "train": {"batch_size": 3, "max_steps": 8, "threads": 2},
           "optim": {"lr": 1e-2, "warmup_steps": 0}, "run": {"dir": RUN}}, open(rp, "w"))
t = subprocess.run([S2S, "train", "--config", rp, "--quiet"], capture_output=True, text=True, timeout=600)
check(t.returncode == 0, "a stage-3 run to evaluate trains")
step = open(os.path.join(RUN, "checkpoints", "latest")).read().strip()
CKPT_MODEL = os.path.join(RUN, "checkpoints", step, "model")

want = reference(CKPT_MODEL, SH["instruct"])
got, _ = s2s_eval("--ckpt", RUN, SH["instruct"])
ok, why = agrees(got, want)
check(ok and want["text_accuracy"] > 0 and want["unit_accuracy"] > 0,
      f"instruct shards, the run's newest checkpoint: {why} ({want['text_targets']} text, {want['unit_targets']} unit "
      f"targets)")
exp = os.path.join(TMP, "export")
e = subprocess.run([S2S, "export", "--ckpt", RUN, "--out", exp, "--dtype", "f32"], capture_output=True, text=True,
                   timeout=600)
got_e, _ = s2s_eval("--model", exp, SH["instruct"])
check(e.returncode == 0 and got_e is not None and all(got_e[k] == got[k] for k in ("loss", "text_accuracy", "unit_accuracy")),
      "its f32 export gives the same numbers")
for kind in ("align", "tts_pretrain"):
    w = reference(CKPT_MODEL, SH[kind])
    g, _ = s2s_eval("--ckpt", RUN, SH[kind])
    ok, why = agrees(g, w)
    check(ok and g["kind"] == kind and (g["unit_targets"] == 0 if kind == "align" else g["text_targets"] == 0),
          f"{kind} shards: {why}")
g3, _ = s2s_eval("--ckpt", RUN, SH["instruct"], "--max-samples", "2")
check(g3 is not None and g3["samples"] == 2, "--max-samples 2 evaluates 2 samples")

# Shards made with another tokenizer: refused, naming the shard.
other = os.path.join(TMP, "other_tok")
shutil.copytree(TOK, other)
tj = json.load(open(os.path.join(other, "tokenizer.json")))
tj["added_tokens"][0]["content"] = "<|endoftext_other|>"
json.dump(tj, open(os.path.join(other, "tokenizer.json"), "w"))
bad_model = os.path.join(TMP, "bad_model")
shutil.copytree(exp, bad_model)
shutil.copy(os.path.join(other, "tokenizer.json"), os.path.join(bad_model, "tokenizer.json"))
g4, p4 = s2s_eval("--model", bad_model, SH["instruct"], ok=False)
check(g4 is None and p4.returncode != 0 and ".h5" in p4.stderr and "token" in p4.stderr,
      f"shards of another tokenizer are refused: {p4.stderr.strip()[-200:]!r}")

shutil.rmtree(TMP, ignore_errors=True)
print("test_eval:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
