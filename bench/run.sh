#!/usr/bin/env bash
# Build and run the benchmarks against PyTorch / Hugging Face on this machine, each in one run: the ops
# (bench_torch.py, same thread count), the data path (bench_data.py: log-mel, tokenizer, loader), the x86-64-v3
# build against the native one (bench_isa.py: attention, log-mel), then one training step of a small OmniSpeech
# (bench_train.py: stage 3 and stage 2b, s2s train vs the PyTorch reference). Each prints both times and the ratio
# against its target; a missed target is printed, never an exit status (the tests assert results only).
# usage: bench/run.sh [--threads N] [--quick] [--ops | --data | --isa | --train | --dist]
# --dist: data parallelism under mpirun (bench_dist.py: step split, per-rank memory, all-reduce bandwidth); not part
# of a plain run.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_ops bench_loader s2s >/dev/null
if [ "${1:-}" = --dist ]; then
  cmake --build build -j"$(nproc)" --target bench_comm >/dev/null
  exec python3 bench/bench_dist.py build
fi
what=all
args=()
for a in "$@"; do
  case "$a" in
    --ops) what=ops ;;
    --data) what=data ;;
    --isa) what=isa ;;
    --train) what=train ;;
    *) args+=("$a") ;;
  esac
done
if [ "$what" = all ] || [ "$what" = ops ]; then
  python3 bench/bench_torch.py build/bench/bench_ops "${args[@]+"${args[@]}"}"
fi
if [ "$what" = all ] || [ "$what" = data ]; then python3 bench/bench_data.py build; fi
if [ "$what" = all ] || [ "$what" = isa ]; then python3 bench/bench_isa.py build; fi
if [ "$what" = all ] || [ "$what" = train ]; then python3 bench/bench_train.py build "${args[@]+"${args[@]}"}"; fi
