// grad_norm.c — global gradient norm and clipping over a parameter registry (PyTorch
// torch.nn.utils.clip_grad_norm_ semantics). Not taped: runs between backward and the optimizer.
#include <math.h>
#include "dispatch.h"
#ifdef S2S_HAVE_CUDA
#include "../autograd/device.h"
#include "cuda/kernels.h"
#endif

// The sum of squares is split into fixed blocks whose partial sums are added in block order, so the
// result is the same bit for bit for any thread count (a resumed run must clip exactly as before).
// Each block is one sequential f64 sum; a thread runs NORM_LANES consecutive blocks side by side, so
// their additions form independent dependency chains (one chain is bound by the add latency, ~4x
// slower than memory): the same sums, bit for bit, as summing the blocks one after the other.
#define NORM_BLOCKS 256
#define NORM_MIN_BLOCK 8192
#define NORM_LANES 8

static double sumsq_cpu(const float *g, int64_t n) {
    double part[NORM_BLOCKS];                                 // [NORM_BLOCKS] partial sums
    int64_t bs = (n + NORM_BLOCKS - 1) / NORM_BLOCKS;         // block size: at most NORM_BLOCKS blocks
    if (bs < NORM_MIN_BLOCK) bs = NORM_MIN_BLOCK;
    const int64_t nb = (n + bs - 1) / bs, ngroups = (nb + NORM_LANES - 1) / NORM_LANES;
    #pragma omp parallel for schedule(static) if (nb > 1)
    for (int64_t q = 0; q < ngroups; q++) {
        const int64_t b0 = q * NORM_LANES, nl = nb - b0 < NORM_LANES ? nb - b0 : NORM_LANES;
        const float *x = g + b0 * bs;  // block b0 + k is x[k * bs ..]
        // Only the tensor's last block can be short, and it is the last of its group: every block of the
        // group has at least `common` elements.
        const int64_t last = (b0 + nl - 1) * bs, common = last + bs < n ? bs : n - last;
        double s[NORM_LANES] = {0};
        if (nl == NORM_LANES) {
            for (int64_t i = 0; i < common; i++) {
                #pragma GCC unroll 8
                for (int k = 0; k < NORM_LANES; k++) s[k] += (double)x[k * bs + i] * (double)x[k * bs + i];
            }
        } else {
            for (int64_t i = 0; i < common; i++)
                for (int k = 0; k < nl; k++) s[k] += (double)x[k * bs + i] * (double)x[k * bs + i];
        }
        for (int k = 0; k < nl - 1; k++)  // the full blocks' rest, in order
            for (int64_t i = common; i < bs; i++) s[k] += (double)x[k * bs + i] * (double)x[k * bs + i];
        for (int k = 0; k < nl; k++) part[b0 + k] = s[k];
    }
    double s = 0.0;
    for (int64_t b = 0; b < nb; b++) s += part[b];
    return s;
}

static void scale_cpu(float *g, int64_t n, float f) {
    #pragma omp parallel for simd schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) g[i] *= f;
}

#ifdef S2S_HAVE_CUDA
// Each gradient's f64 sum of squares goes to its own device slot; one copy brings them all back and
// the host adds them in registry order (one synchronisation per norm, not per parameter).
static double grad_sumsq_all_cuda(s2s_ctx *ctx, s2s_params *params) {
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    int n = 0;
    double *slots = s2s_scratch_alloc(ctx, (size_t)(params->n ? params->n : 1) * sizeof(double));  // [n] device
    for (int i = 0; i < params->n; i++) {  // registry order: fixed
        s2s_param *q = &params->items[i];
        if (!q->trainable || !q->t->grad) continue;
        grad_sumsq_cuda(ctx, F32(q->t->grad), s2s_numel(q->t->grad), slots + n++);
    }
    double *host = s2s_malloc((size_t)(n ? n : 1) * sizeof(double));  // [n]
    if (n) s2s_dev_copy(S2S_CPU, host, ctx->device, slots, (size_t)n * sizeof(double));
    double s = 0.0;
    for (int k = 0; k < n; k++) s += host[k];
    free(host);
    s2s_arena_rewind(ctx->cur, mark);
    return s;
}
#endif

double s2s_grad_norm(s2s_ctx *ctx, s2s_params *params) {
    S2S_CHECK(params->device == ctx->device, "grad_norm: the registry lives on another device than the context");
#ifdef S2S_HAVE_CUDA
    if (ctx->device != S2S_CPU) return sqrt(grad_sumsq_all_cuda(ctx, params));
#endif
    double s = 0.0;
    for (int i = 0; i < params->n; i++) {  // registry order: fixed
        s2s_param *q = &params->items[i];
        if (!q->trainable || !q->t->grad) continue;
        if (ctx->device == S2S_CPU) s += sumsq_cpu(F32(q->t->grad), s2s_numel(q->t->grad));
        else S2S_NO_CUDA("grad_norm");
    }
    return sqrt(s);
}

double s2s_grad_clip(s2s_ctx *ctx, s2s_params *params, double max_norm) {
    S2S_CHECK(max_norm > 0.0, "grad_clip: max_norm must be > 0 (got %g); to disable clipping, skip the call",
              max_norm);
    double norm = s2s_grad_norm(ctx, params);
    s2s_grad_clip_known(ctx, params, norm, max_norm);
    return norm;
}

void s2s_grad_clip_known(s2s_ctx *ctx, s2s_params *params, double norm, double max_norm) {
    S2S_CHECK(max_norm > 0.0, "grad_clip: max_norm must be > 0 (got %g); to disable clipping, skip the call",
              max_norm);
    double factor = max_norm / (norm + 1e-6);
    // PyTorch multiplies by min(factor, 1); multiplying by exactly 1 is a no-op, so skip it. A NaN /
    // inf norm makes factor NaN / 0 and propagates into the gradients as in PyTorch.
    if (!(factor < 1.0) && !isnan(factor)) return;
    for (int i = 0; i < params->n; i++) {
        s2s_param *q = &params->items[i];
        if (!q->trainable || !q->t->grad) continue;
        if (ctx->device == S2S_CPU) scale_cpu(F32(q->t->grad), s2s_numel(q->t->grad), (float)factor);
#ifdef S2S_HAVE_CUDA
        else grad_scale_cuda(ctx, F32(q->t->grad), s2s_numel(q->t->grad), (float)factor);
#else
        else S2S_NO_CUDA("grad_clip");
#endif
    }
}

// ---- raw buffers -----------------------------------------------------------------------------------------------

double s2s_buf_sumsq(s2s_ctx *ctx, const float *x, int64_t n) {
    if (n <= 0) return 0.0;
    if (ctx->device == S2S_CPU) return sumsq_cpu(x, n);
#ifdef S2S_HAVE_CUDA
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    double *slot = s2s_scratch_alloc(ctx, sizeof(double)), v = 0;  // [1] device
    grad_sumsq_cuda(ctx, x, n, slot);
    s2s_dev_copy(S2S_CPU, &v, ctx->device, slot, sizeof v);
    s2s_arena_rewind(ctx->cur, mark);
    return v;
#else
    S2S_NO_CUDA("buf_sumsq");
#endif
}

void s2s_buf_scale(s2s_ctx *ctx, float *x, int64_t n, float f) {
    if (n <= 0) return;
    if (ctx->device == S2S_CPU) return scale_cpu(x, n, f);
#ifdef S2S_HAVE_CUDA
    grad_scale_cuda(ctx, x, n, f);
#else
    S2S_NO_CUDA("buf_scale");
#endif
}

void s2s_buf_add(s2s_ctx *ctx, float *dst, const float *src, int64_t n) {
    if (n <= 0) return;
    if (ctx->device == S2S_CPU) {
        #pragma omp parallel for simd schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) dst[i] += src[i];
        return;
    }
#ifdef S2S_HAVE_CUDA
    add_into_cuda(ctx, dst, src, n);
#else
    S2S_NO_CUDA("buf_add");
#endif
}
