#pragma once
#include "../../autograd/ctx.h"

// y [N, C] = x * rsqrt(mean(x^2) + eps) * w (Hugging Face Qwen3RMSNorm, all f32); rstd [N] keeps the
// per-row rsqrt for backward.
void rmsnorm_forward_cpu(float *y, float *rstd, const float *x, const float *w, int64_t N, int64_t C, float eps);
// Accumulates into whichever of dx [N, C], dw [C] is non-NULL, in one fused pass over the rows.
// dw: per-thread partial rows summed in thread order (deterministic for a fixed thread count);
// the partials live in ctx's arena.
void rmsnorm_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const float *rstd, int64_t N, int64_t C);
