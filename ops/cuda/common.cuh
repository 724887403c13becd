// common.cuh — what every ops/cuda/*.cu file shares: the error-check macros, the per-context CUDA
// state, launch sizes, deterministic block reductions and the two-pass column sum. Internal to
// ops/cuda (C++); the C side sees only kernels.h.
//
// Streams: every kernel, copy and GEMM runs on the legacy default stream (0). autograd's device
// memory calls (cudaMemcpy / cudaMemset in autograd/device_cuda.cu) run there too, so all work is
// ordered without events; arena memory released by a rewind can be reused by the next launch
// because that launch queues behind the previous reader.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

// check.h spells its no-return attribute the C11 way; C++ has its own spelling.
#ifndef _Noreturn
#define _Noreturn [[noreturn]]
#endif
extern "C" {
#include "../../autograd/arena.h"
#include "../../autograd/check.h"
#include "../../autograd/ctx.h"
#include "kernels.h"
}

#define CUDA_CHECK(call)                                                                              \
    do {                                                                                              \
        cudaError_t e_ = (call);                                                                      \
        if (e_ != cudaSuccess) {                                                                      \
            fprintf(stderr, "s2s: CUDA error at %s:%d: %s (%s)\n  hint: an illegal address usually "  \
                            "means a shape or index mismatch upstream (rerun with "                   \
                            "CUDA_LAUNCH_BLOCKING=1 to pin it to the launch); out of memory: lower "  \
                            "the batch or check nvidia-smi for other processes\n",                    \
                    __FILE__, __LINE__, cudaGetErrorString(e_), #call);                               \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

#define CUBLAS_CHECK(call)                                                                            \
    do {                                                                                              \
        cublasStatus_t s_ = (call);                                                                   \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                            \
            fprintf(stderr, "s2s: cuBLAS error at %s:%d: status %d (%s)\n  hint: status 7/13 is an "   \
                            "unsupported shape, layout or alignment for this GPU; 3 is out of GPU "   \
                            "memory; 1 means the handle was never created (no GPU?)\n",               \
                    __FILE__, __LINE__, (int)s_, #call);                                              \
            exit(1);                                                                                  \
        }                                                                                             \
    } while (0)

// After a kernel launch: launch-configuration errors surface here, at the launching line.
#define CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())

// Per-context CUDA state, created on a context's first CUDA op (ctx_cuda.cu) and freed by
// s2s_ctx_free through ctx->cuda_free.
struct s2s_cuda_state {
    cublasLtHandle_t lt;
    cublasHandle_t blas;  // fallback when cuBLASLt's heuristic offers no algorithm for a layout
    void *ws;             // cuBLASLt workspace [ws_bytes], persistent: no malloc per GEMM
    size_t ws_bytes;
    s2s_gemm_mode gemm_mode;
    int *flag;            // device int [1]: first failing position of an index check (INT_MAX: none)
};
s2s_cuda_state *cuda_state(s2s_ctx *ctx);

// ---- launch sizes ------------------------------------------------------------------------------------
#define CUDA_THREADS 256
// Grid for an elementwise kernel over n items with grid-stride loops (capped: the loop covers the rest).
static inline unsigned cuda_blocks(int64_t n) {
    int64_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    if (b < 1) b = 1;
    if (b > 65535LL * 16) b = 65535LL * 16;
    return (unsigned)b;
}
#define GRID_STRIDE(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

// ---- deterministic block reductions ---------------------------------------------------------------
// Warp shuffles then one warp over the warp sums: the pairing is fixed by blockDim, so the result is
// the same bit for bit on every run. Every thread of the block must call it; all get the sum.
template <typename T>
__device__ inline T block_sum(T v) {
    __shared__ T sh[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : (T)0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// Threads per block for a row-per-block kernel over rows of C elements (a multiple of 32).
static inline int row_threads(int64_t C) { return C >= 2048 ? 512 : C >= 512 ? 256 : C >= 128 ? 128 : 64; }

// ---- column sums without atomics ------------------------------------------------------------------
// dst[c] += sum over r < R of f(r, c), for gradient reductions over rows (bias, norm weights). Pass 1:
// the rows are cut into a fixed number of chunks (a function of R only) and each thread sums one
// column of one chunk in row order, in f64. Pass 2: each column's chunk partials are added in chunk
// order and rounded to f32 once. No atomics: the same bits on every run.
template <class F>
__global__ void colsum_partial_kernel(double *part, int64_t R, int64_t C, int64_t rows_per_chunk, F f) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t k = blockIdx.y;
    if (c >= C) return;
    int64_t r0 = k * rows_per_chunk, r1 = r0 + rows_per_chunk < R ? r0 + rows_per_chunk : R;
    double s = 0.0;
    for (int64_t r = r0; r < r1; r++) s += (double)f(r, c);
    part[k * C + c] = s;  // [nchunk, C]
}

// Defined here, static: without relocatable device code a kernel is launchable only from its own file.
static __global__ void colsum_finish_kernel(float *dst, const double *part, int64_t nchunk, int64_t C) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int64_t k = 0; k < nchunk; k++) s += part[k * C + c];
    dst[c] += (float)s;
}

template <class F>
void colsum_add(s2s_ctx *ctx, float *dst, int64_t R, int64_t C, F f) {
    if (R <= 0 || C <= 0) return;
    int64_t nchunk = (R + 15) / 16;
    if (nchunk > 512) nchunk = 512;  // bounds the partials to 512 x C doubles
    int64_t rows_per_chunk = (R + nchunk - 1) / nchunk;
    nchunk = (R + rows_per_chunk - 1) / rows_per_chunk;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    double *part = (double *)s2s_scratch_alloc(ctx, (size_t)(nchunk * C) * sizeof(double));  // [nchunk, C]
    dim3 grid((unsigned)((C + 127) / 128), (unsigned)nchunk);
    colsum_partial_kernel<<<grid, 128>>>(part, R, C, rows_per_chunk, f);
    CUDA_LAUNCHED();
    colsum_finish_kernel<<<(unsigned)((C + 127) / 128), 128>>>(dst, part, nchunk, C);
    CUDA_LAUNCHED();
    s2s_arena_rewind(ctx->cur, mark);
}

// Row-major [R, C] read: the plain column-sum operand (bias gradients).
struct rows_of {
    const float *p;  // [R, C]
    int64_t C;
    __device__ float operator()(int64_t r, int64_t c) const { return p[r * C + c]; }
};
