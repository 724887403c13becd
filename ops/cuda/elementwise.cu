// elementwise.cu — add (trailing-dims broadcast), mul and scale on the GPU (mirrors
// ops/cpu/elementwise.c). The broadcast add's gradient is a two-pass f64 column sum (no atomics).
#include "common.cuh"

static __global__ void add_forward_kernel(float *y, const float *a, const float *b, int64_t R, int64_t M) {
    GRID_STRIDE(i, R * M) y[i] = a[i] + b[i % M];  // y [R, M] = a + b [M] over rows
}
static __global__ void add_into_kernel(float *dst, const float *src, int64_t n) { GRID_STRIDE(i, n) dst[i] += src[i]; }
static __global__ void mul_forward_kernel(float *y, const float *a, const float *b, int64_t n) {
    GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}
// d += dy * o. Called once per operand, so mul(x, x) (da == db) adds both shares, as on the CPU.
static __global__ void mul_grad_kernel(float *d, const float *dy, const float *o, int64_t n) {
    GRID_STRIDE(i, n) d[i] += dy[i] * o[i];
}
static __global__ void scale_forward_kernel(float *y, const float *a, float s, int64_t n) {
    GRID_STRIDE(i, n) y[i] = s * a[i];
}
static __global__ void scale_backward_kernel(float *da, const float *dy, float s, int64_t n) {
    GRID_STRIDE(i, n) da[i] += s * dy[i];
}

extern "C" void add_forward_cuda(s2s_ctx *ctx, float *y, const float *a, const float *b, int64_t R, int64_t M) {
    if (R * M == 0) return;
    add_forward_kernel<<<cuda_blocks(R * M), CUDA_THREADS>>>(y, a, b, R, M);
    CUDA_LAUNCHED();
}

extern "C" void add_into_cuda(s2s_ctx *ctx, float *dst, const float *src, int64_t n) {
    if (n == 0) return;
    add_into_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dst, src, n);
    CUDA_LAUNCHED();
}

extern "C" void add_rows_into_cuda(s2s_ctx *ctx, float *db, const float *dy, int64_t R, int64_t M) {
    colsum_add(ctx, db, R, M, rows_of{dy, M});  // db [M] += sum over rows of dy [R, M]
}

extern "C" void mul_forward_cuda(s2s_ctx *ctx, float *y, const float *a, const float *b, int64_t n) {
    if (n == 0) return;
    mul_forward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(y, a, b, n);
    CUDA_LAUNCHED();
}

extern "C" void mul_backward_cuda(s2s_ctx *ctx, float *da, float *db, const float *dy, const float *a, const float *b,
                                  int64_t n) {
    if (n == 0) return;
    if (da) {
        mul_grad_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(da, dy, b, n);
        CUDA_LAUNCHED();
    }
    if (db) {
        mul_grad_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(db, dy, a, n);
        CUDA_LAUNCHED();
    }
}

extern "C" void scale_forward_cuda(s2s_ctx *ctx, float *y, const float *a, float s, int64_t n) {
    if (n == 0) return;
    scale_forward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(y, a, s, n);
    CUDA_LAUNCHED();
}

extern "C" void scale_backward_cuda(s2s_ctx *ctx, float *da, const float *dy, float s, int64_t n) {
    if (n == 0 || !da) return;
    scale_backward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(da, dy, s, n);
    CUDA_LAUNCHED();
}
