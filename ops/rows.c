// rows.c — row gather and scatter (splicing audio into the text embeddings, interleaving hidden states
// with unit embeddings), forward and backward.
#include <string.h>
#include "cpu/rows.h"
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "../autograd/device.h"
#include "cuda/kernels.h"
#endif

static void rows_check_idx(s2s_ctx *ctx, const s2s_tensor *idx, int64_t N, const char *op, const char *what) {
    S2S_CHECK_I32(ctx, idx, op);
    S2S_CHECK(idx->ndim == 1, "%s: idx must be i32 [M]", op);
    if (ctx->device != S2S_CPU) {
#ifdef S2S_HAVE_CUDA
        int64_t bad = index_first_invalid_cuda(ctx, I32(idx), idx->shape[0], N);  // checked on the device
        if (bad >= 0) {
            int32_t v = 0;
            s2s_dev_copy(S2S_CPU, &v, ctx->device, I32(idx) + bad, sizeof v);
            S2S_CHECK(bad < 0, "%s: idx[%lld] = %d is outside the %lld rows of %s", op, (long long)bad, v,
                      (long long)N, what);
        }
#endif
        return;
    }
    const int32_t *id = I32(idx);
    for (int64_t m = 0; m < idx->shape[0]; m++)
        S2S_CHECK(id[m] >= 0 && id[m] < N, "%s: idx[%lld] = %d is outside the %lld rows of %s", op, (long long)m,
                  id[m], (long long)N, what);
}

static void check_rows_operand(s2s_ctx *ctx, const s2s_tensor *t, const char *op) {
    S2S_CHECK((t->dtype == S2S_F32 || t->dtype == S2S_I32) && t->device == ctx->device && t->ndim == 2,
              "%s: operand %s must be an f32 or i32 [rows, C] tensor on the context's device", op,
              t->name ? t->name : "");
}

// ---- gather --------------------------------------------------------------------------------------

static void gather_rows_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *x = n->in[0], *idx = n->in[1], *y = n->out[0];
    float *dx = s2s_grad_if(ctx, x);
    if (!dx) return;
    if (ctx->device == S2S_CPU) gather_rows_backward_cpu(dx, F32(y->grad), I32(idx), idx->shape[0], x->shape[1]);
#ifdef S2S_HAVE_CUDA
    else gather_rows_backward_cuda(ctx, dx, F32(y->grad), I32(idx), idx->shape[0], x->shape[1], x->shape[0]);
#else
    else S2S_NO_CUDA("gather_rows");
#endif
}

s2s_tensor *s2s_gather_rows(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *idx) {
    check_rows_operand(ctx, x, "gather_rows");
    rows_check_idx(ctx, idx, x->shape[0], "gather_rows", "x");
    int64_t M = idx->shape[0], C = x->shape[1];
    s2s_tensor *y = s2s_new2(ctx, x->dtype, M, C);  // [M, C]
    if (ctx->device == S2S_CPU) gather_rows_cpu(y->data, x->data, I32(idx), M, C, s2s_dtype_size(x->dtype));
#ifdef S2S_HAVE_CUDA
    else gather_rows_cuda(ctx, y->data, x->data, I32(idx), M, C, s2s_dtype_size(x->dtype));
#else
    else S2S_NO_CUDA("gather_rows");
#endif
    s2s_record(ctx, "gather_rows", gather_rows_backward, (s2s_tensor *[]){x, idx}, 2, &y, 1);
    return y;
}

// ---- scatter -------------------------------------------------------------------------------------

static void scatter_rows_backward(s2s_ctx *ctx, s2s_node *n) {
    s2s_tensor *base = n->in[0], *idx = n->in[1], *src = n->in[2], *y = n->out[0];
    float *dbase = s2s_grad_if(ctx, base), *dsrc = s2s_grad_if(ctx, src);
    if (ctx->device == S2S_CPU) {
        const unsigned char *replaced = n->saved;  // [N]
        scatter_rows_backward_cpu(dbase, dsrc, F32(y->grad), I32(idx), replaced, base->shape[0], idx->shape[0],
                                  base->shape[1]);
    }
#ifdef S2S_HAVE_CUDA
    else {
        const int32_t *count = n->saved;  // [N] on the device: how often each row of base was replaced
        scatter_rows_backward_cuda(ctx, dbase, dsrc, F32(y->grad), I32(idx), count, base->shape[0], idx->shape[0],
                                   base->shape[1]);
    }
#else
    else S2S_NO_CUDA("scatter_rows");
#endif
}

s2s_tensor *s2s_scatter_rows(s2s_ctx *ctx, s2s_tensor *base, s2s_tensor *idx, s2s_tensor *src) {
    check_rows_operand(ctx, base, "scatter_rows");
    check_rows_operand(ctx, src, "scatter_rows");
    rows_check_idx(ctx, idx, base->shape[0], "scatter_rows", "base");
    int64_t N = base->shape[0], M = idx->shape[0], C = base->shape[1];
    S2S_CHECK(src->dtype == base->dtype && src->shape[0] == M && src->shape[1] == C,
              "scatter_rows: src must be [%lld, %lld] (one row per index) with base's dtype", (long long)M,
              (long long)C);
    if (ctx->device != S2S_CPU) {
#ifdef S2S_HAVE_CUDA
        // The same two checks on the device: row counts [N] mark the replaced rows for backward.
        int32_t *count = s2s_scratch_alloc(ctx, (size_t)(N ? N : 1) * sizeof(int32_t));  // [N]
        int64_t dup = scatter_rows_mark_cuda(ctx, count, I32(idx), N, M);
        if (dup >= 0) {
            int32_t v = 0;
            s2s_dev_copy(S2S_CPU, &v, ctx->device, I32(idx) + dup, sizeof v);
            S2S_CHECK(dup < 0, "scatter_rows: row %d appears twice in idx; indices must be distinct", v);
        }
        s2s_tensor *y = s2s_new_like(ctx, base);  // [N, C]
        scatter_rows_cuda(ctx, y->data, base->data, I32(idx), src->data, N, M, C, s2s_dtype_size(base->dtype));
        s2s_node *nd =
            s2s_record(ctx, "scatter_rows", scatter_rows_backward, (s2s_tensor *[]){base, idx, src}, 3, &y, 1);
        if (nd) nd->saved = count;
        return y;
#else
        S2S_NO_CUDA("scatter_rows");
#endif
    }
    // Which rows src replaces: checks the indices are distinct (a repeated one would make the result
    // depend on write order) and tells backward which rows of base receive no gradient.
    unsigned char *replaced = s2s_scratch_alloc(ctx, (size_t)(N ? N : 1));  // [N]
    memset(replaced, 0, (size_t)N);
    const int32_t *id = I32(idx);
    for (int64_t m = 0; m < M; m++) {
        S2S_CHECK(!replaced[id[m]], "scatter_rows: row %d appears twice in idx; indices must be distinct", id[m]);
        replaced[id[m]] = 1;
    }
    s2s_tensor *y = s2s_new_like(ctx, base);  // [N, C]
    scatter_rows_cpu(y->data, base->data, id, src->data, N, M, C, s2s_dtype_size(base->dtype));
    s2s_node *nd = s2s_record(ctx, "scatter_rows", scatter_rows_backward, (s2s_tensor *[]){base, idx, src}, 3, &y, 1);
    if (nd) nd->saved = replaced;
    return y;
}
