#include "kl.h"
#include <math.h>
#include "cross_entropy_fused.h"
#include "gemm.h"
#include "softmax.h"

// Running statistics of one row over vocabulary blocks: student (max, sum exp) and teacher
// (max, sum exp, sum exp(a - max) * (a - b)), the last giving E_p[a - b] at the end.
typedef struct { s2s_online_lse s, t; double u; } kl_online;

static void kl_online_add(kl_online *o, const float *a, const float *b, int64_t n) {
    s2s_online_lse_add(&o->s, b, n);
    float bm = s2s_row_max(a, n);
    float nm = bm > o->t.max ? bm : o->t.max;
    double c = exp((double)o->t.max - (double)nm);
    double se = 0.0, su = 0.0;  // f32 lanes inside 1024-pieces, f64 across (as s2s_row_sumexp)
    for (int64_t j0 = 0; j0 < n; j0 += 1024) {
        int64_t j1 = j0 + 1024 < n ? j0 + 1024 : n;
        float e = 0.0f, u = 0.0f;
        #pragma omp simd reduction(+ : e, u)
        for (int64_t j = j0; j < j1; j++) {
            float p = s2s_expf(a[j] - nm);
            e += p;
            u += p * (a[j] - b[j]);
        }
        se += e;
        su += u;
    }
    o->t.sum = o->t.sum * c + se;
    o->u = o->u * c + su;
    o->t.max = nm;
}

size_t kl_fused_workspace_floats(const kl_fused_args *a, bool grads) {
    loss_plan p = loss_plan_make(a->M, a->V, 2, grads);
    return (size_t)(2 * p.R * a->C + 2 * p.R * p.vblk);
}

// One vocabulary block of the gradient, in place: b <- c (q - p) (student logit gradient) and, when
// teacher, a <- c p (log p - log q - kl) (teacher logit gradient), c = scale / T.
static void kl_block_grad(float *a, float *b, int64_t r, int64_t vb, int64_t ld, const float *lse_s,
                          const float *lse_t, const float *kl, float c, bool teacher) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < r; i++) {
        float *ai = a + i * ld, *bi = b + i * ld;  // [vb]
        const float ls = lse_s[i], lt = lse_t[i], k = kl[i];
        if (teacher) {
            #pragma omp simd
            for (int64_t j = 0; j < vb; j++) {
                float la = ai[j] - lt, lb = bi[j] - ls;
                float p = s2s_expf(la), q = s2s_expf(lb);
                bi[j] = c * (q - p);
                ai[j] = c * p * (la - lb - k);
            }
        } else {
            #pragma omp simd
            for (int64_t j = 0; j < vb; j++) bi[j] = c * (s2s_expf(bi[j] - ls) - s2s_expf(ai[j] - lt));
        }
    }
}

void kl_fused_forward_cpu(s2s_ctx *ctx, const kl_fused_args *a, float scale, float *kl, float *lse_s, float *lse_t,
                          float *dhs, float *dht, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const bool grads = dhs || dht || dw, teacher = dht || dw;
    const loss_plan p = loss_plan_make(M, V, 2, grads);  // grads: p.vblk == V, one block
    const int64_t R = p.R, VB = p.vblk;
    float *hsc = ws, *htc = ws + R * C;  // [R, C] each: the chunk's rows
    float *zs = ws + 2 * R * C;          // [R, VB] student logits / T
    float *zt = zs + R * VB;             // [R, VB] teacher logits / T
    kl_online ol[S2S_LOSS_MAX_ROWS];
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        loss_rows_gather(hsc, a->hs, a->rows + c0, r, C);
        loss_rows_gather(htc, a->ht, a->rows + c0, r, C);
        for (int64_t i = 0; i < r; i++) ol[i] = (kl_online){{-INFINITY, 0.0}, {-INFINITY, 0.0}, 0.0};
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, zs, VB);
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, zt, VB);
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < r; i++) kl_online_add(&ol[i], zt + i * VB, zs + i * VB, vb);
        }
        for (int64_t i = 0; i < r; i++) {
            double ls = (double)ol[i].s.max + log(ol[i].s.sum), lt = (double)ol[i].t.max + log(ol[i].t.sum);
            lse_s[c0 + i] = (float)ls;
            lse_t[c0 + i] = (float)lt;
            kl[c0 + i] = (float)(ol[i].u / ol[i].t.sum - lt + ls);  // E_p[a - b] - lse(a) + lse(b)
        }
        if (!grads) continue;
        // The chunk's logits are still whole: logit gradients in place, then one GEMM per product.
        kl_block_grad(zt, zs, r, V, V, lse_s + c0, lse_t + c0, kl + c0, scale * a->inv_t, teacher);
        if (dhs) gemm_cpu(ctx, false, false, r, C, V, 1.0f, zs, V, a->w, C, 0.0f, dhs + c0 * C, C);
        if (dht) gemm_cpu(ctx, false, false, r, C, V, 1.0f, zt, V, a->w, C, 0.0f, dht + c0 * C, C);
        if (dw) {
            loss_gemm_dw(ctx, dw, zs, V, hsc, r, C, V);
            loss_gemm_dw(ctx, dw, zt, V, htc, r, C, V);
        }
    }
}

void kl_fused_dw_cpu(s2s_ctx *ctx, const kl_fused_args *a, const float *kl, const float *lse_s, const float *lse_t,
                     float alpha, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const loss_plan p = loss_plan_make(M, V, 2, false);
    const int64_t R = p.R, VB = p.vblk;
    float *hsc = ws, *htc = ws + R * C;  // [R, C] each
    float *zs = ws + 2 * R * C;          // [R, VB] student tile
    float *zt = zs + R * VB;             // [R, VB] teacher tile
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        loss_rows_gather(hsc, a->hs, a->rows + c0, r, C);
        loss_rows_gather(htc, a->ht, a->rows + c0, r, C);
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            float *dwb = dw + v0 * C;  // [vb, C]
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, zs, VB);
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, zt, VB);
            kl_block_grad(zt, zs, r, vb, VB, lse_s + c0, lse_t + c0, kl + c0, alpha * a->inv_t, true);
            loss_gemm_dw(ctx, dwb, zs, VB, hsc, r, C, vb);
            loss_gemm_dw(ctx, dwb, zt, VB, htc, r, C, vb);
        }
    }
}
