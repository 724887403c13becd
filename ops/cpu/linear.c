#include "linear.h"
#include "gemm.h"

void linear_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *b, int64_t N,
                        int64_t K, int64_t M) {
    if (b) {  // seed y with the bias so the GEMM adds onto it (beta = 1)
        #pragma omp parallel for schedule(static) if (N * M > 32768)
        for (int64_t i = 0; i < N; i++)
            for (int64_t j = 0; j < M; j++) y[i * M + j] = b[j];
    }
    gemm_cpu(ctx, false, true, N, M, K, 1.0f, x, K, w, K, b ? 1.0f : 0.0f, y, M);
}

void linear_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t N, int64_t K, int64_t M) {
    if (dx) gemm_cpu(ctx, false, false, N, K, M, 1.0f, dy, M, w, K, 1.0f, dx, K);   // dx += dy @ w
    if (dw) gemm_cpu(ctx, true, false, M, K, N, 1.0f, dy, M, x, K, 1.0f, dw, K);    // dw += dy^T @ x
    if (db) {
        // Column sums; threads own disjoint columns and walk rows in order: deterministic.
        #pragma omp parallel for schedule(static) if (N * M > 32768)
        for (int64_t j = 0; j < M; j++) {
            float s = 0.0f;
            for (int64_t i = 0; i < N; i++) s += dy[i * M + j];
            db[j] += s;
        }
    }
}
