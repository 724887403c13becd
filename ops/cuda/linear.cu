// linear.cu — y = x w^T + b on the GPU (mirrors ops/cpu/linear.c): GEMMs through gemm_cuda, the bias
// gradient as a deterministic two-pass column sum.
#include "common.cuh"

// y [N, M] = b broadcast over rows: the GEMM then adds onto it (beta = 1), as on the CPU.
static __global__ void bias_seed_kernel(float *y, const float *b, int64_t N, int64_t M) {
    GRID_STRIDE(i, N * M) y[i] = b[i % M];
}

extern "C" void linear_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *b, int64_t N,
                                    int64_t K, int64_t M) {
    if (b && N * M > 0) {
        bias_seed_kernel<<<cuda_blocks(N * M), CUDA_THREADS>>>(y, b, N, M);
        CUDA_LAUNCHED();
    }
    gemm_cuda(ctx, false, true, N, M, K, 1.0f, x, K, w, K, b ? 1.0f : 0.0f, y, M);  // y (+)= x [N,K] @ w[M,K]^T
}

extern "C" void linear_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                                     const float *w, int64_t N, int64_t K, int64_t M) {
    if (dx) gemm_cuda(ctx, false, false, N, K, M, 1.0f, dy, M, w, K, 1.0f, dx, K);  // dx [N,K] += dy @ w
    if (dw) gemm_cuda(ctx, true, false, M, K, N, 1.0f, dy, M, x, K, 1.0f, dw, K);   // dw [M,K] += dy^T @ x
    if (db) colsum_add(ctx, db, N, M, rows_of{dy, M});                              // db [M] += column sums of dy
}
