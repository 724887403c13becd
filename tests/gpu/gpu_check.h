// gpu_check.h — what the CPU-vs-CUDA tests share: a seeded generator, a tensor mirrored on both devices,
// and the comparison. Error measure: max over elements of |gpu - cpu| / (rms(cpu) + |cpu|) (relative where
// values are large, relative to the tensor's scale where they cross zero); i32 tensors must match exactly.
// Each test is one translation unit, so the failure count and generator are per test.
#pragma once
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/ctx.h"
#include "autograd/device.h"

#ifndef GPU_CHECK_SEED
#define GPU_CHECK_SEED 0x9E3779B97F4A7C15ULL
#endif

static int g_fails;
static uint64_t g_rng = GPU_CHECK_SEED;

static float frand(void) {  // uniform in [-1, 1)
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(g_rng >> 40) / (float)(1 << 23) - 1.0f;
}
static int irand(int n) {
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (int)((g_rng >> 33) % (uint64_t)n);
}

typedef struct {
    s2s_ctx *cpu, *gpu;
} pair;

// The same tensor on both devices.
typedef struct {
    s2s_tensor *c, *g;
} tp;

#define MAX_LEAVES 8
typedef struct {
    tp leaf[MAX_LEAVES];
    const char *name[MAX_LEAVES];
    int n;
} leaves;

static tp mirror(pair *P, s2s_tensor *c) {
    s2s_tensor *g = s2s_new(P->gpu, c->dtype, c->ndim, c->shape);
    s2s_dev_copy(S2S_CUDA, g->data, S2S_CPU, c->data, s2s_nbytes(c));
    g->requires_grad = c->requires_grad;
    return (tp){c, g};
}

static float *to_host(const s2s_tensor *t) {
    float *h = malloc(s2s_nbytes(t) ? s2s_nbytes(t) : 4);
    if (t->device == S2S_CPU) memcpy(h, t->data, s2s_nbytes(t));
    else s2s_dev_copy(S2S_CPU, h, t->device, t->data, s2s_nbytes(t));
    return h;
}

// Max of |g - c| / (rms(c) + |c|) over the elements; exact comparison for i32.
static double compare(const char *cas, const char *what, const s2s_tensor *c, const s2s_tensor *g, double tol) {
    if (!c && !g) return 0.0;
    if (!c || !g) {
        fprintf(stderr, "FAIL %s %s: gradient present on one device only (cpu %p, gpu %p)\n", cas, what, (void *)c,
                (void *)g);
        g_fails++;
        return INFINITY;
    }
    if (!s2s_same_shape(c, g) || c->dtype != g->dtype) {
        fprintf(stderr, "FAIL %s %s: shape or dtype differs\n", cas, what);
        g_fails++;
        return INFINITY;
    }
    int64_t n = s2s_numel(c);
    float *hc = to_host(c), *hg = to_host(g);
    double err = 0.0;
    int64_t worst = 0;
    if (c->dtype == S2S_I32) {
        if (memcmp(hc, hg, s2s_nbytes(c)) != 0) err = INFINITY;
    } else {
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) ss += (double)hc[i] * hc[i];
        double rms = n ? sqrt(ss / (double)n) : 0.0;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)hg[i] - hc[i]), den = rms + fabs((double)hc[i]);
            double e = den > 0 ? d / den : (d > 0 ? INFINITY : 0.0);
            if (!(e <= err)) {  // NaN counts as worst
                err = isnan(e) ? INFINITY : e;
                worst = i;
            }
        }
    }
    if (!(err <= tol)) {
        fprintf(stderr, "FAIL %s %s: error %.3g > %.1g (element %lld: cpu %.9g gpu %.9g)\n", cas, what, err, tol,
                (long long)worst, c->dtype == S2S_F32 && n ? hc[worst] : 0.0, c->dtype == S2S_F32 && n ? hg[worst] : 0.0);
        g_fails++;
    }
    free(hc);
    free(hg);
    return err;
}

static void reset(pair *P) {
    s2s_ctx_step_reset(P->cpu);
    s2s_ctx_step_reset(P->gpu);
}

// Every leaf gradient (the leaves that require one), CPU against GPU; returns the worst error.
static double compare_leaf_grads(const char *cas, const leaves *L, double tol) {
    double worst = 0.0;
    for (int k = 0; k < L->n; k++) {
        if (!L->leaf[k].c->requires_grad) continue;
        char what[64];
        snprintf(what, sizeof what, "d%s", L->name[k]);
        double e = compare(cas, what, L->leaf[k].c->grad, L->leaf[k].g->grad, tol);
        if (e > worst) worst = e;
    }
    return worst;
}
