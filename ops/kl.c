// kl.c — BLSP response KL with temperature T between a teacher and a student that share the output
// projection w: sum over masked rows of KL(softmax(h_t w^T / T) || softmax(h_s w^T / T)) / sum(mask),
// chunked like the fused cross-entropy (no [N, V] buffer). No T^2 factor (BLSP uses none). As in
// cross_entropy_fused, the forward forms the gradients for an upstream gradient of 1 (student logits
// and teacher logits once each, then only the dh GEMMs: stage 1 needs 3 GEMM-equivalents);
// backward scales them by the real upstream gradient and corrects w.grad, if w trains, when it is
// not 1. A mask with no row set gives 0 and zero gradients.
#include "cpu/cross_entropy_fused.h"
#include "cpu/kl.h"
#include "../autograd/device.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

typedef struct kl_saved {
    kl_fused_args a;
    float *kl, *lse_s, *lse_t;  // [M] each, for the correction pass
    float *dhs, *dht;           // [M, C] gradients at upstream 1, or NULL
    float scale;                // 1 / M
    bool w_eager;               // w.grad already holds w's share at upstream 1
} kl_saved;

static void kl_fused_backward(s2s_ctx *ctx, s2s_node *n) {
    kl_saved *s = n->saved;
    s2s_tensor *hs = n->in[0], *ht = n->in[1], *w = n->in[2], *y = n->out[0];
    float g = 0.0f;  // upstream gradient: on a CUDA context one float comes back from the device
    if (ctx->device == S2S_CPU) g = F32(y->grad)[0];
    else s2s_dev_copy(S2S_CPU, &g, ctx->device, y->grad->data, sizeof g);
    float *dhs = s2s_grad_if(ctx, hs), *dht = s2s_grad_if(ctx, ht);
    if (ctx->device == S2S_CPU) {
        if (dhs && s->dhs) loss_rows_axpy(dhs, s->a.rows, s->dhs, s->a.M, s->a.C, g);
        if (dht && s->dht) loss_rows_axpy(dht, s->a.rows, s->dht, s->a.M, s->a.C, g);
    }
#ifdef S2S_HAVE_CUDA
    else {
        if (dhs && s->dhs) loss_rows_axpy_cuda(ctx, dhs, s->a.rows, s->dhs, s->a.M, s->a.C, g);
        if (dht && s->dht) loss_rows_axpy_cuda(ctx, dht, s->a.rows, s->dht, s->a.M, s->a.C, g);
    }
#endif
    if (!s->w_eager) return;
    ctx->pending_eager--;
    s->w_eager = false;
    if (g == 1.0f) return;
    float *dw = s2s_grad(ctx, w);
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *ws = s2s_scratch_alloc(ctx, kl_fused_workspace_floats(&s->a, false) * sizeof(float));
    if (ctx->device == S2S_CPU) kl_fused_dw_cpu(ctx, &s->a, s->kl, s->lse_s, s->lse_t, (g - 1.0f) * s->scale, dw, ws);
#ifdef S2S_HAVE_CUDA
    else kl_fused_dw_cuda(ctx, &s->a, s->kl, s->lse_s, s->lse_t, (g - 1.0f) * s->scale, dw, ws);
#endif
    s2s_arena_rewind(ctx->cur, mark);
}

s2s_tensor *s2s_kl_fused(s2s_ctx *ctx, s2s_tensor *h_s, s2s_tensor *h_t, s2s_tensor *w, s2s_tensor *mask,
                         float temperature) {
    S2S_CHECK_F32(ctx, h_s, "kl_fused");
    S2S_CHECK_F32(ctx, h_t, "kl_fused");
    S2S_CHECK_F32(ctx, w, "kl_fused");
    S2S_CHECK_I32(ctx, mask, "kl_fused");
    S2S_CHECK(s2s_same_shape(h_s, h_t), "kl_fused: student and teacher hidden states must have the same shape "
              "(one teacher row per student row; gather the response rows of each first)");
    S2S_CHECK(w->ndim == 2 && w->shape[1] == s2s_cols(h_s),
              "kl_fused: hidden [..., %lld] does not match the output projection %s [%lld, %lld]",
              (long long)s2s_cols(h_s), w->name ? w->name : "", (long long)w->shape[0],
              (long long)(w->ndim > 1 ? w->shape[1] : 0));
    const int64_t N = s2s_rows(h_s), C = s2s_cols(h_s), V = w->shape[0];
    S2S_CHECK(s2s_numel(mask) == N, "kl_fused: %lld hidden rows but %lld mask entries", (long long)N,
              (long long)s2s_numel(mask));
    S2S_CHECK(V >= 1 && C >= 1, "kl_fused: empty vocabulary or hidden size");
    S2S_CHECK(temperature > 0.0f, "kl_fused: temperature must be > 0 (got %g)", (double)temperature);
#ifndef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("kl_fused");
#endif
    const bool dev = ctx->device != S2S_CPU;  // CUDA: the mask comes back to the host, kept rows go out
    const bool eager = s2s_grad_enabled(ctx) && (h_s->requires_grad || h_t->requires_grad || w->requires_grad);
    S2S_CHECK(!(eager && ctx->in_region), "kl_fused forms gradients during its forward and a recompute region "
              "runs its forward twice: compute the loss outside the region");

    const int32_t *mk = I32(mask);  // [N] (host)
    if (dev) {
        int32_t *hm = s2s_host_alloc(ctx, (size_t)(N + 1) * sizeof(int32_t));
        s2s_dev_copy(S2S_CPU, hm, ctx->device, mask->data, (size_t)N * sizeof(int32_t));
        mk = hm;
    }
    int64_t M = 0;
    for (int64_t i = 0; i < N; i++) {
        S2S_CHECK(mk[i] == 0 || mk[i] == 1, "kl_fused: mask[%lld] = %d; the mask is 0/1", (long long)i, mk[i]);
        M += mk[i];
    }
    s2s_tensor *y = s2s_new(ctx, S2S_F32, 0, NULL);  // scalar
    kl_saved *s = s2s_host_alloc(ctx, sizeof *s);  // read by the host in backward
    int32_t *rows = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t));  // [M] on ctx->device
    int32_t *hrows = dev ? s2s_host_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t)) : rows;  // [M] (host)
    for (int64_t i = 0, m = 0; i < N; i++)
        if (mk[i]) hrows[m++] = (int32_t)i;
    if (dev && M > 0) s2s_dev_copy(ctx->device, rows, S2S_CPU, hrows, (size_t)M * sizeof(int32_t));
    *s = (kl_saved){.a = {F32(h_s), F32(h_t), F32(w), rows, M, C, V, 1.0f / temperature},
                    .scale = M ? 1.0f / (float)M : 0.0f};
    s->kl = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(float));     // [M]
    s->lse_s = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(float));  // [M]
    s->lse_t = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(float));  // [M]
    float *dw = NULL;
    if (eager) {
        if (h_s->requires_grad) s->dhs = s2s_scratch_alloc(ctx, (size_t)(M * C + 1) * sizeof(float));  // [M, C]
        if (h_t->requires_grad) s->dht = s2s_scratch_alloc(ctx, (size_t)(M * C + 1) * sizeof(float));  // [M, C]
        dw = s2s_grad_if(ctx, w);  // before the workspace mark: a non-parameter's grad lives in the arena
        s->w_eager = dw != NULL && M > 0;
    }

    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *ws = s2s_scratch_alloc(ctx, kl_fused_workspace_floats(&s->a, eager) * sizeof(float));
    const float *hkl = s->kl;  // [M] (host)
    if (!dev)
        kl_fused_forward_cpu(ctx, &s->a, s->scale, s->kl, s->lse_s, s->lse_t, s->dhs, s->dht, s->w_eager ? dw : NULL,
                             ws);
#ifdef S2S_HAVE_CUDA
    else
        kl_fused_forward_cuda(ctx, &s->a, s->scale, s->kl, s->lse_s, s->lse_t, s->dhs, s->dht, s->w_eager ? dw : NULL,
                              ws);
#endif
    s2s_arena_rewind(ctx->cur, mark);
    if (dev) {  // CUDA: the per-row KLs (kept on the device for backward) are copied back explicitly
        float *hk = s2s_host_alloc(ctx, (size_t)(M + 1) * sizeof(float));
        if (M > 0) s2s_dev_copy(S2S_CPU, hk, ctx->device, s->kl, (size_t)M * sizeof(float));  // synchronises
        hkl = hk;
    }
    double sum = 0.0;  // row order: deterministic for any thread count (the same sum on both devices)
    for (int64_t m = 0; m < M; m++) sum += hkl[m];
    const float val = M ? (float)(sum / (double)M) : 0.0f;
    if (!dev) F32(y)[0] = val;
    else s2s_dev_copy(ctx->device, y->data, S2S_CPU, &val, sizeof val);  // the scalar goes to the device

    s2s_node *n = s2s_record(ctx, "kl_fused", kl_fused_backward, (s2s_tensor *[]){h_s, h_t, w, mask}, 4, &y, 1);
    if (n) {
        n->saved = s;
        if (s->w_eager) ctx->pending_eager++;
        n->run_always = s->w_eager;
    }
    return y;
}
