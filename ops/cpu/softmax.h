// softmax.h — row softmax kernels, and the row primitives (max, sum of exponentials, a vectorisable
// exp) that the loss kernels (cross_entropy, cross_entropy_fused, kl) build on.
#pragma once
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "../../autograd/ctx.h"

// exp(x) for x <= 88, accurate to ~2 ulp, written so that GCC vectorises loops calling it (glibc's
// expf is a scalar call; the loss kernels take one exp per logit, ~10^8 per step at a 152k vocab).
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, Cephes minimax polynomial, 2^n from the
// exponent bits. Inputs below -87 are clamped: exp(-87) ~ 1.6e-38 is zero next to any row sum >= 1.
static inline float s2s_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;  // unsigned: a NaN input must not shift a negative
    float s;
    memcpy(&s, &bits, sizeof s);
    return p * s;
}

// max_j x[j], n >= 1. The simd reduction order is fixed at compile time: deterministic.
static inline float s2s_row_max(const float *x, int64_t n) {
    float m = x[0];
    #pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < n; j++) m = x[j] > m ? x[j] : m;
    return m;
}

// sum_j exp(x[j] - m): f32 lanes inside 1024-element pieces, f64 across pieces, so a 152k row
// keeps ~1e-7 relative accuracy.
static inline double s2s_row_sumexp(const float *x, int64_t n, float m) {
    double total = 0.0;
    for (int64_t j0 = 0; j0 < n; j0 += 1024) {
        int64_t j1 = j0 + 1024 < n ? j0 + 1024 : n;
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t j = j0; j < j1; j++) s += s2s_expf(x[j] - m);
        total += s;
    }
    return total;
}

// Running (max, sum of exp) of one row over successive blocks of its logits: after every block,
// sum = sum_j exp(z_j - max) over all logits seen so far. The log-sum-exp is max + log(sum).
typedef struct { float max; double sum; } s2s_online_lse;
static inline void s2s_online_lse_add(s2s_online_lse *o, const float *z, int64_t n) {
    float bm = s2s_row_max(z, n);
    float nm = bm > o->max ? bm : o->max;
    o->sum = o->sum * exp((double)o->max - (double)nm) + s2s_row_sumexp(z, n, nm);
    o->max = nm;
}
static inline float s2s_online_lse_get(const s2s_online_lse *o) { return o->max + (float)log(o->sum); }

// y [N, V] = softmax(x [N, V]) over the last dim.
void softmax_forward_cpu(float *y, const float *x, int64_t N, int64_t V);
// dx [N, V] += y * (dy - sum_j dy_j y_j), per row.
void softmax_backward_cpu(float *dx, const float *dy, const float *y, int64_t N, int64_t V);
