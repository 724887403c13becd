// test_autograd.c — the tape's promises, checked by counting: frozen parameters cost no weight
// gradients and frozen-only subgraphs are not recorded; recompute regions give bit-identical
// gradients at a lower arena peak; micro-batch accumulation equals one batch; the arena stops
// growing after the first step; no_grad records nothing; backward without trainable history fails.
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "ops/ops.h"

#define F32(t) ((float *)(t)->data)

// Failures are counted, not fatal, so one run reports every broken promise.
#define EXPECT(fails, cond, ...)                                                     \
    do {                                                                             \
        if (!(cond)) {                                                               \
            fprintf(stderr, "FAIL %s:%d: `%s`: ", __FILE__, __LINE__, #cond);        \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
            (*(fails))++;                                                            \
        }                                                                            \
    } while (0)

// ---- helpers ---------------------------------------------------------------------------------------

typedef struct { uint64_t s; } rng;

static float rng_unit(rng *r) {  // uniform in [-1, 1)
    r->s = r->s * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(r->s >> 40) / (float)(1 << 23) - 1.0f;
}

static void fill(float *p, int64_t n, rng *r, float scale) {
    for (int64_t i = 0; i < n; i++) p[i] = scale * rng_unit(r);
}

static s2s_tensor *param(s2s_params *P, const char *name, int ndim, const int64_t *shape, bool trainable, rng *r,
                         float scale) {
    s2s_tensor *t = s2s_params_add(P, name, "test", ndim, shape, trainable, true);
    fill(F32(t), s2s_numel(t), r, scale);
    return t;
}

static s2s_tensor *data(s2s_ctx *ctx, int ndim, const int64_t *shape, rng *r, bool requires_grad) {
    s2s_tensor *t = s2s_new(ctx, S2S_F32, ndim, shape);
    fill(F32(t), s2s_numel(t), r, 1.0f);
    t->requires_grad = requires_grad;
    return t;
}

static s2s_ctx *ctx_small(size_t arena, size_t scratch) {
    return s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2, .arena_bytes = arena, .scratch_bytes = scratch});
}

static double lin_flops(int64_t n, int64_t in, int64_t out) { return 2.0 * (double)n * (double)in * (double)out; }

// All trainable gradients of the registry, flattened in registry order (caller frees).
static float *grads_copy(const s2s_params *P, int64_t *n_out) {
    int64_t n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->items[i].t->grad) n += s2s_numel(P->items[i].t);
    float *g = s2s_malloc((size_t)(n ? n : 1) * sizeof(float)), *q = g;
    for (int i = 0; i < P->n; i++)
        if (P->items[i].t->grad) {
            int64_t k = s2s_numel(P->items[i].t);
            memcpy(q, P->items[i].t->grad->data, (size_t)k * sizeof(float));
            q += k;
        }
    *n_out = n;
    return g;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

// ---- (1) frozen parameters ---------------------------------------------------------------------------
// x (data) -> E (frozen "encoder") -> A1 (trainable adapter, bias) -> A2 (trainable) -> F1 (frozen, bias)
// -> F2 -> F3 (frozen "LLM") -> y. Frozen weights must cost one GEMM each in backward (dx), A2 two
// (dx, dw), A1 one (dw only: its input comes from the frozen encoder), E none and unrecorded.

enum { N1 = 5, D0 = 7, DE = 11, DA1 = 13, DA2 = 17, DF1 = 19, DF2 = 23, DF3 = 3 };

typedef struct { s2s_tensor *E, *A1, *A1b, *A2, *F1, *F1b, *F2, *F3; } frozen_net;

// Registered trainable (as a checkpoint loads), then frozen by prefix as a stage-1 config does.
static frozen_net frozen_net_new(s2s_params *P, bool all_trainable, uint64_t seed, int *fails) {
    rng r = {seed};
    frozen_net m;
    m.E = param(P, "enc.w", 2, (int64_t[]){DE, D0}, true, &r, 0.4f);
    m.A1 = param(P, "adapter.fc1.w", 2, (int64_t[]){DA1, DE}, true, &r, 0.3f);
    m.A1b = param(P, "adapter.fc1.b", 1, (int64_t[]){DA1}, true, &r, 0.1f);
    m.A2 = param(P, "adapter.fc2.w", 2, (int64_t[]){DA2, DA1}, true, &r, 0.3f);
    m.F1 = param(P, "llm.l1.w", 2, (int64_t[]){DF1, DA2}, true, &r, 0.3f);
    m.F1b = param(P, "llm.l1.b", 1, (int64_t[]){DF1}, true, &r, 0.1f);
    m.F2 = param(P, "llm.l2.w", 2, (int64_t[]){DF2, DF1}, true, &r, 0.3f);
    m.F3 = param(P, "llm.l3.w", 2, (int64_t[]){DF3, DF2}, true, &r, 0.3f);
    if (!all_trainable) {
        int ne = s2s_params_set_trainable(P, "enc.", false), nl = s2s_params_set_trainable(P, "llm.", false);
        EXPECT(fails, ne == 1 && nl == 4, "set_trainable matched %d / %d parameters", ne, nl);
        EXPECT(fails, s2s_params_count(P, true) == DA1 * DE + DA1 + DA2 * DA1, "trainable count %lld",
               (long long)s2s_params_count(P, true));
    }
    return m;
}

static s2s_tensor *frozen_net_forward(s2s_ctx *ctx, const frozen_net *m, s2s_tensor *x, s2s_tensor **enc_out) {
    s2s_tensor *h = s2s_linear(ctx, x, m->E, NULL);  // [N, DE]
    *enc_out = h;
    h = s2s_linear(ctx, h, m->A1, m->A1b);           // [N, DA1]
    h = s2s_linear(ctx, h, m->A2, NULL);             // [N, DA2]
    h = s2s_linear(ctx, h, m->F1, m->F1b);           // [N, DF1]
    h = s2s_linear(ctx, h, m->F2, NULL);             // [N, DF2]
    return s2s_linear(ctx, h, m->F3, NULL);          // [N, DF3]
}

static void test_frozen(int *fails) {
    float dy[N1 * DF3];  // [N, DF3]
    rng rd = {99};
    fill(dy, N1 * DF3, &rd, 1.0f);
    float *ref = NULL;
    int64_t n_ref = 0;
    for (int all = 1; all >= 0; all--) {  // all-trainable first: the reference gradients and costs
        s2s_ctx *ctx = ctx_small(0, 0);
        s2s_params P;
        s2s_params_init(&P, S2S_CPU);
        frozen_net m = frozen_net_new(&P, all, 7, fails);
        rng rx = {5};
        s2s_tensor *x = data(ctx, 2, (int64_t[]){N1, D0}, &rx, false), *enc;

        s2s_stats s0 = ctx->stats;
        s2s_tensor *y = frozen_net_forward(ctx, &m, x, &enc);
        s2s_stats s1 = ctx->stats;
        double fwd_flops = lin_flops(N1, D0, DE) + lin_flops(N1, DE, DA1) + lin_flops(N1, DA1, DA2) +
                           lin_flops(N1, DA2, DF1) + lin_flops(N1, DF1, DF2) + lin_flops(N1, DF2, DF3);
        EXPECT(fails, s1.gemm_calls - s0.gemm_calls == 6, "forward gemms %lld", (long long)(s1.gemm_calls - s0.gemm_calls));
        EXPECT(fails, s1.gemm_flops - s0.gemm_flops == fwd_flops, "forward flops %.0f vs %.0f",
               s1.gemm_flops - s0.gemm_flops, fwd_flops);
        // The frozen encoder sees only data: nothing recorded, its output wants no gradient.
        EXPECT(fails, s1.nodes_recorded - s0.nodes_recorded == (all ? 6 : 5), "recorded %lld nodes (all=%d)",
               (long long)(s1.nodes_recorded - s0.nodes_recorded), all);
        EXPECT(fails, enc->requires_grad == (bool)all, "encoder output requires_grad=%d", enc->requires_grad);

        s2s_backward(ctx, y, dy);
        s2s_stats s2 = ctx->stats;
        int64_t bwd_gemms = s2.gemm_calls - s1.gemm_calls;
        double bwd_flops = s2.gemm_flops - s1.gemm_flops;
        if (all) {  // every linear forms dx and dw, except E (its input is data)
            EXPECT(fails, bwd_gemms == 11, "all-trainable backward gemms %lld", (long long)bwd_gemms);
            EXPECT(fails, bwd_flops == 2 * fwd_flops - lin_flops(N1, D0, DE), "all-trainable backward flops %.0f",
                   bwd_flops);
        } else {
            double want = lin_flops(N1, DF2, DF3) + lin_flops(N1, DF1, DF2) + lin_flops(N1, DA2, DF1) +  // dx
                          2 * lin_flops(N1, DA1, DA2) +                                                 // dx, dw
                          lin_flops(N1, DE, DA1);                                                       // dw
            EXPECT(fails, bwd_gemms == 6, "frozen backward gemms %lld (want 3 frozen dx + 2 A2 + 1 A1)",
                   (long long)bwd_gemms);
            EXPECT(fails, bwd_flops == want, "frozen backward flops %.0f vs %.0f", bwd_flops, want);
            EXPECT(fails, s2.nodes_run - s1.nodes_run == 5 && s2.nodes_skipped == s1.nodes_skipped,
                   "ran %lld nodes, skipped %lld", (long long)(s2.nodes_run - s1.nodes_run),
                   (long long)(s2.nodes_skipped - s1.nodes_skipped));
            s2s_tensor *frozen[] = {m.E, m.F1, m.F1b, m.F2, m.F3};
            for (int i = 0; i < 5; i++)  // not even a buffer: freezing gives the memory back
                EXPECT(fails, frozen[i]->grad == NULL && !frozen[i]->requires_grad, "frozen %s holds a gradient",
                       frozen[i]->name);
            EXPECT(fails, enc->grad == NULL && x->grad == NULL, "gradient formed for the encoder output or data");
            printf("frozen: backward %lld gemms / %.0f flops vs %lld / %.0f all-trainable\n", (long long)bwd_gemms,
                   bwd_flops, 11LL, 2 * fwd_flops - lin_flops(N1, D0, DE));
        }
        // The adapter's gradients must not depend on whether the LLM is frozen: bit for bit, since
        // the same GEMMs run on the same operands in the same order.
        int64_t n;
        float *g = grads_copy(&P, &n);
        if (all) {
            // Adapter params sit after enc.w in registry order: A1 (w, b), A2.
            int64_t off = DE * D0, na = DA1 * DE + DA1 + DA2 * DA1;
            ref = s2s_malloc((size_t)na * sizeof(float));
            memcpy(ref, g + off, (size_t)na * sizeof(float));
            n_ref = na;
        } else {
            EXPECT(fails, n == n_ref, "trainable count %lld vs %lld", (long long)n, (long long)n_ref);
            EXPECT(fails, n == n_ref && memcmp(g, ref, (size_t)n * sizeof(float)) == 0,
                   "adapter gradients differ when the LLM is frozen");
            EXPECT(fails, max_abs(g, n) > 1e-3, "adapter gradients are ~0 (%g): the test would prove nothing",
                   max_abs(g, n));
        }
        free(g);
        s2s_ctx_step_reset(ctx);
        s2s_params_free(&P);
        s2s_ctx_free(ctx);
    }
    free(ref);
}

// ---- (2) recompute regions ---------------------------------------------------------------------------
// A block: a = linear(h); s = a h^T (per batch); z = linear(s); out = conv1d(z) with time as channels.
// Three blocks stacked, run plainly or each inside a region.

enum { RB = 2, RT = 16, RC = 32, NBLK = 3 };

typedef struct { s2s_tensor *w1, *b1, *w2, *wc, *bc; } block_params;

static void blocks_new(s2s_params *P, block_params *bp, uint64_t seed) {
    rng r = {seed};
    char name[64];
    for (int i = 0; i < NBLK; i++) {
        snprintf(name, sizeof name, "blk%d.w1", i);
        bp[i].w1 = param(P, name, 2, (int64_t[]){RC, RC}, true, &r, 0.3f);
        snprintf(name, sizeof name, "blk%d.b1", i);
        bp[i].b1 = param(P, name, 1, (int64_t[]){RC}, true, &r, 0.1f);
        snprintf(name, sizeof name, "blk%d.w2", i);
        bp[i].w2 = param(P, name, 2, (int64_t[]){RC, RT}, true, &r, 0.1f);
        snprintf(name, sizeof name, "blk%d.wc", i);
        bp[i].wc = param(P, name, 3, (int64_t[]){RT, RT, 3}, true, &r, 0.2f);
        snprintf(name, sizeof name, "blk%d.bc", i);
        bp[i].bc = param(P, name, 1, (int64_t[]){RT}, true, &r, 0.1f);
    }
}

static s2s_tensor *block_forward(s2s_ctx *ctx, const block_params *p, s2s_tensor *h) {
    s2s_tensor *a = s2s_linear(ctx, h, p->w1, p->b1);   // [B, T, C]
    s2s_tensor *s = s2s_bmm(ctx, a, h, true);           // [B, T, T]
    s2s_tensor *z = s2s_linear(ctx, s, p->w2, NULL);    // [B, T, C]
    return s2s_conv1d(ctx, z, p->wc, p->bc, 1, 1);      // [B, T, C] (T as channels)
}

static void block_region(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    outs[0] = block_forward(ctx, user, ins[0]);
}

typedef struct {
    float *grads;  // all parameter gradients then the input's
    int64_t n;
    size_t arena_peak, total_peak;
    s2s_stats fwd, bwd;  // counters spent in forward, in backward
} region_run;

static region_run run_blocks(bool regions, const float *dy) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    block_params bp[NBLK];
    blocks_new(&P, bp, 11);
    s2s_ctx *ctx = ctx_small(4096, 4096);
    rng rx = {3};
    s2s_tensor *h = data(ctx, 3, (int64_t[]){RB, RT, RC}, &rx, true);  // [B, T, C], wants its gradient
    s2s_tensor *x = h;
    for (int i = 0; i < NBLK; i++) {
        if (regions) {
            s2s_tensor *out;
            s2s_recompute(ctx, block_region, &bp[i], &h, 1, &out, 1);
            h = out;
        } else h = block_forward(ctx, &bp[i], h);
    }
    region_run r = {.fwd = ctx->stats};
    s2s_backward(ctx, h, dy);
    r.bwd = ctx->stats;
    r.bwd.gemm_calls -= r.fwd.gemm_calls;
    r.bwd.gemm_flops -= r.fwd.gemm_flops;
    r.bwd.nodes_recorded -= r.fwd.nodes_recorded;
    int64_t np;
    float *gp = grads_copy(&P, &np);
    r.n = np + s2s_numel(x);
    r.grads = s2s_malloc((size_t)r.n * sizeof(float));
    memcpy(r.grads, gp, (size_t)np * sizeof(float));
    memcpy(r.grads + np, x->grad->data, s2s_nbytes(x));
    free(gp);
    r.arena_peak = ctx->arena.peak;
    r.total_peak = s2s_ctx_peak_bytes(ctx);
    s2s_ctx_step_reset(ctx);
    s2s_ctx_free(ctx);
    s2s_params_free(&P);
    return r;
}

static void test_recompute(int *fails) {
    float *dy = s2s_malloc(RB * RT * RC * sizeof(float));  // [B, T, C]
    rng r = {17};
    fill(dy, RB * RT * RC, &r, 1.0f);
    region_run plain = run_blocks(false, dy), reg = run_blocks(true, dy);
    EXPECT(fails, plain.n == reg.n && memcmp(plain.grads, reg.grads, (size_t)plain.n * sizeof(float)) == 0,
           "gradients with recompute regions are not bit-identical");
    double g = max_abs(plain.grads, plain.n);
    EXPECT(fails, g > 1e-3 && isfinite(g), "gradients ~0 or not finite (%g): the comparison would prove nothing", g);
    EXPECT(fails, reg.fwd.nodes_recorded == NBLK, "regions recorded %lld nodes in forward, want one per block",
           (long long)reg.fwd.nodes_recorded);
    EXPECT(fails, plain.fwd.nodes_recorded == 4 * NBLK, "plain forward recorded %lld nodes",
           (long long)plain.fwd.nodes_recorded);
    // Backward re-runs each block's forward once: exactly the forward's GEMMs on top.
    EXPECT(fails, reg.fwd.gemm_calls == plain.fwd.gemm_calls &&
                      reg.bwd.gemm_calls == plain.bwd.gemm_calls + plain.fwd.gemm_calls &&
                      reg.bwd.gemm_flops == plain.bwd.gemm_flops + plain.fwd.gemm_flops,
           "recompute cost: plain fwd %lld bwd %lld gemms, regions fwd %lld bwd %lld",
           (long long)plain.fwd.gemm_calls, (long long)plain.bwd.gemm_calls, (long long)reg.fwd.gemm_calls,
           (long long)reg.bwd.gemm_calls);
    EXPECT(fails, reg.arena_peak < plain.arena_peak, "arena peak with regions %zu >= without %zu", reg.arena_peak,
           plain.arena_peak);
    EXPECT(fails, reg.total_peak < plain.total_peak, "arena+scratch peak with regions %zu >= without %zu",
           reg.total_peak, plain.total_peak);
    printf("recompute: arena peak %zu -> %zu bytes, arena+scratch %zu -> %zu, backward gemms %lld -> %lld\n",
           plain.arena_peak, reg.arena_peak, plain.total_peak, reg.total_peak, (long long)plain.bwd.gemm_calls,
           (long long)reg.bwd.gemm_calls);
    free(plain.grads);
    free(reg.grads);
    free(dy);
}

// ---- (3) gradient accumulation -----------------------------------------------------------------------
// loss = mean over rows of sum(y^2), y = B(A x + a): dL/dy = 2 y / N_total. Two half batches, each
// scaled by the full batch size, must add up to the full batch's gradients.

enum { GN = 8, GI = 5, GH = 6, GO = 3 };

static void accum_step(s2s_ctx *ctx, s2s_tensor *A, s2s_tensor *a, s2s_tensor *B, const float *x, int64_t rows) {
    s2s_tensor *xt = s2s_new2(ctx, S2S_F32, rows, GI);  // [rows, GI]
    memcpy(xt->data, x, (size_t)(rows * GI) * sizeof(float));
    s2s_tensor *y = s2s_linear(ctx, s2s_linear(ctx, xt, A, a), B, NULL);  // [rows, GO]
    float dy[GN * GO];
    for (int64_t i = 0; i < rows * GO; i++) dy[i] = 2.0f * F32(y)[i] / (float)GN;
    s2s_backward(ctx, y, dy);
    s2s_ctx_step_reset(ctx);  // the arena goes; parameter gradients must stay
}

static void test_accumulation(int *fails) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    rng r = {23};
    s2s_tensor *A = param(&P, "A.w", 2, (int64_t[]){GH, GI}, true, &r, 0.5f);
    s2s_tensor *a = param(&P, "A.b", 1, (int64_t[]){GH}, true, &r, 0.5f);
    s2s_tensor *B = param(&P, "B.w", 2, (int64_t[]){GO, GH}, true, &r, 0.5f);
    float x[GN * GI];  // [N, GI]
    fill(x, GN * GI, &r, 1.0f);
    s2s_ctx *ctx = ctx_small(0, 0);

    accum_step(ctx, A, a, B, x, GN);
    int64_t n;
    float *full = grads_copy(&P, &n);
    s2s_params_zero_grad(&P);
    float *zero = grads_copy(&P, &n);
    EXPECT(fails, max_abs(zero, n) == 0.0, "zero_grad left %g", max_abs(zero, n));
    accum_step(ctx, A, a, B, x, GN / 2);
    accum_step(ctx, A, a, B, x + (GN / 2) * GI, GN / 2);
    float *acc = grads_copy(&P, &n);
    double err = 0, scale = max_abs(full, n);
    for (int64_t i = 0; i < n; i++) err = fmax(err, fabs((double)acc[i] - (double)full[i]));
    // Tolerance: a few f32 ulps of the largest gradient (the sums just run in another order).
    EXPECT(fails, err <= 1e-6 * scale && scale > 1e-2, "accumulated vs full batch: max err %g (scale %g)", err, scale);
    // A mutant: dropping the second micro-batch (no accumulation) must be caught by that tolerance.
    s2s_params_zero_grad(&P);
    accum_step(ctx, A, a, B, x + (GN / 2) * GI, GN / 2);
    float *half = grads_copy(&P, &n);
    double herr = 0;
    for (int64_t i = 0; i < n; i++) herr = fmax(herr, fabs((double)half[i] - (double)full[i]));
    EXPECT(fails, herr > 1e-6 * scale, "a single micro-batch passes for the full batch (err %g)", herr);
    printf("accumulation: 2 x %d rows vs %d rows: max err %.2e of scale %.2e (one micro-batch only: %.2e)\n",
           GN / 2, GN, err, scale, herr);
    free(full);
    free(zero);
    free(acc);
    free(half);
    s2s_ctx_free(ctx);
    s2s_params_free(&P);
}

// ---- (4) arena steady state --------------------------------------------------------------------------

static void test_arena(int *fails) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    block_params bp[NBLK];
    blocks_new(&P, bp, 31);
    s2s_ctx *ctx = ctx_small(4096, 4096);  // deliberately small: the first step must grow both arenas
    float *dy = s2s_malloc(RB * RT * RC * sizeof(float));  // [B, T, C]
    rng r = {41};
    fill(dy, RB * RT * RC, &r, 1.0f);
    size_t grow_a = 0, grow_s = 0, peak = 0, speak = 0;
    for (int step = 0; step < 5; step++) {
        rng rx = {(uint64_t)step + 1};  // fresh data each step, same graph
        s2s_tensor *h = data(ctx, 3, (int64_t[]){RB, RT, RC}, &rx, false);
        h = block_forward(ctx, &bp[0], h);
        for (int i = 1; i < NBLK; i++) {
            s2s_tensor *out;
            s2s_recompute(ctx, block_region, &bp[i], &h, 1, &out, 1);
            h = out;
        }
        s2s_backward(ctx, h, dy);
        s2s_params_zero_grad(&P);
        s2s_ctx_step_reset(ctx);
        if (step == 0) {
            grow_a = ctx->arena.grow_events;
            grow_s = ctx->scratch.grow_events;
            peak = ctx->arena.peak;
            speak = ctx->scratch.peak;
            EXPECT(fails, grow_a > 0 && grow_s > 0, "a 4 KiB arena should have grown in step 1 (%zu, %zu)", grow_a,
                   grow_s);
        } else {
            EXPECT(fails, ctx->arena.grow_events == grow_a && ctx->scratch.grow_events == grow_s,
                   "step %d grew the arena (%zu -> %zu) or scratch (%zu -> %zu)", step + 1, grow_a,
                   ctx->arena.grow_events, grow_s, ctx->scratch.grow_events);
            EXPECT(fails, ctx->arena.peak == peak && ctx->scratch.peak == speak, "step %d peak %zu/%zu vs %zu/%zu",
                   step + 1, ctx->arena.peak, ctx->scratch.peak, peak, speak);
        }
        EXPECT(fails, ctx->arena.used == 0 && ctx->scratch.used == 0, "reset left bytes in use");
    }
    EXPECT(fails, s2s_ctx_peak_bytes(ctx) == peak + speak && peak > 0, "peak report %zu", s2s_ctx_peak_bytes(ctx));
    printf("arena: step 1 grew arena %zu / scratch %zu times, steps 2-5 none; peak %zu + %zu bytes\n", grow_a, grow_s,
           peak, speak);
    free(dy);
    s2s_ctx_free(ctx);
    s2s_params_free(&P);
}

// ---- (5) no_grad -------------------------------------------------------------------------------------

static void test_no_grad(int *fails) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    rng r = {51};
    s2s_tensor *w = param(&P, "w", 2, (int64_t[]){4, 3}, true, &r, 1.0f);
    s2s_tensor *w2 = param(&P, "w2", 2, (int64_t[]){5, 4}, true, &r, 1.0f);
    block_params bp[NBLK];
    blocks_new(&P, bp, 53);
    s2s_ctx *ctx = ctx_small(0, 0);
    s2s_tensor *x = data(ctx, 2, (int64_t[]){2, 3}, &r, true);
    s2s_tensor *h = data(ctx, 3, (int64_t[]){RB, RT, RC}, &r, true);

    s2s_no_grad_begin(ctx);
    s2s_no_grad_begin(ctx);  // nested
    s2s_tensor *y1 = s2s_linear(ctx, x, w, NULL);
    s2s_no_grad_end(ctx);
    s2s_tensor *y2 = s2s_linear(ctx, y1, w2, NULL);  // still inside the outer scope
    s2s_tensor *ro;
    s2s_recompute(ctx, block_region, &bp[0], &h, 1, &ro, 1);
    s2s_no_grad_end(ctx);
    EXPECT(fails, ctx->stats.nodes_recorded == 0 && ctx->tape.n == 0, "no_grad recorded %lld nodes",
           (long long)ctx->stats.nodes_recorded);
    EXPECT(fails, !y1->requires_grad && !y2->requires_grad && !ro->requires_grad, "no_grad outputs require grad");
    EXPECT(fails, s2s_grad_enabled(ctx), "grad mode not restored after the scopes");
    s2s_tensor *y3 = s2s_linear(ctx, x, w, NULL);
    EXPECT(fails, ctx->stats.nodes_recorded == 1 && y3->requires_grad, "recording did not resume after no_grad");
    s2s_backward(ctx, y3, NULL);
    s2s_ctx_step_reset(ctx);
    s2s_ctx_free(ctx);
    s2s_params_free(&P);
}

// ---- (6) backward without trainable history ------------------------------------------------------------
// s2s_backward must stop with a message naming the cause. It exits the process, so it runs in a child.

static void backward_frozen_child(int which) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    rng r = {61};
    s2s_tensor *w = param(&P, "w", 2, (int64_t[]){4, 3}, which == 1, &r, 1.0f);  // 0: frozen, 1: trainable
    s2s_ctx *ctx = ctx_small(0, 0);
    s2s_tensor *x = data(ctx, 2, (int64_t[]){2, 3}, &r, false);
    if (which == 1) s2s_no_grad_begin(ctx);  // trainable, but computed under no_grad
    s2s_tensor *y = s2s_linear(ctx, x, w, NULL);
    s2s_backward(ctx, y, NULL);
    _exit(0);  // not reached when backward fails as it should
}

static void test_backward_untrainable(int *fails) {
    for (int which = 0; which < 2; which++) {
        int pipefd[2];
        S2S_CHECK(pipe(pipefd) == 0, "pipe");
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        S2S_CHECK(pid >= 0, "fork");
        if (pid == 0) {
            close(pipefd[0]);
            dup2(pipefd[1], 2);
            backward_frozen_child(which);
        }
        close(pipefd[1]);
        char msg[2048] = {0};
        size_t got = 0;
        ssize_t k;
        while (got < sizeof msg - 1 && (k = read(pipefd[0], msg + got, sizeof msg - 1 - got)) > 0) got += (size_t)k;
        close(pipefd[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        EXPECT(fails, WIFEXITED(st) && WEXITSTATUS(st) != 0, "backward without trainable history did not fail (%s)",
               which ? "under no_grad" : "frozen weight");
        EXPECT(fails, strstr(msg, "nothing in its history is trainable") != NULL, "unclear message: %s", msg);
    }
}

int main(void) {
    int fails = 0;
    // First, while no OpenMP / OpenBLAS thread pool exists yet: a forked child of a process with a
    // live pool may hang in its first parallel region.
    test_backward_untrainable(&fails);
    test_frozen(&fails);
    test_recompute(&fails);
    test_accumulation(&fails);
    test_arena(&fails);
    test_no_grad(&fails);
    if (fails) {
        fprintf(stderr, "test_autograd: %d failure(s)\n", fails);
        return 1;
    }
    printf("test_autograd: all passed\n");
    return 0;
}
