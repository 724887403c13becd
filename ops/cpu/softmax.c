#include "softmax.h"

void softmax_forward_cpu(float *y, const float *x, int64_t N, int64_t V) {
    #pragma omp parallel for schedule(static) if (N * V > 32768)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * V;  // [V]
        float *yi = y + i * V;        // [V]
        float m = s2s_row_max(xi, V);
        float inv = (float)(1.0 / s2s_row_sumexp(xi, V, m));
        #pragma omp simd
        for (int64_t j = 0; j < V; j++) yi[j] = s2s_expf(xi[j] - m) * inv;
    }
}

void softmax_backward_cpu(float *dx, const float *dy, const float *y, int64_t N, int64_t V) {
    #pragma omp parallel for schedule(static) if (N * V > 32768)
    for (int64_t i = 0; i < N; i++) {
        const float *dyi = dy + i * V, *yi = y + i * V;  // [V]
        float *dxi = dx + i * V;                         // [V]
        // dx = y (dy - <dy, y>) cancels where y is peaked (dy_peak ~ <dy, y>): the dot and the difference stay in
        // f64, so only dx itself is rounded (an f32 dot rounded to f32 cost up to ~2e-5 of max |dx|).
        double dot = 0.0;
        #pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < V; j++) dot += (double)dyi[j] * (double)yi[j];
        #pragma omp simd
        for (int64_t j = 0; j < V; j++) dxi[j] += (float)((double)yi[j] * ((double)dyi[j] - dot));
    }
}
