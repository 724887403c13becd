"""The native build against an AVX2-only one (-DS2S_MARCH=x86-64-v3, what a cluster whose login and compute nodes
differ is told to use), one thread each: CPU attention forward + backward (bench_ops) and the 30 s log-mel (s2s mel
--bench). tests/isa/test_isa.py checks that the x86-64-v3 build's results are right; this prints its speed, as a
timing depends on what else the machine runs. The regression it watches for: 64-byte GCC vectors on an AVX2 target
kept in memory ran attention 20x and log-mel 5x slower; the x86-64-v3 build should be within 2x of native.

usage: python3 bench/bench_isa.py BUILD_DIR [--rounds N]   (bench/run.sh --isa; it builds BUILD_DIR/isa-x86-64-v3,
the tree tests/isa/test_isa.py uses)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 3
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
V3 = os.path.join(BUILD, "isa-x86-64-v3")
TARGET = 2.0  # x86-64-v3 time / native time
ONE = dict(os.environ, OMP_NUM_THREADS="1")
ATTN = ["attention", "1", "768", "4", "4", "64", "0"]  # 768 tokens, 4 heads, D 64, bidirectional


def attention_ms(build):
    r = subprocess.run([os.path.join(build, "bench", "bench_ops"), *ATTN], capture_output=True, text=True, env=ONE,
                       check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])["ms"]


def mel_ms(build, wav):
    r = subprocess.run([os.path.join(build, "s2s"), "mel", "--audio", wav, "--out", wav + ".st", "--pad30", "--bench",
                        "40"], capture_output=True, text=True, env=ONE, check=True)
    return float(r.stdout.split()[1])


def row(name, fn):
    native = v3 = float("inf")
    for _ in range(ROUNDS):  # alternating, so that both builds see the same drift of the machine's speed
        native = min(native, fn(BUILD))
        v3 = min(v3, fn(V3))
    ratio = v3 / native
    print(f"| {name} | {native:.2f} | {v3:.2f} | {ratio:.2f} | <= {TARGET:g}{'' if ratio <= TARGET else ' MISSED'} |")


def main():
    with open("/proc/cpuinfo") as f:
        flags = next((l for l in f if l.startswith("flags")), "").split()
    if not {"avx2", "fma", "bmi2"} <= set(flags):
        print("isa: this CPU cannot run x86-64-v3 code: nothing to compare")
        return
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        if "S2S_MARCH:STRING=x86-64-v3" in f.read():
            print("isa: this build is x86-64-v3 already: nothing to compare")
            return
    subprocess.run(["cmake", "-S", ROOT, "-B", V3, "-DCMAKE_BUILD_TYPE=Release", "-DS2S_MARCH=x86-64-v3",
                    "-DS2S_CUDA=OFF"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", V3, "-j", str(os.cpu_count() or 2), "--target", "s2s", "bench_ops"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"native vs x86-64-v3 build, one thread, best of {ROUNDS} alternating rounds (ms); ratio = v3 / native")
    print("| case | native | x86-64-v3 | ratio | target |")
    print("|---|---|---|---|---|")
    row("attention fwd+bwd, 768 tokens, 4 heads, D 64", attention_ms)
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        x = np.cumsum(np.random.default_rng(3).standard_normal(480000)).astype(np.float32)
        sf.write(wav, (0.5 * x / np.abs(x).max()).astype(np.float32), 16000, subtype="FLOAT")
        row("log-mel, 30 s", lambda b: mel_ms(b, wav))


if __name__ == "__main__":
    main()
