#include "activations.h"
#include <math.h>

#define PAR_MIN 16384  // below this many elements a parallel region costs more than it saves

static inline float sigmoidf(float v) { return 1.0f / (1.0f + expf(-v)); }

void silu_mul_forward_cpu(float *y, const float *g, const float *u, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = g[i] * sigmoidf(g[i]) * u[i];
}

// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g)
void silu_mul_backward_cpu(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(g[i]);
        if (dg) dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        if (du) du[i] += dy[i] * g[i] * s;
    }
}

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT2PI 0.39894228040143267794f

void gelu_forward_cpu(float *y, const float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * INV_SQRT2));
}

void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n) {
    #pragma omp parallel for schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float cdf = 0.5f * (1.0f + erff(x[i] * INV_SQRT2));
        float pdf = INV_SQRT2PI * expf(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

void glu_forward_cpu(float *y, const float *x, int64_t O, int64_t H, int64_t I) {
    int64_t HI = H * I;
    // collapse: a channel GLU on [1, 2C, L] has O = 1, so the parallelism must come from H * I
    #pragma omp parallel for collapse(2) schedule(static) if (O * HI > PAR_MIN)
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < HI; j++) {
            const float *a = x + o * 2 * HI, *b = a + HI;  // [H, I] halves
            y[o * HI + j] = a[j] * sigmoidf(b[j]);
        }
}

void glu_backward_cpu(float *dx, const float *dy, const float *x, int64_t O, int64_t H, int64_t I) {
    int64_t HI = H * I;
    #pragma omp parallel for collapse(2) schedule(static) if (O * HI > PAR_MIN)
    for (int64_t o = 0; o < O; o++)
        for (int64_t j = 0; j < HI; j++) {
            const float *a = x + o * 2 * HI, *b = a + HI;  // [H, I] halves
            float *da = dx + o * 2 * HI, *db = da + HI;    // [H, I] halves
            float s = sigmoidf(b[j]), g = dy[o * HI + j];
            da[j] += g * s;
            db[j] += g * a[j] * s * (1.0f - s);
        }
}
