#!/usr/bin/env bash
# Build and run the benchmarks against PyTorch / Hugging Face on this machine, each in one run: the ops
# (bench_torch.py, same thread count), then the data path (bench_data.py: log-mel, tokenizer, loader).
# usage: bench/run.sh [--threads N] [--quick] [--ops | --data]
set -euo pipefail
cd "$(dirname "$0")/.."
launch/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_ops bench_loader s2s >/dev/null
what=both
args=()
for a in "$@"; do
  case "$a" in
    --ops) what=ops ;;
    --data) what=data ;;
    *) args+=("$a") ;;
  esac
done
if [ "$what" != data ]; then python3 bench/bench_torch.py build/bench/bench_ops "${args[@]+"${args[@]}"}"; fi
if [ "$what" != ops ]; then python3 bench/bench_data.py build; fi
