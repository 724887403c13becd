#include "conv1d.h"
#include <string.h>
#include "gemm.h"

// Output positions t whose tap k lands inside the signal: t*stride - pad + k in [0, L).
static void tap_range(int64_t k, int64_t L, int64_t Lout, int stride, int pad, int64_t *t0, int64_t *t1) {
    int64_t lo = pad - k;  // first t with t*stride >= pad - k
    int64_t a = lo <= 0 ? 0 : (lo + stride - 1) / stride;
    int64_t hi = L - 1 + pad - k;  // last t with t*stride <= L-1+pad-k
    int64_t b = hi < 0 ? -1 : hi / stride;
    if (b > Lout - 1) b = Lout - 1;
    *t0 = a;
    *t1 = b + 1;  // half-open; may be <= a (tap entirely in the padding)
}

void conv1d_im2col_cpu(float *col, const float *x, int64_t Cin, int64_t L, int64_t K, int64_t Lout, int stride,
                       int pad) {
    // Each thread owns whole rows of col: no shared writes.
    #pragma omp parallel for schedule(static) if (Cin * K * Lout > 32768)
    for (int64_t r = 0; r < Cin * K; r++) {
        int64_t c = r / K, k = r % K, t0, t1;
        tap_range(k, L, Lout, stride, pad, &t0, &t1);
        float *dst = col + r * Lout;          // [Lout]
        int64_t base = c * L - pad + k;  // x index of tap k at t = 0 (may lie in the padding)
        if (t1 <= t0) { memset(dst, 0, (size_t)Lout * sizeof(float)); continue; }
        for (int64_t t = 0; t < t0; t++) dst[t] = 0.0f;
        if (stride == 1) memcpy(dst + t0, x + (base + t0), (size_t)(t1 - t0) * sizeof(float));
        else
            for (int64_t t = t0; t < t1; t++) dst[t] = x[base + t * stride];
        for (int64_t t = t1; t < Lout; t++) dst[t] = 0.0f;
    }
}

void conv1d_col2im_cpu(float *dx, const float *dcol, int64_t Cin, int64_t L, int64_t K, int64_t Lout, int stride,
                       int pad) {
    // A thread owns a whole input channel and adds its K taps in a fixed order, so every dx element
    // sees the same summation order for any thread count.
    #pragma omp parallel for schedule(static) if (Cin * K * Lout > 32768)
    for (int64_t c = 0; c < Cin; c++) {
        for (int64_t k = 0; k < K; k++) {
            int64_t t0, t1;
            tap_range(k, L, Lout, stride, pad, &t0, &t1);
            const float *src = dcol + (c * K + k) * Lout;  // [Lout]
            int64_t base = c * L - pad + k;
            for (int64_t t = t0; t < t1; t++) dx[base + t * stride] += src[t];
        }
    }
}

// A 1-wide, unit-stride, unpadded conv reads x itself as its column matrix.
static bool col_is_x(int64_t K, int stride, int pad) { return K == 1 && stride == 1 && pad == 0; }

int64_t conv1d_col_floats(int64_t Cin, int64_t K, int64_t Lout, int stride, int pad) {
    return col_is_x(K, stride, pad) ? 0 : Cin * K * Lout;
}

void conv1d_forward_cpu(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *bias, float *col,
                        int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K, int64_t Lout, int stride,
                        int pad) {
    int64_t CK = Cin * K;
    if (bias) {  // seed y with the bias so each GEMM adds onto it (beta = 1)
        #pragma omp parallel for schedule(static) if (B * Cout * Lout > 32768)
        for (int64_t r = 0; r < B * Cout; r++)
            for (int64_t t = 0; t < Lout; t++) y[r * Lout + t] = bias[r % Cout];
    }
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * Cin * L;  // [Cin, L]
        const float *cb = xb;               // [Cin*K, Lout]
        if (!col_is_x(K, stride, pad)) {
            conv1d_im2col_cpu(col, xb, Cin, L, K, Lout, stride, pad);
            cb = col;
        }
        gemm_cpu(ctx, false, false, Cout, Lout, CK, 1.0f, w, CK, cb, Lout, bias ? 1.0f : 0.0f, y + b * Cout * Lout,
                 Lout);
    }
}

void conv1d_backward_cpu(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                         const float *w, float *col, int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K,
                         int64_t Lout, int stride, int pad) {
    int64_t CK = Cin * K;
    bool direct = col_is_x(K, stride, pad);
    // Batch elements run in order: dw sums over b in a fixed order (GEMMs with beta = 1).
    for (int64_t b = 0; b < B; b++) {
        const float *dyb = dy + b * Cout * Lout;  // [Cout, Lout]
        if (dw) {  // dw [Cout, CK] += dy_b [Cout, Lout] @ col_b^T
            const float *cb = x + b * Cin * L;
            if (!direct) {
                conv1d_im2col_cpu(col, cb, Cin, L, K, Lout, stride, pad);
                cb = col;
            }
            gemm_cpu(ctx, false, true, Cout, CK, Lout, 1.0f, dyb, Lout, cb, Lout, 1.0f, dw, CK);
        }
        if (dx) {
            float *dxb = dx + b * Cin * L;  // [Cin, L]
            if (direct) {  // dx_b += w^T @ dy_b straight into dx
                gemm_cpu(ctx, true, false, CK, Lout, Cout, 1.0f, w, CK, dyb, Lout, 1.0f, dxb, Lout);
            } else {       // dcol [CK, Lout] = w^T @ dy_b, then scattered back onto the taps
                gemm_cpu(ctx, true, false, CK, Lout, Cout, 1.0f, w, CK, dyb, Lout, 0.0f, col, Lout);
                conv1d_col2im_cpu(dxb, col, Cin, L, K, Lout, stride, pad);
            }
        }
    }
    if (db) {
        // A thread owns whole output channels and sums b then t in order: deterministic.
        #pragma omp parallel for schedule(static) if (B * Cout * Lout > 32768)
        for (int64_t co = 0; co < Cout; co++) {
            double s = 0.0;  // B*Lout terms (thousands for a 30 s chunk): f64 keeps the sum exact enough
            for (int64_t b = 0; b < B; b++) {
                const float *row = dy + (b * Cout + co) * Lout;
                for (int64_t t = 0; t < Lout; t++) s += row[t];
            }
            db[co] += (float)s;
        }
    }
}
