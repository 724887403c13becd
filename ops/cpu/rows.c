#include "rows.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PAR_MIN 32768  // below this many elements a parallel region costs more than it saves

void gather_rows_cpu(void *y, const void *x, const int32_t *idx, int64_t M, int64_t C, size_t esize) {
    size_t row = (size_t)C * esize;
    #pragma omp parallel for schedule(static) if (M * C > PAR_MIN)
    for (int64_t m = 0; m < M; m++) memcpy((char *)y + m * row, (const char *)x + (int64_t)idx[m] * row, row);
}

void gather_rows_backward_cpu(float *dx, const float *dy, const int32_t *idx, int64_t M, int64_t C) {
    #pragma omp parallel if (M * C > PAR_MIN)
    {
#ifdef _OPENMP
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
        int nt = 1, t = 0;
#endif
        int64_t c0 = C * t / nt, c1 = C * (t + 1) / nt;  // this thread's columns
        for (int64_t m = 0; m < M; m++) {
            float *d = dx + (int64_t)idx[m] * C;  // [C]
            const float *g = dy + m * C;          // [C]
            #pragma omp simd
            for (int64_t c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void scatter_rows_cpu(void *y, const void *base, const int32_t *idx, const void *src, int64_t N, int64_t M,
                      int64_t C, size_t esize) {
    size_t row = (size_t)C * esize;
    #pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
    for (int64_t n = 0; n < N; n++) memcpy((char *)y + n * row, (const char *)base + n * row, row);
    // Indices are distinct, so every row is written by one m: any order gives the same result.
    #pragma omp parallel for schedule(static) if (M * C > PAR_MIN)
    for (int64_t m = 0; m < M; m++) memcpy((char *)y + (int64_t)idx[m] * row, (const char *)src + m * row, row);
}

void scatter_rows_backward_cpu(float *dbase, float *dsrc, const float *dy, const int32_t *idx,
                               const unsigned char *replaced, int64_t N, int64_t M, int64_t C) {
    if (dbase) {
        #pragma omp parallel for schedule(static) if (N * C > PAR_MIN)
        for (int64_t n = 0; n < N; n++) {
            if (replaced[n]) continue;  // those rows of y came from src: no gradient to base
            float *d = dbase + n * C;     // [C]
            const float *g = dy + n * C;  // [C]
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) d[c] += g[c];
        }
    }
    if (dsrc) {
        #pragma omp parallel for schedule(static) if (M * C > PAR_MIN)
        for (int64_t m = 0; m < M; m++) {
            float *d = dsrc + m * C;                     // [C]
            const float *g = dy + (int64_t)idx[m] * C;   // [C]
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) d[c] += g[c];
        }
    }
}
