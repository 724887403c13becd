"""The loader over shards written by h5py (docs/shard-format.md), driven through build/bench/bench_loader --dump:
every batch holds exactly the values h5py wrote; the stream order is the documented (seed, epoch) algorithm of
docs/loader.md reimplemented here; ranks are disjoint; a resumed stream prints the same batches; damaged shards
(wrong version, truncated, bad content) stop it naming the file (and sample). Finally the loader's throughput
with log-mel is measured and printed against the bench config's need (80 samples/s).

usage: python3 tests/data/test_loader.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

BUILD = sys.argv[2] if len(sys.argv) > 2 else "build"
TOOL = os.path.join(BUILD, "bench", "bench_loader")
HAS_UNITS, HAS_SPK = 1, 2
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, flush=True)


def offsets(lengths):
    return np.concatenate([[0], np.cumsum(np.asarray(lengths, np.int64))]).astype(np.int64)


def make_samples(rng, n, tag):
    out = []
    for i in range(n):
        n_audio = i % 3
        t = n_audio + int(rng.integers(2, 25))
        ids = rng.integers(0, 151000, t).astype(np.int32)
        ids[0] = tag * 1000 + i
        labels = np.where(rng.integers(0, 2, t) == 1, ids, -100).astype(np.int32)
        ids[1:1 + n_audio], labels[1:1 + n_audio] = -200, -100
        out.append(dict(input_ids=ids, labels=labels, token_types=rng.integers(0, 2, t).astype(np.int8),
                        audios=[rng.integers(-20000, 20000, int(rng.integers(400, 1500))).astype(np.int16)
                                for _ in range(n_audio)],
                        units=rng.integers(151669, 168054, int(rng.integers(1, 30))).astype(np.int32)
                        if i % 2 else None,
                        spk_emb=rng.standard_normal(512).astype(np.float32) if i % 4 == 1 else None))
    return out


def write_shard(path, samples, version=1):
    audios = [a for s in samples for a in s["audios"]]
    with h5py.File(path, "w") as f:
        for k, v in {"format": "s2s-shard", "version": version, "kind": "instruct", "num_samples": len(samples),
                     "sample_rate": 16000, "llm_tokenizer_sha256": hashlib.sha256(b"llm").hexdigest(),
                     "tts_tokenizer_sha256": hashlib.sha256(b"tts").hexdigest(),
                     "created_by": "test_loader.py"}.items():
            f.attrs[k] = v
        f["text_offsets"] = offsets([len(s["input_ids"]) for s in samples])
        f["input_ids"] = np.concatenate([s["input_ids"] for s in samples])
        f["labels"] = np.concatenate([s["labels"] for s in samples])
        f["token_types"] = np.concatenate([s["token_types"] for s in samples])
        f["flags"] = np.array([(HAS_UNITS if s["units"] is not None else 0) |
                               (HAS_SPK if s["spk_emb"] is not None else 0) for s in samples], np.uint8)
        f["sample_audio_offsets"] = offsets([len(s["audios"]) for s in samples])
        f["audio_offsets"] = offsets([len(a) for a in audios])
        f.create_dataset("audio", data=np.concatenate(audios), chunks=True, maxshape=(None,))
        f["unit_offsets"] = offsets([0 if s["units"] is None else len(s["units"]) for s in samples])
        f["units"] = np.concatenate([s["units"] for s in samples if s["units"] is not None])
        f["spk_emb"] = np.stack([np.zeros(512, np.float32) if s["spk_emb"] is None else s["spk_emb"]
                                 for s in samples])


def run(*args, expect_ok=True):
    p = subprocess.run([TOOL, "--dump", *args], capture_output=True, text=True, timeout=120)
    if expect_ok:
        check(p.returncode == 0, f"bench_loader --dump {' '.join(args)}: rc={p.returncode} {p.stderr.strip()}")
    batches = [json.loads(line) for line in p.stdout.splitlines()] if p.returncode == 0 else []
    return p.returncode, batches, p.stderr


# ---- docs/loader.md's generator and shuffle, reimplemented ------------------------------------------------
M64 = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def key(seed, epoch, stream):
    return mix64(mix64(mix64(seed) ^ epoch) ^ stream)


def shuffle(v, k):
    v = list(v)
    for step, i in enumerate(range(len(v) - 1, 0, -1)):
        j = (mix64((k + (step + 1) * 0x9E3779B97F4A7C15) & M64) * (i + 1)) >> 64
        v[i], v[j] = v[j], v[i]
    return v


def main():
    if not os.path.exists(TOOL):
        print(f"test_loader.py: {TOOL} not built", file=sys.stderr)
        return 1
    rng = np.random.default_rng(3)
    with tempfile.TemporaryDirectory(prefix="s2s_test_loader_") as tmp:
        shards = [os.path.join(tmp, "s0.h5"), os.path.join(tmp, "s1.h5")]
        data = [make_samples(rng, 9, 0), make_samples(rng, 14, 1)]
        for p, s in zip(shards, data):
            write_shard(p, s)
        N = 23
        where = {}  # global id -> (path, index)
        for si, p in enumerate(shards):
            for i in range(len(data[si])):
                where[len(where)] = (p, i)

        # 1. Values: every sample of the epoch as h5py wrote it, the mel present and sane.
        rc, batches, err = run("--batch", "2", "--seed", "5", "--mel", *shards)
        check(len(batches) == N // 2, f"{len(batches)} batches, want {N // 2}")
        for b in batches:
            for s in b["samples"]:
                src = data[shards.index(s["shard"])][s["index"]]
                w = f"{s['shard']} sample {s['index']}"
                for k in ("input_ids", "labels", "token_types"):
                    check(s[k] == src[k].tolist(), f"{w}: {k}")
                check(s["units"] == ([] if src["units"] is None else src["units"].tolist()), f"{w}: units")
                spk = 0.0 if src["spk_emb"] is None else float(src["spk_emb"].astype(np.float64).sum())
                check(abs(s["spk_sum"] - spk) < 1e-3, f"{w}: spk_emb")
                check(len(s["audios"]) == len(src["audios"]), f"{w}: audio count")
                for a, ref in zip(s["audios"], src["audios"]):
                    check(a["pcm"] == ref.tolist(), f"{w}: pcm")
                    check(a["valid_frames"] == math.ceil(len(ref) / 160) and a["chunks"] == 1, f"{w}: frames")
                    check(-1.5 < a["mel_min"] <= a["mel_mean"] <= a["mel_max"] < 3.0, f"{w}: mel range {a}")

        # 2. Order: the documented algorithm. Epoch 0 and 1 (via --steps across the boundary), world 1 and 2.
        for world in (1, 2):
            steps = N // (2 * world)
            for rank in range(world):
                rc, got, err = run("--batch", "2", "--seed", "5", "--world", str(world), "--rank", str(rank),
                                   "--steps", str(2 * steps), *shards)
                for e in (0, 1):
                    order = shuffle(range(N), key(5, e, 1))
                    want = [where[g] for s in range(steps) for g in order[(s * world + rank) * 2:][:2]]
                    have = [(x["shard"], x["index"]) for b in got if b["epoch"] == e for x in b["samples"]]
                    check(have == want, f"world {world} rank {rank} epoch {e}: order differs from docs/loader.md")

        # 3. Resume: 3 steps an epoch (7 rank-batches of 3, the short 8th dropped, dealt to 2 ranks); cut after 4
        #    batches (mid-epoch 1), then seek from the JSON cursor.
        args = ["--batch", "3", "--seed", "11", "--world", "2", "--rank", "1", "--bucket", "6", "--mel",
                "--steps", "9", *shards]
        _, whole, _ = run(*args)
        _, cut, err = run("--resume-at", "4", *args)
        check(len(whole) == 9 and whole == cut, "a resumed stream equals the uninterrupted one")
        check('"epoch":1,"step":1' in err, f"cursor printed: {err.strip()}")
        _, budget, _ = run("--budget", "60", *shards)
        check(budget and all(len(b["samples"]) * max(x["cost"] for x in b["samples"]) <= 60 for b in budget),
              "token-budget batches respect the budget")

        # 4. Damaged shards stop the loader at open (or, for content, at the read) naming the file.
        bad = os.path.join(tmp, "bad.h5")
        write_shard(bad, data[0], version=2)
        rc, _, err = run("--batch", "2", shards[0], bad, expect_ok=False)
        check(rc == 1 and bad in err and "version 2" in err, f"version 2: rc={rc} {err.strip()}")
        shutil.copy(shards[1], bad)
        with open(bad, "r+b") as f:
            f.truncate(os.path.getsize(bad) * 2 // 3)
        rc, _, err = run("--batch", "2", shards[0], bad, expect_ok=False)
        check(rc == 1 and bad in err and "truncated" in err, f"truncated: rc={rc} {err.strip()}")
        broken = [dict(s) for s in data[1]]
        broken[6]["token_types"] = broken[6]["token_types"].copy()
        broken[6]["token_types"][0] = 7  # breaks a content rule: found when sample 6 is read
        write_shard(bad, broken)
        rc, _, err = run("--batch", "2", "--check-samples", shards[0], bad, expect_ok=False)
        check(rc == 1 and bad in err and "sample 6" in err, f"--check-samples: rc={rc} {err.strip()}")
        rc, out, err = run("--batch", "2", "--no-shuffle", shards[0], bad, expect_ok=False)
        check(rc == 1 and bad in err and "sample 6" in err and len(out) == 0, f"bad content at read: rc={rc} {err}")

    # 5. Throughput with log-mel, 10 s utterances, batches of 8 (the bench config consumes 8 samples a step,
    #    at >= 1 s a step on this CPU: the loader must give >= 80 samples/s).
    p = subprocess.run([TOOL, "--seconds", "2", "--threads", "1"], capture_output=True, text=True, timeout=120)
    check(p.returncode == 0, f"bench: {p.stderr.strip()}")
    for line in p.stdout.splitlines():
        r = json.loads(line)
        print(f"loader throughput: {r['samples_per_s']:.0f} samples/s (mel {'on' if r['mel'] else 'off'}, "
              f"{r['mel_threads']} thread) vs 80 needed", flush=True)
        if r["mel"] and r["samples_per_s"] < 80:
            print("WARNING: below 10x a bench step's consumption (a busy machine?)", flush=True)

    if failures:
        print(f"test_loader.py: {len(failures)} failures")
        return 1
    print("test_loader.py: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
