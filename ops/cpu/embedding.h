#pragma once
#include "../../autograd/ctx.h"

// y [N, C] = w[ids[n]]
void embedding_forward_cpu(float *y, const int32_t *ids, const float *w, int64_t N, int64_t C);
// dw[ids[n]] += dy[n]; threads own column ranges and walk tokens in order: deterministic.
void embedding_backward_cpu(float *dw, const float *dy, const int32_t *ids, int64_t N, int64_t C);
