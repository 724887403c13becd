// grad_norm.cu — sum of squares of a gradient (for the global norm) and the clip scaling on the GPU
// (ops/grad_norm.c is the driver). The sum is f64 and two-pass: a grid whose size depends on n only,
// each block summing a fixed grid-stride slice, then one block adding the block partials; the
// shuffle trees are fixed too, so the norm (and the clip) is the same bit for bit on every run.
#include "common.cuh"

#define SUMSQ_BLOCKS_MAX 1024

static __global__ void sumsq_partial_kernel(double *part, const float *g, int64_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += (double)g[i] * (double)g[i];
    s = block_sum(s);
    if (threadIdx.x == 0) part[blockIdx.x] = s;
}

static __global__ void sumsq_finish_kernel(double *slot, const double *part, int nb) {
    double s = 0.0;
    for (int b = threadIdx.x; b < nb; b += blockDim.x) s += part[b];
    s = block_sum(s);
    if (threadIdx.x == 0) *slot = s;
}

static __global__ void grad_scale_kernel(float *g, int64_t n, float f) { GRID_STRIDE(i, n) g[i] *= f; }

extern "C" void grad_sumsq_cuda(s2s_ctx *ctx, const float *g, int64_t n, double *slot) {
    int64_t nb = (n + 4 * CUDA_THREADS - 1) / (4 * CUDA_THREADS);  // ~4 elements per thread, capped
    if (nb < 1) nb = 1;
    if (nb > SUMSQ_BLOCKS_MAX) nb = SUMSQ_BLOCKS_MAX;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    double *part = (double *)s2s_scratch_alloc(ctx, (size_t)nb * sizeof(double));  // [nb]
    sumsq_partial_kernel<<<(unsigned)nb, CUDA_THREADS>>>(part, g, n);
    CUDA_LAUNCHED();
    sumsq_finish_kernel<<<1, CUDA_THREADS>>>(slot, part, (int)nb);
    CUDA_LAUNCHED();
    s2s_arena_rewind(ctx->cur, mark);
}

extern "C" void grad_scale_cuda(s2s_ctx *ctx, float *g, int64_t n, float f) {
    if (n == 0) return;
    grad_scale_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(g, n, f);
    CUDA_LAUNCHED();
}
