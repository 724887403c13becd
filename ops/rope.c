// rope.c — Hugging Face rotate-half rotary position embedding, forward and backward.
#include <math.h>
#include "cpu/rope.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static void rope_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *pos = n->in[1], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    if (ctx->device == S2S_CPU)
        rope_backward_cpu(ctx, dx, F32(y->grad), I32(pos), x->shape[0], x->shape[1], x->shape[2], (float)n->f[0]);
#ifdef S2S_HAVE_CUDA
    else rope_backward_cuda(ctx, dx, F32(y->grad), I32(pos), x->shape[0], x->shape[1], x->shape[2], (float)n->f[0]);
#else
    else S2S_NO_CUDA("rope");
#endif
}

s2s_tensor *s2s_rope(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *pos, float theta) {
    S2S_CHECK_F32(ctx, x, "rope");
    S2S_CHECK_I32(ctx, pos, "rope");
    S2S_CHECK(x->ndim == 3, "rope: x must be [T, H, D] (got %d dims); reshape heads out first", x->ndim);
    const int64_t T = x->shape[0], H = x->shape[1], D = x->shape[2];
    S2S_CHECK(D % 2 == 0, "rope: head_dim %lld must be even (rotate-half pairs i with i + D/2)", (long long)D);
    S2S_CHECK(pos->ndim == 1 && pos->shape[0] == T, "rope: positions must be i32 [%lld], one per row of x",
              (long long)T);
    S2S_CHECK(isfinite(theta) && theta > 0.0f, "rope: theta must be positive (rope_theta from the config)");
    s2s_tensor *y = s2s_new3(ctx, S2S_F32, T, H, D);  // [T, H, D]
    if (ctx->device == S2S_CPU) rope_forward_cpu(ctx, F32(y), F32(x), I32(pos), T, H, D, theta);
#ifdef S2S_HAVE_CUDA
    else rope_forward_cuda(ctx, F32(y), F32(x), I32(pos), T, H, D, theta);
#else
    else S2S_NO_CUDA("rope");
#endif
    s2s_node *nd = s2s_record(ctx, "rope", rope_backward, (s2s_tensor *[]){x, pos}, 2, &y, 1);
    if (nd) nd->f[0] = theta;
    return y;
}
