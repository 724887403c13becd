// bmm.c — batched matrix product (torch.bmm), forward and backward.
#include "cpu/bmm.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void bmm_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *a = n->in[0], *b = n->in[1], *c = n->out[0];
    bool tb = n->i[0];
    int64_t B = a->shape[0], M = a->shape[1], K = a->shape[2], N = c->shape[2];
    if (ctx->device == S2S_CPU)
        bmm_backward_cpu(ctx, s2s_grad_if(ctx, a), s2s_grad_if(ctx, b), F32(c->grad), F32(a), F32(b), B, M, K, N, tb);
#ifdef S2S_HAVE_CUDA
    else bmm_backward_cuda(ctx, s2s_grad_if(ctx, a), s2s_grad_if(ctx, b), F32(c->grad), F32(a), F32(b), B, M, K, N, tb);
#else
    else S2S_NO_CUDA("bmm");
#endif
}

s2s_tensor *s2s_bmm(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b, bool trans_b) {
    S2S_CHECK_F32(ctx, a, "bmm");
    S2S_CHECK_F32(ctx, b, "bmm");
    S2S_CHECK(a->ndim == 3 && b->ndim == 3 && a->shape[0] == b->shape[0], "bmm: a [B, M, K] and b [B, ., .]");
    int64_t B = a->shape[0], M = a->shape[1], K = a->shape[2];
    int64_t N = trans_b ? b->shape[1] : b->shape[2];
    S2S_CHECK((trans_b ? b->shape[2] : b->shape[1]) == K, "bmm: inner dimensions differ");
    s2s_tensor *c = s2s_new3(ctx, S2S_F32, B, M, N);  // [B, M, N]
    if (ctx->device == S2S_CPU) bmm_forward_cpu(ctx, F32(c), F32(a), F32(b), B, M, K, N, trans_b);
#ifdef S2S_HAVE_CUDA
    else bmm_forward_cuda(ctx, F32(c), F32(a), F32(b), B, M, K, N, trans_b);
#else
    else S2S_NO_CUDA("bmm");
#endif
    s2s_node *nd = s2s_record(ctx, "bmm", bmm_backward, (s2s_tensor *[]){a, b}, 2, &c, 1);
    if (nd) nd->i[0] = trans_b;
    return c;
}
