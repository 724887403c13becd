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
        double dot = 0.0;  // f64 across 1024-pieces, as in s2s_row_sumexp
        for (int64_t j0 = 0; j0 < V; j0 += 1024) {
            int64_t j1 = j0 + 1024 < V ? j0 + 1024 : V;
            float s = 0.0f;
            #pragma omp simd reduction(+ : s)
            for (int64_t j = j0; j < j1; j++) s += dyi[j] * yi[j];
            dot += s;
        }
        float d = (float)dot;
        #pragma omp simd
        for (int64_t j = 0; j < V; j++) dxi[j] += yi[j] * (dyi[j] - d);
    }
}
