#pragma once
#include <stdbool.h>
#include "../../autograd/ctx.h"

typedef struct kl_fused_args {
    const float *hs, *ht;  // [N, C] student / teacher hidden states
    const float *w;        // [V, C] shared output projection
    const int32_t *rows;   // [M] rows whose mask is set
    int64_t M, C, V;
    float inv_t;           // 1 / temperature
} kl_fused_args;

// Floats of workspace kl_fused_forward_cpu needs (grads: whether any gradient will be formed).
size_t kl_fused_workspace_floats(const kl_fused_args *a, bool grads);
// With a = ht[rows] w^T / T (teacher), b = hs[rows] w^T / T (student): kl [M] = KL(softmax(a) ||
// softmax(b)), lse_t [M], lse_s [M]. Non-NULL dhs / dht [M, C] (written) and dw [V, C]
// (accumulated) get the gradient of scale * sum(kl).
void kl_fused_forward_cpu(s2s_ctx *ctx, const kl_fused_args *a, float scale, float *kl, float *lse_s, float *lse_t,
                          float *dhs, float *dht, float *dw, float *ws);
// dw [V, C] += alpha * d sum(kl) / dw, recomputing the logits with the forward's row statistics.
// Workspace: kl_fused_workspace_floats(a, false).
void kl_fused_dw_cpu(s2s_ctx *ctx, const kl_fused_args *a, const float *kl, const float *lse_s, const float *lse_t,
                     float alpha, float *dw, float *ws);
