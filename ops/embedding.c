// embedding.c — row lookup (PyTorch nn.Embedding), forward and backward.
#include "cpu/embedding.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "../autograd/device.h"
#include "cuda/kernels.h"
#endif

static void embedding_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *ids = n->in[0], *w = n->in[1], *y = n->out[0];
    float *dw = s2s_grad_if(ctx, w);
    if (!dw) return;
    if (ctx->device == S2S_CPU) embedding_backward_cpu(dw, F32(y->grad), I32(ids), s2s_numel(ids), w->shape[1]);
#ifdef S2S_HAVE_CUDA
    else embedding_backward_cuda(ctx, dw, F32(y->grad), I32(ids), s2s_numel(ids), w->shape[1], w->shape[0]);
#else
    else S2S_NO_CUDA("embedding");
#endif
}

s2s_tensor *s2s_embedding(s2s_ctx *ctx, s2s_tensor *ids, s2s_tensor *w) {
    S2S_CHECK_I32(ctx, ids, "embedding");
    S2S_CHECK_F32(ctx, w, "embedding");
    S2S_CHECK(w->ndim == 2, "embedding: weight must be [V, C]");
    S2S_CHECK(ids->ndim < S2S_MAX_DIMS, "embedding: ids have at most 3 dims");
    int64_t N = s2s_numel(ids), V = w->shape[0], C = w->shape[1];
    if (ctx->device == S2S_CPU) {
        const int32_t *id = I32(ids);
        for (int64_t i = 0; i < N; i++)
            S2S_CHECK(id[i] >= 0 && id[i] < V, "embedding %s: token id %d at position %lld is outside the "
                      "vocabulary [0, %lld); does the tokenizer match the checkpoint?",
                      w->name ? w->name : "", id[i], (long long)i, (long long)V);
    }
#ifdef S2S_HAVE_CUDA
    else {  // checked on the device; only the first bad position (and its id) comes back
        int64_t bad = index_first_invalid_cuda(ctx, I32(ids), N, V);
        if (bad >= 0) {
            int32_t id = 0;
            s2s_dev_copy(S2S_CPU, &id, ctx->device, I32(ids) + bad, sizeof id);
            S2S_CHECK(bad < 0, "embedding %s: token id %d at position %lld is outside the vocabulary [0, %lld); "
                      "does the tokenizer match the checkpoint?", w->name ? w->name : "", id, (long long)bad,
                      (long long)V);
        }
    }
#endif
    int64_t shape[S2S_MAX_DIMS];
    for (int i = 0; i < ids->ndim; i++) shape[i] = ids->shape[i];
    shape[ids->ndim] = C;
    s2s_tensor *y = s2s_new(ctx, S2S_F32, ids->ndim + 1, shape);  // [..., C]
    if (ctx->device == S2S_CPU) embedding_forward_cpu(F32(y), I32(ids), F32(w), N, C);
#ifdef S2S_HAVE_CUDA
    else embedding_forward_cuda(ctx, F32(y), I32(ids), F32(w), N, C);
#else
    else S2S_NO_CUDA("embedding");
#endif
    s2s_record(ctx, "embedding", embedding_backward, (s2s_tensor *[]){ids, w}, 2, &y, 1);
    return y;
}
