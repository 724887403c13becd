// cross_entropy_fused.cu — the fused, chunked cross-entropy on the GPU (mirrors
// ops/cpu/cross_entropy_fused.c, same plan: loss_plan_make). Per token chunk: the kept rows of h are
// gathered into the device workspace, logits z = h_chunk @ w^T come from gemm_cuda into a bounded
// [R, vblk] buffer, each row's running (max, sum exp) is folded in by a one-block-per-row f32 kernel
// with fixed-order block reductions (f64 across threads), and with gradients the chunk's whole-row
// logits become G = scale * (softmax - onehot) in place, then dh_chunk = G @ w and
// w.grad += G^T @ h_chunk (gemm_cuda, beta 1). No atomics anywhere: the same bits on every run.
#include "loss_rows.cuh"

// Running per-row state over vocabulary blocks (device arrays of one chunk's rows).
struct ce_online {
    float *max;   // [R]
    double *sum;  // [R]: sum_j exp(z_j - max) over the logits seen so far
    float *zy;    // [R]: the label's logit
};

static __global__ void ce_online_init_kernel(ce_online o, int64_t r) {
    GRID_STRIDE(i, r) {
        o.max[i] = -INFINITY;
        o.sum[i] = 0.0;
        o.zy[i] = 0.0f;
    }
}

// One [r, vb] block of logits (row stride ld, columns v0..v0+vb) folded into each row's state.
static __global__ void ce_block_lse_kernel(ce_online o, const float *z, int64_t ld, int64_t v0, int64_t vb,
                                           const int32_t *lab) {
    const int64_t i = blockIdx.x;
    const float *zi = z + i * ld;  // [vb]
    const float om = o.max[i];
    float bm = row_max_dev(zi, vb);
    float nm = bm > om ? bm : om;
    double s = row_sumexp_dev(zi, vb, nm);
    if (threadIdx.x == 0) {
        o.sum[i] = o.sum[i] * exp((double)om - (double)nm) + s;
        o.max[i] = nm;
        const int32_t y = lab[i];
        if (y >= v0 && y < v0 + vb) o.zy[i] = zi[y - v0];
    }
}

// lse [r], loss [r] = lse - z[label], in f64 as on the CPU.
static __global__ void ce_finish_kernel(float *lse, float *loss, ce_online o, int64_t r) {
    GRID_STRIDE(i, r) {
        double l = (double)o.max[i] + log(o.sum[i]);
        lse[i] = (float)l;
        loss[i] = (float)(l - (double)o.zy[i]);
    }
}

// In place on one [r, vb] block (row stride ld): z <- scale * (softmax(z) - onehot(label)).
static __global__ void ce_block_grad_kernel(float *z, int64_t ld, int64_t v0, int64_t vb, const int32_t *lab,
                                            const float *lse, float scale) {
    const int64_t i = blockIdx.x;
    float *g = z + i * ld;  // [vb]
    const float l = lse[i];
    const int64_t yj = (int64_t)lab[i] - v0;  // the label's column in this block, if in [0, vb)
    for (int64_t j = threadIdx.x; j < vb; j += blockDim.x) {
        float p = __fmul_rn(scale, expf(g[j] - l));  // rounded as on the CPU before the - scale
        g[j] = j == yj ? p - scale : p;
    }
}

static __global__ void loss_rows_axpy_kernel(float *dst, const int32_t *rows, const float *src, int64_t M, int64_t C,
                                             float alpha) {
    GRID_STRIDE(e, M * C) {
        int64_t m = e / C, k = e % C;
        dst[(int64_t)rows[m] * C + k] += alpha * src[e];
    }
}

extern "C" void loss_rows_axpy_cuda(s2s_ctx *ctx, float *dst, const int32_t *rows, const float *src, int64_t M,
                                    int64_t C, float alpha) {
    (void)ctx;
    if (M * C == 0) return;
    loss_rows_axpy_kernel<<<cuda_blocks(M * C), CUDA_THREADS>>>(dst, rows, src, M, C, alpha);
    CUDA_LAUNCHED();
}

static ce_online ce_online_alloc(s2s_ctx *ctx, int64_t R) {
    ce_online o;
    o.max = (float *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(float));
    o.sum = (double *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(double));
    o.zy = (float *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(float));
    return o;
}

extern "C" void ce_fused_forward_cuda(s2s_ctx *ctx, const ce_fused_args *a, float scale, float *loss, float *lse,
                                      float *dh, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    if (M == 0) return;
    const bool grads = dh || dw;
    const loss_plan p = loss_plan_make(M, V, 1, grads);  // grads: p.vblk == V, one block
    const int64_t R = p.R, VB = p.vblk;
    S2S_CHECK(R <= INT32_MAX, "cross_entropy_fused: chunk too large");
    float *hc = ws;         // [R, C] the chunk's rows of h
    float *z = ws + R * C;  // [R, VB] logits: the chunk's whole rows (grads) or one tile
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    ce_online o = ce_online_alloc(ctx, R);
    const int th = loss_row_threads(VB);
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        const int32_t *lab = a->labels + c0;  // [r] (device)
        gather_rows_cuda(ctx, hc, a->h, a->rows + c0, r, C, sizeof(float));
        ce_online_init_kernel<<<cuda_blocks(r), CUDA_THREADS>>>(o, r);
        CUDA_LAUNCHED();
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cuda(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, z, VB);  // z = hc w_b^T
            ce_block_lse_kernel<<<(unsigned)r, th>>>(o, z, VB, v0, vb, lab);
            CUDA_LAUNCHED();
        }
        ce_finish_kernel<<<cuda_blocks(r), CUDA_THREADS>>>(lse + c0, loss + c0, o, r);
        CUDA_LAUNCHED();
        if (!grads) continue;
        ce_block_grad_kernel<<<(unsigned)r, th>>>(z, V, 0, V, lab, lse + c0, scale);
        CUDA_LAUNCHED();
        if (dh) gemm_cuda(ctx, false, false, r, C, V, 1.0f, z, V, a->w, C, 0.0f, dh + c0 * C, C);
        if (dw) gemm_cuda(ctx, true, false, V, C, r, 1.0f, z, V, hc, C, 1.0f, dw, C);
    }
    s2s_arena_rewind(ctx->cur, mark);
}

extern "C" void ce_fused_dw_cuda(s2s_ctx *ctx, const ce_fused_args *a, const float *lse, float alpha, float *dw,
                                 float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    if (M == 0) return;
    const loss_plan p = loss_plan_make(M, V, 1, false);
    const int64_t R = p.R, VB = p.vblk;
    float *hc = ws;         // [R, C]
    float *z = ws + R * C;  // [R, VB] one tile
    const int th = loss_row_threads(VB);
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        gather_rows_cuda(ctx, hc, a->h, a->rows + c0, r, C, sizeof(float));
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cuda(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, z, VB);
            ce_block_grad_kernel<<<(unsigned)r, th>>>(z, VB, v0, vb, a->labels + c0, lse + c0, alpha);
            CUDA_LAUNCHED();
            gemm_cuda(ctx, true, false, vb, C, r, 1.0f, z, VB, hc, C, 1.0f, dw + v0 * C, C);
        }
    }
}
