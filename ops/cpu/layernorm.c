#include "layernorm.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// Two-pass statistics (mean, then sum of squared deviations): the row is in cache for the second
// pass, and it avoids the cancellation of E[x^2] - E[x]^2 on rows with a large mean.
void layernorm_forward_cpu(float *y, float *stats, const float *x, const float *w, const float *b, int64_t N,
                           int64_t C, float eps) {
    #pragma omp parallel for schedule(static) if (N * C > 32768)
    for (int64_t i = 0; i < N; i++) {
        const float *xi = x + i * C;  // [C]
        float *yi = y + i * C;        // [C]
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t c = 0; c < C; c++) s += xi[c];
        float mean = s / (float)C, v = 0.0f;
        #pragma omp simd reduction(+ : v)
        for (int64_t c = 0; c < C; c++) v += (xi[c] - mean) * (xi[c] - mean);
        float r = 1.0f / sqrtf(v / (float)C + eps);
        stats[2 * i] = mean;
        stats[2 * i + 1] = r;
        if (b) {
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) yi[c] = (xi[c] - mean) * r * w[c] + b[c];
        } else {
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) yi[c] = (xi[c] - mean) * r * w[c];
        }
    }
}

// With xh = (x - mean) * r and g = dy * w:  dx = r * (g - mean(g) - xh * mean(g * xh)),
// dw = sum_rows dy * xh, db = sum_rows dy. Two row sums, then one pass for dx and the partials.
void layernorm_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, const float *stats, int64_t N, int64_t C) {
    // With one column xh is exactly 0 (x - mean(x) = 0) and the output is the constant b: dx is
    // exactly 0, while the general formula would hand back f32 rounding noise of size rstd * ulp(g).
    if (C == 1) dx = NULL;
    if (!dx && !dw && !db) return;
#ifdef _OPENMP
    int max_t = omp_get_max_threads();
#else
    int max_t = 1;
#endif
    bool par = N * C > 32768;
    if (!par) max_t = 1;
    bool red = dw || db;
    float *part = red ? s2s_scratch_alloc(ctx, (size_t)max_t * 2 * C * sizeof(float)) : NULL;  // [max_t, 2, C]
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
        float *pw = red ? part + (int64_t)t * 2 * C : NULL, *pb = red ? pw + C : NULL;  // [C] each
        if (red) memset(pw, 0, (size_t)2 * C * sizeof(float));
        for (int64_t i = i0; i < i1; i++) {
            const float *xi = x + i * C, *gi = dy + i * C;  // [C] each
            float mean = stats[2 * i], r = stats[2 * i + 1];
            if (dx) {
                float sg = 0.0f, sgx = 0.0f;
                #pragma omp simd reduction(+ : sg, sgx)
                for (int64_t c = 0; c < C; c++) {
                    float g = gi[c] * w[c];
                    sg += g;
                    sgx += g * (xi[c] - mean);
                }
                float mg = sg / (float)C, mgx = sgx * r / (float)C;  // mean(g), mean(g * xh)
                float *di = dx + i * C;                               // [C]
                if (red) {
                    #pragma omp simd
                    for (int64_t c = 0; c < C; c++) {
                        float xh = (xi[c] - mean) * r;
                        di[c] += r * (gi[c] * w[c] - mg - xh * mgx);
                        pw[c] += gi[c] * xh;
                        pb[c] += gi[c];
                    }
                } else {
                    #pragma omp simd
                    for (int64_t c = 0; c < C; c++) {
                        float xh = (xi[c] - mean) * r;
                        di[c] += r * (gi[c] * w[c] - mg - xh * mgx);
                    }
                }
            } else {
                #pragma omp simd
                for (int64_t c = 0; c < C; c++) {
                    pw[c] += gi[c] * ((xi[c] - mean) * r);
                    pb[c] += gi[c];
                }
            }
        }
    }
    if (!red) return;
    #pragma omp parallel for schedule(static) if (par)
    for (int64_t c = 0; c < C; c++) {
        float sw = 0.0f, sb = 0.0f;
        for (int t = 0; t < nt_used; t++) {
            sw += part[(int64_t)t * 2 * C + c];
            sb += part[(int64_t)t * 2 * C + C + c];
        }
        if (dw) dw[c] += sw;
        if (db) db[c] += sb;
    }
}
