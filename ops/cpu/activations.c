#include "activations.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PAR_MIN 16384  // below this many elements a parallel region costs more than it saves

// libm's expf / erff are scalar calls (~10-30 ns each): an erf GELU over an encoder FFN activation
// [1500, 5120] took 230 ms that way. These two are branch-free, so `omp simd` loops vectorise them.

// e^x for x clamped to [-87.3, 88.3] (beyond, the result under- or overflows f32 anyway): 2^n * e^r with
// |r| <= ln2 / 2 (Cody-Waite split of ln 2), e^r by its degree-7 Taylor polynomial (truncation < 5e-9).
// Max error 1.3 ulp, measured on every 1e-4 step of [-87, 88] against double exp.
static inline float exp_simd(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);
    float t = x * 1.44269504088896341f + 12582912.0f;  // + 1.5 * 2^23 rounds to an integer in the low bits
    int32_t ti;
    memcpy(&ti, &t, sizeof ti);
    float n = t - 12582912.0f;
    float r = x - n * 0.693145751953125f;   // ln 2, high bits (exact product with n)
    r = r - n * 1.42860682030941723e-6f;    // ln 2, the rest
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t pi;
    memcpy(&pi, &p, sizeof pi);
    pi += (int32_t)((uint32_t)(ti - 0x4B400000) << 23);  // times 2^n, through the exponent field (n may be < 0:
                                                          // shifted unsigned, as a signed << of it is UB)
    memcpy(&p, &pi, sizeof p);
    return p;
}

// Phi(x) = 0.5 erfc(-x / sqrt 2), the standard normal CDF, with erfc from Numerical Recipes' erfcc (a
// Chebyshev fit with relative error < 1.2e-7 for every argument). Going through erfc keeps the lower
// tail's relative accuracy (0.5 (1 + erf) would cancel there). In f32: max error 1.8e-7 absolute (~3 ulp
// of Phi), measured on every 1e-5 step of [-14, 14] against double erfc; f64 evaluation would cut that to
// 1.1e-7 at twice the cost.
static inline float norm_cdf(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float half_erfc = 0.5f * t * exp_simd(p - z * z);  // 0.5 erfc(|x| / sqrt 2)
    return x < 0.0f ? half_erfc : 1.0f - half_erfc;
}

static inline float sigmoid_simd(float v) { return 1.0f / (1.0f + exp_simd(-v)); }

void silu_mul_forward_cpu(float *y, const float *g, const float *u, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = g[i] * sigmoid_simd(g[i]) * u[i];
}

// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g)
void silu_mul_backward_cpu(float *dg, float *du, const float *dy, const float *g, const float *u, int64_t n) {
    if (dg && du) {
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoid_simd(g[i]);
            dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
            du[i] += dy[i] * g[i] * s;
        }
    } else if (dg) {
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float s = sigmoid_simd(g[i]);
            dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        }
    } else if (du) {
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) du[i] += dy[i] * g[i] * sigmoid_simd(g[i]);
    }
}

#define INV_SQRT2PI 0.39894228040143267794f

void gelu_forward_cpu(float *y, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * norm_cdf(x[i]);
}

void gelu_backward_cpu(float *dx, const float *dy, const float *x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float pdf = INV_SQRT2PI * exp_simd(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (norm_cdf(x[i]) + x[i] * pdf);
    }
}

// GLU rows: o-th [H, I] output from the o-th pair of halves. Few long rows (a channel GLU on [1, 2C, L]
// has O = 1) parallelise inside the row; many rows parallelise over rows. Either way each output element
// is computed by exactly one thread with the same arithmetic.
static void glu_row_forward(float *y, const float *a, const float *b, int64_t n) {
    #pragma omp simd
    for (int64_t j = 0; j < n; j++) y[j] = a[j] * sigmoid_simd(b[j]);
}

static void glu_row_backward(float *da, float *db, const float *g, const float *a, const float *b, int64_t n) {
    #pragma omp simd
    for (int64_t j = 0; j < n; j++) {
        float s = sigmoid_simd(b[j]);
        da[j] += g[j] * s;
        db[j] += g[j] * a[j] * s * (1.0f - s);
    }
}

// Splits [0, n) into the calling thread's share.
static void thread_range(int64_t n, int64_t *j0, int64_t *j1) {
#ifdef _OPENMP
    int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
    int nt = 1, t = 0;
#endif
    *j0 = n * t / nt;
    *j1 = n * (t + 1) / nt;
}

void glu_forward_cpu(float *y, const float *x, int64_t O, int64_t H, int64_t I) {
    int64_t HI = H * I;  // x [O, 2, HI], y [O, HI]
    bool par = O * HI > PAR_MIN;
    if (O >= 8 || !par) {
        #pragma omp parallel for schedule(static) if (par)
        for (int64_t o = 0; o < O; o++) glu_row_forward(y + o * HI, x + o * 2 * HI, x + o * 2 * HI + HI, HI);
        return;
    }
    for (int64_t o = 0; o < O; o++) {
        #pragma omp parallel
        {
            int64_t j0, j1;
            thread_range(HI, &j0, &j1);
            glu_row_forward(y + o * HI + j0, x + o * 2 * HI + j0, x + o * 2 * HI + HI + j0, j1 - j0);
        }
    }
}

void glu_backward_cpu(float *dx, const float *dy, const float *x, int64_t O, int64_t H, int64_t I) {
    int64_t HI = H * I;  // x, dx [O, 2, HI], dy [O, HI]
    bool par = O * HI > PAR_MIN;
    if (O >= 8 || !par) {
        #pragma omp parallel for schedule(static) if (par)
        for (int64_t o = 0; o < O; o++)
            glu_row_backward(dx + o * 2 * HI, dx + o * 2 * HI + HI, dy + o * HI, x + o * 2 * HI, x + o * 2 * HI + HI,
                             HI);
        return;
    }
    for (int64_t o = 0; o < O; o++) {
        #pragma omp parallel
        {
            int64_t j0, j1;
            thread_range(HI, &j0, &j1);
            glu_row_backward(dx + o * 2 * HI + j0, dx + o * 2 * HI + HI + j0, dy + o * HI + j0, x + o * 2 * HI + j0,
                             x + o * 2 * HI + HI + j0, j1 - j0);
        }
    }
}
