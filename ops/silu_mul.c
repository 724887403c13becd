// silu_mul.c — the SwiGLU product silu(gate) * up (Qwen3 MLP), forward and backward.
#include "cpu/activations.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void silu_mul_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *g = n->in[0], *u = n->in[1], *y = n->out[0];
    float *dg = s2s_grad_if(ctx, g), *du = s2s_grad_if(ctx, u);
    if (ctx->device == S2S_CPU) silu_mul_backward_cpu(dg, du, F32(y->grad), F32(g), F32(u), s2s_numel(y));
#ifdef S2S_HAVE_CUDA
    else silu_mul_backward_cuda(ctx, dg, du, F32(y->grad), F32(g), F32(u), s2s_numel(y));
#else
    else S2S_NO_CUDA("silu_mul");
#endif
}

s2s_tensor *s2s_silu_mul(s2s_ctx *ctx, s2s_tensor *gate, s2s_tensor *up) {
    S2S_CHECK_F32(ctx, gate, "silu_mul");
    S2S_CHECK_F32(ctx, up, "silu_mul");
    char sg[64], su[64];
    S2S_CHECK(s2s_same_shape(gate, up), "silu_mul: gate %s and up %s must have the same shape",
              s2s_shape_str(gate, sg, sizeof sg), s2s_shape_str(up, su, sizeof su));
    s2s_tensor *y = s2s_new_like(ctx, gate);  // [...]
    if (ctx->device == S2S_CPU) silu_mul_forward_cpu(F32(y), F32(gate), F32(up), s2s_numel(y));
#ifdef S2S_HAVE_CUDA
    else silu_mul_forward_cuda(ctx, F32(y), F32(gate), F32(up), s2s_numel(y));
#else
    else S2S_NO_CUDA("silu_mul");
#endif
    s2s_record(ctx, "silu_mul", silu_mul_backward, (s2s_tensor *[]){gate, up}, 2, &y, 1);
    return y;
}
