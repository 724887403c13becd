// avgpool1d.c — average pooling over the last axis (PyTorch nn.AvgPool1d(k, stride): no padding,
// floor mode), forward and backward. The audio encoder's AvgPool1d(2, 2) is the user.
#include "cpu/avgpool1d.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void avgpool1d_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    int k = (int)n->i[0], stride = (int)n->i[1];
    if (ctx->device == S2S_CPU)
        avgpool1d_backward_cpu(dx, F32(y->grad), x->shape[0] * x->shape[1], x->shape[2], y->shape[2], k, stride);
#ifdef S2S_HAVE_CUDA
    else avgpool1d_backward_cuda(ctx, dx, F32(y->grad), x->shape[0] * x->shape[1], x->shape[2], y->shape[2], k, stride);
#else
    else S2S_NO_CUDA("avgpool1d");
#endif
}

s2s_tensor *s2s_avgpool1d(s2s_ctx *ctx, s2s_tensor *x, int k, int stride) {
    S2S_CHECK_F32(ctx, x, "avgpool1d");
    S2S_CHECK(x->ndim == 3, "avgpool1d: x must be [B, C, L] (got %d-D)", x->ndim);
    S2S_CHECK(k >= 1 && stride >= 1, "avgpool1d: kernel %d and stride %d must be >= 1", k, stride);
    int64_t B = x->shape[0], C = x->shape[1], L = x->shape[2];
    S2S_CHECK(L >= k, "avgpool1d: input length %lld is shorter than the window %d", (long long)L, k);
    int64_t Lout = (L - k) / stride + 1;
    s2s_tensor *y = s2s_new3(ctx, S2S_F32, B, C, Lout);  // [B, C, Lout]
    if (ctx->device == S2S_CPU) avgpool1d_forward_cpu(F32(y), F32(x), B * C, L, Lout, k, stride);
#ifdef S2S_HAVE_CUDA
    else avgpool1d_forward_cuda(ctx, F32(y), F32(x), B * C, L, Lout, k, stride);
#else
    else S2S_NO_CUDA("avgpool1d");
#endif
    s2s_node *nd = s2s_record(ctx, "avgpool1d", avgpool1d_backward, &x, 1, &y, 1);
    if (nd) {
        nd->i[0] = k;
        nd->i[1] = stride;
    }
    return y;
}
