// elementwise.c — add (with trailing-dims broadcast), mul and scale, forward and backward.
#include "cpu/elementwise.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

// b broadcasts when, after dropping its leading size-1 dims, its shape equals a's trailing dims.
// Returns numel(b) (the broadcast row length) or -1 when the shapes do not fit.
static int64_t add_bcast_len(const s2s_tensor *a, const s2s_tensor *b) {
    int lead = 0;
    while (lead < b->ndim && b->shape[lead] == 1) lead++;
    int k = b->ndim - lead;
    if (k > a->ndim) return -1;
    for (int d = 0; d < k; d++)
        if (b->shape[lead + d] != a->shape[a->ndim - k + d]) return -1;
    return s2s_numel(b);
}

static void add_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *a = n->in[0], *b = n->in[1], *y = n->out[0];
    float *da = s2s_grad_if(ctx, a), *db = s2s_grad_if(ctx, b);
    int64_t M = s2s_numel(b), R = M ? s2s_numel(a) / M : 0;
    if (ctx->device != S2S_CPU) {
#ifdef S2S_HAVE_CUDA
        if (da) add_into_cuda(ctx, da, F32(y->grad), s2s_numel(a));
        if (db) {
            if (R == 1) add_into_cuda(ctx, db, F32(y->grad), M);
            else add_rows_into_cuda(ctx, db, F32(y->grad), R, M);
        }
        return;
#else
        S2S_NO_CUDA("add");
#endif
    }
    if (da) add_into_cpu(da, F32(y->grad), s2s_numel(a));
    if (db) {
        if (R == 1) add_into_cpu(db, F32(y->grad), M);
        else add_rows_into_cpu(db, F32(y->grad), R, M);
    }
}

s2s_tensor *s2s_add(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b) {
    S2S_CHECK_F32(ctx, a, "add");
    S2S_CHECK_F32(ctx, b, "add");
    char sa[64], sb[64];
    int64_t M = add_bcast_len(a, b);
    S2S_CHECK(M >= 0, "add: b %s must have a's shape %s or a's trailing dims (broadcast over the leading ones)",
              s2s_shape_str(b, sb, sizeof sb), s2s_shape_str(a, sa, sizeof sa));
    int64_t R = M ? s2s_numel(a) / M : 0;
    s2s_tensor *y = s2s_new_like(ctx, a);  // a's shape
    if (ctx->device == S2S_CPU) add_forward_cpu(F32(y), F32(a), F32(b), R, M);
#ifdef S2S_HAVE_CUDA
    else add_forward_cuda(ctx, F32(y), F32(a), F32(b), R, M);
#else
    else S2S_NO_CUDA("add");
#endif
    s2s_record(ctx, "add", add_backward, (s2s_tensor *[]){a, b}, 2, &y, 1);
    return y;
}

static void mul_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *a = n->in[0], *b = n->in[1], *y = n->out[0];
    float *da = s2s_grad_if(ctx, a), *db = s2s_grad_if(ctx, b);
    if (ctx->device == S2S_CPU) mul_backward_cpu(da, db, F32(y->grad), F32(a), F32(b), s2s_numel(y));
#ifdef S2S_HAVE_CUDA
    else mul_backward_cuda(ctx, da, db, F32(y->grad), F32(a), F32(b), s2s_numel(y));
#else
    else S2S_NO_CUDA("mul");
#endif
}

s2s_tensor *s2s_mul(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b) {
    S2S_CHECK_F32(ctx, a, "mul");
    S2S_CHECK_F32(ctx, b, "mul");
    char sa[64], sb[64];
    S2S_CHECK(s2s_same_shape(a, b), "mul: a %s and b %s must have the same shape", s2s_shape_str(a, sa, sizeof sa),
              s2s_shape_str(b, sb, sizeof sb));
    s2s_tensor *y = s2s_new_like(ctx, a);  // a's shape
    if (ctx->device == S2S_CPU) mul_forward_cpu(F32(y), F32(a), F32(b), s2s_numel(y));
#ifdef S2S_HAVE_CUDA
    else mul_forward_cuda(ctx, F32(y), F32(a), F32(b), s2s_numel(y));
#else
    else S2S_NO_CUDA("mul");
#endif
    s2s_record(ctx, "mul", mul_backward, (s2s_tensor *[]){a, b}, 2, &y, 1);
    return y;
}

static void scale_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *a = n->in[0], *y = n->out[0];
    float *da = s2s_grad_if(ctx, a);
    if (!da) return;
    if (ctx->device == S2S_CPU) scale_backward_cpu(da, F32(y->grad), (float)n->f[0], s2s_numel(a));
#ifdef S2S_HAVE_CUDA
    else scale_backward_cuda(ctx, da, F32(y->grad), (float)n->f[0], s2s_numel(a));
#else
    else S2S_NO_CUDA("scale");
#endif
}

s2s_tensor *s2s_scale(s2s_ctx *ctx, s2s_tensor *a, float s) {
    S2S_CHECK_F32(ctx, a, "scale");
    s2s_tensor *y = s2s_new_like(ctx, a);  // a's shape
    if (ctx->device == S2S_CPU) scale_forward_cpu(F32(y), F32(a), s, s2s_numel(a));
#ifdef S2S_HAVE_CUDA
    else scale_forward_cuda(ctx, F32(y), F32(a), s, s2s_numel(a));
#else
    else S2S_NO_CUDA("scale");
#endif
    s2s_node *nd = s2s_record(ctx, "scale", scale_backward, &a, 1, &y, 1);
    if (nd) nd->f[0] = s;
    return y;
}
