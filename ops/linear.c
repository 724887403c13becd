// linear.c — y = x w^T + b (PyTorch nn.Linear), forward and backward.
#include "cpu/linear.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void linear_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    int64_t N = s2s_rows(x), K = s2s_cols(x), M = w->shape[0];
    float *dx = s2s_grad_if(ctx, x), *dw = s2s_grad_if(ctx, w), *db = s2s_grad_if(ctx, b);
    if (ctx->device == S2S_CPU) linear_backward_cpu(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), N, K, M);
#ifdef S2S_HAVE_CUDA
    else linear_backward_cuda(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), N, K, M);
#else
    else S2S_NO_CUDA("linear");
#endif
}

s2s_tensor *s2s_linear(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b) {
    S2S_CHECK_F32(ctx, x, "linear");
    S2S_CHECK_F32(ctx, w, "linear");
    S2S_CHECK(w->ndim == 2 && w->shape[1] == s2s_cols(x),
              "linear: x [..., %lld] does not match weight %s [%lld, %lld]", (long long)s2s_cols(x),
              w->name ? w->name : "", (long long)w->shape[0], (long long)(w->ndim > 1 ? w->shape[1] : 0));
    if (b) S2S_CHECK(b->ndim == 1 && b->shape[0] == w->shape[0], "linear: bias must be [%lld]", (long long)w->shape[0]);
    int64_t N = s2s_rows(x), K = s2s_cols(x), M = w->shape[0];
    int64_t shape[S2S_MAX_DIMS];
    for (int i = 0; i < x->ndim - 1; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = M;
    s2s_tensor *y = s2s_new(ctx, S2S_F32, x->ndim, shape);  // [..., M]
    if (ctx->device == S2S_CPU) linear_forward_cpu(ctx, F32(y), F32(x), F32(w), b ? F32(b) : NULL, N, K, M);
#ifdef S2S_HAVE_CUDA
    else linear_forward_cuda(ctx, F32(y), F32(x), F32(w), b ? F32(b) : NULL, N, K, M);
#else
    else S2S_NO_CUDA("linear");
#endif
    s2s_record(ctx, "linear", linear_backward, (s2s_tensor *[]){x, w, b}, 3, &y, 1);
    return y;
}
