#!/usr/bin/env bash
# The GPU check, one script: build with CUDA (build-gpu/), then
#   1. every CUDA op forward and backward against its CPU twin (ctest -R gpu: tests/gpu/test_gpu_*.c),
#   2. `s2s train` of every stage on the GPU against the CPU, and a GPU resume bit for bit (tests/gpu/train_gpu.py),
#   3. a training benchmark on the GPU (tokens/s, TFLOP/s, MFU; train_gpu.py's last part), and the ops against
#      PyTorch CUDA (bench/bench_torch.py --cuda: attention against cuDNN's fused attention, target 1.3x).
# 2 ranks through NCCL need two GPUs (NCCL refuses two ranks on one device). Not yet here: bf16 mixed precision.
# Exits non-zero on any mismatch; prints a summary table at the end.
# usage: tests/gpu/run.sh [--peak-tflops P]      (what has never run on a GPU: tests/gpu/README.md)
set -uo pipefail
cd "$(dirname "$0")/../.."
launch/deps.sh
if ! nvidia-smi -L >/dev/null 2>&1; then echo "tests/gpu/run.sh: no GPU visible (nvidia-smi -L)"; exit 77; fi
nvidia-smi -L
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DS2S_CUDA=ON >/dev/null || exit 1
cmake --build build-gpu -j"$(nproc)" || exit 1
status=0
(cd build-gpu && ctest --output-on-failure -R '^gpu\.') 2>&1 | tee /tmp/s2s_gpu_ops.txt || status=1
python3 tests/gpu/train_gpu.py build-gpu/s2s "$@" 2>&1 | tee /tmp/s2s_gpu_train.txt || status=1
# the ops against PyTorch CUDA (bf16 autocast; attention against cuDNN's fused attention, target 1.3x)
python3 bench/bench_torch.py build-gpu/bench/bench_ops --cuda 2>&1 | tee /tmp/s2s_gpu_ops_bench.txt
echo
echo "== summary =="
grep -E "tests passed|tests failed|Passed|Failed|\*\*\*" /tmp/s2s_gpu_ops.txt | sed 's/^/ops: /'
sed -n '/^| result/,$p' /tmp/s2s_gpu_train.txt
grep '^bench:' /tmp/s2s_gpu_train.txt
tail -n 8 /tmp/s2s_gpu_ops_bench.txt
exit $status
