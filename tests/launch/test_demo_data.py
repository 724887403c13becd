"""launch/demo-data.sh: the synthetic empathetic corpus and its shards, at small DEMO_* settings.

- every stage directory holds shards of its kind (`s2s inspect --json`), with the expected sample counts, and
  stage2b / stage3 (and -valid) point at instruct (and -valid);
- speech units: every unit sequence is <|audio_N|> ids with N < DEMO_K, closed by the TTS EOS (h5py); the codebook
  has k = DEMO_K;
- stage 1: every sample has its emotion class (in sentence-file order) and a teacher prompt; prep.json lists the labels;
- instruct: speech-in samples carry one audio, text-in samples none, all carry units;
- a rerun with the same settings is a no-op; other settings redo it;
- `s2s train` runs stage 1, 2a and 3 on the shards with configs/tiny/model.json.

usage: python3 tests/launch/test_demo_data.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "launch", "demo-data.sh")
TMP = tempfile.mkdtemp(prefix="s2s_demo_data_")
OUT = os.path.join(TMP, "demo")
SPEAKERS, SENTENCES, K = 2, 10, 16
EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fearful"]
failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def demo_data(**env):
    e = dict(os.environ, S2S=S2S, DEMO_SPEAKERS=str(SPEAKERS), DEMO_SENTENCES=str(SENTENCES), DEMO_K=str(K),
             DEMO_SEED="3", DEMO_JOBS="2", **env)
    t = time.time()
    p = subprocess.run([SCRIPT, OUT], capture_output=True, text=True, env=e, timeout=600)
    if p.returncode:
        print(p.stdout[-3000:], p.stderr[-3000:])
    return p, time.time() - t


def inspect(d):
    shards = sorted(glob.glob(os.path.join(OUT, d, "*.h5")))
    info = []
    for s in shards:
        p = subprocess.run([S2S, "inspect", "--json", s], capture_output=True, text=True)
        info.append(json.loads(p.stdout) if p.returncode == 0 else {"ok": False, "file": s})
    return shards, info


def sentences():
    rows = []
    for line in open(os.path.join(ROOT, "launch", "demo-sentences.tsv")):
        if line.strip() and not line.startswith("#"):
            rows.append(line.rstrip("\n").split("\t"))
    return rows[:SENTENCES]


def shards_of_each_stage():
    rows = sentences()
    train = [i for i in range(SENTENCES) if i % 5 != 4]
    valid = [i for i in range(SENTENCES) if i % 5 == 4]
    want = {"stage1": ("align", SPEAKERS * len(train)), "stage1-valid": ("align", SPEAKERS * len(valid)),
            "stage2a": ("tts_pretrain", 2 * len(train)), "stage2a-valid": ("tts_pretrain", 2 * len(valid)),
            "instruct": ("instruct", (SPEAKERS + 1) * len(train)),
            "instruct-valid": ("instruct", (SPEAKERS + 1) * len(valid))}
    for d, (kind, n) in want.items():
        shards, info = inspect(d)
        ok = shards and all(i.get("ok") and i["kind"] == kind for i in info)
        got = sum(i.get("num_samples", 0) for i in info)
        check(ok and got == n, f"{d}: {len(shards)} {kind} shard(s), {got} samples (want {n})")
    for link in ("stage2b", "stage3"):
        for v in ("", "-valid"):
            p = os.path.join(OUT, link + v)
            check(os.path.islink(p) and os.path.realpath(p) == os.path.realpath(os.path.join(OUT, "instruct" + v)),
                  f"{link}{v} -> instruct{v}")

    tts = json.load(open(os.path.join(ROOT, "configs/tiny/tts-tokenizer/tokenizer.json")))
    unit0 = next(t["id"] for t in tts["added_tokens"] if t["content"] == "<|audio_0|>")
    cfg = json.load(open(os.path.join(ROOT, "configs/tiny/tts-tokenizer/tokenizer_config.json")))
    eos = next(t["id"] for t in tts["added_tokens"] if t["content"] == cfg["eos_token"])
    for d in ("stage2a", "stage2a-valid", "instruct", "instruct-valid"):
        ok, seqs, used = True, 0, set()
        for s in sorted(glob.glob(os.path.join(OUT, d, "*.h5"))):
            with h5py.File(s, "r") as f:
                u, off = f["units"][:], f["unit_offsets"][:]
                for i in range(len(off) - 1):
                    seq = u[off[i]:off[i + 1]]
                    body = seq[:-1] - unit0
                    ok &= len(seq) > 1 and seq[-1] == eos and bool(((body >= 0) & (body < K)).all())
                    used.update(body.tolist())
                    seqs += 1
        check(ok and seqs, f"{d}: {seqs} unit sequences, ids <|audio_0..{K - 1}|> + EOS ({len(used)} distinct units)")

    # stage 1: emotions in sentence order (each sentence spoken by every speaker in turn), teacher prompts
    with h5py.File(os.path.join(OUT, "stage1", "align-00000.h5"), "r") as f:
        emo = f["emotion"][:].tolist()
        flags = f["flags"][:]
    want_emo = [EMOTIONS.index(rows[i][0]) for i in train for _ in range(SPEAKERS)]
    check(emo == want_emo, f"stage1: emotion classes {emo[:8]}... = the sentences' labels")
    check(bool(((flags & 4) != 0).all() and ((flags & 8) != 0).all()), "stage1: every sample has emotion and teacher")
    prep = json.load(open(os.path.join(OUT, "stage1", "prep.json")))
    check(prep["emotion_labels"] == EMOTIONS, f"prep.json emotion_labels {prep['emotion_labels']}")
    with h5py.File(os.path.join(OUT, "instruct", "instruct-00000.h5"), "r") as f:
        na = np.diff(f["sample_audio_offsets"][:])
        nu = np.diff(f["unit_offsets"][:])
    # per sentence: SPEAKERS speech-in samples, then one text-in sample
    want_na = ([1] * SPEAKERS + [0]) * len(train)
    check(na.tolist() == want_na and bool((nu > 1).all()), "instruct: speech-in samples have one audio, text-in none; "
          "all have units")
    cb = os.path.join(OUT, "units", "codebook.safetensors")
    p = subprocess.run([S2S, "units", "info", "--json", cb], capture_output=True, text=True)
    check(p.returncode == 0 and json.loads(p.stdout)["k"] == K, f"the codebook has k = {K}")


def trains():
    for stage, d in (("stage1", "stage1"), ("stage2a", "stage2a"), ("stage3", "stage3")):
        run = os.path.join(TMP, "run-" + stage)
        r = {"stage": stage, "seed": 7,
             "model": {"config": "configs/tiny/model.json", "tokenizer": "configs/tiny/tokenizer",
                       "tts_tokenizer": "configs/tiny/tts-tokenizer"},
             "data": {"train": [os.path.join(OUT, d)], "valid": [os.path.join(OUT, d + "-valid")]},
             "train": {"batch_size": 2, "max_steps": 2}, "optim": {"lr": 1e-3, "warmup_steps": 1},
             "eval": {"batches": 1}, "run": {"dir": run}, "checkpoint": {"every": 100}}
        cfg = os.path.join(TMP, stage + ".yaml")
        with open(cfg, "w") as f:
            json.dump(r, f)  # JSON is YAML
        t = time.time()
        p = subprocess.run([S2S, "train", "--config", cfg, "--quiet"], capture_output=True, text=True, cwd=ROOT,
                           timeout=600)
        rows = [json.loads(l) for l in open(os.path.join(run, "metrics.jsonl"))] if p.returncode == 0 else []
        loss = [x["loss"] for x in rows if "loss" in x]
        check(p.returncode == 0 and len(loss) == 2 and all(math.isfinite(v) for v in loss),
              f"s2s train {stage} on {d}: 2 steps, losses {loss} ({time.time() - t:.1f} s)"
              + ("" if p.returncode == 0 else " " + p.stderr[-500:]))


try:
    p, t = demo_data()
    check(p.returncode == 0, f"demo-data.sh exits 0 ({t:.1f} s)")
    if p.returncode == 0:
        shards_of_each_stage()
        p, t = demo_data()
        check(p.returncode == 0 and "up to date" in p.stdout and t < 5, f"a rerun is a no-op ({t:.2f} s)")
        trains()
        K = 8
        p, t = demo_data()
        cb = os.path.join(OUT, "units", "codebook.safetensors")
        q = subprocess.run([S2S, "units", "info", "--json", cb], capture_output=True, text=True)
        check(p.returncode == 0 and "up to date" not in p.stdout and json.loads(q.stdout)["k"] == 8,
              f"DEMO_K=8 redoes it ({t:.1f} s)")
        p = subprocess.run([SCRIPT, OUT], capture_output=True, text=True,
                           env=dict(os.environ, S2S=S2S, DEMO_SENTENCES="3"))
        check(p.returncode == 1 and "DEMO_SENTENCES=3" in p.stderr, "DEMO_SENTENCES below 5 is refused")
finally:
    shutil.rmtree(TMP, ignore_errors=True)

if failures:
    print(f"{len(failures)} FAILED")
    sys.exit(1)
print("all passed")
