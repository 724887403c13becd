// gemm.h — the one place CPU GEMMs go through (cblas, OpenBLAS), so every call is counted.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../../autograd/ctx.h"

// Row-major C[M,N] = alpha * op(A)[M,K] @ op(B)[K,N] + beta * C, op = transpose when ta / tb.
void gemm_cpu(s2s_ctx *ctx, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
