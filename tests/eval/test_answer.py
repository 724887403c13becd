"""`s2s eval --manifest IN.jsonl --out OUT.jsonl` (eval/eval_manifest.c): every item answered as `s2s chat` answers
it, line for line, resumably.

- each output line is its item's fields plus index, response, units, text_ids; the reply equals `s2s chat --json`
  for that item (text only, audio only, audio + text; "prompt" is the input only when there is no audio);
- a malformed line is reported with file:line on stderr and written as {"index", "error"};
- items are answered --batch at a time in lockstep: --batch 1 and the default 8 write the same bytes;
- SIGKILL mid-run (--batch 2), then a rerun (--batch 3): the output equals an uninterrupted run's (--batch 8) byte
  for byte, sampled replies included (item i samples with seed + i); a torn last line is cut and its item answered
  again.

Run by ctest as: python3 tests/eval/test_answer.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "train"))
import torch_train_ref as R  # noqa: E402

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
TMP = tempfile.mkdtemp(prefix="s2s_answer_")
TOK, TTS_TOK = os.path.join(ROOT, "configs/tiny/tokenizer"), os.path.join(ROOT, "configs/tiny/tts-tokenizer")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what, flush=True)
    if not cond:
        failures.append(what)


MODEL = R.init_model(os.path.join(TMP, "model"), seed=11, s2s=S2S)
for f in os.listdir(TOK):
    shutil.copy(os.path.join(TOK, f), MODEL)
os.makedirs(os.path.join(MODEL, "tts"))
for f in os.listdir(TTS_TOK):
    shutil.copy(os.path.join(TTS_TOK, f), os.path.join(MODEL, "tts"))
rng = np.random.default_rng(3)
wavs = []
for i in range(3):
    w = os.path.join(TMP, f"q{i}.wav")
    R._write_wav(w, R._speechlike(rng, 1.0 + 0.5 * i))
    wavs.append(w)
items = [{"id": "t0", "text": "how are you"}, {"id": "a0", "audio": wavs[0], "prompt": "the transcript"},
         "not json at all", {"id": "at", "wav": wavs[1], "text": "and this too"}, {"id": "p0", "prompt": "a prompt"},
         {"id": "empty"}, {"id": "a2", "source_wav": wavs[2], "reference": "keep me"}]
for i in range(6):
    items.append({"id": f"x{i}", "text": f"question number {i} please"})
man = os.path.join(TMP, "in.jsonl")
with open(man, "w") as f:
    for it in items:
        f.write((it if isinstance(it, str) else json.dumps(it)) + "\n")
BUDGET = ["--max-new", "12", "--tts-max-new", "20", "--threads", "1"]


def answer(out, *extra, wait=True):
    cmd = [S2S, "eval", "--model", MODEL, "--manifest", man, "--out", out, *BUDGET, *extra]
    if not wait:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


full = os.path.join(TMP, "full.jsonl")
p = answer(full)
rows = [json.loads(l) for l in open(full)] if p.returncode == 0 else []
check(p.returncode == 0 and len(rows) == len(items) and [r["index"] for r in rows] == list(range(len(items))),
      f"one output line per input line, in order ({len(rows)} of {len(items)})")
check("in.jsonl:3: not a JSON object" in p.stderr and "error" in rows[2] and "error" in rows[5],
      "malformed lines are reported with file:line and written as errors")


def chat(*args):
    q = subprocess.run([S2S, "chat", "--model", MODEL, "--json", *BUDGET, *args], capture_output=True, text=True,
                       timeout=300)
    return json.loads(q.stdout.strip().splitlines()[-1])


same = True
for r, args in ((rows[0], ["--text", "how are you"]), (rows[1], ["--audio", wavs[0]]),
                (rows[3], ["--audio", wavs[1], "--text", "and this too"]), (rows[4], ["--text", "a prompt"]),
                (rows[6], ["--audio", wavs[2]])):
    c = chat(*args)
    same &= r["text_ids"] == c["text_ids"] and r["units"] == c["units"] and r["response"] == c["text"]
check(same, "each reply equals s2s chat --json for its item (text, audio, audio + text, a bare prompt)")
check(rows[1]["prompt"] == "the transcript" and rows[6]["reference"] == "keep me" and rows[3]["id"] == "at",
      "the items' own fields are kept (a scorer's references)")

# ---- batched: the same output whatever --batch ----------------------------------------------------------------------
one = os.path.join(TMP, "one.jsonl")
q1 = answer(one, "--batch", "1")
check(q1.returncode == 0 and open(one).read() == open(full).read(),
      "--batch 1 (one item at a time) writes exactly what --batch 8 (the default, items in lockstep) does")

# ---- SIGKILL mid-run, then resume: byte for byte the uninterrupted output (sampled) ---------------------------------
samp = ["--temperature", "0.9", "--seed", "5"]
ref = os.path.join(TMP, "ref.jsonl")
answer(ref, *samp)
cut = os.path.join(TMP, "cut.jsonl")
proc = answer(cut, *samp, "--batch", "2", wait=False)
for _ in range(600):
    if os.path.exists(cut) and sum(1 for _ in open(cut)) >= 4:
        break
    time.sleep(0.05)
proc.send_signal(signal.SIGKILL)
proc.wait()
n_before = sum(1 for _ in open(cut)) if os.path.exists(cut) else 0
with open(cut, "a") as f:
    f.write('{"index": 99, "respo')  # a torn line, as a crash mid-write leaves
q = answer(cut, *samp, "--batch", "3")
check(q.returncode == 0 and open(cut).read() == open(ref).read() and 0 < n_before < len(items),
      f"killed after {n_before} lines (+ a torn one), resumed: the output equals the uninterrupted run's byte for byte")
check(open(ref).read() != open(full).read(), "sampled replies differ from greedy ones (the seed is used)")

shutil.rmtree(TMP, ignore_errors=True)
print("test_answer:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
