#include "cross_entropy_fused.h"
#include <math.h>
#include <string.h>
#include <stdlib.h>
#include "gemm.h"
#include "softmax.h"

loss_plan loss_plan_make(int64_t M, int64_t V, int n_sets, bool whole_rows) {
    const int64_t budget = (int64_t)(getenv("XBUD") ? (size_t)atoi(getenv("XBUD")) << 20 : S2S_LOSS_CHUNK_BYTES) / (n_sets * (int64_t)sizeof(float));  // floats per set
    loss_plan p;
    if (whole_rows) {
        p.vblk = V;
        p.R = budget / V;
        p.R = p.R < S2S_LOSS_MIN_ROWS ? S2S_LOSS_MIN_ROWS : p.R > S2S_LOSS_MAX_ROWS ? S2S_LOSS_MAX_ROWS : p.R & ~(int64_t)7;
    } else {
        p.R = S2S_LOSS_MAX_ROWS;
        p.vblk = budget / p.R;
        p.vblk = p.vblk < S2S_LOSS_MIN_VBLOCK ? S2S_LOSS_MIN_VBLOCK : p.vblk & ~(int64_t)63;
        if (p.vblk > V) p.vblk = V;
    }
    if (p.R > M) p.R = M > 0 ? M : 1;
    return p;
}

void loss_rows_axpy(float *dst, const int32_t *rows, const float *src, int64_t M, int64_t C, float alpha) {
    #pragma omp parallel for schedule(static) if (M * C > 32768)
    for (int64_t m = 0; m < M; m++) {
        float *d = dst + (int64_t)rows[m] * C;  // [C]
        const float *s = src + m * C;            // [C]
        #pragma omp simd
        for (int64_t k = 0; k < C; k++) d[k] += alpha * s[k];
    }
}

void loss_rows_gather(float *dst, const float *src, const int32_t *rows, int64_t M, int64_t C) {
    #pragma omp parallel for schedule(static) if (M * C > 32768)
    for (int64_t m = 0; m < M; m++) memcpy(dst + m * C, src + (int64_t)rows[m] * C, (size_t)C * sizeof(float));
}

size_t ce_fused_workspace_floats(const ce_fused_args *a, bool grads) {
    loss_plan p = loss_plan_make(a->M, a->V, 1, grads);
    return (size_t)(p.R * a->C + p.R * p.vblk);
}

void ce_fused_forward_cpu(s2s_ctx *ctx, const ce_fused_args *a, float scale, float *loss, float *lse, float *dh,
                          float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const bool grads = dh || dw;
    const loss_plan p = loss_plan_make(M, V, 1, grads);
    const int64_t R = p.R, VB = p.vblk, ldz = p.vblk;
    float *hc = ws;         // [R, C] the chunk's rows of h
    float *z = ws + R * C;  // [R, VB] logits: the chunk's whole rows (grads) or one tile
    s2s_online_lse ol[S2S_LOSS_MAX_ROWS];
    float zy[S2S_LOSS_MAX_ROWS];  // logit of the label
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        const int32_t *lab = a->labels + c0;  // [r]
        loss_rows_gather(hc, a->h, a->rows + c0, r, C);
        for (int64_t i = 0; i < r; i++) ol[i] = (s2s_online_lse){-INFINITY, 0.0};
        // Sweep 1: logits block by block with a running max / sum of exponentials per row.
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            float *zb = grads ? z + v0 : z;  // [r, vb] at stride ldz
            gemm_cpu(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, zb, ldz);
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < r; i++) {
                s2s_online_lse_add(&ol[i], zb + i * ldz, vb);
                if (lab[i] >= v0 && lab[i] < v0 + vb) zy[i] = zb[i * ldz + lab[i] - v0];
            }
        }
        for (int64_t i = 0; i < r; i++) {
            // f64: lse and z_y are O(max logit), the loss is their (possibly small) difference.
            double l = (double)ol[i].max + log(ol[i].sum);
            lse[c0 + i] = (float)l;
            loss[c0 + i] = (float)(l - (double)zy[i]);
        }
        if (!grads) continue;
        // Sweep 2: G = scale * (softmax - onehot) in place of the kept logits, block by block while
        // the block is in cache, then dh_chunk += G_b @ w_b and dw_b += G_b^T @ h_chunk.
        float *dhc = dh ? dh + c0 * C : NULL;  // [r, C]
        const float *lsec = lse + c0;          // [r]
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            float *zb = z + v0;  // [r, vb] at stride V
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < r; i++) {
                float *g = zb + i * ldz;
                const float l = lsec[i];
                #pragma omp simd
                for (int64_t j = 0; j < vb; j++) g[j] = scale * s2s_expf(g[j] - l);
                if (lab[i] >= v0 && lab[i] < v0 + vb) g[lab[i] - v0] -= scale;
            }
            if (dhc) gemm_cpu(ctx, false, false, r, C, vb, 1.0f, zb, ldz, a->w + v0 * C, C, v0 ? 1.0f : 0.0f, dhc, C);
            if (dw) gemm_cpu(ctx, true, false, vb, C, r, 1.0f, zb, ldz, hc, C, 1.0f, dw + v0 * C, C);
        }
    }
}

void ce_fused_dw_cpu(s2s_ctx *ctx, const ce_fused_args *a, const float *lse, float alpha, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const loss_plan p = loss_plan_make(M, V, 1, false);
    const int64_t R = p.R, VB = p.vblk, ldz = p.vblk;
    float *hc = ws;         // [R, C]
    float *z = ws + R * C;  // [R, VB] one tile
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        const int32_t *lab = a->labels + c0;  // [r]
        const float *lsec = lse + c0;         // [r]
        loss_rows_gather(hc, a->h, a->rows + c0, r, C);
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cpu(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, z, ldz);
            #pragma omp parallel for schedule(static)
            for (int64_t i = 0; i < r; i++) {
                float *g = z + i * ldz;
                const float l = lsec[i];
                #pragma omp simd
                for (int64_t j = 0; j < vb; j++) g[j] = alpha * s2s_expf(g[j] - l);
                if (lab[i] >= v0 && lab[i] < v0 + vb) g[lab[i] - v0] -= alpha;
            }
            gemm_cpu(ctx, true, false, vb, C, r, 1.0f, z, ldz, hc, C, 1.0f, dw + v0 * C, C);
        }
    }
}
