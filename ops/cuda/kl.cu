// kl.cu — the fused, chunked response KL on the GPU (mirrors ops/cpu/kl.c, same plan). Per token
// chunk: student and teacher rows gathered, logits / T for both via gemm_cuda into bounded buffers,
// one block per row folds them into running statistics (student max / sum exp; teacher max / sum exp
// / sum exp * (a - b)) with fixed-order block reductions, f64 across threads; with gradients the
// chunk's whole-row logits become the logit gradients in place, then dh and dw come from gemm_cuda
// (beta 1 into w.grad). No atomics: deterministic.
#include "loss_rows.cuh"

struct kl_online {
    float *smax, *tmax;    // [R]
    double *ssum, *tsum;   // [R]
    double *u;             // [R]: sum_j exp(a_j - tmax) (a_j - b_j)
};

static __global__ void kl_online_init_kernel(kl_online o, int64_t r) {
    GRID_STRIDE(i, r) {
        o.smax[i] = -INFINITY;
        o.tmax[i] = -INFINITY;
        o.ssum[i] = 0.0;
        o.tsum[i] = 0.0;
        o.u[i] = 0.0;
    }
}

// One [r, vb] block: a = teacher logits / T, b = student logits / T (row stride ld).
static __global__ void kl_block_stats_kernel(kl_online o, const float *at, const float *bs, int64_t ld, int64_t vb) {
    const int64_t i = blockIdx.x;
    const float *a = at + i * ld, *b = bs + i * ld;  // [vb] each
    const float osm = o.smax[i], otm = o.tmax[i];
    float bm = row_max_dev(b, vb);
    float nms = bm > osm ? bm : osm;
    double ss = row_sumexp_dev(b, vb, nms);
    float am = row_max_dev(a, vb);
    float nmt = am > otm ? am : otm;
    float e = 0.0f, u = 0.0f;
    for (int64_t j = threadIdx.x; j < vb; j += blockDim.x) {
        float p = expf(a[j] - nmt);
        e += p;
        u += p * (a[j] - b[j]);
    }
    double se = block_sum<double>((double)e);
    double su = block_sum<double>((double)u);
    if (threadIdx.x == 0) {
        o.ssum[i] = o.ssum[i] * exp((double)osm - (double)nms) + ss;
        o.smax[i] = nms;
        double c = exp((double)otm - (double)nmt);
        o.tsum[i] = o.tsum[i] * c + se;
        o.u[i] = o.u[i] * c + su;
        o.tmax[i] = nmt;
    }
}

static __global__ void kl_finish_kernel(float *kl, float *lse_s, float *lse_t, kl_online o, int64_t r) {
    GRID_STRIDE(i, r) {
        double ls = (double)o.smax[i] + log(o.ssum[i]), lt = (double)o.tmax[i] + log(o.tsum[i]);
        lse_s[i] = (float)ls;
        lse_t[i] = (float)lt;
        kl[i] = (float)(o.u[i] / o.tsum[i] - lt + ls);  // E_p[a - b] - lse(a) + lse(b)
    }
}

// In place on one block: b <- c (q - p) and, when teacher, a <- c p (log p - log q - kl).
static __global__ void kl_block_grad_kernel(float *at, float *bs, int64_t vb, int64_t ld, const float *lse_s,
                                            const float *lse_t, const float *kl, float c, bool teacher) {
    const int64_t i = blockIdx.x;
    float *a = at + i * ld, *b = bs + i * ld;  // [vb] each
    const float ls = lse_s[i], lt = lse_t[i], k = kl[i];
    for (int64_t j = threadIdx.x; j < vb; j += blockDim.x) {
        float la = a[j] - lt, lb = b[j] - ls;
        float p = expf(la), q = expf(lb);
        b[j] = c * (q - p);
        if (teacher) a[j] = c * p * (la - lb - k);
    }
}

static kl_online kl_online_alloc(s2s_ctx *ctx, int64_t R) {
    kl_online o;
    o.smax = (float *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(float));
    o.tmax = (float *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(float));
    o.ssum = (double *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(double));
    o.tsum = (double *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(double));
    o.u = (double *)s2s_scratch_alloc(ctx, (size_t)R * sizeof(double));
    return o;
}

extern "C" void kl_fused_forward_cuda(s2s_ctx *ctx, const kl_fused_args *a, float scale, float *kl, float *lse_s,
                                      float *lse_t, float *dhs, float *dht, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    if (M == 0) return;
    const bool grads = dhs || dht || dw, teacher = dht || dw;
    const loss_plan p = loss_plan_make(M, V, 2, grads);  // grads: p.vblk == V, one block
    const int64_t R = p.R, VB = p.vblk;
    float *hsc = ws, *htc = ws + R * C;  // [R, C] each: the chunk's rows
    float *zs = ws + 2 * R * C;          // [R, VB] student logits / T
    float *zt = zs + R * VB;             // [R, VB] teacher logits / T
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    kl_online o = kl_online_alloc(ctx, R);
    const int th = loss_row_threads(VB);
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        gather_rows_cuda(ctx, hsc, a->hs, a->rows + c0, r, C, sizeof(float));
        gather_rows_cuda(ctx, htc, a->ht, a->rows + c0, r, C, sizeof(float));
        kl_online_init_kernel<<<cuda_blocks(r), CUDA_THREADS>>>(o, r);
        CUDA_LAUNCHED();
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cuda(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, zs, VB);
            gemm_cuda(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, zt, VB);
            kl_block_stats_kernel<<<(unsigned)r, th>>>(o, zt, zs, VB, vb);
            CUDA_LAUNCHED();
        }
        kl_finish_kernel<<<cuda_blocks(r), CUDA_THREADS>>>(kl + c0, lse_s + c0, lse_t + c0, o, r);
        CUDA_LAUNCHED();
        if (!grads) continue;
        kl_block_grad_kernel<<<(unsigned)r, th>>>(zt, zs, V, V, lse_s + c0, lse_t + c0, kl + c0, scale * a->inv_t,
                                                  teacher);
        CUDA_LAUNCHED();
        if (dhs) gemm_cuda(ctx, false, false, r, C, V, 1.0f, zs, V, a->w, C, 0.0f, dhs + c0 * C, C);
        if (dht) gemm_cuda(ctx, false, false, r, C, V, 1.0f, zt, V, a->w, C, 0.0f, dht + c0 * C, C);
        if (dw) {
            gemm_cuda(ctx, true, false, V, C, r, 1.0f, zs, V, hsc, C, 1.0f, dw, C);
            gemm_cuda(ctx, true, false, V, C, r, 1.0f, zt, V, htc, C, 1.0f, dw, C);
        }
    }
    s2s_arena_rewind(ctx->cur, mark);
}

extern "C" void kl_fused_dw_cuda(s2s_ctx *ctx, const kl_fused_args *a, const float *kl, const float *lse_s,
                                 const float *lse_t, float alpha, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    if (M == 0) return;
    const loss_plan p = loss_plan_make(M, V, 2, false);
    const int64_t R = p.R, VB = p.vblk;
    float *hsc = ws, *htc = ws + R * C;  // [R, C] each
    float *zs = ws + 2 * R * C;          // [R, VB] student tile
    float *zt = zs + R * VB;             // [R, VB] teacher tile
    const int th = loss_row_threads(VB);
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        gather_rows_cuda(ctx, hsc, a->hs, a->rows + c0, r, C, sizeof(float));
        gather_rows_cuda(ctx, htc, a->ht, a->rows + c0, r, C, sizeof(float));
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            float *dwb = dw + v0 * C;  // [vb, C]
            gemm_cuda(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, zs, VB);
            gemm_cuda(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, zt, VB);
            kl_block_grad_kernel<<<(unsigned)r, th>>>(zt, zs, vb, VB, lse_s + c0, lse_t + c0, kl + c0,
                                                      alpha * a->inv_t, true);
            CUDA_LAUNCHED();
            gemm_cuda(ctx, true, false, vb, C, r, 1.0f, zs, VB, hsc, C, 1.0f, dwb, C);
            gemm_cuda(ctx, true, false, vb, C, r, 1.0f, zt, VB, htc, C, 1.0f, dwb, C);
        }
    }
}
