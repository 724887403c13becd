#include "bmm.h"
#include "gemm.h"

void bmm_forward_cpu(s2s_ctx *ctx, float *c, const float *a, const float *b, int64_t B, int64_t M, int64_t K,
                     int64_t N, bool trans_b) {
    for (int64_t i = 0; i < B; i++)
        gemm_cpu(ctx, false, trans_b, M, N, K, 1.0f, a + i * M * K, K, b + i * K * N, trans_b ? K : N, 0.0f,
                 c + i * M * N, N);
}

void bmm_backward_cpu(s2s_ctx *ctx, float *da, float *db, const float *dc, const float *a, const float *b,
                      int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b) {
    for (int64_t i = 0; i < B; i++) {
        const float *ai = a + i * M * K, *bi = b + i * K * N, *dci = dc + i * M * N;
        // da = dc @ b^T  (b [K,N]) or dc @ b (b [N,K])
        if (da) gemm_cpu(ctx, false, !trans_b, M, K, N, 1.0f, dci, N, bi, trans_b ? K : N, 1.0f, da + i * M * K, K);
        if (db) {
            if (trans_b) gemm_cpu(ctx, true, false, N, K, M, 1.0f, dci, N, ai, K, 1.0f, db + i * K * N, K);  // db[N,K] = dc^T a
            else gemm_cpu(ctx, true, false, K, N, M, 1.0f, ai, K, dci, N, 1.0f, db + i * K * N, N);          // db[K,N] = a^T dc
        }
    }
}
