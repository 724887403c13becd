#pragma once
#include "../../autograd/ctx.h"

// y [N, C] = (x - mean) * rstd * w + b with the biased variance (torch.nn.LayerNorm); b may be NULL.
// stats [N, 2] keeps (mean, rstd) of every row for backward.
void layernorm_forward_cpu(float *y, float *stats, const float *x, const float *w, const float *b, int64_t N,
                           int64_t C, float eps);
// Accumulates into whichever of dx [N, C], dw [C], db [C] is non-NULL, in one fused pass over the rows;
// dw/db from per-thread partial rows summed in thread order (deterministic for a fixed thread count).
void layernorm_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, const float *stats, int64_t N, int64_t C);
