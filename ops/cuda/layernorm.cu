// layernorm.cu — torch.nn.LayerNorm on the GPU (mirrors ops/cpu/layernorm.c), all f32: one block per
// row, two-pass statistics (mean, then squared deviations) with deterministic block sums; weight and
// bias gradients as two-pass column sums (no atomics).
#include "common.cuh"

// y [N, C] = (x - mean) * rstd * w + b (biased variance; b may be NULL); stats [N, 2] = (mean, rstd).
static __global__ void layernorm_forward_kernel(float *y, float *stats, const float *x, const float *w,
                                                const float *b, int64_t C, float eps) {
    int64_t i = blockIdx.x;
    const float *xi = x + i * C;  // [C]
    float *yi = y + i * C;        // [C]
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xi[c];
    float mean = block_sum(s) / (float)C, v = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) v += (xi[c] - mean) * (xi[c] - mean);
    float r = 1.0f / sqrtf(block_sum(v) / (float)C + eps);
    if (threadIdx.x == 0) {
        stats[2 * i] = mean;
        stats[2 * i + 1] = r;
    }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float o = (xi[c] - mean) * r * w[c];
        yi[c] = b ? o + b[c] : o;
    }
}

// dx = r * (g - mean(g) - xh * mean(g * xh)) with g = dy * w, xh = (x - mean) * r.
static __global__ void layernorm_backward_dx_kernel(float *dx, const float *dy, const float *x, const float *w,
                                                    const float *stats, int64_t C) {
    int64_t i = blockIdx.x;
    const float *xi = x + i * C, *gi = dy + i * C;  // [C] each
    float *di = dx + i * C;                         // [C]
    float mean = stats[2 * i], r = stats[2 * i + 1], sg = 0.0f, sgx = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float g = gi[c] * w[c];
        sg += g;
        sgx += g * (xi[c] - mean);
    }
    sg = block_sum(sg);
    sgx = block_sum(sgx);
    float mg = sg / (float)C, mgx = sgx * r / (float)C;  // mean(g), mean(g * xh)
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float xh = (xi[c] - mean) * r;
        di[c] += r * (gi[c] * w[c] - mg - xh * mgx);
    }
}

struct layernorm_dw_term {  // dy * xh
    const float *dy, *x, *stats;
    int64_t C;
    __device__ float operator()(int64_t r, int64_t c) const {
        return dy[r * C + c] * ((x[r * C + c] - stats[2 * r]) * stats[2 * r + 1]);
    }
};

extern "C" void layernorm_forward_cuda(s2s_ctx *ctx, float *y, float *stats, const float *x, const float *w,
                                       const float *b, int64_t N, int64_t C, float eps) {
    if (N == 0) return;
    S2S_CHECK(N <= INT32_MAX, "layernorm: %lld rows exceed one grid", (long long)N);
    layernorm_forward_kernel<<<(unsigned)N, row_threads(C)>>>(y, stats, x, w, b, C, eps);
    CUDA_LAUNCHED();
}

extern "C" void layernorm_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, float *db, const float *dy,
                                        const float *x, const float *w, const float *stats, int64_t N, int64_t C) {
    // One column: x - mean is exactly 0 and the output the constant b, so dx is exactly 0 (as on the CPU).
    if (C == 1) dx = NULL;
    if (N == 0) return;
    if (dx) {
        layernorm_backward_dx_kernel<<<(unsigned)N, row_threads(C)>>>(dx, dy, x, w, stats, C);
        CUDA_LAUNCHED();
    }
    if (dw) colsum_add(ctx, dw, N, C, layernorm_dw_term{dy, x, stats, C});
    if (db) colsum_add(ctx, db, N, C, rows_of{dy, C});
}
