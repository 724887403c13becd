"""The hand-vectorised kernels on an AVX2-only build (-DS2S_MARCH=x86-64-v3, what a cluster whose login and compute
nodes differ is told to use): CPU attention passes its PyTorch conformance test there, and the log-mel equals the
native build's within float rounding. The failure where 64-byte GCC vectors on an AVX2 target were split and kept in
memory (attention 20x and log-mel 5x slower, with correct results) is caught without a clock: GCC's
-Wvector-operation-performance on the x86-64-v3 compile of every source with generic vectors must say nothing.
The speed itself is bench/bench_isa.py's (bench/run.sh --isa: both builds' times and the ratio); a test asserts
no time, as a timing depends on what else the machine runs.

usage: python3 tests/isa/test_isa.py S2S_BINARY BUILD_DIR   (from the repository root; ctest does this)
"""
import json
import os
import shlex
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
    r = subprocess.run([binary, "mel", "--audio", wav, "--out", out, "--pad30"], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    check(r.returncode == 0, f"{binary} mel exits 0 ({r.stderr.strip()})")
    return load_file(out)["mel"]


def lowered_vectors(tmp):
    """GCC's -Wvector-operation-performance on the x86-64-v3 build's own compile commands, for each source with
    GCC generic vectors: a vector wider than the target's registers (the 64-byte vectors that ran attention 20x and
    log-mel 5x slower on AVX2) is expanded piecewise, and GCC says so. A compiler's verdict, not a timing."""
    with open(os.path.join(V3, "compile_commands.json")) as f:
        entries = json.load(f)
    n, planted = 0, None
    for e in entries:
        src = e["file"]
        if not src.endswith(".c") or not os.path.exists(src):
            continue
        with open(src, errors="replace") as f:
            if "vector_size" not in f.read():
                continue
        args = shlex.split(e["command"]) if "command" in e else list(e["arguments"])
        i = args.index("-o")
        args[i + 1] = os.path.join(tmp, "lowered.o")
        r = subprocess.run(args + ["-Wvector-operation-performance", "-Wno-psabi"], cwd=e["directory"],
                           capture_output=True, text=True)
        warned = [l for l in r.stderr.splitlines() if "vector-operation-performance" in l]
        why = warned[0] if warned else r.stderr.strip()[-200:] if r.returncode else ""
        check(r.returncode == 0 and not warned, f"x86-64-v3: GCC expands no vector operation of "
                                                f"{os.path.relpath(src, ROOT)} piecewise" + (f" ({why})" if why else ""))
        n += 1
        planted = ([os.path.join(tmp, "wide.c") if a == src else a for a in args], e["directory"])
    check(n >= 2, f"the generic-vector sources were found in compile_commands.json ({n}; attention.c, logmel.c)")
    if planted:  # the planted error: the 64-byte vector of the regression, under the same flags, must be flagged
        with open(os.path.join(tmp, "wide.c"), "w") as f:
            f.write("typedef float v16 __attribute__((vector_size(64)));\n"
                    "void f(float *p) { *(v16 *)p = *(v16 *)p * *(v16 *)p + *(v16 *)p; }\n")
        r = subprocess.run(planted[0] + ["-Wvector-operation-performance", "-Wno-psabi"], cwd=planted[1],
                           capture_output=True, text=True)
        check("vector-operation-performance" in r.stderr, "mutant '64-byte generic vector' is caught by the same "
                                                           "compile flags")


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
                    "-DS2S_CUDA=OFF", "-DCMAKE_EXPORT_COMPILE_COMMANDS=ON"], check=True, stdout=subprocess.DEVNULL)
    r = subprocess.run(["cmake", "--build", V3, "-j", str(os.cpu_count() or 2), "--target", "opcheck", "s2s"],
                       capture_output=True, text=True)
    tail = f" ({r.stderr.strip()[-300:]})" if r.returncode else ""
    check(r.returncode == 0, "x86-64-v3 build of opcheck and s2s" + tail)
    if r.returncode:
        sys.exit(1)

    # attention: the op's own conformance test (forward, gradients, planted errors) against this build's opcheck
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "ops", "test_attention.py"),
                        os.path.join(V3, "tests", "opcheck")], capture_output=True, text=True,
                       cwd=os.path.join(ROOT, "tests", "ops"))
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
    check(r.returncode == 0, f"x86-64-v3 attention against PyTorch: {last}")

    # log-mel: 30 s of noise-like audio through both builds
    with tempfile.TemporaryDirectory() as tmp:
        lowered_vectors(tmp)
        wav = os.path.join(tmp, "x.wav")
        rng = np.random.default_rng(3)
        x = np.cumsum(rng.standard_normal(480000)).astype(np.float32)
        sf.write(wav, (0.5 * x / np.abs(x).max()).astype(np.float32), 16000, subtype="FLOAT")
        m_native = mel(S2S, wav, os.path.join(tmp, "n.st"))
        m_v3 = mel(os.path.join(V3, "s2s"), wav, os.path.join(tmp, "v.st"))
        d = float(np.abs(m_native - m_v3).max())
        check(d <= 1e-6, f"x86-64-v3 log-mel equals the native build's (max diff {d:.1e})")
    if failures:
        print(f"\n{len(failures)} failure(s)")
        sys.exit(1)
    print("\nall ISA checks passed")


if __name__ == "__main__":
    main()
