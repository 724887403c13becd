// bench_ops — time forward + backward of one s2s op on the CPU at a given shape; prints one JSON line
// with the median wall time and the extra peak resident memory the op needed (maxrss after the timed
// runs minus maxrss once inputs and parameter gradients exist), measured the same way bench_torch.py
// measures PyTorch.
//   bench_ops linear N K M | attention S T_per_sample Hq Hkv D causal | rmsnorm N C | ce N C V
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "autograd/check.h"
#include "autograd/rng.h"
#include "ops/ops.h"
#include "train/metrics.h"

static long maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static s2s_tensor *randn(s2s_ctx *ctx, s2s_rng *r, int nd, const int64_t *shape, float std, bool grad) {
    s2s_tensor *t = s2s_new(ctx, S2S_F32, nd, shape);
    s2s_rng_fill_normal(r, t->data, s2s_numel(t), std);
    t->requires_grad = grad;
    return t;
}

static s2s_tensor *param(s2s_params *p, s2s_rng *r, const char *name, int nd, const int64_t *shape, float std) {
    s2s_tensor *t = s2s_params_add(p, name, "bench", nd, shape, true, false);
    if (std > 0) s2s_rng_fill_normal(r, t->data, s2s_numel(t), std);
    else for (int64_t i = 0; i < s2s_numel(t); i++) ((float *)t->data)[i] = 1.0f;
    return t;
}


typedef struct {
    s2s_ctx *ctx;  // inputs live in their own context so a step resets only the op's memory
    s2s_tensor *x, *w, *q, *k, *v, *cu, *lab;
} bench_in;

static const int64_t *tiny_shape(const char *op) {
    static const int64_t lin[6] = {8, 8, 8}, att[6] = {1, 8, 2, 1, 8, 1}, rms[6] = {8, 8}, ce[6] = {8, 8, 16};
    return !strcmp(op, "linear") ? lin : !strcmp(op, "attention") ? att : !strcmp(op, "rmsnorm") ? rms : ce;
}

static bench_in setup(const char *op, const int64_t *a, s2s_params *params, s2s_rng *r) {
    bench_in b = {0};
    b.ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .arena_bytes = (size_t)1 << 20});
    if (!strcmp(op, "linear")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 2, (int64_t[]){a[2], a[1]}, 0.02f);
    } else if (!strcmp(op, "attention")) {
        int64_t S = a[0], Ts = a[1], T = S * Ts;
        b.q = randn(b.ctx, r, 3, (int64_t[]){T, a[2], a[4]}, 1.0f, true);
        b.k = randn(b.ctx, r, 3, (int64_t[]){T, a[3], a[4]}, 1.0f, true);
        b.v = randn(b.ctx, r, 3, (int64_t[]){T, a[3], a[4]}, 1.0f, true);
        b.cu = s2s_new1(b.ctx, S2S_I32, S + 1);
        for (int64_t s = 0; s <= S; s++) ((int32_t *)b.cu->data)[s] = (int32_t)(s * Ts);
    } else if (!strcmp(op, "rmsnorm")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 1, (int64_t[]){a[1]}, 0);
    } else if (!strcmp(op, "ce")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 2, (int64_t[]){a[2], a[1]}, 0.02f);
        b.lab = s2s_new1(b.ctx, S2S_I32, a[0]);
        for (int64_t i = 0; i < a[0]; i++) ((int32_t *)b.lab->data)[i] = (int32_t)(s2s_rng_u64(r) % (uint64_t)a[2]);
    } else S2S_CHECK(0, "unknown op %s (linear, attention, rmsnorm, ce)", op);
    return b;
}

// One forward + backward (upstream gradient of ones, as torch's y.backward(ones)), then reset.
static void run_step(s2s_ctx *ctx, const char *op, bench_in *b, const int64_t *a, s2s_params *params) {
    if (b->x) b->x->grad = NULL;
    if (b->q) b->q->grad = b->k->grad = b->v->grad = NULL;
    s2s_tensor *y;
    if (!strcmp(op, "linear")) y = s2s_linear(ctx, b->x, b->w, NULL);
    else if (!strcmp(op, "attention")) y = s2s_attention(ctx, b->q, b->k, b->v, b->cu, a[5] != 0, 1.0f / sqrtf((float)a[4]));
    else if (!strcmp(op, "rmsnorm")) y = s2s_rmsnorm(ctx, b->x, b->w, 1e-6f);
    else y = s2s_cross_entropy_fused(ctx, b->x, b->w, b->lab, -100, 1.0f);
    s2s_backward(ctx, y, NULL);
    s2s_params_zero_grad(params);
    s2s_ctx_step_reset(ctx);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    S2S_CHECK(argc >= 2, "usage: bench_ops OP ARGS... (see the comment at the top of bench/bench_ops.c)");
    const char *op = argv[1];
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 5;
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .arena_bytes = (size_t)1 << 20});
    s2s_params params;
    s2s_params_init(&params, S2S_CPU);
    s2s_rng r;
    s2s_rng_seed(&r, 7);
    int64_t a[6] = {0};
    for (int i = 0; i < 6 && i + 2 < argc; i++) a[i] = atoll(argv[i + 2]);

    bench_in tiny = setup(op, tiny_shape(op), &params, &r);  // library warm-up (BLAS buffers, threads)
    run_step(ctx, op, &tiny, tiny_shape(op), &params);
    s2s_ctx_free(tiny.ctx);
    s2s_params_free(&params);
    s2s_params_init(&params, S2S_CPU);
    bench_in in = setup(op, a, &params, &r);
    long rss0 = maxrss_kb();
    double t[64];
    S2S_CHECK(reps >= 1 && reps <= 64, "BENCH_REPS 1..64");
    for (int rep = -1; rep < reps; rep++) {  // rep -1 sizes the arena
        double t0 = s2s_now();
        run_step(ctx, op, &in, a, &params);
        double t1 = s2s_now();
        if (rep >= 0) t[rep] = (t1 - t0) * 1e3;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp);
    printf("{\"op\": \"%s\", \"ms\": %.3f, \"extra_rss_mb\": %.1f, \"arena_peak_mb\": %.1f, \"threads\": %d}\n", op,
           t[reps / 2], (double)(maxrss_kb() - rss0) / 1024.0, (double)s2s_ctx_peak_bytes(ctx) / (1 << 20),
           ctx->n_threads);
    s2s_params_free(&params);
    s2s_ctx_free(in.ctx);
    s2s_ctx_free(ctx);
    return 0;
}
