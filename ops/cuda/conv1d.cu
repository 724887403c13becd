// conv1d.cu — nn.Conv1d (stride, zero padding) on the GPU as im2col + GEMM, mirroring
// ops/cpu/conv1d.c step for step: one column matrix and one GEMM per batch element, the batch walked
// in order so dw accumulates in a fixed order (beta = 1 GEMMs); col2im and the bias gradient are
// gathers, not scatters, so no atomics anywhere.
#include "common.cuh"

// col [Cin*K, Lout]: col[c*K + k, t] = x[c, t*stride - pad + k], 0 outside [0, L).
static __global__ void im2col_kernel(float *col, const float *x, int64_t Cin, int64_t L, int64_t K, int64_t Lout,
                                     int stride, int pad) {
    GRID_STRIDE(i, Cin * K * Lout) {
        int64_t t = i % Lout, r = i / Lout, c = r / K, k = r % K;
        int64_t l = t * stride - pad + k;
        col[i] = (l >= 0 && l < L) ? x[c * L + l] : 0.0f;
    }
}

// dx [Cin, L] += col2im(dcol [Cin*K, Lout]): each dx element gathers its taps, k ascending, adding onto
// dx one at a time as the CPU's scatter does.
static __global__ void col2im_kernel(float *dx, const float *dcol, int64_t Cin, int64_t L, int64_t K, int64_t Lout,
                                     int stride, int pad) {
    GRID_STRIDE(i, Cin * L) {
        int64_t c = i / L, l = i % L;
        float acc = dx[i];
        for (int64_t k = 0; k < K; k++) {
            int64_t num = l + pad - k;  // = t * stride for the output position t that reads x[c, l] at tap k
            if (num < 0 || num % stride) continue;
            int64_t t = num / stride;
            if (t < Lout) acc += dcol[(c * K + k) * Lout + t];
        }
        dx[i] = acc;
    }
}

static __global__ void conv_bias_seed_kernel(float *y, const float *bias, int64_t Cout, int64_t Lout, int64_t n) {
    GRID_STRIDE(i, n) y[i] = bias[(i / Lout) % Cout];  // y [B, Cout, Lout]
}

// db [Cout] += sum over b, t of dy [B, Cout, Lout]: one block per output channel, f64, fixed order.
static __global__ void conv_bias_grad_kernel(float *db, const float *dy, int64_t B, int64_t Cout, int64_t Lout) {
    int64_t co = blockIdx.x;
    double s = 0.0;
    for (int64_t j = threadIdx.x; j < B * Lout; j += blockDim.x) s += dy[((j / Lout) * Cout + co) * Lout + j % Lout];
    s = block_sum(s);
    if (threadIdx.x == 0) db[co] += (float)s;
}

// A 1-wide, unit-stride, unpadded conv reads x itself as its column matrix.
static bool col_is_x(int64_t K, int stride, int pad) { return K == 1 && stride == 1 && pad == 0; }

static void im2col(float *col, const float *xb, int64_t Cin, int64_t L, int64_t K, int64_t Lout, int stride,
                   int pad) {
    im2col_kernel<<<cuda_blocks(Cin * K * Lout), CUDA_THREADS>>>(col, xb, Cin, L, K, Lout, stride, pad);
    CUDA_LAUNCHED();
}

extern "C" void conv1d_forward_cuda(s2s_ctx *ctx, float *y, const float *x, const float *w, const float *bias,
                                    float *col, int64_t B, int64_t Cin, int64_t L, int64_t Cout, int64_t K,
                                    int64_t Lout, int stride, int pad) {
    int64_t CK = Cin * K;
    if (B * Cout * Lout == 0) return;
    if (bias) {  // seed y with the bias so each GEMM adds onto it (beta = 1)
        conv_bias_seed_kernel<<<cuda_blocks(B * Cout * Lout), CUDA_THREADS>>>(y, bias, Cout, Lout, B * Cout * Lout);
        CUDA_LAUNCHED();
    }
    for (int64_t b = 0; b < B; b++) {
        const float *cb = x + b * Cin * L;  // [Cin*K, Lout] (x_b itself when col_is_x)
        if (!col_is_x(K, stride, pad)) {
            im2col(col, cb, Cin, L, K, Lout, stride, pad);
            cb = col;
        }
        // y_b [Cout, Lout] (+)= w [Cout, CK] @ col_b [CK, Lout]
        gemm_cuda(ctx, false, false, Cout, Lout, CK, 1.0f, w, CK, cb, Lout, bias ? 1.0f : 0.0f, y + b * Cout * Lout,
                  Lout);
    }
}

extern "C" void conv1d_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy, const float *x,
                                     const float *w, float *col, int64_t B, int64_t Cin, int64_t L, int64_t Cout,
                                     int64_t K, int64_t Lout, int stride, int pad) {
    int64_t CK = Cin * K;
    bool direct = col_is_x(K, stride, pad);
    for (int64_t b = 0; b < B && Lout > 0; b++) {
        const float *dyb = dy + b * Cout * Lout;  // [Cout, Lout]
        if (dw) {  // dw [Cout, CK] += dy_b [Cout, Lout] @ col_b^T
            const float *cb = x + b * Cin * L;
            if (!direct) {
                im2col(col, cb, Cin, L, K, Lout, stride, pad);
                cb = col;
            }
            gemm_cuda(ctx, false, true, Cout, CK, Lout, 1.0f, dyb, Lout, cb, Lout, 1.0f, dw, CK);
        }
        if (dx) {
            float *dxb = dx + b * Cin * L;  // [Cin, L]
            if (direct) {  // dx_b += w^T @ dy_b straight into dx
                gemm_cuda(ctx, true, false, CK, Lout, Cout, 1.0f, w, CK, dyb, Lout, 1.0f, dxb, Lout);
            } else {       // dcol [CK, Lout] = w^T @ dy_b, then gathered back onto the taps
                gemm_cuda(ctx, true, false, CK, Lout, Cout, 1.0f, w, CK, dyb, Lout, 0.0f, col, Lout);
                col2im_kernel<<<cuda_blocks(Cin * L), CUDA_THREADS>>>(dxb, col, Cin, L, K, Lout, stride, pad);
                CUDA_LAUNCHED();
            }
        }
    }
    if (db && Cout > 0) {
        conv_bias_grad_kernel<<<(unsigned)Cout, 256>>>(db, dy, B, Cout, Lout);
        CUDA_LAUNCHED();
    }
}
