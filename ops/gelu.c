// gelu.c — exact (erf) GELU, torch.nn.functional.gelu(approximate='none'), forward and backward.
#include "cpu/activations.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void gelu_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    if (ctx->device == S2S_CPU) gelu_backward_cpu(dx, F32(y->grad), F32(x), s2s_numel(x));
#ifdef S2S_HAVE_CUDA
    else gelu_backward_cuda(ctx, dx, F32(y->grad), F32(x), s2s_numel(x));
#else
    else S2S_NO_CUDA("gelu");
#endif
}

s2s_tensor *s2s_gelu(s2s_ctx *ctx, s2s_tensor *x) {
    S2S_CHECK_F32(ctx, x, "gelu");
    s2s_tensor *y = s2s_new_like(ctx, x);  // [...]
    if (ctx->device == S2S_CPU) gelu_forward_cpu(F32(y), F32(x), s2s_numel(x));
#ifdef S2S_HAVE_CUDA
    else gelu_forward_cuda(ctx, F32(y), F32(x), s2s_numel(x));
#else
    else S2S_NO_CUDA("gelu");
#endif
    s2s_record(ctx, "gelu", gelu_backward, &x, 1, &y, 1);
    return y;
}
