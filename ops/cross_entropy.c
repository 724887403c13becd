// cross_entropy.c — mean cross-entropy of materialised logits with an ignore index, forward and
// backward. PyTorch F.cross_entropy(reduction='mean', ignore_index) semantics, except that a batch
// whose labels are all ignored gives loss 0 and zero gradients where PyTorch gives NaN (0/0): a
// micro-batch with no supervised token must not poison the accumulated gradients.
#include "cpu/cross_entropy.h"
#include "dispatch.h"

static void cross_entropy_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *logits = n->in[0], *labels = n->in[1], *y = n->out[0];
    float *dz = s2s_grad_if(ctx, logits);
    int64_t n_valid = n->i[1];
    if (!dz || n_valid == 0) return;
    float scale = F32(y->grad)[0] / (float)n_valid;
    if (ctx->device == S2S_CPU)
        cross_entropy_backward_cpu(dz, F32(logits), n->saved, I32(labels), (int32_t)n->i[0], scale,
                                   s2s_rows(logits), s2s_cols(logits));
    else S2S_NO_CUDA("cross_entropy");
}

s2s_tensor *s2s_cross_entropy(s2s_ctx *ctx, s2s_tensor *logits, s2s_tensor *labels, int ignore_index) {
    S2S_CHECK_F32(ctx, logits, "cross_entropy");
    S2S_CHECK_I32(ctx, labels, "cross_entropy");
    int64_t N = s2s_rows(logits), V = s2s_cols(logits);
    S2S_CHECK(logits->ndim >= 1 && V >= 1 && s2s_numel(labels) == N,
              "cross_entropy: logits [..., V] have %lld rows but labels hold %lld; labels are one per row",
              (long long)N, (long long)s2s_numel(labels));
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("cross_entropy");
    const int32_t *lab = I32(labels);  // [N]
    int64_t n_valid = 0;
    for (int64_t i = 0; i < N; i++) {
        if (lab[i] == ignore_index) continue;
        S2S_CHECK(lab[i] >= 0 && lab[i] < V, "cross_entropy: label %d at row %lld is outside [0, %lld) and is "
                  "not the ignore index %d", lab[i], (long long)i, (long long)V, ignore_index);
        n_valid++;
    }
    s2s_tensor *y = s2s_new(ctx, S2S_F32, 0, NULL);   // scalar
    float *lse = s2s_scratch_alloc(ctx, (size_t)N * sizeof(float));   // [N], kept for backward
    float *loss = s2s_scratch_alloc(ctx, (size_t)N * sizeof(float));  // [N]
    cross_entropy_forward_cpu(loss, lse, F32(logits), lab, ignore_index, N, V);
    double sum = 0.0;  // row order: deterministic for any thread count
    for (int64_t i = 0; i < N; i++) sum += loss[i];
    F32(y)[0] = n_valid ? (float)(sum / (double)n_valid) : 0.0f;
    s2s_node *n = s2s_record(ctx, "cross_entropy", cross_entropy_backward, (s2s_tensor *[]){logits, labels}, 2, &y, 1);
    if (n) {
        n->saved = lse;
        n->i[0] = ignore_index;
        n->i[1] = n_valid;
    }
    return y;
}
