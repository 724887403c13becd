"""launch/demo.sh, shortened: a small corpus (2 speakers x 12 sentences) and 12 steps per stage, from the built
binary. Every stage must run (stage 2b preempted with SIGTERM and resumed), and each training loss must fall by a
stated margin: the mean of the last 3 logged losses below the first by at least 1% (stage 1, whose adapter-only
objective and emotion head move slowly) or 5% (2a, 2b, 3); the held-out loss of the last evaluation must be below
the first's. Every stage leaves its loss.svg.

Run by ctest as: python3 tests/launch/test_demo.py S2S_BINARY BUILD_DIR (from the repository root).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BUILD = os.path.abspath(sys.argv[2] if len(sys.argv) > 2 else "build")
TMP = tempfile.mkdtemp(prefix="s2s_demo_")
MARGIN = {"stage1": 0.01, "stage2a": 0.05, "stage2b": 0.05, "stage3": 0.05}
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAILED ") + what)
    if not cond:
        failures.append(what)


env = dict(os.environ, S2S_BUILD=BUILD, DEMO_NO_SETUP="1", DEMO_DIR=TMP, DEMO_STEPS="12", DEMO_SPEAKERS="2",
           DEMO_SENTENCES="12", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
p = subprocess.run(["launch/demo.sh"], capture_output=True, text=True, env=env, timeout=1200)
check(p.returncode == 0, f"launch/demo.sh exits 0 {p.stderr[-1500:] if p.returncode else ''}")
check("preempted after" in p.stdout and "resuming" in p.stderr, "stage 2b is preempted and resumed")
for stage, margin in MARGIN.items():
    run = os.path.join(TMP, "runs", stage)
    mp = os.path.join(run, "metrics.jsonl")
    if not os.path.exists(mp):
        check(False, f"{stage}: metrics.jsonl written")
        continue
    rows = [json.loads(l) for l in open(mp)]
    loss = [r["loss"] for r in rows if "loss" in r]
    ev = [r["eval_loss"] for r in rows if "eval_loss" in r]
    tail = sum(loss[-3:]) / 3
    check(len(loss) == 12 and tail < loss[0] * (1 - margin),
          f"{stage}: loss {loss[0]:.4f} -> {tail:.4f} (mean of the last 3), needs a {margin:.0%} drop")
    check(len(ev) >= 2 and ev[-1] < ev[0], f"{stage}: held-out loss {ev[0]:.4f} -> {ev[-1]:.4f}" if ev else
          f"{stage}: held-out rows")
    check(os.path.getsize(os.path.join(run, "loss.svg")) > 0, f"{stage}: loss.svg")
# The end of the demo: the stage-3 checkpoint exported, a held-out utterance answered, the held-out set evaluated.
exp = os.path.join(TMP, "export")
check(all(os.path.exists(os.path.join(exp, f)) for f in ("config.json", "model.safetensors", "tokenizer.json",
                                                        "tts/tokenizer.json", "audio/preprocessor_config.json")),
      "the stage-3 checkpoint is exported in OpenS2S's layout")
units_file = os.path.join(TMP, "reply.units")
units = [int(x) for x in open(units_file).read().split()] if os.path.exists(units_file) else []
check(len(units) > 0 and all(0 <= u < 16384 for u in units) and "reply: " in p.stdout,
      f"s2s chat answers a held-out utterance: {len(units)} units")
ej = os.path.join(TMP, "eval.json")
ev3 = [json.loads(l)["eval_loss"] for l in open(os.path.join(TMP, "runs", "stage3", "metrics.jsonl"))
       if "eval_loss" in l]
if os.path.exists(ej) and ev3:
    e = json.load(open(ej))
    check(abs(e["loss"] - ev3[-1]) < 1e-4 * abs(ev3[-1]),
          f"s2s eval on the held-out shards gives the trainer's last held-out loss: {e['loss']:.6f} vs {ev3[-1]:.6f}")
else:
    check(False, "s2s eval wrote its result")
shutil.rmtree(TMP, ignore_errors=True)
print("test_demo:", "FAILED" if failures else "ok", f"({len(failures)} failures)")
sys.exit(1 if failures else 0)
