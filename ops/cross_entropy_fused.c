// cross_entropy_fused.c — weight * mean cross-entropy of h @ w^T with an ignore index, without ever
// holding [N, V] logits (V is 151k-168k for Qwen3). Rows whose label is ignored are dropped before
// any GEMM. With grad on, the forward also forms the gradients for an upstream gradient of 1 (one
// pass over the logits: 3 GEMM-equivalents in all instead of 4): h's share waits in the arena for
// backward, w's share goes straight into w.grad (an eager side effect, counted in
// ctx->pending_eager so that a step dropped without backward is caught). Backward scales h's share
// by the real upstream gradient g and, when g != 1, corrects w.grad by (g - 1) times its share,
// recomputing the logits (rare: losses are usually the root of backward).
#include "cpu/cross_entropy_fused.h"
#include "../autograd/device.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

typedef struct ce_fused_saved {
    ce_fused_args a;  // rows / labels point into the arena
    float *lse;       // [M] row log-sum-exp, for the correction pass
    float *dh;        // [M, C] d loss / d h[rows] at upstream 1, or NULL when h needs no grad
    float scale;      // weight / M
    bool w_eager;     // w.grad already holds w's share at upstream 1
} ce_fused_saved;

static void cross_entropy_fused_backward(s2s_ctx *ctx, s2s_node *n) {
    ce_fused_saved *s = n->saved;
    s2s_tensor *h = n->in[0], *w = n->in[1], *y = n->out[0];
    float g = 0.0f;  // upstream gradient: on a CUDA context one float comes back from the device
    if (ctx->device == S2S_CPU) g = F32(y->grad)[0];
    else s2s_dev_copy(S2S_CPU, &g, ctx->device, y->grad->data, sizeof g);
    float *dh = s2s_grad_if(ctx, h);
    if (dh && s->dh) {
        if (ctx->device == S2S_CPU) loss_rows_axpy(dh, s->a.rows, s->dh, s->a.M, s->a.C, g);
#ifdef S2S_HAVE_CUDA
        else loss_rows_axpy_cuda(ctx, dh, s->a.rows, s->dh, s->a.M, s->a.C, g);
#endif
    }
    if (!s->w_eager) return;
    ctx->pending_eager--;
    s->w_eager = false;
    if (g == 1.0f) return;
    float *dw = s2s_grad(ctx, w);
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *ws = s2s_scratch_alloc(ctx, ce_fused_workspace_floats(&s->a, false) * sizeof(float));
    if (ctx->device == S2S_CPU) ce_fused_dw_cpu(ctx, &s->a, s->lse, (g - 1.0f) * s->scale, dw, ws);
#ifdef S2S_HAVE_CUDA
    else ce_fused_dw_cuda(ctx, &s->a, s->lse, (g - 1.0f) * s->scale, dw, ws);
#endif
    s2s_arena_rewind(ctx->cur, mark);
}

s2s_tensor *s2s_cross_entropy_fused(s2s_ctx *ctx, s2s_tensor *h, s2s_tensor *w, s2s_tensor *labels,
                                    int ignore_index, float weight) {
    S2S_CHECK_F32(ctx, h, "cross_entropy_fused");
    S2S_CHECK_F32(ctx, w, "cross_entropy_fused");
    S2S_CHECK_I32(ctx, labels, "cross_entropy_fused");
    S2S_CHECK(w->ndim == 2 && w->shape[1] == s2s_cols(h),
              "cross_entropy_fused: hidden [..., %lld] does not match the output projection %s [%lld, %lld]",
              (long long)s2s_cols(h), w->name ? w->name : "", (long long)w->shape[0],
              (long long)(w->ndim > 1 ? w->shape[1] : 0));
    const int64_t N = s2s_rows(h), C = s2s_cols(h), V = w->shape[0];
    S2S_CHECK(s2s_numel(labels) == N, "cross_entropy_fused: %lld hidden rows but %lld labels", (long long)N,
              (long long)s2s_numel(labels));
    S2S_CHECK(V >= 1 && C >= 1, "cross_entropy_fused: empty vocabulary or hidden size");
#ifndef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("cross_entropy_fused");
#endif
    const bool dev = ctx->device != S2S_CPU;  // CUDA: labels come back to the host, kept rows go out
    const bool eager = s2s_grad_enabled(ctx) && (h->requires_grad || w->requires_grad);
    S2S_CHECK(!(eager && ctx->in_region), "cross_entropy_fused applies w's gradient during its forward and a "
              "recompute region runs its forward twice: compute the loss outside the region");

    // Keep only the supervised rows (prompt tokens are often most of a batch).
    const int32_t *lab = I32(labels);  // [N] (host)
    if (dev) {
        int32_t *hl = s2s_host_alloc(ctx, (size_t)(N + 1) * sizeof(int32_t));
        s2s_dev_copy(S2S_CPU, hl, ctx->device, labels->data, (size_t)N * sizeof(int32_t));
        lab = hl;
    }
    int64_t M = 0;
    for (int64_t i = 0; i < N; i++) {
        if (lab[i] == ignore_index) continue;
        S2S_CHECK(lab[i] >= 0 && lab[i] < V, "cross_entropy_fused: label %d at row %lld is outside the "
                  "vocabulary [0, %lld) and is not the ignore index %d", lab[i], (long long)i, (long long)V,
                  ignore_index);
        M++;
    }
    s2s_tensor *y = s2s_new(ctx, S2S_F32, 0, NULL);  // scalar
    ce_fused_saved *s = s2s_host_alloc(ctx, sizeof *s);  // read by the host in backward
    int32_t *rows = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t));  // [M] on ctx->device
    int32_t *rlab = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t));  // [M] on ctx->device
    int32_t *hrows = dev ? s2s_host_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t)) : rows;  // [M] (host)
    int32_t *hrlab = dev ? s2s_host_alloc(ctx, (size_t)(M + 1) * sizeof(int32_t)) : rlab;  // [M] (host)
    for (int64_t i = 0, m = 0; i < N; i++)
        if (lab[i] != ignore_index) hrows[m] = (int32_t)i, hrlab[m++] = lab[i];
    if (dev && M > 0) {
        s2s_dev_copy(ctx->device, rows, S2S_CPU, hrows, (size_t)M * sizeof(int32_t));
        s2s_dev_copy(ctx->device, rlab, S2S_CPU, hrlab, (size_t)M * sizeof(int32_t));
    }
    *s = (ce_fused_saved){.a = {F32(h), F32(w), rows, rlab, M, C, V}, .scale = M ? weight / (float)M : 0.0f};
    s->lse = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(float));  // [M]
    float *dw = NULL;
    if (eager) {
        if (h->requires_grad) s->dh = s2s_scratch_alloc(ctx, (size_t)(M * C + 1) * sizeof(float));  // [M, C]
        dw = s2s_grad_if(ctx, w);  // before the workspace mark: a non-parameter's grad lives in the arena
        s->w_eager = dw != NULL && M > 0;
    }

    // CUDA: the per-row losses come back to this host buffer (before the mark: it outlives the rewind).
    float *hloss = dev ? s2s_host_alloc(ctx, (size_t)(M + 1) * sizeof(float)) : NULL;  // [M] (host)
    // The workspace is released as soon as the loss and the gradients are formed.
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *loss = s2s_scratch_alloc(ctx, (size_t)(M + 1) * sizeof(float));  // [M] on ctx->device
    float *ws = s2s_scratch_alloc(ctx, ce_fused_workspace_floats(&s->a, eager) * sizeof(float));
    if (!dev) {
        ce_fused_forward_cpu(ctx, &s->a, s->scale, loss, s->lse, s->dh, s->w_eager ? dw : NULL, ws);
        hloss = loss;
    }
#ifdef S2S_HAVE_CUDA
    else {
        ce_fused_forward_cuda(ctx, &s->a, s->scale, loss, s->lse, s->dh, s->w_eager ? dw : NULL, ws);
        if (M > 0) s2s_dev_copy(S2S_CPU, hloss, ctx->device, loss, (size_t)M * sizeof(float));  // synchronises
    }
#endif
    double sum = 0.0;  // row order: deterministic for any thread count (the same sum on both devices)
    for (int64_t m = 0; m < M; m++) sum += hloss[m];
    s2s_arena_rewind(ctx->cur, mark);
    const float val = M ? (float)((double)weight * sum / (double)M) : 0.0f;
    if (!dev) F32(y)[0] = val;
    else s2s_dev_copy(ctx->device, y->data, S2S_CPU, &val, sizeof val);  // the scalar goes to the device

    s2s_node *n = s2s_record(ctx, "cross_entropy_fused", cross_entropy_fused_backward,
                             (s2s_tensor *[]){h, w, labels}, 3, &y, 1);
    if (n) {
        n->saved = s;
        if (s->w_eager) ctx->pending_eager++;
        n->run_always = s->w_eager;
    }
    return y;
}
