// softmax.c — softmax over the last dim, forward and backward (the backward reads the saved output).
#include "cpu/softmax.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void softmax_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    if (ctx->device == S2S_CPU) softmax_backward_cpu(dx, F32(y->grad), F32(y), s2s_rows(y), s2s_cols(y));
#ifdef S2S_HAVE_CUDA
    else softmax_backward_cuda(ctx, dx, F32(y->grad), F32(y), s2s_rows(y), s2s_cols(y));
#else
    else S2S_NO_CUDA("softmax");
#endif
}

s2s_tensor *s2s_softmax(s2s_ctx *ctx, s2s_tensor *x) {
    S2S_CHECK_F32(ctx, x, "softmax");
    S2S_CHECK(x->ndim >= 1 && s2s_cols(x) >= 1, "softmax: needs at least one element on the last dim");
    s2s_tensor *y = s2s_new_like(ctx, x);  // [..., V]
    if (ctx->device == S2S_CPU) softmax_forward_cpu(F32(y), F32(x), s2s_rows(x), s2s_cols(x));
#ifdef S2S_HAVE_CUDA
    else softmax_forward_cuda(ctx, F32(y), F32(x), s2s_rows(x), s2s_cols(x));
#else
    else S2S_NO_CUDA("softmax");
#endif
    s2s_record(ctx, "softmax", softmax_backward, &x, 1, &y, 1);
    return y;
}
