#include "avgpool1d.h"

// Rows (batch x channel) are independent; a thread owns whole rows, so overlapping windows
// (stride < k) add into dx in the same order for any thread count.

void avgpool1d_forward_cpu(float *y, const float *x, int64_t R, int64_t L, int64_t Lout, int k, int stride) {
    float inv = 1.0f / (float)k;
    #pragma omp parallel for schedule(static) if (R * L > 65536)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * L;  // [L]
        float *yr = y + r * Lout;     // [Lout]
        for (int64_t t = 0; t < Lout; t++) {
            float s = 0.0f;
            for (int j = 0; j < k; j++) s += xr[t * stride + j];
            yr[t] = s * inv;
        }
    }
}

void avgpool1d_backward_cpu(float *dx, const float *dy, int64_t R, int64_t L, int64_t Lout, int k, int stride) {
    float inv = 1.0f / (float)k;
    #pragma omp parallel for schedule(static) if (R * L > 65536)
    for (int64_t r = 0; r < R; r++) {
        float *dxr = dx + r * L;         // [L]
        const float *dyr = dy + r * Lout;  // [Lout]
        for (int64_t t = 0; t < Lout; t++) {
            float g = dyr[t] * inv;
            for (int j = 0; j < k; j++) dxr[t * stride + j] += g;
        }
    }
}
