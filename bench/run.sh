#!/usr/bin/env bash
# Build and run the benchmarks against PyTorch / Hugging Face on this machine, each in one run: the ops
# (bench_torch.py, same thread count), the data path (bench_data.py: log-mel, tokenizer, loader), then one training
# step of a small OmniSpeech (bench_train.py: stage 3 and stage 2b, s2s train vs the PyTorch reference).
# usage: bench/run.sh [--threads N] [--quick] [--ops | --data | --train]
set -euo pipefail
cd "$(dirname "$0")/.."
launch/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_ops bench_loader s2s >/dev/null
what=all
args=()
for a in "$@"; do
  case "$a" in
    --ops) what=ops ;;
    --data) what=data ;;
    --train) what=train ;;
    *) args+=("$a") ;;
  esac
done
if [ "$what" = all ] || [ "$what" = ops ]; then python3 bench/bench_torch.py build/bench/bench_ops "${args[@]+"${args[@]}"}"; fi
if [ "$what" = all ] || [ "$what" = data ]; then python3 bench/bench_data.py build; fi
if [ "$what" = all ] || [ "$what" = train ]; then python3 bench/bench_train.py build "${args[@]+"${args[@]}"}"; fi
