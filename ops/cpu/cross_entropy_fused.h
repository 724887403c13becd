#pragma once
#include <stdbool.h>
#include "../../autograd/ctx.h"

// Chunking shared by the fused losses (cross_entropy_fused, kl). Rows are processed in token chunks
// of R rows; n_sets logit sets of [R, vblk] exist at a time, at most S2S_LOSS_CHUNK_BYTES in all
// (unless V alone exceeds it / S2S_LOSS_MIN_ROWS), whatever N is.
// When gradients are formed a chunk keeps its logits for the whole vocabulary (vblk = V): the
// softmax gradient is made from them with no second logits GEMM (3 GEMM-equivalents, not 4), and
// each product is one large GEMM (a pass over the [R, V] buffer costs ~1% next to the GEMMs; few
// large calls keep OpenBLAS efficient and the threads in step on a loaded machine). The budget sets
// R, and R sets the speed: every chunk re-packs all of w for two GEMMs and re-reads dw, so small R
// is packing- and bandwidth-bound (OpenBLAS on 2 Zen 4 cores, V = 151936, C = 1024: ~145 GF/s at
// R = 64, ~170 at R = 128, ~190 at R = 256). 72 MiB gives R = 120 at the Qwen3 vocabulary, where
// forward + backward measured level with PyTorch (both GEMM-bound near the cores' peak) at 74 MiB
// of workspace against PyTorch's 1.8 GiB at N = 1024. Loss-only passes use [R, vblk] tiles with R
// up to S2S_LOSS_MAX_ROWS.
#define S2S_LOSS_CHUNK_BYTES ((size_t)72 << 20)
#define S2S_LOSS_MAX_ROWS 256  // token rows per chunk: beyond this the GEMMs gain nothing
#define S2S_LOSS_MIN_ROWS 8
#define S2S_LOSS_MIN_VBLOCK 2048
// The dw GEMM (G^T @ h_chunk, transposed A) is split into vocabulary blocks of this many rows:
// OpenBLAS packs all of a transposed A at once, which over the whole vocabulary touches another
// [R, V] of memory; 16k-row blocks keep that to a few MB.
#define S2S_LOSS_DW_VBLOCK 16384

typedef struct loss_plan {
    int64_t R;     // token rows per chunk
    int64_t vblk;  // vocabulary columns per GEMM
} loss_plan;
loss_plan loss_plan_make(int64_t M, int64_t V, int n_sets, bool whole_rows);

typedef struct ce_fused_args {
    const float *h;         // [N, C]
    const float *w;         // [V, C]
    const int32_t *rows;    // [M] rows of h whose label is not ignored
    const int32_t *labels;  // [M] their labels, in [0, V)
    int64_t M, C, V;
} ce_fused_args;

// Floats of workspace ce_fused_forward_cpu needs (grads: whether dh or dw will be formed).
size_t ce_fused_workspace_floats(const ce_fused_args *a, bool grads);
// Row losses loss [M] = lse - z[label] and lse [M] of z = h[rows] @ w^T. When dh [M, C] (written)
// or dw [V, C] (accumulated) is non-NULL it also gets the gradient of scale * sum(loss):
// G = scale * (softmax(z) - onehot), dh = G @ w, dw += G^T @ h[rows].
void ce_fused_forward_cpu(s2s_ctx *ctx, const ce_fused_args *a, float scale, float *loss, float *lse, float *dh,
                          float *dw, float *ws);
// dw [V, C] += alpha * (softmax(z) - onehot)^T @ h[rows], recomputing z with the forward's lse [M].
// Workspace: ce_fused_workspace_floats(a, false).
void ce_fused_dw_cpu(s2s_ctx *ctx, const ce_fused_args *a, const float *lse, float alpha, float *dw, float *ws);

// dw [V, C] += g^T @ hc for g [r, V] (row stride ldg) and hc [r, C], in S2S_LOSS_DW_VBLOCK blocks.
void loss_gemm_dw(s2s_ctx *ctx, float *dw, const float *g, int64_t ldg, const float *hc, int64_t r, int64_t C,
                  int64_t V);
// dst[rows[m]] += alpha * src[m] for rows of C floats (rows distinct): dst [N, C], src [M, C].
void loss_rows_axpy(float *dst, const int32_t *rows, const float *src, int64_t M, int64_t C, float alpha);
// dst [M, C] = src[rows[m]]: the chunk's rows gathered contiguous for the GEMMs.
void loss_rows_gather(float *dst, const float *src, const int32_t *rows, int64_t M, int64_t C);
