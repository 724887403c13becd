// test_gpu_losses.c — the CUDA softmax and losses (softmax, cross_entropy, cross_entropy_fused,
// kl_fused) against the CPU path. Each case draws random inputs of odd shapes (N = 1, primes, V not a
// multiple of any block size, V above the loss-only vocabulary block so the online log-sum-exp spans
// several blocks, more kept rows than one token chunk), runs forward and backward on a CPU context
// and on a CUDA context fed the same bytes, and compares the outputs and every input gradient.
// Losses are checked at upstream gradient g = 1 (the eager w.grad share stands as is) and g != 1
// (the backward's (g - 1) correction pass runs), with trainable and frozen w, some / all / no labels
// ignored, and in no-grad mode (the loss-only tiled plan).
//
// Error measure (as in test_gpu_ops.c): max over elements of |gpu - cpu| / (rms(cpu) + |cpu|).
// Tolerances:
//   TOL_F32   1e-5  softmax / cross_entropy (no GEMM) and the fused losses with S2S_GEMM_F32 GEMMs:
//                   only summation order and libm-vs-CUDA expf ulps differ.
//   TOL_BF16  3e-2  the fused losses with bf16 GEMMs: the logits carry bf16 operand rounding (~2^-9
//                   relative per operand, f32 accumulation), and the gradients pass through a second
//                   bf16 GEMM (logits -> G -> dh / dw): two chained GEMMs, like TOL_BLOCK in
//                   test_gpu_ops.c. A wrong row, label, transpose or scale is O(1).
// Also: two identical GPU runs of the fused losses give bit-identical losses and gradients.
//
// No GPU visible: prints "no GPU: skipped" and returns 77 (ctest SKIP).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/device.h"
#include "ops/ops.h"
#ifdef S2S_HAVE_CUDA
#include "ops/cuda/kernels.h"
#endif
#define GPU_CHECK_SEED 0x2545F4914F6CDD1DULL
#include "gpu_check.h"

#define TOL_F32 1e-5
#define TOL_BF16 3e-2
#define IGNORE (-100)

static tp leaf_f32(pair *P, leaves *L, const char *name, int64_t d0, int64_t d1, bool grad, float scale) {
    s2s_tensor *c = s2s_new2(P->cpu, S2S_F32, d0, d1);
    float *p = c->data;
    for (int64_t i = 0; i < s2s_numel(c); i++) p[i] = scale * frand();
    c->requires_grad = grad;
    tp t = mirror(P, c);
    if (L && L->n < MAX_LEAVES) {
        L->leaf[L->n] = t;
        L->name[L->n++] = name;
    }
    return t;
}

// Labels [N] in [0, V), each ignored with probability ign_pct / 100 (100: all ignored).
static tp labels_i32(pair *P, int64_t N, int64_t V, int ign_pct) {
    s2s_tensor *c = s2s_new1(P->cpu, S2S_I32, N);
    int32_t *p = c->data;
    for (int64_t i = 0; i < N; i++) p[i] = irand(100) < ign_pct ? IGNORE : irand((int)V);
    return mirror(P, c);
}

// Mask [N] of 0/1, each set with probability pct / 100.
static tp mask_i32(pair *P, int64_t N, int pct) {
    s2s_tensor *c = s2s_new1(P->cpu, S2S_I32, N);
    int32_t *p = c->data;
    for (int64_t i = 0; i < N; i++) p[i] = irand(100) < pct;
    return mirror(P, c);
}

// Compare the outputs; if they carry a gradient, run backward on both (scalar outputs: upstream g,
// g == 1 passed as NULL = ones; other outputs: one random dy) and compare every leaf's gradient.
static void finish(pair *P, const char *cas, tp y, leaves *L, float g, double tol) {
    double worst = compare(cas, "out", y.c, y.g, tol);
    if (y.c->requires_grad) {
        int64_t n = s2s_numel(y.c);
        float *dy = malloc((size_t)(n ? n : 1) * sizeof(float));
        for (int64_t i = 0; i < n; i++) dy[i] = n == 1 ? g : frand();
        bool ones = n == 1 && g == 1.0f;
        s2s_backward(P->cpu, y.c, ones ? NULL : dy);
        s2s_backward(P->gpu, y.g, ones ? NULL : dy);
        free(dy);
        double e = compare_leaf_grads(cas, L, tol);
        if (e > worst) worst = e;
    }
    printf("%-52s max error %.2e (tol %.0e)\n", cas, worst, tol);
    reset(P);
}

// ---- softmax and cross_entropy (no GEMM: f32 tolerance) ---------------------------------------------

static void case_softmax(pair *P) {
    const int64_t shapes[][2] = {{1, 1}, {1, 37}, {13, 7}, {7, 1031}, {3, 9001}, {2, 20011}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", shapes[s][0], shapes[s][1], true, 4.0f);
        tp y = {s2s_softmax(P->cpu, x.c), s2s_softmax(P->gpu, x.g)};
        char cas[96];
        snprintf(cas, sizeof cas, "softmax [%lld, %lld]", (long long)shapes[s][0], (long long)shapes[s][1]);
        finish(P, cas, y, &L, 1.0f, TOL_F32);
    }
}

static void case_cross_entropy(pair *P) {
    const int64_t shapes[][2] = {{1, 1}, {1, 37}, {13, 7}, {29, 1031}, {5, 9001}};
    const int ign[] = {0, 30, 100};
    const float gs[] = {1.0f, -0.37f};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int k = 0; k < 3; k++)
            for (int gi = 0; gi < 2; gi++) {
                leaves L = {0};
                tp z = leaf_f32(P, &L, "logits", shapes[s][0], shapes[s][1], true, 5.0f);
                tp lab = labels_i32(P, shapes[s][0], shapes[s][1], ign[k]);
                tp y = {s2s_cross_entropy(P->cpu, z.c, lab.c, IGNORE), s2s_cross_entropy(P->gpu, z.g, lab.g, IGNORE)};
                char cas[96];
                snprintf(cas, sizeof cas, "cross_entropy [%lld, %lld] ign %d%% g %g", (long long)shapes[s][0],
                         (long long)shapes[s][1], ign[k], (double)gs[gi]);
                finish(P, cas, y, &L, gs[gi], TOL_F32);
            }
}

// ---- fused losses (GEMMs: run per mode) -------------------------------------------------------------

typedef struct {
    int64_t N, C, V;
} shape3;
// N = 1; primes; 300 kept rows > one 256-row chunk; V = 80021 > the loss-only vocabulary block
// (72 MiB / 256 rows / 4 bytes = 73728 columns), so the online log-sum-exp and the (g - 1)
// correction pass run over two vocabulary tiles.
static const shape3 fused_shapes[] = {{1, 17, 29}, {37, 19, 1031}, {300, 24, 523}, {5, 8, 80021}};
#define N_FUSED (sizeof fused_shapes / sizeof fused_shapes[0])

static void case_ce_fused(pair *P, const char *mode, double tol) {
    const int ign[] = {0, 40, 100};
    const float gs[] = {1.0f, 2.5f};
    for (size_t s = 0; s < N_FUSED; s++) {
        const shape3 d = fused_shapes[s];
        for (int k = 0; k < 3; k++)
            for (int gi = 0; gi < 2; gi++)
                for (int frozen = 0; frozen < 3; frozen++) {  // 0: both train, 1: w frozen, 2: h frozen
                    leaves L = {0};
                    tp h = leaf_f32(P, &L, "h", d.N, d.C, frozen != 2, 1.0f);
                    tp w = leaf_f32(P, &L, "w", d.V, d.C, frozen != 1, 1.0f);
                    tp lab = labels_i32(P, d.N, d.V, ign[k]);
                    tp y = {s2s_cross_entropy_fused(P->cpu, h.c, w.c, lab.c, IGNORE, 0.7f),
                            s2s_cross_entropy_fused(P->gpu, h.g, w.g, lab.g, IGNORE, 0.7f)};
                    char cas[128];
                    snprintf(cas, sizeof cas, "ce_fused [%lld,%lld,%lld] ign %d%% g %g %s [%s]", (long long)d.N,
                             (long long)d.C, (long long)d.V, ign[k], (double)gs[gi],
                             frozen == 0 ? "" : frozen == 1 ? "w frozen" : "h frozen", mode);
                    finish(P, cas, y, &L, gs[gi], tol);
                }
        // Loss only (no grad): the tiled plan.
        leaves L = {0};
        tp h = leaf_f32(P, &L, "h", d.N, d.C, true, 1.0f);
        tp w = leaf_f32(P, &L, "w", d.V, d.C, true, 1.0f);
        tp lab = labels_i32(P, d.N, d.V, 20);
        s2s_no_grad_begin(P->cpu);
        s2s_no_grad_begin(P->gpu);
        tp y = {s2s_cross_entropy_fused(P->cpu, h.c, w.c, lab.c, IGNORE, 1.0f),
                s2s_cross_entropy_fused(P->gpu, h.g, w.g, lab.g, IGNORE, 1.0f)};
        s2s_no_grad_end(P->cpu);
        s2s_no_grad_end(P->gpu);
        char cas[128];
        snprintf(cas, sizeof cas, "ce_fused [%lld,%lld,%lld] no grad [%s]", (long long)d.N, (long long)d.C,
                 (long long)d.V, mode);
        finish(P, cas, y, &L, 1.0f, tol);
    }
}

static void case_kl_fused(pair *P, const char *mode, double tol) {
    const int pct[] = {100, 60, 0};
    const float gs[] = {1.0f, 0.3f};
    for (size_t s = 0; s < N_FUSED; s++) {
        const shape3 d = fused_shapes[s];
        for (int k = 0; k < 3; k++)
            for (int gi = 0; gi < 2; gi++)
                for (int which = 0; which < 3; which++) {  // 0: stage 1 (h_s only), 1: + w, 2: all three
                    leaves L = {0};
                    tp hs = leaf_f32(P, &L, "h_s", d.N, d.C, true, 1.0f);
                    tp ht = leaf_f32(P, &L, "h_t", d.N, d.C, which == 2, 1.0f);
                    tp w = leaf_f32(P, &L, "w", d.V, d.C, which >= 1, 1.0f);
                    tp mk = mask_i32(P, d.N, pct[k]);
                    tp y = {s2s_kl_fused(P->cpu, hs.c, ht.c, w.c, mk.c, 2.0f),
                            s2s_kl_fused(P->gpu, hs.g, ht.g, w.g, mk.g, 2.0f)};
                    char cas[128];
                    snprintf(cas, sizeof cas, "kl_fused [%lld,%lld,%lld] mask %d%% g %g %s [%s]", (long long)d.N,
                             (long long)d.C, (long long)d.V, pct[k], (double)gs[gi],
                             which == 0 ? "hs" : which == 1 ? "hs+w" : "hs+ht+w", mode);
                    finish(P, cas, y, &L, gs[gi], tol);
                }
        leaves L = {0};
        tp hs = leaf_f32(P, &L, "h_s", d.N, d.C, true, 1.0f);
        tp ht = leaf_f32(P, &L, "h_t", d.N, d.C, false, 1.0f);
        tp w = leaf_f32(P, &L, "w", d.V, d.C, false, 1.0f);
        tp mk = mask_i32(P, d.N, 70);
        s2s_no_grad_begin(P->cpu);
        s2s_no_grad_begin(P->gpu);
        tp y = {s2s_kl_fused(P->cpu, hs.c, ht.c, w.c, mk.c, 2.0f), s2s_kl_fused(P->gpu, hs.g, ht.g, w.g, mk.g, 2.0f)};
        s2s_no_grad_end(P->cpu);
        s2s_no_grad_end(P->gpu);
        char cas[128];
        snprintf(cas, sizeof cas, "kl_fused [%lld,%lld,%lld] no grad [%s]", (long long)d.N, (long long)d.C,
                 (long long)d.V, mode);
        finish(P, cas, y, &L, 1.0f, tol);
    }
}

// ---- determinism: two identical GPU runs give the same bits ------------------------------------------

static void run_bits(pair *P, int op, uint64_t seed, float **out, float **dh, float **dw, size_t *nh, size_t *nw) {
    g_rng = seed;
    const int64_t N = 300, C = 24, V = 523;
    tp h = leaf_f32(P, NULL, "h", N, C, true, 1.0f);
    tp w = leaf_f32(P, NULL, "w", V, C, true, 1.0f);
    tp ht = leaf_f32(P, NULL, "h_t", N, C, true, 1.0f);
    tp lab = labels_i32(P, N, V, 30);
    tp mk = mask_i32(P, N, 70);
    s2s_tensor *y = op == 0 ? s2s_cross_entropy_fused(P->gpu, h.g, w.g, lab.g, IGNORE, 1.0f)
                            : s2s_kl_fused(P->gpu, h.g, ht.g, w.g, mk.g, 2.0f);
    float g = 1.7f;
    s2s_backward(P->gpu, y, &g);
    *out = to_host(y);
    *dh = to_host(h.g->grad);
    *dw = to_host(w.g->grad);
    *nh = s2s_nbytes(h.g->grad);
    *nw = s2s_nbytes(w.g->grad);
    reset(P);
}

static void case_determinism(pair *P) {
    for (int op = 0; op < 2; op++) {
        float *o1, *h1, *w1, *o2, *h2, *w2;
        size_t nh, nw;
        run_bits(P, op, 12345, &o1, &h1, &w1, &nh, &nw);
        run_bits(P, op, 12345, &o2, &h2, &w2, &nh, &nw);
        bool same = memcmp(o1, o2, 4) == 0 && memcmp(h1, h2, nh) == 0 && memcmp(w1, w2, nw) == 0;
        if (!same) g_fails++;
        printf("%-52s %s\n", op == 0 ? "determinism ce_fused" : "determinism kl_fused",
               same ? "bit-identical" : "DIFFERS");
        if (!same) fprintf(stderr, "FAIL determinism %s: two identical GPU runs differ\n", op ? "kl" : "ce");
        free(o1), free(h1), free(w1), free(o2), free(h2), free(w2);
    }
}

int main(void) {
    if (s2s_cuda_available() == 0) {
        printf("no GPU: skipped\n");
        return 77;
    }
#ifndef S2S_HAVE_CUDA
    return 77;
#else
    pair P = {s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2}),
              s2s_ctx_new((s2s_ctx_opts){.device = S2S_CUDA})};
    case_softmax(&P);
    case_cross_entropy(&P);
    struct { s2s_gemm_mode m; const char *name; double tol; } modes[2] = {{S2S_GEMM_F32, "f32", TOL_F32},
                                                                            {S2S_GEMM_BF16, "bf16", TOL_BF16}};
    for (int i = 0; i < 2; i++) {
        s2s_cuda_set_gemm_mode(P.gpu, modes[i].m);
        case_ce_fused(&P, modes[i].name, modes[i].tol);
        case_kl_fused(&P, modes[i].name, modes[i].tol);
    }
    s2s_cuda_set_gemm_mode(P.gpu, S2S_GEMM_BF16);
    case_determinism(&P);
    s2s_ctx_free(P.cpu);
    s2s_ctx_free(P.gpu);
    if (g_fails) {
        fprintf(stderr, "%d check(s) failed\n", g_fails);
        return 1;
    }
    printf("all GPU loss checks passed\n");
    return 0;
#endif
}
