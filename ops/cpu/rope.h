// rope.h — Hugging Face rotate-half rotary position embedding on the CPU.
#pragma once
#include <stdint.h>
#include "../../autograd/ctx.h"

// y [T, H, D] = rope(x [T, H, D]) at positions pos [T], base theta.
void rope_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                      float theta);
// dx [T, H, D] += inverse rotation of dy [T, H, D].
void rope_backward_cpu(s2s_ctx *ctx, float *dx, const float *dy, const int32_t *pos, int64_t T, int64_t H, int64_t D,
                       float theta);
