"""The device a command runs on (`device` in a recipe, `--device` on train and forward): cpu, or cuda with one GPU
per rank. Where no GPU is usable, cuda is refused before anything is loaded, with the reason: a CUDA build that
sees no GPU says so (with the CUDA runtime's reason), a build without CUDA says how to get one; an unknown device
is named. (Runs on a GPU are tests/gpu/run.sh's.)

Run by ctest as: python3 tests/train/test_device.py S2S_BINARY BUILD_DIR.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

S2S = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/s2s")
BUILD = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build")
TMP = tempfile.mkdtemp(prefix="s2s_device_")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


cache = open(os.path.join(BUILD, "CMakeCache.txt")).read()
cuda_build = re.search(r"^S2S_CUDA:BOOL=ON", cache, re.M) is not None
gpu = cuda_build and shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0
if gpu:
    print("a GPU is visible: the refusals cannot be shown here (tests/gpu/run.sh runs the GPU path)")
    sys.exit(77)

run_dir = os.path.join(TMP, "run")
recipe = os.path.join(TMP, "r.yaml")
json.dump({"stage": "stage3", "model": {"init": os.path.join(TMP, "no-model-needed")}, "data": {"train": [TMP]},
           "train": {"max_steps": 1}, "run": {"dir": run_dir}}, open(recipe, "w"))
want = "sees no GPU" if cuda_build else "built without CUDA"


def refused(p):
    return p.returncode != 0 and "device cuda: " in p.stderr and want in p.stderr


p = subprocess.run([S2S, "train", "--config", recipe, "--device", "cuda"], capture_output=True, text=True, timeout=60)
check(refused(p) and not os.path.exists(os.path.join(run_dir, "checkpoints", "latest")),
      f"s2s train --device cuda without a usable GPU: exit {p.returncode}, {p.stderr.strip()[-200:]!r}")
p = subprocess.run([S2S, "train", "--config", recipe, "--set", "device=cuda"], capture_output=True, text=True, timeout=60)
check(refused(p), "the recipe key device: cuda is refused the same way")
p = subprocess.run([S2S, "train", "--config", recipe, "--device", "tpu"], capture_output=True, text=True, timeout=60)
check(p.returncode != 0 and "--device tpu: cpu or cuda" in p.stderr, f"an unknown device is named: {p.stderr.strip()!r}")
p = subprocess.run([S2S, "train", "--config", recipe, "--set", "device=tpu"], capture_output=True, text=True, timeout=60)
check(p.returncode != 0 and "'device' must be cpu or cuda" in p.stderr, f"and in the recipe: {p.stderr.strip()!r}")
p = subprocess.run([S2S, "train", "--config", recipe, "--print-config"], capture_output=True, text=True, timeout=60)
check(p.returncode == 0 and re.search(r"^device: cpu$", p.stdout, re.M), "the default is device: cpu")
p = subprocess.run([S2S, "forward", "--model", TMP, "--inputs", "x", "--out", "y", "--device", "cuda"],
                   capture_output=True, text=True, timeout=60)
check(refused(p), f"s2s forward --device cuda likewise: {p.stderr.strip()[-160:]!r}")

shutil.rmtree(TMP, ignore_errors=True)
print("test_device:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
