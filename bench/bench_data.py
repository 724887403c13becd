"""The data path against Hugging Face on this machine, in one run: log-mel (s2s mel vs transformers'
WhisperFeatureExtractor(128) on the same audio, one thread each and at the default thread count), tokenizer
encoding (s2s tokenize vs HF tokenizers, single thread, the LLM's text and the TTS's units) and the loader
(samples/s with log-mel, bench_loader). Each ratio is printed with its target, MISSED where it falls short; a
timing never fails a run (the tests assert results only).

usage: python3 bench/bench_data.py BUILD_DIR [--rounds N]   (bench/run.sh runs it after the op benchmarks)
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf
import soxr
import torch
from tokenizers import Tokenizer
from transformers import WhisperFeatureExtractor

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
S2S = os.path.join(BUILD, "s2s")
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
FE = WhisperFeatureExtractor(feature_size=128)
SR, CHUNK = 16000, 480000


def fastest(fn, n):
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return min(t)


def hf_mel(x):  # as OpenS2S calls it: padded to whole 30 s chunks
    return FE(x, sampling_rate=SR, max_length=-(-len(x) // CHUNK) * CHUNK, return_tensors="np").input_features


def s2s_mel_ms(path, threads):
    r = subprocess.run([S2S, "mel", "--audio", path, "--out", path + ".st", "--bench", "60"], capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS=str(threads)), check=True)
    f = r.stdout.split()
    return float(f[1]), f[-1]


def mel_rows(tmp):
    wav = os.path.join(tmp, "espeak.wav")
    subprocess.run(["espeak-ng", "-w", wav, "Speech language models listen and answer with empathy. The weather "
                    "today is sunny, and tomorrow brings rain across the northern hills."], check=True)
    y, sr = sf.read(wav, dtype="float32")
    speech = soxr.resample(y, sr, SR, quality="soxr_hq").astype(np.float32)
    rng = np.random.default_rng(0)
    tiled = np.tile(speech, -(-CHUNK // len(speech)))[:CHUNK]
    # The targets (transformers / s2s per core, higher is better; printed, never enforced): transformers always
    # transforms the whole padded 30 s, s2s the audio only, so the ratio falls with the length: >= 10x up to ~20 s,
    # 30 s of dense audio ~7x (double-precision FFT; see data/logmel.c). tests/data/test_mel.py asserted these once.
    noise = (rng.standard_normal(CHUNK) * 0.1).astype(np.float32)
    cases = [("speech, %.1f s" % (len(speech) / SR), speech, 10), ("speech, 15 s", tiled[:15 * SR], 10),
             ("speech, 30 s", tiled, 5), ("white noise, 30 s", noise, 5)]
    threads = torch.get_num_threads()
    print(f"log-mel: s2s mel vs transformers WhisperFeatureExtractor(128), best of alternating rounds (ms)")
    print(f"| audio | 1 thread: transformers | s2s | ratio | target | {threads} threads: transformers | s2s | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, x, floor in cases:
        path = os.path.join(tmp, name.replace(" ", "").replace(",", "_") + ".wav")
        sf.write(path, x, SR, subtype="FLOAT")
        row = []
        for t in (1, threads):
            torch.set_num_threads(t)
            ref = ours = float("inf")
            for _ in range(ROUNDS):  # alternating, so that both sides see the same drift of the machine's speed
                ref = min(ref, fastest(lambda: hf_mel(x), 6) * 1e3)
                ms, plan = s2s_mel_ms(path, t)
                ours = min(ours, ms)
            row += [f"{ref:.2f}", f"{ours:.3f}", f"{ref / ours:.1f}x"]
            if t == 1:
                row.append(f">= {floor}x" + ("" if ref / ours >= floor else " MISSED"))
        torch.set_num_threads(threads)
        print(f"| {name} | " + " | ".join(row) + " |")
    print(f"(s2s FFT plan: {plan})")


def tokenizer_row(tmp, name, tokdir, text):
    """s2s tokenize --bench against HF tokenizers' encode, single thread; the target is >= 1x (printed, never
    enforced; tests/data/test_tokenizer.py asserted it once)."""
    path = os.path.join(tmp, "bench.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    hf = Tokenizer.from_file(os.path.join(tokdir, "tokenizer.json"))
    hf.encode(text)  # warm its word cache, as s2s's first pass warms its own
    n = len(hf.encode(text).ids)
    hf_tps = n / fastest(lambda: hf.encode(text), 3)
    out = subprocess.run([S2S, "tokenize", "--tokenizer", tokdir, "--file", path, "--bench"], capture_output=True,
                         text=True, check=True).stdout.split()
    ours = float(dict(zip(out[::2], out[1::2]))["tokens_per_s"])
    print(f"tokenizer, {name} ({len(text.encode()) / 1e6:.2f} MB, single thread): s2s {ours / 1e6:.2f} M tokens/s, "
          f"HF tokenizers {hf_tps / 1e6:.2f} M tokens/s -> {ours / hf_tps:.1f}x (target >= 1x"
          f"{')' if ours >= hf_tps else ') MISSED'}")


def tokenizer_rows(tmp):
    here = os.path.dirname(os.path.abspath(__file__))
    configs = os.path.join(here, "..", "configs", "tiny")
    with open(os.path.join(here, "..", "tests", "data", "tokenizer_corpus.txt"), encoding="utf-8") as f:
        base = f.read()
    print()
    tokenizer_row(tmp, "configs/tiny/tokenizer, the test corpus", os.path.join(configs, "tokenizer"),
                  (base + "\n") * max(1, 300_000 // len(base.encode())))
    tokenizer_row(tmp, "configs/tiny/tts-tokenizer, 20000 speech units", os.path.join(configs, "tts-tokenizer"),
                  "".join(f"<|audio_{(i * 7919) % 16384}|>" for i in range(20000)))


def loader_rows():
    exe = os.path.join(BUILD, "bench", "bench_loader")
    if not os.path.exists(exe):
        print("\nloader: build the bench_loader target first")
        return
    print("\nloader (bench_loader: batches of 8, 10 s audio, log-mel on a background thread):")
    r = subprocess.run([exe, "--seconds", "3"], capture_output=True, text=True, check=True)
    for line in r.stdout.splitlines():
        if line.startswith("{"):
            print("  " + line)


def main():
    for tool in ("espeak-ng",):
        if not shutil.which(tool):
            sys.exit(f"{tool} not found (launch/deps.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        mel_rows(tmp)
        tokenizer_rows(tmp)
    loader_rows()


if __name__ == "__main__":
    main()
