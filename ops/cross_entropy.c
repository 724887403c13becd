// cross_entropy.c — mean cross-entropy of materialised logits with an ignore index, forward and
// backward. PyTorch F.cross_entropy(reduction='mean', ignore_index) semantics, except that a batch
// whose labels are all ignored gives loss 0 and zero gradients where PyTorch gives NaN (0/0): a
// micro-batch with no supervised token must not poison the accumulated gradients.
#include "cpu/cross_entropy.h"
#include "../autograd/device.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void cross_entropy_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *logits = n->in[0], *labels = n->in[1], *y = n->out[0];
    float *dz = s2s_grad_if(ctx, logits);
    int64_t n_valid = n->i[1];
    if (!dz || n_valid == 0) return;
    float g = 0.0f;  // upstream gradient: on a CUDA context it lives on the device, one float comes back
    if (ctx->device == S2S_CPU) g = F32(y->grad)[0];
    else s2s_dev_copy(S2S_CPU, &g, ctx->device, y->grad->data, sizeof g);
    float scale = g / (float)n_valid;
    if (ctx->device == S2S_CPU)
        cross_entropy_backward_cpu(dz, F32(logits), n->saved, I32(labels), (int32_t)n->i[0], scale,
                                   s2s_rows(logits), s2s_cols(logits));
#ifdef S2S_HAVE_CUDA
    else cross_entropy_backward_cuda(ctx, dz, F32(logits), n->saved, I32(labels), (int32_t)n->i[0], scale,
                                     s2s_rows(logits), s2s_cols(logits));
#else
    else S2S_NO_CUDA("cross_entropy");
#endif
}

s2s_tensor *s2s_cross_entropy(s2s_ctx *ctx, s2s_tensor *logits, s2s_tensor *labels, int ignore_index) {
    S2S_CHECK_F32(ctx, logits, "cross_entropy");
    S2S_CHECK_I32(ctx, labels, "cross_entropy");
    int64_t N = s2s_rows(logits), V = s2s_cols(logits);
    S2S_CHECK(logits->ndim >= 1 && V >= 1 && s2s_numel(labels) == N,
              "cross_entropy: logits [..., V] have %lld rows but labels hold %lld; labels are one per row",
              (long long)N, (long long)s2s_numel(labels));
#ifndef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("cross_entropy");
#endif
    // The host checks the labels: on a CUDA context they come back first (N ints).
    const int32_t *lab = I32(labels);  // [N] (host)
    if (ctx->device != S2S_CPU) {
        int32_t *hl = s2s_host_alloc(ctx, (size_t)(N + 1) * sizeof(int32_t));
        s2s_dev_copy(S2S_CPU, hl, ctx->device, labels->data, (size_t)N * sizeof(int32_t));
        lab = hl;
    }
    int64_t n_valid = 0;
    for (int64_t i = 0; i < N; i++) {
        if (lab[i] == ignore_index) continue;
        S2S_CHECK(lab[i] >= 0 && lab[i] < V, "cross_entropy: label %d at row %lld is outside [0, %lld) and is "
                  "not the ignore index %d", lab[i], (long long)i, (long long)V, ignore_index);
        n_valid++;
    }
    s2s_tensor *y = s2s_new(ctx, S2S_F32, 0, NULL);   // scalar
    float *lse = s2s_scratch_alloc(ctx, (size_t)(N + 1) * sizeof(float));   // [N] on ctx->device, kept for backward
    float *loss = s2s_scratch_alloc(ctx, (size_t)(N + 1) * sizeof(float));  // [N] on ctx->device
    const float *hloss = loss;                                              // [N] (host)
    if (ctx->device == S2S_CPU) cross_entropy_forward_cpu(loss, lse, F32(logits), lab, ignore_index, N, V);
#ifdef S2S_HAVE_CUDA
    else {
        // Per-row losses on the device, copied back explicitly and reduced on the host like the CPU's.
        cross_entropy_forward_cuda(ctx, loss, lse, F32(logits), I32(labels), ignore_index, N, V);
        float *hl = s2s_host_alloc(ctx, (size_t)(N + 1) * sizeof(float));
        s2s_dev_copy(S2S_CPU, hl, ctx->device, loss, (size_t)N * sizeof(float));
        hloss = hl;
    }
#endif
    double sum = 0.0;  // row order: deterministic for any thread count
    for (int64_t i = 0; i < N; i++) sum += hloss[i];
    const float val = n_valid ? (float)(sum / (double)n_valid) : 0.0f;
    if (ctx->device == S2S_CPU) F32(y)[0] = val;
#ifdef S2S_HAVE_CUDA
    else s2s_dev_copy(ctx->device, y->data, S2S_CPU, &val, sizeof val);  // the scalar goes to the device
#endif
    s2s_node *n = s2s_record(ctx, "cross_entropy", cross_entropy_backward, (s2s_tensor *[]){logits, labels}, 2, &y, 1);
    if (n) {
        n->saved = lse;
        n->i[0] = ignore_index;
        n->i[1] = n_valid;
    }
    return y;
}
