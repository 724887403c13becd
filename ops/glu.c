// glu.c — GLU along any axis (torch.nn.functional.glu): first half * sigmoid(second half), forward
// and backward. The adapter applies it over the channels of a conv output [B, 2C, L].
#include "cpu/activations.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

// x viewed as [O, 2, H, I] around the GLU axis (O: dims before it, I: dims after it).
static void glu_dims(const s2s_tensor *x, int axis, int64_t *O, int64_t *H, int64_t *I) {
    *O = 1;
    *I = 1;
    for (int d = 0; d < axis; d++) *O *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) *I *= x->shape[d];
    *H = x->shape[axis] / 2;
}

static void glu_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    int64_t O, H, I;
    glu_dims(x, (int)n->i[0], &O, &H, &I);
    if (ctx->device == S2S_CPU) glu_backward_cpu(dx, F32(y->grad), F32(x), O, H, I);
#ifdef S2S_HAVE_CUDA
    else glu_backward_cuda(ctx, dx, F32(y->grad), F32(x), O, H, I);
#else
    else S2S_NO_CUDA("glu");
#endif
}

s2s_tensor *s2s_glu(s2s_ctx *ctx, s2s_tensor *x, int axis) {
    S2S_CHECK_F32(ctx, x, "glu");
    S2S_CHECK(x->ndim >= 1, "glu: x must have at least one dim");
    if (axis < 0) axis += x->ndim;
    S2S_CHECK(axis >= 0 && axis < x->ndim, "glu: axis %d out of range for a %d-dim tensor", axis, x->ndim);
    char sb[64];
    S2S_CHECK(x->shape[axis] % 2 == 0, "glu: dim %d of x %s must be even (it is split into two halves)", axis,
              s2s_shape_str(x, sb, sizeof sb));
    int64_t O, H, I, shape[S2S_MAX_DIMS];
    glu_dims(x, axis, &O, &H, &I);
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[axis] = H;
    s2s_tensor *y = s2s_new(ctx, S2S_F32, x->ndim, shape);  // x's shape with dim axis halved
    if (ctx->device == S2S_CPU) glu_forward_cpu(F32(y), F32(x), O, H, I);
#ifdef S2S_HAVE_CUDA
    else glu_forward_cuda(ctx, F32(y), F32(x), O, H, I);
#else
    else S2S_NO_CUDA("glu");
#endif
    s2s_node *nd = s2s_record(ctx, "glu", glu_backward, &x, 1, &y, 1);
    if (nd) nd->i[0] = axis;
    return y;
}
