// avgpool1d.cu — nn.AvgPool1d(k, stride) over the last axis on the GPU (mirrors ops/cpu/avgpool1d.c).
// Backward gathers: each dx element sums the windows that cover it in window order, so overlapping
// windows (stride < k) need no atomics and add in the CPU's order.
#include "common.cuh"

static __global__ void avgpool1d_forward_kernel(float *y, const float *x, int64_t R, int64_t L, int64_t Lout, int k,
                                                int stride) {
    float inv = 1.0f / (float)k;
    GRID_STRIDE(i, R * Lout) {
        int64_t r = i / Lout, t = i % Lout;
        const float *xr = x + r * L + t * stride;  // the window [k]
        float s = 0.0f;
        for (int j = 0; j < k; j++) s += xr[j];
        y[i] = s * inv;
    }
}

static __global__ void avgpool1d_backward_kernel(float *dx, const float *dy, int64_t R, int64_t L, int64_t Lout, int k,
                                                 int stride) {
    float inv = 1.0f / (float)k;
    GRID_STRIDE(i, R * L) {
        int64_t r = i / L, l = i % L;
        // windows t with t*stride <= l < t*stride + k
        int64_t lo = l - k + 1 <= 0 ? 0 : (l - k + 1 + stride - 1) / stride;
        int64_t hi = l / stride < Lout - 1 ? l / stride : Lout - 1;
        float acc = dx[i];
        for (int64_t t = lo; t <= hi; t++) acc += dy[r * Lout + t] * inv;
        dx[i] = acc;
    }
}

extern "C" void avgpool1d_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t R, int64_t L, int64_t Lout,
                                       int k, int stride) {
    if (R * Lout == 0) return;
    avgpool1d_forward_kernel<<<cuda_blocks(R * Lout), CUDA_THREADS>>>(y, x, R, L, Lout, k, stride);
    CUDA_LAUNCHED();
}

extern "C" void avgpool1d_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, int64_t R, int64_t L, int64_t Lout,
                                        int k, int stride) {
    if (R * L == 0) return;
    avgpool1d_backward_kernel<<<cuda_blocks(R * L), CUDA_THREADS>>>(dx, dy, R, L, Lout, k, stride);
    CUDA_LAUNCHED();
}
