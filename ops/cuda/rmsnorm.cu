// rmsnorm.cu — Qwen3RMSNorm on the GPU (mirrors ops/cpu/rmsnorm.c), all f32: one block per row with
// deterministic block sums; the weight gradient is a two-pass column sum (no atomics).
#include "common.cuh"

// y [N, C] = x * rsqrt(mean(x^2) + eps) * w; rstd [N] kept for backward.
static __global__ void rmsnorm_forward_kernel(float *y, float *rstd, const float *x, const float *w, int64_t C,
                                              float eps) {
    int64_t i = blockIdx.x;
    const float *xi = x + i * C;  // [C]
    float *yi = y + i * C;        // [C]
    float s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += xi[c] * xi[c];
    s = block_sum(s);
    float r = 1.0f / sqrtf(s / (float)C + eps);
    if (threadIdx.x == 0) rstd[i] = r;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) yi[c] = w[c] * (xi[c] * r);
}

// dx = r * g - x * (r^3 * mean(g * x)) with g = dy * w, per row.
static __global__ void rmsnorm_backward_dx_kernel(float *dx, const float *dy, const float *x, const float *w,
                                                  const float *rstd, int64_t C) {
    int64_t i = blockIdx.x;
    const float *xi = x + i * C, *gi = dy + i * C;  // [C] each
    float *di = dx + i * C;                         // [C]
    float r = rstd[i], s = 0.0f;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) s += gi[c] * w[c] * xi[c];
    s = block_sum(s);
    float k = r * r * r * s / (float)C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) di[c] += r * gi[c] * w[c] - k * xi[c];
}

// dw [C] term of row r: dy * (x * rstd).
struct rmsnorm_dw_term {
    const float *dy, *x, *rstd;
    int64_t C;
    __device__ float operator()(int64_t r, int64_t c) const { return dy[r * C + c] * (x[r * C + c] * rstd[r]); }
};

extern "C" void rmsnorm_forward_cuda(s2s_ctx *ctx, float *y, float *rstd, const float *x, const float *w, int64_t N,
                                     int64_t C, float eps) {
    if (N == 0) return;
    S2S_CHECK(N <= INT32_MAX, "rmsnorm: %lld rows exceed one grid", (long long)N);
    rmsnorm_forward_kernel<<<(unsigned)N, row_threads(C)>>>(y, rstd, x, w, C, eps);
    CUDA_LAUNCHED();
}

extern "C" void rmsnorm_backward_cuda(s2s_ctx *ctx, float *dx, float *dw, const float *dy, const float *x,
                                      const float *w, const float *rstd, int64_t N, int64_t C) {
    if (N == 0) return;
    if (dx) {
        rmsnorm_backward_dx_kernel<<<(unsigned)N, row_threads(C)>>>(dx, dy, x, w, rstd, C);
        CUDA_LAUNCHED();
    }
    if (dw) colsum_add(ctx, dw, N, C, rmsnorm_dw_term{dy, x, rstd, C});
}
