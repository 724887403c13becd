#pragma once
#include <stdbool.h>
#include "../../autograd/ctx.h"

// c [B, M, N] = a [B, M, K] @ b [B, K, N]   (b [B, N, K] when trans_b)
void bmm_forward_cpu(s2s_ctx *ctx, float *c, const float *a, const float *b, int64_t B, int64_t M, int64_t K,
                     int64_t N, bool trans_b);
void bmm_backward_cpu(s2s_ctx *ctx, float *da, float *db, const float *dc, const float *a, const float *b,
                      int64_t B, int64_t M, int64_t K, int64_t N, bool trans_b);
