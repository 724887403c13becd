#include "rmsnorm.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// Row sums use `omp simd` reductions: the lane split is fixed at compile time, so the order of
// additions (and the result) does not depend on the run, only on the binary.
static inline float row_dot(const float *a, const float *b, int64_t n) {
    float s = 0.0f;
    #pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < n; c++) s += a[c] * b[c];
    return s;
}

static inline float row_dot3(const float *a, const float *b, const float *d, int64_t n) {
    float s = 0.0f;
    #pragma omp simd reduction(+ : s)
    for (int64_t c = 0; c < n; c++) s += a[c] * b[c] * d[c];
    return s;
}

void rmsnorm_forward_cpu(float *y, float *rstd, const float *x, const float *w, int64_t N, int64_t C, float eps) {
    #pragma omp parallel for schedule(static) if (N * C > 32768)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * C;  // [C]
        float *yi = y + i * C;        // [C]
        float r = 1.0f / sqrtf(row_dot(xi, xi, C) / (float)C + eps);
        rstd[i] = r;
        #pragma omp simd
        for (int64_t c = 0; c < C; c++) yi[c] = w[c] * (xi[c] * r);
    }
}

// With xh = x * r and g = dy * w:  dx = r * (g - xh * mean(g * xh)) = r * g - x * (r^3 * mean(g * x)),
//                                  dw = sum_rows dy * xh.
// One dot product per row, then one pass that writes dx and the dw partial together.
void rmsnorm_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, const float *dy, const float *x, const float *w,
                          const float *rstd, int64_t N, int64_t C) {
    if (!dx && !dw) return;
#ifdef _OPENMP
    int max_t = omp_get_max_threads();
#else
    int max_t = 1;
#endif
    bool par = N * C > 32768;
    if (!par) max_t = 1;
    float *part = dw ? s2s_scratch_alloc(ctx, (size_t)max_t * C * sizeof(float)) : NULL;  // [max_t, C]
    int nt_used = 1;
    #pragma omp parallel if (par)
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        int nt = 1, t = 0;
#endif
        #pragma omp single
        nt_used = nt;
        int64_t i0 = N * t / nt, i1 = N * (t + 1) / nt;  // this thread's rows: a fixed split
        float *pw = part ? part + (int64_t)t * C : NULL;   // [C]
        if (pw) memset(pw, 0, (size_t)C * sizeof(float));
        for (int64_t i = i0; i < i1; i++) {
            const float *xi = x + i * C, *gi = dy + i * C;  // [C] each
            float r = rstd[i];
            if (dx) {
                float k = r * r * r * row_dot3(gi, w, xi, C) / (float)C;
                float *di = dx + i * C;  // [C]
                if (pw) {
                    #pragma omp simd
                    for (int64_t c = 0; c < C; c++) {
                        di[c] += r * gi[c] * w[c] - k * xi[c];
                        pw[c] += gi[c] * (xi[c] * r);
                    }
                } else {
                    #pragma omp simd
                    for (int64_t c = 0; c < C; c++) di[c] += r * gi[c] * w[c] - k * xi[c];
                }
            } else {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) pw[c] += gi[c] * (xi[c] * r);
            }
        }
    }
    if (!dw) return;
    // Partials summed in thread order; threads own disjoint columns here.
    #pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < C; c++) {
        float s = 0.0f;
        for (int t = 0; t < nt_used; t++) s += part[(int64_t)t * C + c];
        dw[c] += s;
    }
}
