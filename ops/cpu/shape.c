#include "shape.h"
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PAR_MIN 32768  // below this many elements a parallel region costs more than it saves
#define TILE 32        // transpose tile: 32 x 32 floats = 4 KiB read and 4 KiB written, L1-resident

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// Few long blocks (a slice of a [1, T, C] tensor, a reshape's gradient) parallelise inside the block;
// many short ones parallelise over blocks.
void copy_blocks_cpu(void *dst, int64_t dst_stride, const void *src, int64_t src_stride, int64_t outer, int64_t n,
                     size_t esize) {
    char *d = dst;
    const char *s = src;
    bool par = outer * n > PAR_MIN;
    if (outer >= 2 * max_threads() || !par) {
        #pragma omp parallel for schedule(static) if (par)
        for (int64_t o = 0; o < outer; o++)
            memcpy(d + o * dst_stride * esize, s + o * src_stride * esize, (size_t)n * esize);
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        char *dd = d + o * dst_stride * esize;
        const char *ss = s + o * src_stride * esize;
        #pragma omp parallel
        {
#ifdef _OPENMP
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
#else
            int nt = 1, t = 0;
#endif
            int64_t k0 = n * t / nt, k1 = n * (t + 1) / nt;
            memcpy(dd + k0 * esize, ss + k0 * esize, (size_t)(k1 - k0) * esize);
        }
    }
}

void add_blocks_cpu(float *dst, int64_t dst_stride, const float *src, int64_t src_stride, int64_t outer, int64_t n) {
    bool par = outer * n > PAR_MIN;
    if (outer >= 2 * max_threads() || !par) {
        #pragma omp parallel for schedule(static) if (par)
        for (int64_t o = 0; o < outer; o++) {
            float *d = dst + o * dst_stride;        // [n]
            const float *s = src + o * src_stride;  // [n]
            #pragma omp simd
            for (int64_t k = 0; k < n; k++) d[k] += s[k];
        }
        return;
    }
    for (int64_t o = 0; o < outer; o++) {
        float *d = dst + o * dst_stride;        // [n]
        const float *s = src + o * src_stride;  // [n]
        #pragma omp parallel for simd schedule(static)
        for (int64_t k = 0; k < n; k++) d[k] += s[k];
    }
}

// With C > 1 every (a, j, b, i) moves a contiguous run of C elements. With C == 1 it is a strided 2-D
// transpose per (a, b), done in TILE x TILE tiles so reads and writes both stay within cache lines.
void transpose_cpu(float *dst, const float *src, int64_t A, int64_t D0, int64_t B, int64_t D1, int64_t C,
                   bool accumulate) {
    if (C > 1) {
        #pragma omp parallel for collapse(2) schedule(static) if (A * D0 * B * D1 * C > PAR_MIN)
        for (int64_t a = 0; a < A; a++)
            for (int64_t j = 0; j < D1; j++)
                for (int64_t b = 0; b < B; b++)
                    for (int64_t i = 0; i < D0; i++) {
                        float *d = dst + (((a * D1 + j) * B + b) * D0 + i) * C;        // [C]
                        const float *s = src + (((a * D0 + i) * B + b) * D1 + j) * C;  // [C]
                        if (accumulate)
                            for (int64_t c = 0; c < C; c++) d[c] += s[c];
                        else
                            memcpy(d, s, (size_t)C * sizeof(float));
                    }
        return;
    }
    int64_t nj = (D1 + TILE - 1) / TILE;
    #pragma omp parallel for collapse(3) schedule(static) if (A * D0 * B * D1 > PAR_MIN)
    for (int64_t a = 0; a < A; a++)
        for (int64_t b = 0; b < B; b++)
            for (int64_t jt = 0; jt < nj; jt++) {
                int64_t j0 = jt * TILE, j1 = j0 + TILE < D1 ? j0 + TILE : D1;
                float *d = dst + (a * D1 * B + b) * D0;        // d[j * B * D0 + i]
                const float *s = src + (a * D0 * B + b) * D1;  // s[i * B * D1 + j]
                for (int64_t i0 = 0; i0 < D0; i0 += TILE) {
                    int64_t i1 = i0 + TILE < D0 ? i0 + TILE : D0;
                    for (int64_t j = j0; j < j1; j++)
                        for (int64_t i = i0; i < i1; i++) {
                            if (accumulate) d[j * B * D0 + i] += s[i * B * D1 + j];
                            else d[j * B * D0 + i] = s[i * B * D1 + j];
                        }
                }
            }
}
