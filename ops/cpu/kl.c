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

static void kl_plan(const kl_fused_args *a, bool grads, int64_t *R, int64_t *ldz) {
    *R = loss_chunk_rows(a->M, a->V, grads ? 2 : 0);
    *ldz = grads ? a->V : (a->V < S2S_LOSS_VBLOCK ? a->V : S2S_LOSS_VBLOCK);
}

size_t kl_fused_workspace_floats(const kl_fused_args *a, bool grads) {
    int64_t R, ldz;
    kl_plan(a, grads, &R, &ldz);
    return (size_t)(2 * R * a->C + 2 * R * ldz);
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
    int64_t R, ldz;
    kl_plan(a, grads, &R, &ldz);
    float *hsc = ws, *htc = ws + R * C;   // [R, C] each: the chunk's rows
    float *zs = ws + 2 * R * C;           // [R, ldz] student logits / T
    float *zt = zs + R * ldz;             // [R, ldz] teacher logits / T
    kl_online ol[S2S_LOSS_MAX_ROWS];
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        loss_rows_gather(hsc, a->hs, a->rows + c0, r, C);
        loss_rows_gather(htc, a->ht, a->rows + c0, r, C);
        for (int64_t i = 0; i < r; i++) ol[i] = (kl_online){{-INFINITY, 0.0}, {-INFINITY, 0.0}, 0.0};
        for (int64_t v0 = 0; v0 < V; v0 += S2S_LOSS_VBLOCK) {
            const int64_t vb = V - v0 < S2S_LOSS_VBLOCK ? V - v0 : S2S_LOSS_VBLOCK;
            float *sb = grads ? zs + v0 : zs, *tb = grads ? zt + v0 : zt;  // [r, vb] at stride ldz
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, sb, ldz);
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, tb, ldz);
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < r; i++) kl_online_add(&ol[i], tb + i * ldz, sb + i * ldz, vb);
        }
        for (int64_t i = 0; i < r; i++) {
            double ls = (double)ol[i].s.max + log(ol[i].s.sum), lt = (double)ol[i].t.max + log(ol[i].t.sum);
            lse_s[c0 + i] = (float)ls;
            lse_t[c0 + i] = (float)lt;
            kl[c0 + i] = (float)(ol[i].u / ol[i].t.sum - lt + ls);  // E_p[a - b] - lse(a) + lse(b)
        }
        if (!grads) continue;
        float *dhsc = dhs ? dhs + c0 * C : NULL, *dhtc = dht ? dht + c0 * C : NULL;  // [r, C]
        for (int64_t v0 = 0; v0 < V; v0 += S2S_LOSS_VBLOCK) {
            const int64_t vb = V - v0 < S2S_LOSS_VBLOCK ? V - v0 : S2S_LOSS_VBLOCK;
            float *sb = zs + v0, *tb = zt + v0;  // [r, vb] at stride V
            const float *wb = a->w + v0 * C;     // [vb, C]
            const float beta = v0 ? 1.0f : 0.0f;
            kl_block_grad(tb, sb, r, vb, ldz, lse_s + c0, lse_t + c0, kl + c0, scale * a->inv_t, teacher);
            if (dhsc) gemm_cpu(ctx, false, false, r, C, vb, 1.0f, sb, ldz, wb, C, beta, dhsc, C);
            if (dhtc) gemm_cpu(ctx, false, false, r, C, vb, 1.0f, tb, ldz, wb, C, beta, dhtc, C);
            if (dw) {
                gemm_cpu(ctx, true, false, vb, C, r, 1.0f, sb, ldz, hsc, C, 1.0f, dw + v0 * C, C);
                gemm_cpu(ctx, true, false, vb, C, r, 1.0f, tb, ldz, htc, C, 1.0f, dw + v0 * C, C);
            }
        }
    }
}

void kl_fused_dw_cpu(s2s_ctx *ctx, const kl_fused_args *a, const float *kl, const float *lse_s, const float *lse_t,
                     float alpha, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    int64_t R, ldz;
    kl_plan(a, false, &R, &ldz);
    float *hsc = ws, *htc = ws + R * C;  // [R, C] each
    float *zs = ws + 2 * R * C;          // [R, VBLOCK] student tile
    float *zt = zs + R * ldz;            // [R, VBLOCK] teacher tile
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        loss_rows_gather(hsc, a->hs, a->rows + c0, r, C);
        loss_rows_gather(htc, a->ht, a->rows + c0, r, C);
        for (int64_t v0 = 0; v0 < V; v0 += S2S_LOSS_VBLOCK) {
            const int64_t vb = V - v0 < S2S_LOSS_VBLOCK ? V - v0 : S2S_LOSS_VBLOCK;
            float *dwb = dw + v0 * C;  // [vb, C]
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, hsc, C, a->w + v0 * C, C, 0.0f, zs, ldz);
            gemm_cpu(ctx, false, true, r, vb, C, a->inv_t, htc, C, a->w + v0 * C, C, 0.0f, zt, ldz);
            kl_block_grad(zt, zs, r, vb, ldz, lse_s + c0, lse_t + c0, kl + c0, alpha * a->inv_t, true);
            gemm_cpu(ctx, true, false, vb, C, r, 1.0f, zs, ldz, hsc, C, 1.0f, dwb, C);
            gemm_cpu(ctx, true, false, vb, C, r, 1.0f, zt, ldz, htc, C, 1.0f, dwb, C);
        }
    }
}
