// adamw.h — CPU fused AdamW step (ops/adamw.c dispatches to it).
#pragma once
#include <stdbool.h>
#include <stdint.h>

// The per-step scalars, formed on the host in f64 (as PyTorch forms them in Python floats) and then
// rounded to f32 once, as PyTorch does when it hands a Python scalar to an f32 tensor op.
typedef struct adamw_scalars {
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float decay_factor;  // 1 - lr * weight_decay (1 when the parameter takes no decay)
    float step_size;     // lr / (1 - beta1^step)
    float bc2_sqrt;      // sqrt(1 - beta2^step)
    float eps;
} adamw_scalars;

// p, m, v [n] updated in place from g [n].
void adamw_update_cpu(float *p, const float *g, float *m, float *v, int64_t n, adamw_scalars s);
