// activations.cu — SwiGLU product, exact GELU and GLU on the GPU (mirrors ops/cpu/activations.c).
// Elementwise, one thread per element, so no reduction order to fix. CUDA's expf / erfcf (full
// precision: s2s builds without --use_fast_math) stand in for the CPU's vectorisable polynomials;
// both are within a few ulp of the exact function.
#include "common.cuh"

static __device__ inline float sigmoidf_(float v) { return 1.0f / (1.0f + expf(-v)); }
// Phi(x) through erfc keeps the lower tail's relative accuracy (0.5 (1 + erf) would cancel there).
static __device__ inline float norm_cdf(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
#define INV_SQRT2PI 0.39894228040143267794f

static __global__ void silu_mul_forward_kernel(float *y, const float *g, const float *u, int64_t n) {
    GRID_STRIDE(i, n) y[i] = g[i] * sigmoidf_(g[i]) * u[i];
}

// silu'(g) = s (1 + g (1 - s)) with s = sigmoid(g)
static __global__ void silu_mul_backward_kernel(float *dg, float *du, const float *dy, const float *g, const float *u,
                                                int64_t n) {
    GRID_STRIDE(i, n) {
        float s = sigmoidf_(g[i]);
        if (dg) dg[i] += dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
        if (du) du[i] += dy[i] * g[i] * s;
    }
}

static __global__ void gelu_forward_kernel(float *y, const float *x, int64_t n) {
    GRID_STRIDE(i, n) y[i] = x[i] * norm_cdf(x[i]);
}

static __global__ void gelu_backward_kernel(float *dx, const float *dy, const float *x, int64_t n) {
    GRID_STRIDE(i, n) {
        float pdf = INV_SQRT2PI * expf(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (norm_cdf(x[i]) + x[i] * pdf);
    }
}

// x [O, 2, HI] -> y [O, HI] = a * sigmoid(b)
static __global__ void glu_forward_kernel(float *y, const float *x, int64_t O, int64_t HI) {
    GRID_STRIDE(i, O * HI) {
        int64_t o = i / HI, j = i % HI;
        y[i] = x[o * 2 * HI + j] * sigmoidf_(x[o * 2 * HI + HI + j]);
    }
}

static __global__ void glu_backward_kernel(float *dx, const float *dy, const float *x, int64_t O, int64_t HI) {
    GRID_STRIDE(i, O * HI) {
        int64_t o = i / HI, j = i % HI;
        const float a = x[o * 2 * HI + j], s = sigmoidf_(x[o * 2 * HI + HI + j]), g = dy[i];
        dx[o * 2 * HI + j] += g * s;
        dx[o * 2 * HI + HI + j] += g * a * s * (1.0f - s);
    }
}

extern "C" void silu_mul_forward_cuda(s2s_ctx *ctx, float *y, const float *g, const float *u, int64_t n) {
    if (n == 0) return;
    silu_mul_forward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(y, g, u, n);
    CUDA_LAUNCHED();
}

extern "C" void silu_mul_backward_cuda(s2s_ctx *ctx, float *dg, float *du, const float *dy, const float *g,
                                       const float *u, int64_t n) {
    if (n == 0 || (!dg && !du)) return;
    silu_mul_backward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dg, du, dy, g, u, n);
    CUDA_LAUNCHED();
}

extern "C" void gelu_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t n) {
    if (n == 0) return;
    gelu_forward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(y, x, n);
    CUDA_LAUNCHED();
}

extern "C" void gelu_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *x, int64_t n) {
    if (n == 0 || !dx) return;
    gelu_backward_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(dx, dy, x, n);
    CUDA_LAUNCHED();
}

extern "C" void glu_forward_cuda(s2s_ctx *ctx, float *y, const float *x, int64_t O, int64_t H, int64_t I) {
    if (O * H * I == 0) return;
    glu_forward_kernel<<<cuda_blocks(O * H * I), CUDA_THREADS>>>(y, x, O, H * I);
    CUDA_LAUNCHED();
}

extern "C" void glu_backward_cuda(s2s_ctx *ctx, float *dx, const float *dy, const float *x, int64_t O, int64_t H,
                                  int64_t I) {
    if (O * H * I == 0 || !dx) return;
    glu_backward_kernel<<<cuda_blocks(O * H * I), CUDA_THREADS>>>(dx, dy, x, O, H * I);
    CUDA_LAUNCHED();
}
