// rmsnorm.c — RMSNorm as Hugging Face Qwen3RMSNorm: y = x * rsqrt(mean(x^2) + eps) * w, forward and backward.
#include "cpu/rmsnorm.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void rmsnorm_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *w = n->in[1], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x), *dw = s2s_grad_if(ctx, w);
    const float *rstd = n->saved;  // [N]
    if (ctx->device == S2S_CPU)
        rmsnorm_backward_cpu(ctx, dx, dw, F32(y->grad), F32(x), F32(w), rstd, s2s_rows(x), s2s_cols(x));
#ifdef S2S_HAVE_CUDA
    else rmsnorm_backward_cuda(ctx, dx, dw, F32(y->grad), F32(x), F32(w), rstd, s2s_rows(x), s2s_cols(x));
#else
    else S2S_NO_CUDA("rmsnorm");
#endif
}

s2s_tensor *s2s_rmsnorm(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, float eps) {
    S2S_CHECK_F32(ctx, x, "rmsnorm");
    S2S_CHECK_F32(ctx, w, "rmsnorm");
    S2S_CHECK(x->ndim >= 1 && w->ndim == 1 && w->shape[0] == s2s_cols(x),
              "rmsnorm: x [..., %lld] needs weight %s [%lld], got %d-dim [%lld]", (long long)s2s_cols(x),
              w->name ? w->name : "", (long long)s2s_cols(x), w->ndim, (long long)w->shape[0]);
    S2S_CHECK(s2s_cols(x) > 0, "rmsnorm: x has an empty last dim");
    S2S_CHECK(eps >= 0.0f, "rmsnorm: eps must be >= 0 (Qwen3 uses 1e-6)");
    int64_t N = s2s_rows(x), C = s2s_cols(x);
    s2s_tensor *y = s2s_new_like(ctx, x);                                // [..., C]
    float *rstd = s2s_scratch_alloc(ctx, (size_t)(N ? N : 1) * sizeof(float));  // [N]
    if (ctx->device == S2S_CPU) rmsnorm_forward_cpu(F32(y), rstd, F32(x), F32(w), N, C, eps);
#ifdef S2S_HAVE_CUDA
    else rmsnorm_forward_cuda(ctx, F32(y), rstd, F32(x), F32(w), N, C, eps);
#else
    else S2S_NO_CUDA("rmsnorm");
#endif
    s2s_node *nd = s2s_record(ctx, "rmsnorm", rmsnorm_backward, (s2s_tensor *[]){x, w}, 2, &y, 1);
    if (nd) nd->saved = rstd;
    return y;
}
