// loss_rows.cuh — row primitives shared by the softmax and loss kernels (softmax.cu, cross_entropy.cu,
// cross_entropy_fused.cu, kl.cu): one block per row, fixed-order block reductions (deterministic),
// f32 per thread and f64 across threads (the CPU's s2s_row_sumexp keeps f64 across 1024-pieces).
#pragma once
#include "common.cuh"

// Block-wide max; every thread of the block must call it; all get the result.
static __device__ inline float block_max_f(float v) {
    __shared__ float sh[32];
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    if (wid == 0) {
        v = lane < nw ? sh[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) sh[0] = v;
    }
    __syncthreads();
    return sh[0];
}

// max_j z[j], n >= 1 (block-wide).
static __device__ inline float row_max_dev(const float *z, int64_t n) {
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, z[j]);
    return block_max_f(m);
}

// sum_j exp(z[j] - m) (block-wide): f32 per thread, f64 across threads.
static __device__ inline double row_sumexp_dev(const float *z, int64_t n, float m) {
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(z[j] - m);
    return block_sum<double>((double)s);
}

// Threads for a row kernel over n columns (a multiple of 32, at most 1024).
static inline int loss_row_threads(int64_t n) { return n >= 8192 ? 1024 : row_threads(n); }
