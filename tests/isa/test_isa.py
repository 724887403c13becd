"""The hand-vectorised kernels on an AVX2-only build (-DS2S_MARCH=x86-64-v3, what a cluster whose login and compute
nodes differ is told to use): CPU attention passes its PyTorch conformance test there and runs within 2x of the
native build's time, and the log-mel equals the native build's within float rounding, also within 2x of its time. Guards the failure where 64-byte GCC vectors on an
AVX2 target were kept in memory: attention ran 20x and log-mel 5x slower, with correct results.

usage: python3 tests/isa/test_isa.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from safetensors.numpy import load_file

S2S, BUILD = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
V3 = os.path.join(BUILD, "isa-x86-64-v3")
failures = []


def check(cond, what):
    print(("ok:   " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures.append(what)


def mel(binary, wav, out):
    r = subprocess.run([binary, "mel", "--audio", wav, "--out", out, "--pad30", "--bench", "40"], capture_output=True,
                       text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    check(r.returncode == 0, f"{binary} mel exits 0 ({r.stderr.strip()})")
    return load_file(out)["mel"], float(r.stdout.split()[1])


def main():
    with open("/proc/cpuinfo") as f:
        flags = next((l for l in f if l.startswith("flags")), "").split()
    if not {"avx2", "fma", "bmi2"} <= set(flags):
        print("this CPU cannot run x86-64-v3 code: nothing to compare")
        return
    with open(os.path.join(BUILD, "CMakeCache.txt")) as f:
        if "S2S_MARCH:STRING=x86-64-v3" in f.read():
            print("this build is x86-64-v3 already: nothing to compare")
            return
    subprocess.run(["cmake", "-S", ROOT, "-B", V3, "-DCMAKE_BUILD_TYPE=Release", "-DS2S_MARCH=x86-64-v3",
                    "-DS2S_CUDA=OFF"], check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run(["cmake", "--build", V3, "-j", str(os.cpu_count() or 2), "--target", "opcheck", "s2s",
                        "bench_ops"], capture_output=True, text=True)
    tail = f" ({r.stderr.strip()[-300:]})" if r.returncode else ""
    check(r.returncode == 0, "x86-64-v3 build of opcheck, s2s and bench_ops" + tail)
    if r.returncode:
        sys.exit(1)

    # attention: the op's own conformance test (forward, gradients, planted errors) against this build's opcheck
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "ops", "test_attention.py"),
                        os.path.join(V3, "tests", "opcheck")], capture_output=True, text=True,
                       cwd=os.path.join(ROOT, "tests", "ops"))
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
    check(r.returncode == 0, f"x86-64-v3 attention against PyTorch: {last}")

    # attention speed: forward + backward, one thread, best of the bench's runs, both builds
    times = []
    for b in (BUILD, V3):
        r = subprocess.run([os.path.join(b, "bench", "bench_ops"), "attention", "1", "768", "4", "4", "64", "0"],
                           capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        times.append(json.loads(r.stdout.strip().splitlines()[-1])["ms"] if r.returncode == 0 else float("inf"))
    check(times[1] <= 2.0 * times[0], f"x86-64-v3 attention within 2x of the native build ({times[1]:.1f} vs "
                                      f"{times[0]:.1f} ms, 768 tokens, 4 heads, D 64)")

    # log-mel: 30 s of noise-like audio through both builds
    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "x.wav")
        rng = np.random.default_rng(3)
        x = np.cumsum(rng.standard_normal(480000)).astype(np.float32)
        sf.write(wav, (0.5 * x / np.abs(x).max()).astype(np.float32), 16000, subtype="FLOAT")
        m_native, t_native = mel(S2S, wav, os.path.join(tmp, "n.st"))
        m_v3, t_v3 = mel(os.path.join(V3, "s2s"), wav, os.path.join(tmp, "v.st"))
        d = float(np.abs(m_native - m_v3).max())
        check(d <= 1e-6, f"x86-64-v3 log-mel equals the native build's (max diff {d:.1e})")
        check(t_v3 <= 2.0 * t_native, f"x86-64-v3 log-mel within 2x of the native build ({t_v3:.2f} vs "
                                      f"{t_native:.2f} ms for 30 s)")
    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\nall ISA checks passed")


if __name__ == "__main__":
    main()
