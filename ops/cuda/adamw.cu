// adamw.cu — the fused AdamW step on the GPU (mirrors ops/cpu/adamw.c): same operation order as
// torch.optim.AdamW, per-step scalars formed on the host in f64 and rounded to f32 once (adamw_scalars).
#include "common.cuh"

static __global__ void adamw_kernel(float *p, const float *g, float *m, float *v, int64_t n, adamw_scalars s) {
    GRID_STRIDE(i, n) {
        float gi = g[i];
        float mi = m[i] + s.one_minus_beta1 * (gi - m[i]);
        float vi = v[i] * s.beta2 + s.one_minus_beta2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        p[i] = p[i] * s.decay_factor - s.step_size * (mi / (sqrtf(vi) / s.bc2_sqrt + s.eps));
    }
}

extern "C" void adamw_update_cuda(s2s_ctx *ctx, float *p, const float *g, float *m, float *v, int64_t n,
                                  adamw_scalars s) {
    if (n == 0) return;
    adamw_kernel<<<cuda_blocks(n), CUDA_THREADS>>>(p, g, m, v, n, s);
    CUDA_LAUNCHED();
}
