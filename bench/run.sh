#!/usr/bin/env bash
# Build and run the op benchmarks against PyTorch on this machine (same thread count, one run).
# usage: bench/run.sh [--threads N] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
launch/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target bench_ops >/dev/null
python3 bench/bench_torch.py build/bench/bench_ops "$@"
