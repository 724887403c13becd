#pragma once
#include "../../autograd/ctx.h"

// y [n] = silu(g) * u
void silu_mul_forward_cpu(float *y, const float *g, const float *u, int64_t n);
// dg += dy * u * silu'(g), du += dy * silu(g); either may be NULL.
void silu_mul_backward_cpu(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n);

// y [n] = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))  (exact GELU, torch's approximate='none')
void gelu_forward_cpu(float *y, const float *x, int64_t n);
// dx += dy * (Phi(x) + x * phi(x))
void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n);

// x viewed as [O, 2, H, I] (the GLU axis split into its two halves a = [:, 0], b = [:, 1]) ->
// y [O, H, I] = a * sigmoid(b).
void glu_forward_cpu(float *y, const float *x, int64_t O, int64_t H, int64_t I);
// dx [O, 2, H, I] += (dy * sigmoid(b), dy * a * sigmoid(b) * (1 - sigmoid(b)))
void glu_backward_cpu(float *dx, const float *dy, const float *x, int64_t O, int64_t H, int64_t I);
