"""`s2s chat` (eval/session.c, eval/chat.c, eval/prompt.c) against OpenS2S's procedure rendered in PyTorch.

1. The prompt, token for token, is model_worker.py's: transformers' apply_chat_template with Qwen3's template
   (the tiny tokenizer carries it), add_generation_prompt, enable_thinking=False, then <|im_tts_start|>, split at
   <|im_audio|> and encoded segment by segment with -200 between: for text, audio, audio + text, another system
   prompt, none, non-ASCII text and text holding special tokens.
2. Greedy replies equal tests/eval/opens2s_generate_ref.py (OmniSpeechModel.generate(units_gen=True) on the
   OmniSpeech rendering with Hugging Face generate doing each round): text_ids and the TTS ids, from a text and
   from an audio (log-mel from WhisperFeatureExtractor on the reference side), with the TTS budget ending the
   reply and with an LLM EOS ending the text (a generation_config.json naming a token the model emits), after
   which the TTS-LM runs on to its budget.
3. Sampling: the same --seed gives the same reply, another seed another; --units-out holds the JSON's units.
4. A training checkpoint, and its `s2s export`, answer exactly as each other.

Run by ctest as: python3 tests/eval/test_chat.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
sys.path.insert(0, HERE)
import torch_train_ref as R  # noqa: E402
import opens2s_generate_ref as G  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

torch.set_num_threads(2)
S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
TMP = tempfile.mkdtemp(prefix="s2s_chat_")
TOK, TTS_TOK = os.path.join(ROOT, "configs/tiny/tokenizer"), os.path.join(ROOT, "configs/tiny/tts-tokenizer")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


def chat(model, *args, ok=True):
    p = subprocess.run([S2S, "chat", "--model", model, "--threads", "2", *args], capture_output=True, text=True,
                       timeout=300)
    if p.returncode and ok:
        print(p.stderr[-2000:])
    return p


def chat_json(model, *args):
    p = chat(model, "--json", *args)
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None


# ---- a model directory in OpenS2S's layout: weights, tokenizers, tts/ ----------------------------------------------
MODEL = R.init_model(os.path.join(TMP, "model"), seed=5, s2s=S2S)
for f in os.listdir(TOK):
    shutil.copy(os.path.join(TOK, f), MODEL)
os.makedirs(os.path.join(MODEL, "tts"))
for f in os.listdir(TTS_TOK):
    shutil.copy(os.path.join(TTS_TOK, f), os.path.join(MODEL, "tts"))
cfg = json.load(open(os.path.join(MODEL, "config.json")))
rng = np.random.default_rng(7)
WAV = os.path.join(TMP, "q.wav")
R._write_wav(WAV, R._speechlike(rng, 2.3))

# ---- 1. the prompt ------------------------------------------------------------------------------------------------
hf = AutoTokenizer.from_pretrained(TOK)


def worker_ids(system, audio, text):
    """model_worker.py get_input_params for one user turn."""
    msgs = [{"role": "system", "content": system}] if system else []
    content = ("<|im_audio_start|><|im_audio|><|im_audio_end|>" if audio else "") + (text or "")
    msgs.append({"role": "user", "content": content})
    prompt = hf.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, enable_thinking=False)
    prompt += "<|im_tts_start|>"
    ids = []
    for i, seg in enumerate(prompt.split("<|im_audio|>")):
        if i:
            ids.append(-200)
        ids += hf.encode(seg)
    return prompt, ids


CASES = [(None, False, "How are you today?"), (None, True, None), (None, True, "and what about this?"),
         ("Answer kindly.", False, "hello"), ("", False, "no system prompt at all"),
         (None, False, "héllo wörld — ça va? 你好 🙂"), (None, False, "tokens <|im_end|> inside <|im_start|>text")]
for system, audio, text in CASES:
    args = ["--print-prompt"] + (["--system", system] if system is not None else []) + \
        (["--audio", WAV] if audio else []) + (["--text", text] if text else [])
    p = chat(MODEL, *args)
    got = json.loads(p.stdout) if p.returncode == 0 else {}
    want_text, want_ids = worker_ids("You are a helpful assistant." if system is None else system, audio, text)
    check(got.get("input_ids") == want_ids and got.get("prompt") == want_text,
          f"prompt = model_worker.py's ({len(want_ids)} ids): system {system!r}, audio {audio}, text {text!r}")

# ---- 2. greedy replies against the rendering of OpenS2S's generate --------------------------------------------------
omni = R.load_model(MODEL, dtype=torch.float32).eval()
eos_cfg = cfg["llm_config"]["eos_token_id"]
tts_eos = cfg["tts_lm_config"]["eos_token_id"]


def reference(ids, mel=None, frames=None, max_new=24, tts_max_new=40, eos=None):
    t = torch.tensor([ids])
    with torch.no_grad():
        if mel is None:
            emb = omni.llm_model.get_input_embeddings()(t)
        else:
            emb, _, _, _ = omni.prepare_llm(t, torch.ones_like(t), torch.full_like(t, -100), torch.zeros_like(t),
                                            torch.from_numpy(mel), frames.tolist())
        return G.generate_units(omni, emb, max_new, eos if eos is not None else eos_cfg, tts_max_new, tts_eos)


def prompt_ids(*args):
    return json.loads(chat(MODEL, "--print-prompt", *args).stdout)["input_ids"]


for name, args, mel in (("text", ["--text", "tell me something nice"], None),
                        ("audio", ["--audio", WAV], R.log_mel([R._speechlike(np.random.default_rng(7), 2.3)]))):
    ids = prompt_ids(*args)
    mm, fr = (mel if mel is not None else (None, None))
    j = chat_json(MODEL, *args, "--max-new", "24", "--tts-max-new", "40")
    seq, units = reference(ids, mm, fr)
    check(j is not None and j["text_ids"] == seq and j["tts_ids"] == units,
          f"greedy from {name}: text_ids ({len(seq)}) and TTS ids ({len(units)}) equal OpenS2S's generate "
          f"(the TTS budget ends it)")
    if j is None or len(seq) < 8:
        continue
    # An EOS the model emits ends the text; the TTS-LM then runs to its budget.
    stop = seq[5]
    gen = os.path.join(MODEL, "generation_config.json")
    json.dump({"eos_token_id": [stop, eos_cfg if isinstance(eos_cfg, int) else eos_cfg[0]]}, open(gen, "w"))
    j2 = chat_json(MODEL, *args, "--max-new", "40", "--tts-max-new", "200")
    os.remove(gen)
    seq2, units2 = reference(ids, mm, fr, max_new=40, tts_max_new=200,
                             eos=[stop, eos_cfg if isinstance(eos_cfg, int) else eos_cfg[0]])
    check(j2 is not None and j2["text_ids"] == seq2 and j2["tts_ids"] == units2 and seq2[-1] == stop
          and len(units2) == 200,
          f"greedy from {name} with an LLM EOS at token {seq2.index(stop) + 1 if stop in seq2 else '?'}: equal "
          f"(text ends on it, units run to the budget: {len(units2)})")

# ---- 3. sampling, --units-out -------------------------------------------------------------------------------------
uo = os.path.join(TMP, "units.txt")
s1 = chat_json(MODEL, "--text", "hi", "--temperature", "0.9", "--tts-sample", "--seed", "3", "--units-out", uo)
s2 = chat_json(MODEL, "--text", "hi", "--temperature", "0.9", "--tts-sample", "--seed", "3")
s3 = chat_json(MODEL, "--text", "hi", "--temperature", "0.9", "--tts-sample", "--seed", "4")
check(s1 and s2 and s1["text_ids"] == s2["text_ids"] and s1["tts_ids"] == s2["tts_ids"], "the same seed, the same reply")
check(s1 and s3 and (s1["text_ids"] != s3["text_ids"] or s1["tts_ids"] != s3["tts_ids"]), "another seed, another reply")
lines = [int(x) for x in open(uo).read().split()] if os.path.exists(uo) else None
check(s1 and lines == s1["units"] and all(0 <= u < 16384 for u in lines),
      f"--units-out holds the reply's {len(lines or [])} units (0..16383, as produced)")
plain = chat(MODEL, "--text", "hi", "--max-new", "6", "--tts-max-new", "12")
check(plain.returncode == 0 and plain.stdout.endswith("\n"), "without --json the text streams to stdout")

# ---- 4. a training checkpoint and its export answer alike ----------------------------------------------------------
shards = os.path.dirname(R.make_shards(os.path.join(TMP, "data"), "instruct", 4, 5, s2s=S2S))
rp = os.path.join(TMP, "r.yaml")
json.dump({"stage": "stage3", "seed": 7, "model": {"init": MODEL, "tokenizer": TOK, "tts_tokenizer": TTS_TOK},
           "data": {"train": [shards]}, "train": {"batch_size": 2, "max_steps": 2, "threads": 2},
           "lora": {"r": 4}, "optim": {"lr": 1e-2}, "run": {"dir": os.path.join(TMP, "run")}}, open(rp, "w"))
t = subprocess.run([S2S, "train", "--config", rp, "--quiet"], capture_output=True, text=True, timeout=600)
e = subprocess.run([S2S, "export", "--ckpt", os.path.join(TMP, "run"), "--out", os.path.join(TMP, "export"),
                    "--dtype", "f32"], capture_output=True, text=True, timeout=600)
if t.returncode == 0 and e.returncode == 0:
    a = chat_json(os.path.join(TMP, "run"), "--text", "hello", "--max-new", "16", "--tts-max-new", "30")
    b = chat_json(os.path.join(TMP, "export"), "--text", "hello", "--max-new", "16", "--tts-max-new", "30")
    check(a and b and a["text_ids"] == b["text_ids"] and a["tts_ids"] == b["tts_ids"],
          "a LoRA training run (its newest checkpoint, adapters merged on load) and its f32 export give the same reply")
else:
    check(False, f"training and export for the checkpoint check ran: {t.stderr[-500:]} {e.stderr[-500:]}")

shutil.rmtree(TMP, ignore_errors=True)
print("test_chat:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
