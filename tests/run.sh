#!/usr/bin/env bash
# The whole test suite: set-up (missing packages), build, then every test through ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
launch/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
cd build && ctest --output-on-failure -j"$(nproc)" "$@"
