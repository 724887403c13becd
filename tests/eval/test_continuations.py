"""`s2s generate-continuations` (eval/continuations*.c) against OpenS2S text_generation.py rendered in Python.

On tiny random Qwen3ForCausalLM directories (tests/fixtures/qwen3_tied / _untied's shapes, the vocabulary widened to
the tiny tokenizer, which is copied beside them and carries Qwen3's chat_template):
1. The records equal a Python rendering of text_generation.py: its instruction_dict, its messages (system prompt +
   user), apply_chat_template(add_generation_prompt=True, enable_thinking=False), greedy decoding (transformers'
   generate(do_sample=False) standing in for vLLM's top_k=1) to the EOS set or max new tokens, the text decoded
   with special tokens skipped and the stop token dropped; asr on the tied model, ser on the untied one, and an
   EOS (generation_config.json naming a token the model emits) that ends continuations early.
2. --batch 1 and --batch 3 write identical files.
3. SIGKILL mid-run (and a torn last line), then the same command again: exactly the uninterrupted file; an OUT
   from another manifest is refused.
4. Bad lines (invalid JSON, a missing field, ser without a label) are reported as file:line and skipped.
5. `s2s prep` ingests the output into an align shard whose sample equals prep's tokenisation of the exact
   {"messages": ...} record text_generation.py writes.

Run by ctest as: python3 tests/eval/test_continuations.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
import wave

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
import h5py  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.disable_progress_bar()
torch.set_num_threads(2)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
TMP = tempfile.mkdtemp(prefix="s2s_cont_")
TOK = os.path.join(ROOT, "configs/tiny/tokenizer")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


def make_llm(name, fixture, seed):
    """A random Qwen3ForCausalLM of the fixture's shapes over the tiny tokenizer's vocabulary. Weights are drawn
    wider than HF's init so that greedy continuations differ from prompt to prompt."""
    cfg = json.load(open(os.path.join(ROOT, "tests/fixtures", fixture, "config.json")))
    cfg["vocab_size"] = len(AutoTokenizer.from_pretrained(TOK))
    cfg["max_position_embeddings"] = 4096
    cfg["initializer_range"] = 0.5
    torch.manual_seed(seed)
    m = Qwen3ForCausalLM(Qwen3Config(**cfg)).eval()
    d = os.path.join(TMP, name)
    m.save_pretrained(d, safe_serialization=True)
    os.remove(os.path.join(d, "generation_config.json"))  # the EOS then comes from the tokenizer (and config.json)
    for f in os.listdir(TOK):
        shutil.copy(os.path.join(TOK, f), d)
    return d


def write_wav(path, seconds, seed):
    pcm = (np.random.default_rng(seed).standard_normal(int(16000 * seconds)) * 3000).astype(np.int16)
    with wave.open(path, "wb") as f:
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
        f.writeframes(pcm.tobytes())


def run(*args, ok=True, **kw):
    p = subprocess.run([S2S, "generate-continuations", "--threads", "2", *args], capture_output=True, text=True,
                       timeout=300, **kw)
    if ok and p.returncode:
        print(p.stderr[-3000:])
    return p


# ---- text_generation.py, rendered: apply_tokenizer + LLM.generate with SamplingParams(top_k=1, max_tokens) ----
INSTRUCTION = {
    "asr": {"generation": "Continue the following sentence in a coherent style: {text}",
            "training": "Continue the following sentence in a coherent style: "},
    "ser": {"generation": "Continue the following sentence that reflects a '{label}' emotion tone in a coherent "
                          "style: {text}",
            "training": "Continue the following sentence based on the conveyed emotion tone in a coherent style: "},
}


def reference(model_dir, items, task, max_new, eos):
    """[(record s2s must write, the {"messages"} line text_generation.py writes)] for each item."""
    tok = AutoTokenizer.from_pretrained(model_dir)
    m = Qwen3ForCausalLM.from_pretrained(model_dir).eval()
    out = []
    for line in items:
        text, audio = line["text"], line["audio"]
        if task == "asr":
            gen = INSTRUCTION[task]["generation"].format(text=text)
        else:
            assert line["label"]
            gen = INSTRUCTION[task]["generation"].format(label=line["label"], text=text)
        training = INSTRUCTION[task]["training"].format(label=line.get("label"))
        messages = [{"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": gen}]
        prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, enable_thinking=False)
        ids = torch.tensor([tok.encode(prompt)])
        with torch.no_grad():
            g = m.generate(ids, do_sample=False, max_new_tokens=max_new, eos_token_id=eos, pad_token_id=eos[0],
                           top_k=None, top_p=None, temperature=None)[0, ids.shape[1]:].tolist()
        if g and g[-1] in eos:  # vLLM drops the stop token's text
            g = g[:-1]
        cont = tok.decode(g, skip_special_tokens=True)
        rec = {}
        if "id" in line:
            rec["id"] = line["id"]
        rec["audio"] = audio
        if text:
            rec["transcript"] = text
        if task == "ser":
            rec["emotion"] = line["label"]
        rec.update(instruction=training, continuation=cont)
        content = [{"text": training, "audio": "", "speech_units": "", "spk_emb": ""},
                   {"text": "", "audio": audio, "speech_units": "", "spk_emb": ""}]
        msgs = [{"role": "user", "content": content},
                {"role": "assistant", "content": [{"text": cont, "audio": "", "speech_units": "", "spk_emb": ""}]}]
        out.append((rec, json.dumps({"messages": msgs}, ensure_ascii=False), g))
    return out


def read_jsonl(path):
    return [json.loads(x) for x in open(path, encoding="utf-8")]


# ---- models, audio, manifests ---------------------------------------------------------------------------------
TIED = make_llm("tied", "qwen3_tied", 3)
UNTIED = make_llm("untied", "qwen3_untied", 4)
tok = AutoTokenizer.from_pretrained(TOK)
EOS = [tok.eos_token_id]
texts = ["hello world", "the rain stopped at noon", "端到端的语音模型。", "a \"quoted\" b\\c", "", "tab\there",
         "<|im_start|> inside", "It rained all day"]
labels = ["sad", "happy", "angry", "neutral", "sad", "surprised", "fear", "happy"]
items = []
for i, (t, lab) in enumerate(zip(texts, labels)):
    wav = os.path.join(TMP, f"clip{i}.wav")
    write_wav(wav, 0.6 + 0.1 * i, i)
    it = {"text": t, "audio": wav, "label": lab}
    if i % 2 == 0:
        it["id"] = f"utt-{i}" if i % 4 else i
    items.append(it)
MAN = os.path.join(TMP, "in.jsonl")
bad = {2: "{not json", 5: json.dumps({"audio": "x.wav"}), 9: json.dumps({"text": "no label", "audio": "y.wav"})}
lines, good_at = [], []
for it in items:
    while len(lines) + 1 in bad:
        lines.append(bad[len(lines) + 1])
    lines.append(json.dumps(it, ensure_ascii=False))
    good_at.append(len(lines))
lines.insert(6, "")  # a blank line: ignored, not an error
with open(MAN, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
bad_lines = [i + 1 for i, x in enumerate(lines) if x in bad.values()]
MAX_NEW = 12

# ---- 1. the records equal text_generation.py's rendering ---------------------------------------------------------


def good_items(task):
    """The manifest's items text_generation.py can process, in order: "text" and "audio" strings (and a label)."""
    out = []
    for x in lines:
        try:
            d = json.loads(x)
        except ValueError:
            continue
        if isinstance(d.get("text"), str) and d.get("audio") and (task == "asr" or d.get("label")):
            out.append(d)
    return out


ser_items, asr_items = good_items("ser"), good_items("asr")
check(len(ser_items) == len(items) and len(asr_items) == len(items) + 1, "the manifest's good items per task")
out_asr = os.path.join(TMP, "asr.jsonl")
p = run("--model", TIED, "--manifest", MAN, "--out", out_asr, "--task", "asr", "--max-new", str(MAX_NEW),
        "--batch", "3")
check(p.returncode == 0, f"asr run exits 0 (rc {p.returncode})")
ref_asr = reference(TIED, asr_items, "asr", MAX_NEW, EOS)
got = read_jsonl(out_asr) if p.returncode == 0 else []
check(got == [r for r, _, _ in ref_asr], "asr records equal text_generation.py's rendering with HF greedy generate")
check(len({r["continuation"] for r in got}) > 3, "continuations differ between items (the check is not vacuous)")
check("items/s" in p.stderr and "ETA" in p.stderr, "a progress line with items/s and ETA on stderr")

# 4. bad lines: reported as file:line naming the field, skipped, the rest continued (the ser run: "label" too)
out_ser = os.path.join(TMP, "ser.jsonl")
p = run("--model", UNTIED, "--manifest", MAN, "--out", out_ser, "--task", "ser", "--max-new", str(MAX_NEW),
        "--batch", "3")
check(p.returncode == 0, f"ser run exits 0 (rc {p.returncode})")
ref_ser = reference(UNTIED, ser_items, "ser", MAX_NEW, EOS)
got = read_jsonl(out_ser) if p.returncode == 0 else []
check(got == [r for r, _, _ in ref_ser], "ser records (label in the prompt, emotion kept) equal the rendering")
for ln, why in zip(bad_lines, ["invalid JSON", "text: missing", None]):
    check(f"{MAN}:{ln}: " in p.stderr and (why is None or why in p.stderr), f"bad line {ln} reported ({why})")
pa = run("--model", TIED, "--manifest", MAN, "--out", os.path.join(TMP, "asr_q.jsonl"), "--task", "asr",
         "--max-new", "2", "--quiet")
check(f"{MAN}:{bad_lines[2]}:" not in pa.stderr and pa.stderr.count(MAN + ":") == 2 and "items/s" not in pa.stderr,
      "asr needs no label (only 2 bad lines); --quiet prints no progress")
ps = run("--model", UNTIED, "--manifest", MAN, "--out", os.path.join(TMP, "ser_q.jsonl"), "--task", "ser",
         "--max-new", "2", "--quiet")
check(f"{MAN}:{bad_lines[2]}: label: required" in ps.stderr, "ser: a line without a label is reported")

# an EOS the model emits ends continuations early (generation_config.json's eos_token_id joins the tokenizer's)
first = ref_asr[0][2]
stop = first[3] if len(first) > 3 else first[-1]
EOSDIR = os.path.join(TMP, "tied_eos")
shutil.copytree(TIED, EOSDIR)
json.dump({"eos_token_id": [stop]}, open(os.path.join(EOSDIR, "generation_config.json"), "w"))
out_eos = os.path.join(TMP, "eos.jsonl")
p = run("--model", EOSDIR, "--manifest", MAN, "--out", out_eos, "--task", "asr", "--max-new", str(MAX_NEW),
        "--batch", "3")
ref_eos = reference(EOSDIR, asr_items, "asr", MAX_NEW, [stop] + EOS)
got = read_jsonl(out_eos) if p.returncode == 0 else []
check(got == [r for r, _, _ in ref_eos], "with generation_config.json's EOS: records equal the rendering")
check(len(got) > 0 and len(got[0]["continuation"]) < len(read_jsonl(out_asr)[0]["continuation"]),
      "the EOS ended the first continuation early")

# ---- 2. batch sizes give identical files --------------------------------------------------------------------------
for b in ("1", "5"):
    o = os.path.join(TMP, f"ser_b{b}.jsonl")
    run("--model", UNTIED, "--manifest", MAN, "--out", o, "--task", "ser", "--max-new", str(MAX_NEW), "--batch", b,
        "--quiet")
    check(open(o, "rb").read() == open(out_ser, "rb").read(), f"--batch {b} writes the --batch 3 file")

# ---- 3. SIGKILL mid-run, rerun: the uninterrupted file -------------------------------------------------------------
BIG = os.path.join(TMP, "big.jsonl")
with open(BIG, "w", encoding="utf-8") as f:
    for i in range(160):
        f.write(json.dumps({"text": f"sentence number {i} about {texts[i % len(texts)]}", "audio": f"c{i}.wav",
                            "id": i}, ensure_ascii=False) + "\n")
        if i == 40:
            f.write("[1, 2]\n")  # a bad line in the middle, also on the resumed side of the kill below
args = ["--model", UNTIED, "--manifest", BIG, "--task", "asr", "--max-new", "96", "--batch", "2", "--quiet"]
full = os.path.join(TMP, "big_full.jsonl")
run(*args, "--out", full)
n_full = len(read_jsonl(full))
check(n_full == 160, f"uninterrupted run: 160 records ({n_full})")
killed_mid = False
for attempt in range(4):
    part = os.path.join(TMP, f"big_part{attempt}.jsonl")
    proc = subprocess.Popen([S2S, "generate-continuations", "--threads", "2", *args, "--out", part],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        if os.path.exists(part) and open(part, "rb").read().count(b"\n") >= 5 * (attempt + 1):
            break
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n = open(part, "rb").read().count(b"\n")
    if 0 < n < 160:
        killed_mid = True
        break
check(killed_mid, f"the run was killed mid-way ({n} of 160 lines)")
with open(part, "ab") as f:  # a torn record, as a kill inside write() would leave
    f.write(b'{"id": 999, "audio": "c9')
p = subprocess.run([S2S, "generate-continuations", "--threads", "2", *args[:-1], "--out", part], capture_output=True,
                   text=True, timeout=300)
check(p.returncode == 0 and "dropped a partial last line" in p.stderr, "rerun cuts the torn line and says so")
check(open(part, "rb").read() == open(full, "rb").read(), "killed + rerun = the uninterrupted file, byte for byte")
check(p.stderr.count(BIG + ":") == (1 if n <= 41 else 0), "a bad line before the resume point is not reported again")
p = run(*args, "--out", part)
check(p.returncode == 0 and open(part, "rb").read() == open(full, "rb").read(), "rerun of a finished run: no change")
p = run("--model", UNTIED, "--manifest", MAN, "--task", "asr", "--out", part, ok=False)
check(p.returncode == 1 and "remove it to start over" in p.stderr, "an OUT written from another manifest is refused")

# ---- 5. s2s prep ingests the output: the sample text_generation.py's own record gives ------------------------------
LAB = ",".join(sorted(set(labels)))
PREP_A, PREP_M = os.path.join(TMP, "prep_align"), os.path.join(TMP, "prep_msgs")
pa = subprocess.run([S2S, "prep", "--manifest", out_ser, "--tokenizer", TIED, "--out", PREP_A, "--quiet",
                     "--emotion-labels", LAB], capture_output=True, text=True, timeout=300)
MSGS = os.path.join(TMP, "opens2s_messages.jsonl")
with open(MSGS, "w", encoding="utf-8") as f:
    for _, m, _ in ref_ser:
        f.write(m + "\n")
pm = subprocess.run([S2S, "prep", "--manifest", MSGS, "--tokenizer", TIED, "--out", PREP_M, "--quiet"],
                    capture_output=True, text=True, timeout=300)
check(pa.returncode == 0 and pm.returncode == 0, f"s2s prep ingests both ({pa.stderr[-500:]}{pm.stderr[-500:]})")
if pa.returncode == 0 and pm.returncode == 0:
    info = json.load(open(os.path.join(PREP_A, "prep.json")))
    check(info["kept"] == len(items) and info["skipped"] == 0,
          f"prep kept every record ({info['kept']} kept, {info['skipped']} skipped)")
    shards = sorted(n for n in os.listdir(PREP_A) if n.startswith("align-"))
    mshards = sorted(n for n in os.listdir(PREP_M) if n.startswith("instruct-"))
    check(len(shards) == 1 and len(mshards) == 1, f"one align shard ({shards}), one instruct shard ({mshards})")
    with h5py.File(os.path.join(PREP_A, shards[0]), "r") as a, h5py.File(os.path.join(PREP_M, mshards[0]), "r") as b:
        check(int(a.attrs["num_samples"]) == len(items), "the align shard holds every item")
        same = all(np.array_equal(a[k][:], b[k][:]) for k in ("input_ids", "labels", "token_types", "text_offsets",
                                                              "audio", "audio_offsets"))
        check(same, "align sample = prep of text_generation.py's {\"messages\"} record (ids, labels, audio)")
        emo = a["emotion"][:].tolist()
        check(emo == [sorted(set(labels)).index(x) for x in labels], "the ser label is the sample's emotion class")
        check("teacher_ids" in a and int(a["teacher_offsets"][-1]) > 0, "the transcript gives the kl teacher")

if not failures:
    shutil.rmtree(TMP, ignore_errors=True)
if failures:
    print(f"{len(failures)} FAILED")
    sys.exit(1)
print("all passed")
