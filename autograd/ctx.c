#include "ctx.h"
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "check.h"
#include "device.h"

#ifdef S2S_HAVE_OPENBLAS_THREADS
void openblas_set_num_threads(int);
#endif

s2s_ctx *s2s_ctx_new(s2s_ctx_opts o) {
    s2s_ctx *ctx = s2s_calloc(1, sizeof *ctx);
    ctx->device = o.device;
    s2s_arena_init(&ctx->arena, o.device, o.arena_bytes ? o.arena_bytes : (size_t)64 << 20);
    s2s_arena_init(&ctx->scratch, o.device, o.scratch_bytes ? o.scratch_bytes : (size_t)16 << 20);
    ctx->cur = &ctx->arena;
    ctx->cur_tape = &ctx->tape;
    if (o.n_threads > 0) s2s_ctx_set_threads(ctx, o.n_threads);
#ifdef _OPENMP
    ctx->n_threads = omp_get_max_threads();
#else
    ctx->n_threads = 1;
#endif
    return ctx;
}

void s2s_ctx_set_threads(s2s_ctx *ctx, int n) {
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
#ifdef S2S_HAVE_OPENBLAS_THREADS
    openblas_set_num_threads(n);
#endif
    ctx->n_threads = n;
}

void s2s_ctx_free(s2s_ctx *ctx) {
    if (!ctx) return;
    if (ctx->cuda && ctx->cuda_free) ctx->cuda_free(ctx->cuda);
    s2s_arena_free(&ctx->arena);
    s2s_arena_free(&ctx->scratch);
    free(ctx->tape.nodes);
    free(ctx->region_tape.nodes);
    free(ctx);
}

void s2s_ctx_step_reset(s2s_ctx *ctx) {
    S2S_CHECK(ctx->pending_eager == 0,
              "a tape with a fused loss that already applied weight gradients was dropped without "
              "backward; run s2s_backward, or compute eval losses inside s2s_no_grad_begin/end");
    S2S_CHECK(!ctx->in_region, "step reset inside a recompute region");
    ctx->tape.n = 0;
    s2s_arena_reset(&ctx->arena);
    s2s_arena_reset(&ctx->scratch);
}

static s2s_tensor *tensor_alloc(s2s_ctx *ctx, s2s_dtype dt, int ndim, const int64_t *shape) {
    S2S_CHECK(ndim >= 0 && ndim <= S2S_MAX_DIMS, "tensors have 0..4 dims, asked for %d", ndim);
    s2s_tensor *t = s2s_arena_alloc_host(ctx->cur, sizeof *t);  // the header on the host, data on the device
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->device = ctx->device;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        S2S_CHECK(shape[i] >= 0, "negative dimension %lld at axis %d", (long long)shape[i], i);
        t->shape[i] = shape[i];
    }
    t->data = s2s_arena_alloc(ctx->cur, s2s_nbytes(t));
    return t;
}

s2s_tensor *s2s_new(s2s_ctx *ctx, s2s_dtype dt, int ndim, const int64_t *shape) {
    return tensor_alloc(ctx, dt, ndim, shape);
}
s2s_tensor *s2s_new1(s2s_ctx *ctx, s2s_dtype dt, int64_t d0) { return tensor_alloc(ctx, dt, 1, &d0); }
s2s_tensor *s2s_new2(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1) {
    return tensor_alloc(ctx, dt, 2, (int64_t[]){d0, d1});
}
s2s_tensor *s2s_new3(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1, int64_t d2) {
    return tensor_alloc(ctx, dt, 3, (int64_t[]){d0, d1, d2});
}
s2s_tensor *s2s_new4(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    return tensor_alloc(ctx, dt, 4, (int64_t[]){d0, d1, d2, d3});
}
s2s_tensor *s2s_new_like(s2s_ctx *ctx, const s2s_tensor *t) {
    return tensor_alloc(ctx, t->dtype, t->ndim, t->shape);
}
s2s_tensor *s2s_zeros_like(s2s_ctx *ctx, const s2s_tensor *t) {
    s2s_tensor *z = s2s_new_like(ctx, t);
    s2s_dev_memset0(z->device, z->data, s2s_nbytes(z));
    return z;
}

float *s2s_grad(s2s_ctx *ctx, s2s_tensor *t) {
    if (!t->grad && t->is_param && ctx->param_grad) {
        ctx->param_grad(ctx->param_grad_user, t);
        S2S_CHECK(t->grad, "parameter %s: the gradient provider gave it no buffer", t->name ? t->name : "?");
    }
    if (!t->grad) {
        S2S_CHECK(!t->is_param, "parameter %s has no gradient buffer; the registry allocates it when "
                  "the parameter is trainable", t->name ? t->name : "?");
        t->grad = tensor_alloc(ctx, S2S_F32, t->ndim, t->shape);
        s2s_dev_memset0(t->device, t->grad->data, s2s_nbytes(t->grad));
    }
    return (float *)t->grad->data;
}

float *s2s_grad_if(s2s_ctx *ctx, s2s_tensor *t) {
    return (t && t->requires_grad) ? s2s_grad(ctx, t) : NULL;
}

void *s2s_scratch_alloc(s2s_ctx *ctx, size_t bytes) { return s2s_arena_alloc(ctx->cur, bytes); }
void *s2s_host_alloc(s2s_ctx *ctx, size_t bytes) { return s2s_arena_alloc_host(ctx->cur, bytes); }

size_t s2s_ctx_peak_bytes(const s2s_ctx *ctx) { return ctx->arena.peak + ctx->scratch.peak; }
