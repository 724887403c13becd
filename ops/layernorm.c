// layernorm.c — LayerNorm as torch.nn.LayerNorm (biased variance, affine weight, optional bias),
// forward and backward.
#include "cpu/layernorm.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void layernorm_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x), *dw = s2s_grad_if(ctx, w), *db = s2s_grad_if(ctx, b);
    const float *stats = n->saved;  // [N, 2]
    if (ctx->device == S2S_CPU)
        layernorm_backward_cpu(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), stats, s2s_rows(x), s2s_cols(x));
#ifdef S2S_HAVE_CUDA
    else layernorm_backward_cuda(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), stats, s2s_rows(x), s2s_cols(x));
#else
    else S2S_NO_CUDA("layernorm");
#endif
}

s2s_tensor *s2s_layernorm(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b, float eps) {
    S2S_CHECK_F32(ctx, x, "layernorm");
    S2S_CHECK_F32(ctx, w, "layernorm");
    int64_t N = s2s_rows(x), C = s2s_cols(x);
    S2S_CHECK(x->ndim >= 1 && C > 0, "layernorm: x must be [..., C] with C > 0");
    S2S_CHECK(w->ndim == 1 && w->shape[0] == C, "layernorm: x [..., %lld] needs weight %s [%lld]", (long long)C,
              w->name ? w->name : "", (long long)C);
    if (b) {
        S2S_CHECK_F32(ctx, b, "layernorm");
        S2S_CHECK(b->ndim == 1 && b->shape[0] == C, "layernorm: bias %s must be [%lld]", b->name ? b->name : "",
                  (long long)C);
    }
    S2S_CHECK(eps >= 0.0f, "layernorm: eps must be >= 0 (torch's default is 1e-5)");
    s2s_tensor *y = s2s_new_like(ctx, x);                                          // [..., C]
    float *stats = s2s_scratch_alloc(ctx, (size_t)(N ? N : 1) * 2 * sizeof(float));  // [N, 2] mean, rstd
    if (ctx->device == S2S_CPU) layernorm_forward_cpu(F32(y), stats, F32(x), F32(w), b ? F32(b) : NULL, N, C, eps);
#ifdef S2S_HAVE_CUDA
    else layernorm_forward_cuda(ctx, F32(y), stats, F32(x), F32(w), b ? F32(b) : NULL, N, C, eps);
#else
    else S2S_NO_CUDA("layernorm");
#endif
    s2s_node *nd = s2s_record(ctx, "layernorm", layernorm_backward, (s2s_tensor *[]){x, w, b}, 3, &y, 1);
    if (nd) nd->saved = stats;
    return y;
}
