#pragma once
#include "../../autograd/ctx.h"

// y [N, M] = x [N, K] @ w[M, K]^T + b [M]
void linear_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *b, int64_t N,
                        int64_t K, int64_t M);
// Accumulates into whichever of dx [N, K], dw [M, K], db [M] is non-NULL.
void linear_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, int64_t N, int64_t K, int64_t M);
