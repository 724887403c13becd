// bmm.cu — batched matrix product (torch.bmm) on the GPU (mirrors ops/cpu/bmm.c): one strided-batched
// cuBLASLt call per product instead of the CPU's loop over the batch.
#include "common.cuh"

// c [B, M, N] = a [B, M, K] @ b [B, K, N]   (b [B, N, K] when trans_b)
extern "C" void bmm_forward_cuda(s2s_ctx *ctx, float *c, const float *a, const float *b, int64_t B, int64_t M,
                                 int64_t K, int64_t N, bool trans_b) {
    gemm_batched_cuda(ctx, false, trans_b, M, N, K, 1.0f, a, K, M * K, b, trans_b ? K : N, K * N, 0.0f, c, N, M * N,
                      B);
}

extern "C" void bmm_backward_cuda(s2s_ctx *ctx, float *da, float *db, const float *dc, const float *a, const float *b,
                                  int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b) {
    // da [B, M, K] += dc @ b^T  (b [K, N]) or dc @ b  (b [N, K])
    if (da)
        gemm_batched_cuda(ctx, false, !trans_b, M, K, N, 1.0f, dc, N, M * N, b, trans_b ? K : N, K * N, 1.0f, da, K,
                          M * K, B);
    if (db) {
        if (trans_b)  // db [B, N, K] += dc^T a
            gemm_batched_cuda(ctx, true, false, N, K, M, 1.0f, dc, N, M * N, a, K, M * K, 1.0f, db, K, K * N, B);
        else          // db [B, K, N] += a^T dc
            gemm_batched_cuda(ctx, true, false, K, N, M, 1.0f, a, K, M * K, dc, N, M * N, 1.0f, db, N, K * N, B);
    }
}
