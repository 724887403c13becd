"""The shipped recipes and the recipe documentation.

Run by ctest as: python3 tests/train/test_recipes.py S2S_BINARY BUILD_DIR (from the repository root).
- every configs/*/stage*.yaml is a valid recipe (`s2s train --print-config`), of the stage its name says, and the
  tiny ones name files that exist;
- docs/training.md holds the key table exactly as `s2s train --keys` prints it (the table in train/recipe.c is
  the one list, so the manual cannot drift from it);
- a bad recipe names the key and the file.
"""
import glob
import os
import subprocess
import sys
import tempfile

S2S = sys.argv[1] if len(sys.argv) > 1 else "build/s2s"
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


def effective(path, *sets):
    p = subprocess.run([S2S, "train", "--config", path, *sets, "--print-config"], capture_output=True, text=True,
                       timeout=60)
    return p


recipes = sorted(glob.glob("configs/*/stage*.yaml"))
check(len(recipes) == 8, f"8 shipped recipes: {recipes}")
for r in recipes:
    p = effective(r)
    stage = os.path.splitext(os.path.basename(r))[0]
    check(p.returncode == 0 and f"stage: {stage}\n" in p.stdout, f"{r}: a valid {stage} recipe {p.stderr.strip()}")
    if "/tiny/" in r and p.returncode == 0:
        paths = [l.split(":", 1)[1].strip() for l in p.stdout.splitlines()
                 if l.strip().startswith(("config:", "tokenizer:", "tts_tokenizer:"))]
        missing = [x for x in paths if x and x != '""' and not os.path.exists(x)]
        check(not missing, f"{r}: names existing files {paths}")

keys = subprocess.run([S2S, "train", "--keys"], capture_output=True, text=True, timeout=60).stdout.strip()
doc = open("docs/training.md").read()
check(keys and keys in doc, "docs/training.md holds the `s2s train --keys` table verbatim")

with tempfile.TemporaryDirectory() as d:
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("stage: stage3\noptim:\n  lrr: 1\n")
    p = effective(bad)
    check(p.returncode != 0 and "optim.lrr" in p.stderr and "bad.yaml" in p.stderr,
          f"an unknown key is named with its file: {p.stderr.strip()}")
    p = effective(recipes[0], "--set", "optim.clip=abc")
    check(p.returncode != 0 and "optim.clip" in p.stderr, f"a mistyped --set value is named: {p.stderr.strip()}")
    p = effective(recipes[0], "--set", "stage=stage9")
    check(p.returncode != 0 and "stage" in p.stderr, f"an unknown stage is refused: {p.stderr.strip()}")

print("test_recipes:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
