// conv1d.c — 1-D convolution (PyTorch nn.Conv1d: stride, zero padding, no dilation / groups),
// forward and backward, as im2col + GEMM.
#include "cpu/conv1d.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

// The column matrix [Cin*K, Lout] is a workspace only: it is taken from the current arena and given
// back right after (mark / rewind), so a conv costs its output, not its Cin*K-times-larger columns,
// for the rest of the step. Anything that must outlive the call is allocated before the mark.
static float *col_take(s2s_ctx *ctx, s2s_arena_mark *m, int64_t floats) {
    *m = s2s_arena_get_mark(ctx->cur);
    return floats ? s2s_scratch_alloc(ctx, (size_t)floats * sizeof(float)) : NULL;
}

static void conv1d_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2], *y = n->out[0];
    int stride = (int)n->i[0], pad = (int)n->i[1];
    int64_t B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[0], K = w->shape[2];
    int64_t Lout = y->shape[2];
    float *dx = s2s_grad_if(ctx, x), *dw = s2s_grad_if(ctx, w), *db = s2s_grad_if(ctx, b);  // before the mark
#ifndef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("conv1d");
#endif
    s2s_arena_mark m;
    float *col = col_take(ctx, &m, (dx || dw) ? conv1d_col_floats(Cin, K, Lout, stride, pad) : 0);  // [Cin*K, Lout]
    if (ctx->device == S2S_CPU)
        conv1d_backward_cpu(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), col, B, Cin, L, Cout, K, Lout, stride, pad);
#ifdef S2S_HAVE_CUDA
    else conv1d_backward_cuda(ctx, dx, dw, db, F32(y->grad), F32(x), F32(w), col, B, Cin, L, Cout, K, Lout, stride, pad);
#endif
    s2s_arena_rewind(ctx->cur, m);
}

s2s_tensor *s2s_conv1d(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, s2s_tensor *b, int stride, int pad) {
    S2S_CHECK_F32(ctx, x, "conv1d");
    S2S_CHECK_F32(ctx, w, "conv1d");
    S2S_CHECK(x->ndim == 3 && w->ndim == 3, "conv1d: x must be [B, Cin, L] and weight %s [Cout, Cin, K] (got %d-D "
              "and %d-D)", w->name ? w->name : "", x->ndim, w->ndim);
    S2S_CHECK(w->shape[1] == x->shape[1], "conv1d: x has %lld channels but weight %s expects %lld",
              (long long)x->shape[1], w->name ? w->name : "", (long long)w->shape[1]);
    S2S_CHECK(stride >= 1 && pad >= 0 && w->shape[2] >= 1, "conv1d: stride %d must be >= 1, padding %d >= 0, "
              "kernel %lld >= 1", stride, pad, (long long)w->shape[2]);
    int64_t B = x->shape[0], Cin = x->shape[1], L = x->shape[2], Cout = w->shape[0], K = w->shape[2];
    S2S_CHECK(L + 2 * pad >= K, "conv1d: input length %lld (+2*%d padding) is shorter than the kernel %lld",
              (long long)L, pad, (long long)K);
    if (b) {
        S2S_CHECK_F32(ctx, b, "conv1d");
        S2S_CHECK(b->ndim == 1 && b->shape[0] == Cout, "conv1d: bias must be [%lld]", (long long)Cout);
    }
    int64_t Lout = (L + 2 * pad - K) / stride + 1;
    s2s_tensor *y = s2s_new3(ctx, S2S_F32, B, Cout, Lout);  // [B, Cout, Lout]
#ifndef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) S2S_NO_CUDA("conv1d");
#endif
    s2s_arena_mark m;
    float *col = col_take(ctx, &m, conv1d_col_floats(Cin, K, Lout, stride, pad));  // [Cin*K, Lout]
    if (ctx->device == S2S_CPU)
        conv1d_forward_cpu(ctx, F32(y), F32(x), F32(w), b ? F32(b) : NULL, col, B, Cin, L, Cout, K, Lout, stride, pad);
#ifdef S2S_HAVE_CUDA
    else conv1d_forward_cuda(ctx, F32(y), F32(x), F32(w), b ? F32(b) : NULL, col, B, Cin, L, Cout, K, Lout, stride, pad);
#endif
    s2s_arena_rewind(ctx->cur, m);
    s2s_node *nd = s2s_record(ctx, "conv1d", conv1d_backward, (s2s_tensor *[]){x, w, b}, 3, &y, 1);
    if (nd) {
        nd->i[0] = stride;
        nd->i[1] = pad;
    }
    return y;
}
