// optim.h — AdamW over a parameter registry: the moments of every trainable parameter, the step
// count, and one call that clips the global gradient norm, updates and zeroes the gradients.
// (Sharding the moments across ranks, ZeRO-1, comes with the distributed trainer.)
#pragma once
#include "autograd/params.h"
#include "ops/ops.h"

typedef struct s2s_adam_state {
    float **m, **v;  // [n_params] moments (NULL for frozen parameters)
    int n;
    int64_t step;
    s2s_adamw_cfg cfg;  // lr is set per step
} s2s_adam_state;

// OpenS2S's recipe by default: betas 0.9 / 0.999, eps 1e-8, weight decay 0.05.
void s2s_adam_init(s2s_adam_state *s, const s2s_params *P);
void s2s_adam_free(s2s_adam_state *s);
// Clip to max_norm (<= 0: no clipping), AdamW-update every trainable parameter with lr, zero the grads.
// Returns the gradient norm before clipping.
double s2s_adam_step(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, float lr, double max_norm);
