// bench_ops — time forward + backward of one s2s op on the CPU at a given shape; prints one JSON line
// with the median wall time and the extra peak resident memory the op needed (maxrss after the timed
// runs minus maxrss once inputs and parameter gradients exist), measured the same way bench_torch.py
// measures PyTorch.
//   bench_ops [--cuda] linear N K M | attention S T_per_sample Hq Hkv D causal | rmsnorm N C | ce N C V
// --cuda runs the op on the GPU (GEMMs in the default bf16-operand mode; S2S_GEMM=f32 for exact f32), times
// each step to a device synchronisation, and reports the op context's device arena peak as its extra memory.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "autograd/rng.h"
#include "ops/ops.h"
#include "train/metrics.h"

static long maxrss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

// t <- N(0, std^2) values (std 0: ones), drawn on the host and copied to t's device.
static void fill(s2s_tensor *t, s2s_rng *r, float std) {
    const int64_t n = s2s_numel(t);
    float *h = t->device == S2S_CPU ? t->data : malloc(sizeof(float) * (size_t)(n ? n : 1));
    S2S_CHECK(h, "bench_ops: out of host memory");
    if (std > 0) s2s_rng_fill_normal(r, h, n, std);
    else for (int64_t i = 0; i < n; i++) h[i] = 1.0f;
    if (h != t->data) {
        s2s_dev_copy(t->device, t->data, S2S_CPU, h, sizeof(float) * (size_t)n);
        free(h);
    }
}

static s2s_tensor *randn(s2s_ctx *ctx, s2s_rng *r, int nd, const int64_t *shape, float std, bool grad) {
    s2s_tensor *t = s2s_new(ctx, S2S_F32, nd, shape);
    fill(t, r, std);
    t->requires_grad = grad;
    return t;
}

static s2s_tensor *param(s2s_params *p, s2s_rng *r, const char *name, int nd, const int64_t *shape, float std) {
    s2s_tensor *t = s2s_params_add(p, name, "bench", nd, shape, true, false);
    fill(t, r, std);
    return t;
}

// An i32 vector with the given host values, on ctx's device.
static s2s_tensor *ints(s2s_ctx *ctx, const int32_t *v, int64_t n) {
    s2s_tensor *t = s2s_new1(ctx, S2S_I32, n);
    s2s_dev_copy(ctx->device, t->data, S2S_CPU, v, sizeof(int32_t) * (size_t)n);
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

static bench_in setup(s2s_device dev, const char *op, const int64_t *a, s2s_params *params, s2s_rng *r) {
    bench_in b = {0};
    b.ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .arena_bytes = (size_t)1 << 20});
    if (!strcmp(op, "linear")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 2, (int64_t[]){a[2], a[1]}, 0.02f);
    } else if (!strcmp(op, "attention")) {
        int64_t S = a[0], Ts = a[1], T = S * Ts;
        b.q = randn(b.ctx, r, 3, (int64_t[]){T, a[2], a[4]}, 1.0f, true);
        b.k = randn(b.ctx, r, 3, (int64_t[]){T, a[3], a[4]}, 1.0f, true);
        b.v = randn(b.ctx, r, 3, (int64_t[]){T, a[3], a[4]}, 1.0f, true);
        int32_t *cu = malloc(sizeof(int32_t) * (size_t)(S + 1));
        S2S_CHECK(cu, "bench_ops: out of host memory");
        for (int64_t s = 0; s <= S; s++) cu[s] = (int32_t)(s * Ts);
        b.cu = ints(b.ctx, cu, S + 1);
        free(cu);
    } else if (!strcmp(op, "rmsnorm")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 1, (int64_t[]){a[1]}, 0);
    } else if (!strcmp(op, "ce")) {
        b.x = randn(b.ctx, r, 2, (int64_t[]){a[0], a[1]}, 1.0f, true);
        b.w = param(params, r, "w", 2, (int64_t[]){a[2], a[1]}, 0.02f);
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)a[0]);
        S2S_CHECK(lab, "bench_ops: out of host memory");
        for (int64_t i = 0; i < a[0]; i++) lab[i] = (int32_t)(s2s_rng_u64(r) % (uint64_t)a[2]);
        b.lab = ints(b.ctx, lab, a[0]);
        free(lab);
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
    s2s_dev_sync(ctx->device);  // kernels are queued: the step ends when the device is done
    s2s_ctx_step_reset(ctx);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    s2s_device dev = S2S_CPU;
    if (argc >= 2 && !strcmp(argv[1], "--cuda")) {
        dev = S2S_CUDA;
        argc--, argv++;
        S2S_CHECK(s2s_cuda_available() > 0, "bench_ops --cuda: no CUDA device visible to this build");
    }
    S2S_CHECK(argc >= 2, "usage: bench_ops [--cuda] OP ARGS... (see the comment at the top of bench/bench_ops.c)");
    const char *op = argv[1];
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 5;
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .arena_bytes = (size_t)1 << 20});
    s2s_params params;
    s2s_params_init(&params, dev);
    s2s_rng r;
    s2s_rng_seed(&r, 7);
    int64_t a[6] = {0};
    for (int i = 0; i < 6 && i + 2 < argc; i++) a[i] = atoll(argv[i + 2]);

    bench_in tiny = setup(dev, op, tiny_shape(op), &params, &r);  // library warm-up (BLAS buffers, threads)
    run_step(ctx, op, &tiny, tiny_shape(op), &params);
    s2s_ctx_free(tiny.ctx);
    s2s_params_free(&params);
    s2s_params_init(&params, dev);
    bench_in in = setup(dev, op, a, &params, &r);
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
    const double peak_mb = (double)s2s_ctx_peak_bytes(ctx) / (1 << 20);
    printf("{\"op\": \"%s\", \"device\": \"%s\", \"ms\": %.3f, \"extra_rss_mb\": %.1f, \"arena_peak_mb\": %.1f, "
           "\"extra_dev_mb\": %.1f, \"threads\": %d}\n",
           op, dev == S2S_CPU ? "cpu" : "cuda", t[reps / 2], (double)(maxrss_kb() - rss0) / 1024.0, peak_mb,
           dev == S2S_CPU ? 0.0 : peak_mb, ctx->n_threads);
    s2s_params_free(&params);
    s2s_ctx_free(in.ctx);
    s2s_ctx_free(ctx);
    return 0;
}
