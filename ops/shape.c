// shape.c — reshape, transpose, concat and slice, forward and backward. Arena tensors are contiguous,
// so reshape aliases x's data; the others materialise their output.
#include <string.h>
#include "cpu/shape.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "cuda/kernels.h"
#endif

static int shape_axis(const s2s_tensor *x, int axis, const char *op) {
    int a = axis < 0 ? axis + x->ndim : axis;
    S2S_CHECK(a >= 0 && a < x->ndim, "%s: axis %d out of range for a %d-dim tensor", op, axis, x->ndim);
    return a;
}

// x viewed as [O, D, I] around axis: O = product of the dims before it, I = after it.
static void shape_split(const s2s_tensor *x, int axis, int64_t *O, int64_t *I) {
    *O = 1;
    *I = 1;
    for (int d = 0; d < axis; d++) *O *= x->shape[d];
    for (int d = axis + 1; d < x->ndim; d++) *I *= x->shape[d];
}

static void check_copyable(s2s_ctx *ctx, const s2s_tensor *t, const char *op) {
    S2S_CHECK((t->dtype == S2S_F32 || t->dtype == S2S_I32) && t->device == ctx->device,
              "%s: operand %s must be f32 or i32 on the context's device (got %s)", op, t->name ? t->name : "",
              s2s_dtype_name(t->dtype));
}

// ---- reshape -------------------------------------------------------------------------------------

static void reshape_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    int64_t N = s2s_numel(x);
    if (ctx->device == S2S_CPU) add_blocks_cpu(dx, N, F32(y->grad), N, 1, N);
#ifdef S2S_HAVE_CUDA
    else add_blocks_cuda(ctx, dx, N, F32(y->grad), N, 1, N);
#else
    else S2S_NO_CUDA("reshape (backward)");
#endif
}

s2s_tensor *s2s_reshape(s2s_ctx *ctx, s2s_tensor *x, int ndim, const int64_t *shape) {
    S2S_CHECK(ndim >= 0 && ndim <= S2S_MAX_DIMS, "reshape: tensors have 0..%d dims, asked for %d", S2S_MAX_DIMS,
              ndim);
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) {
        S2S_CHECK(shape[d] >= 0, "reshape: negative dimension %lld at axis %d", (long long)shape[d], d);
        numel *= shape[d];
    }
    char sx[64];
    S2S_CHECK(numel == s2s_numel(x), "reshape: x %s has %lld elements, the new shape %lld",
              s2s_shape_str(x, sx, sizeof sx), (long long)s2s_numel(x), (long long)numel);
    // A header only: y shares x's data (x is contiguous), so the forward costs nothing.
    s2s_tensor *y = s2s_host_alloc(ctx, sizeof *y);
    memset(y, 0, sizeof *y);
    y->dtype = x->dtype;
    y->device = x->device;
    y->ndim = ndim;
    for (int d = 0; d < ndim; d++) y->shape[d] = shape[d];
    y->data = x->data;
    s2s_record(ctx, "reshape", reshape_backward, &x, 1, &y, 1);
    return y;
}

// ---- transpose -----------------------------------------------------------------------------------

// x as [A, D0, B, D1, C] around the two axes (a0 < a1).
static void transpose_dims(const s2s_tensor *x, int a0, int a1, int64_t dims[5]) {
    for (int k = 0; k < 5; k++) dims[k] = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < a0) dims[0] *= x->shape[d];
        else if (d == a0) dims[1] = x->shape[d];
        else if (d < a1) dims[2] *= x->shape[d];
        else if (d == a1) dims[3] = x->shape[d];
        else dims[4] *= x->shape[d];
    }
}

static void transpose_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    int64_t m[5];
    transpose_dims(x, (int)n->i[0], (int)n->i[1], m);
    // dy is [A, D1, B, D0, C]: swapping back is the same permutation with D0 and D1 exchanged.
    if (ctx->device == S2S_CPU) transpose_cpu(dx, F32(y->grad), m[0], m[3], m[2], m[1], m[4], true);
#ifdef S2S_HAVE_CUDA
    else transpose_cuda(ctx, dx, F32(y->grad), m[0], m[3], m[2], m[1], m[4], true);
#else
    else S2S_NO_CUDA("transpose");
#endif
}

s2s_tensor *s2s_transpose(s2s_ctx *ctx, s2s_tensor *x, int axis0, int axis1) {
    S2S_CHECK_F32(ctx, x, "transpose");
    int a0 = shape_axis(x, axis0, "transpose"), a1 = shape_axis(x, axis1, "transpose");
    if (a0 > a1) {
        int t = a0;
        a0 = a1;
        a1 = t;
    }
    int64_t shape[S2S_MAX_DIMS], m[5];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[a0] = x->shape[a1];
    shape[a1] = x->shape[a0];
    s2s_tensor *y = s2s_new(ctx, S2S_F32, x->ndim, shape);  // x's shape with a0, a1 swapped
    transpose_dims(x, a0, a1, m);
    if (ctx->device == S2S_CPU) transpose_cpu(F32(y), F32(x), m[0], m[1], m[2], m[3], m[4], false);
#ifdef S2S_HAVE_CUDA
    else transpose_cuda(ctx, F32(y), F32(x), m[0], m[1], m[2], m[3], m[4], false);
#else
    else S2S_NO_CUDA("transpose");
#endif
    s2s_node *nd = s2s_record(ctx, "transpose", transpose_backward, &x, 1, &y, 1);
    if (nd) {
        nd->i[0] = a0;
        nd->i[1] = a1;
    }
    return y;
}

// ---- concat --------------------------------------------------------------------------------------

static void concat_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *y = n->out[0];
    int axis = (int)n->i[0];
    int64_t O, I, off = 0, Dy = y->shape[axis];
    shape_split(y, axis, &O, &I);
    for (int k = 0; k < n->n_in; k++) {
        s2s_tensor *x = n->in[k];
        int64_t D = x->shape[axis];
        float *dx = s2s_grad_if(ctx, x);
        if (dx) {
            if (ctx->device == S2S_CPU) add_blocks_cpu(dx, D * I, F32(y->grad) + off * I, Dy * I, O, D * I);
#ifdef S2S_HAVE_CUDA
            else add_blocks_cuda(ctx, dx, D * I, F32(y->grad) + off * I, Dy * I, O, D * I);
#else
            else S2S_NO_CUDA("concat");
#endif
        }
        off += D;
    }
}

s2s_tensor *s2s_concat(s2s_ctx *ctx, s2s_tensor **xs, int n, int axis) {
    S2S_CHECK(n >= 1, "concat: needs at least one tensor");
    // A node holds S2S_NODE_MAX_IN inputs: longer lists are concatenated in groups, then the groups.
    if (n > S2S_NODE_MAX_IN) {
        s2s_tensor *groups[S2S_NODE_MAX_IN];
        int per = (n + S2S_NODE_MAX_IN - 1) / S2S_NODE_MAX_IN, ng = 0;
        for (int k = 0; k < n; k += per) groups[ng++] = s2s_concat(ctx, xs + k, n - k < per ? n - k : per, axis);
        return s2s_concat(ctx, groups, ng, axis);
    }
    s2s_tensor *x0 = xs[0];
    check_copyable(ctx, x0, "concat");
    int a = shape_axis(x0, axis, "concat");
    int64_t shape[S2S_MAX_DIMS], O, I;
    for (int d = 0; d < x0->ndim; d++) shape[d] = x0->shape[d];
    shape[a] = 0;
    char s0[64], sk[64];
    for (int k = 0; k < n; k++) {
        s2s_tensor *x = xs[k];
        check_copyable(ctx, x, "concat");
        bool ok = x->dtype == x0->dtype && x->ndim == x0->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = d == a || x->shape[d] == x0->shape[d];
        S2S_CHECK(ok, "concat along axis %d: tensor %d %s does not match tensor 0 %s in dtype or in the other dims",
                  a, k, s2s_shape_str(x, sk, sizeof sk), s2s_shape_str(x0, s0, sizeof s0));
        shape[a] += x->shape[a];
    }
    s2s_tensor *y = s2s_new(ctx, x0->dtype, x0->ndim, shape);  // the inputs' shape, axis a summed
    shape_split(y, a, &O, &I);
    size_t es = s2s_dtype_size(y->dtype);
    int64_t off = 0;
    for (int k = 0; k < n; k++) {
        int64_t D = xs[k]->shape[a];
        if (ctx->device == S2S_CPU)
            copy_blocks_cpu((char *)y->data + off * I * es, shape[a] * I, xs[k]->data, D * I, O, D * I, es);
#ifdef S2S_HAVE_CUDA
        else copy_blocks_cuda(ctx, (char *)y->data + off * I * es, shape[a] * I, xs[k]->data, D * I, O, D * I, es);
#else
        else S2S_NO_CUDA("concat");
#endif
        off += D;
    }
    s2s_node *nd = s2s_record(ctx, "concat", concat_backward, xs, n, &y, 1);
    if (nd) nd->i[0] = a;
    return y;
}

// ---- slice ---------------------------------------------------------------------------------------

static void slice_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    int axis = (int)n->i[0];
    int64_t start = n->i[1], len = y->shape[axis], D = x->shape[axis], O, I;
    shape_split(x, axis, &O, &I);
    if (ctx->device == S2S_CPU) add_blocks_cpu(dx + start * I, D * I, F32(y->grad), len * I, O, len * I);
#ifdef S2S_HAVE_CUDA
    else add_blocks_cuda(ctx, dx + start * I, D * I, F32(y->grad), len * I, O, len * I);
#else
    else S2S_NO_CUDA("slice");
#endif
}

s2s_tensor *s2s_slice(s2s_ctx *ctx, s2s_tensor *x, int axis, int64_t start, int64_t len) {
    check_copyable(ctx, x, "slice");
    int a = shape_axis(x, axis, "slice");
    int64_t D = x->shape[a], O, I, shape[S2S_MAX_DIMS];
    char sx[64];
    S2S_CHECK(start >= 0 && len >= 0 && start + len <= D, "slice: [%lld, %lld) is outside axis %d of x %s",
              (long long)start, (long long)(start + len), a, s2s_shape_str(x, sx, sizeof sx));
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[a] = len;
    s2s_tensor *y = s2s_new(ctx, x->dtype, x->ndim, shape);  // x's shape with axis a = len
    shape_split(x, a, &O, &I);
    size_t es = s2s_dtype_size(x->dtype);
    if (ctx->device == S2S_CPU)
        copy_blocks_cpu(y->data, len * I, (const char *)x->data + start * I * es, D * I, O, len * I, es);
#ifdef S2S_HAVE_CUDA
    else copy_blocks_cuda(ctx, y->data, len * I, (const char *)x->data + start * I * es, D * I, O, len * I, es);
#else
    else S2S_NO_CUDA("slice");
#endif
    s2s_node *nd = s2s_record(ctx, "slice", slice_backward, &x, 1, &y, 1);
    if (nd) {
        nd->i[0] = a;
        nd->i[1] = start;
    }
    return y;
}
