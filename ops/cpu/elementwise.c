#include "elementwise.h"

#define PAR_MIN 32768  // below this many elements a parallel region costs more than it saves

void add_forward_cpu(float *y, const float *a, const float *b, int64_t R, int64_t M) {
    if (R == 1) {
        #pragma omp parallel for simd schedule(static) if (M > PAR_MIN)
        for (int64_t i = 0; i < M; i++) y[i] = a[i] + b[i];
        return;
    }
    #pragma omp parallel for schedule(static) if (R * M > PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *ar = a + r * M;  // [M]
        float *yr = y + r * M;        // [M]
        #pragma omp simd
        for (int64_t c = 0; c < M; c++) yr[c] = ar[c] + b[c];
    }
}

void add_into_cpu(float *dst, const float *src, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

// Column blocks of 64, each owned by one thread, summed over all rows in f64: the f32 result is then
// correctly rounded nearly always, even when the sum cancels to near 0 (a bias gradient over few rows).
#define COL_BLOCK 64
void add_rows_into_cpu(float *db, const float *dy, int64_t R, int64_t M) {
    int64_t nb = (M + COL_BLOCK - 1) / COL_BLOCK;
    #pragma omp parallel for schedule(static) if (R * M > PAR_MIN)
    for (int64_t blk = 0; blk < nb; blk++) {
        int64_t c0 = blk * COL_BLOCK, n = M - c0 < COL_BLOCK ? M - c0 : COL_BLOCK;
        double acc[COL_BLOCK] = {0};
        for (int64_t r = 0; r < R; r++) {
            const float *g = dy + r * M + c0;  // [n]
            #pragma omp simd
            for (int64_t c = 0; c < n; c++) acc[c] += g[c];
        }
        for (int64_t c = 0; c < n; c++) db[c0 + c] += (float)acc[c];
    }
}

void mul_forward_cpu(float *y, const float *a, const float *b, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

void mul_backward_cpu(float *da, float *db, const float *dy, const float *a, const float *b, int64_t n) {
    // Two loops, not one with two branches: each vectorises, and da == db (mul(x, x)) stays correct.
    if (da) {
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) da[i] += dy[i] * b[i];
    }
    if (db) {
        #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
        for (int64_t i = 0; i < n; i++) db[i] += dy[i] * a[i];
    }
}

void scale_forward_cpu(float *y, const float *a, float s, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) y[i] = s * a[i];
}

void scale_backward_cpu(float *da, const float *dy, float s, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n > PAR_MIN)
    for (int64_t i = 0; i < n; i++) da[i] += s * dy[i];
}
