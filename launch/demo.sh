#!/usr/bin/env bash
# The demo, the README's first command: set-up (missing packages), build, a small synthetic empathetic speech
# corpus (launch/demo-data.sh: espeak-ng voices as speakers and emotions, speech units from `s2s units`, shards for
# every stage), then OpenS2S's four training stages on the tiny model of configs/tiny/, each starting from the
# previous stage's run: stage 1 (adapter alignment + emotion head), 2a (TTS-LM pretraining), 2b (interleave, the
# LLM frozen), 3 (full fine-tuning). Stage 2b is interrupted with SIGTERM, as a SLURM preemption would, and resumed.
# Each stage must end with its loss below where it started; the curves go to DEMO_DIR/runs/<stage>/loss.svg.
#
#   launch/demo.sh                      everything, a few minutes on 2 cores
#   DEMO_DIR=/tmp/d DEMO_STEPS=10 launch/demo.sh      elsewhere / shorter (DEMO_STEPS: optimizer steps per stage)
#   S2S_BUILD=build-x launch/demo.sh                  another build directory
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${S2S_BUILD:-build}
if [ "${DEMO_NO_SETUP:-0}" != 1 ]; then  # (tests/launch/test_demo.py has its binary already)
  S2S_NO_PY=${S2S_NO_PY:-1} launch/deps.sh   # the demo needs no Python; tests/run.sh installs it
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" >/dev/null
fi
S2S=$BUILD/s2s
DEMO=${DEMO_DIR:-demo}
STEPS=${DEMO_STEPS:-}
t0=$(date +%s)

echo "== demo data: $DEMO/data"
S2S=$S2S launch/demo-data.sh "$DEMO/data"
rm -rf "$DEMO/runs"

# The first and last training loss of a run's metrics.jsonl (plain shell: the demo needs no Python).
losses() { grep -o '"loss": [-0-9.e+]*' "$1/metrics.jsonl" | sed 's/"loss": //'; }

prev=""
for stage in stage1 stage2a stage2b stage3; do
  run="$DEMO/runs/$stage"
  sets=(--set "run.dir=$run" --set "data.train=[$DEMO/data/$stage]" --set "data.valid=[$DEMO/data/$stage-valid]")
  [ -n "$prev" ] && sets+=(--set "model.init=$prev")
  [ -n "$STEPS" ] && sets+=(--set "train.max_steps=$STEPS" --set "eval.every=$(( (STEPS + 1) / 2 ))")
  echo "== $stage: build/s2s train --config configs/tiny/$stage.yaml ${sets[*]}"
  if [ "$stage" = stage2b ]; then
    # Preempt it after a few steps: SIGTERM finishes the step, writes a checkpoint and exits 0 ...
    "$S2S" train --config "configs/tiny/$stage.yaml" "${sets[@]}" &
    pid=$!
    until [ -f "$run/metrics.jsonl" ] && [ "$(losses "$run" | wc -l)" -ge 3 ]; do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid"
    echo "== $stage: preempted after $(losses "$run" | wc -l) steps; resuming (--resume auto)"
    # ... and --resume auto continues as if nothing had happened.
    "$S2S" train --config "configs/tiny/$stage.yaml" "${sets[@]}" --resume auto
  else
    "$S2S" train --config "configs/tiny/$stage.yaml" "${sets[@]}"
  fi
  first=$(losses "$run" | head -1)
  last=$(losses "$run" | tail -1)
  "$S2S" plot "$run" --out "$run/loss.svg"
  if awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }'; then
    echo "== $stage: loss $first -> $last"
  else
    echo "demo: $stage's loss did not fall ($first -> $last); see $run/metrics.jsonl" >&2
    exit 1
  fi
  prev="$run"
done

# ---- the trained model: exported, asked, evaluated ------------------------------------------------------------------
exp="$DEMO/export"
echo "== export: build/s2s export --ckpt $prev --out $exp --dtype f32 --force"
"$S2S" export --ckpt "$prev" --out "$exp" --dtype f32 --force
q="$DEMO/data/audio/user/s0_004.wav"  # a held-out utterance (every 5th sentence is held out)
echo "== chat: build/s2s chat --model $exp --audio $q"
printf 'reply: '
"$S2S" chat --model "$exp" --audio "$q" --max-new 32 --tts-max-new 96 --units-out "$DEMO/reply.units"
echo "reply units ($(wc -l <"$DEMO/reply.units")): $(head -24 "$DEMO/reply.units" | tr '\n' ' ')..."
echo "== eval: build/s2s eval --model $exp --data $DEMO/data/stage3-valid"
"$S2S" eval --model "$exp" --data "$DEMO/data/stage3-valid" --json --quiet | tee "$DEMO/eval.json"
echo "== demo done in $(( $(date +%s) - t0 )) s: runs under $DEMO/runs/ (loss curves: $DEMO/runs/*/loss.svg), the export in $exp"
