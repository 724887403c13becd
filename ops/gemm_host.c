// gemm_host.c — the public entry to the CPU GEMM for host arrays outside the tape (see ops.h), so layers above
// ops/ never include ops/cpu/ internals.
#include "cpu/gemm.h"
#include "ops.h"

void s2s_gemm_host(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                   int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    gemm_cpu(ctx, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
