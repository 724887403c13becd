#!/usr/bin/env bash
# The demo: set-up (missing packages), build, then the main job on the embedded default.
# Until the training stages land, that job is `s2s demo`: a tiny Qwen3-style decoder trained on
# synthetic data through the whole foundation (ops, autograd, recompute, fused loss, AdamW).
set -euo pipefail
cd "$(dirname "$0")/.."
S2S_NO_PY=${S2S_NO_PY:-1} launch/deps.sh   # the demo needs no Python; tests/run.sh installs it
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
mkdir -p out
build/s2s demo --metrics out/demo_metrics.jsonl "$@"
echo "metrics: out/demo_metrics.jsonl (plot: python3 tools/plot_metrics.py out/demo_metrics.jsonl)"
