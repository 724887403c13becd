#pragma once
#include "../../autograd/ctx.h"

// Per-row cross-entropy of logits [N, V]: loss [N] = lse - z[label] and lse [N] for rows whose
// label != ignore (labels already range-checked); ignored rows get loss 0.
void cross_entropy_forward_cpu(float *loss, float *lse, const float *logits, const int32_t *labels,
                               int32_t ignore, int64_t N, int64_t V);
// dlogits [N, V] += scale * (softmax(z) - onehot(label)) on rows whose label != ignore.
void cross_entropy_backward_cpu(float *dlogits, const float *logits, const float *lse, const int32_t *labels,
                                int32_t ignore, float scale, int64_t N, int64_t V);
