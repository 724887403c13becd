#include "cross_entropy_fused.h"
#include <math.h>
#include <string.h>
#include "gemm.h"
#include "softmax.h"

loss_plan loss_plan_make(int64_t M, int64_t V, int n_sets, bool whole_rows) {
    const int64_t budget = (int64_t)S2S_LOSS_CHUNK_BYTES / (n_sets * (int64_t)sizeof(float));  // floats per set
    loss_plan p;
    if (whole_rows) {
        p.vblk = V;
        p.R = budget / V;
        p.R = p.R < S2S_LOSS_MIN_ROWS   ? S2S_LOSS_MIN_ROWS
              : p.R > S2S_LOSS_MAX_ROWS ? S2S_LOSS_MAX_ROWS
                                        : p.R & ~(int64_t)7;  // whole GEMM register blocks
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

void loss_gemm_dw(s2s_ctx *ctx, float *dw, const float *g, int64_t ldg, const float *hc, int64_t r, int64_t C,
                  int64_t V) {
    for (int64_t v0 = 0; v0 < V; v0 += S2S_LOSS_DW_VBLOCK) {
        const int64_t vb = V - v0 < S2S_LOSS_DW_VBLOCK ? V - v0 : S2S_LOSS_DW_VBLOCK;
        gemm_cpu(ctx, true, false, vb, C, r, 1.0f, g + v0, ldg, hc, C, 1.0f, dw + v0 * C, C);
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

// One [r, vb] block of logits z (row stride ld, columns v0..v0+vb): fold it into each row's running
// log-sum-exp and pick out the label's logit when it falls in the block.
static void ce_block_lse(s2s_online_lse *ol, float *zy, const float *z, int64_t ld, int64_t r, int64_t v0,
                         int64_t vb, const int32_t *lab) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < r; i++) {
        s2s_online_lse_add(&ol[i], z + i * ld, vb);
        if (lab[i] >= v0 && lab[i] < v0 + vb) zy[i] = z[i * ld + lab[i] - v0];
    }
}

// In place: z <- scale * (softmax(z) - onehot(label)) on one [r, vb] block, given each row's lse.
static void ce_block_grad(float *z, int64_t ld, int64_t r, int64_t v0, int64_t vb, const int32_t *lab,
                          const float *lse, float scale) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < r; i++) {
        float *g = z + i * ld;  // [vb]
        const float l = lse[i];
        #pragma omp simd
        for (int64_t j = 0; j < vb; j++) g[j] = scale * s2s_expf(g[j] - l);
        if (lab[i] >= v0 && lab[i] < v0 + vb) g[lab[i] - v0] -= scale;
    }
}

void ce_fused_forward_cpu(s2s_ctx *ctx, const ce_fused_args *a, float scale, float *loss, float *lse, float *dh,
                          float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const bool grads = dh || dw;
    const loss_plan p = loss_plan_make(M, V, 1, grads);  // grads: p.vblk == V, one block
    const int64_t R = p.R, VB = p.vblk;
    float *hc = ws;         // [R, C] the chunk's rows of h
    float *z = ws + R * C;  // [R, VB] logits: the chunk's whole rows (grads) or one tile
    s2s_online_lse ol[S2S_LOSS_MAX_ROWS];
    float zy[S2S_LOSS_MAX_ROWS];  // logit of the label
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        const int32_t *lab = a->labels + c0;  // [r]
        loss_rows_gather(hc, a->h, a->rows + c0, r, C);
        for (int64_t i = 0; i < r; i++) ol[i] = (s2s_online_lse){-INFINITY, 0.0};
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cpu(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, z, VB);  // z = hc w_b^T
            ce_block_lse(ol, zy, z, VB, r, v0, vb, lab);
        }
        for (int64_t i = 0; i < r; i++) {
            // f64: lse and z_y are O(max logit), the loss is their (possibly small) difference.
            double l = (double)ol[i].max + log(ol[i].sum);
            lse[c0 + i] = (float)l;
            loss[c0 + i] = (float)(l - (double)zy[i]);
        }
        if (!grads) continue;
        // The chunk's logits are still whole: G = scale * (softmax - onehot) in place, then
        // dh_chunk = G @ w and dw += G^T @ h_chunk.
        ce_block_grad(z, V, r, 0, V, lab, lse + c0, scale);
        if (dh) gemm_cpu(ctx, false, false, r, C, V, 1.0f, z, V, a->w, C, 0.0f, dh + c0 * C, C);
        if (dw) loss_gemm_dw(ctx, dw, z, V, hc, r, C, V);
    }
}

void ce_fused_dw_cpu(s2s_ctx *ctx, const ce_fused_args *a, const float *lse, float alpha, float *dw, float *ws) {
    const int64_t M = a->M, C = a->C, V = a->V;
    const loss_plan p = loss_plan_make(M, V, 1, false);
    const int64_t R = p.R, VB = p.vblk;
    float *hc = ws;         // [R, C]
    float *z = ws + R * C;  // [R, VB] one tile
    for (int64_t c0 = 0; c0 < M; c0 += R) {
        const int64_t r = M - c0 < R ? M - c0 : R;
        loss_rows_gather(hc, a->h, a->rows + c0, r, C);
        for (int64_t v0 = 0; v0 < V; v0 += VB) {
            const int64_t vb = V - v0 < VB ? V - v0 : VB;
            gemm_cpu(ctx, false, true, r, vb, C, 1.0f, hc, C, a->w + v0 * C, C, 0.0f, z, VB);
            ce_block_grad(z, VB, r, v0, vb, a->labels + c0, lse + c0, alpha);
            loss_gemm_dw(ctx, dw + v0 * C, z, VB, hc, r, C, vb);
        }
    }
}
