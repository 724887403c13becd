// test_gpu_attention.c — the CUDA attention (ops/cuda/attention.cu) against the CPU kernel
// (ops/cpu/attention.c): forward output and dq / dk / dv for packed samples of unequal lengths
// (including length 1), GQA ratios 1 / 2 / 4, causal and bidirectional, head_dim 64 / 128 / 24,
// T not a multiple of the tile; one sample with cu_seqlens = NULL; a frozen k (dk absent); and two
// identical GPU backward runs giving the same bits (no float atomics). Also s2s_attention_kv (ops/cuda/
// attention_kv.cu, forward only): Tq new rows against Tk cached keys, Tq = 1 and > 1, GQA 1 / 2 / 4.
//
// Error measure: max |gpu - cpu| / max |cpu| over a tensor, tolerance 1e-5 (f32 both sides; only
// summation order and exp2 ulps differ).
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

#define TOL 1e-5

static int g_fails;
static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

static float frand(void) {  // uniform in [-1, 1)
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)(g_rng >> 40) / (float)(1 << 23) - 1.0f;
}

static float *to_host(const s2s_tensor *t) {
    float *h = malloc(s2s_nbytes(t) ? s2s_nbytes(t) : 4);
    if (t->device == S2S_CPU) memcpy(h, t->data, s2s_nbytes(t));
    else s2s_dev_copy(S2S_CPU, h, t->device, t->data, s2s_nbytes(t));
    return h;
}

// max |g - c| / max |c|; fails the run above TOL (NaN counts as a failure).
static double compare(const char *cas, const char *what, const s2s_tensor *c, const s2s_tensor *g) {
    if (!c && !g) return 0.0;
    if (!c || !g) {
        fprintf(stderr, "FAIL %s %s: present on one device only (cpu %p, gpu %p)\n", cas, what, (void *)c,
                (void *)g);
        g_fails++;
        return INFINITY;
    }
    int64_t n = s2s_numel(c);
    float *hc = to_host(c), *hg = to_host(g);
    double mx = 0.0, md = 0.0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs((double)hc[i]), d = fabs((double)hg[i] - hc[i]);
        if (a > mx) mx = a;
        if (!(d <= md)) {
            md = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    double err = mx > 0 ? md / mx : (md > 0 ? INFINITY : 0.0);
    if (!(err <= TOL)) {
        fprintf(stderr, "FAIL %s %s: error %.3g > %.0e (element %lld: cpu %.9g gpu %.9g)\n", cas, what, err, TOL,
                (long long)worst, n ? hc[worst] : 0.0, n ? hg[worst] : 0.0);
        g_fails++;
    }
    free(hc);
    free(hg);
    return err;
}

static s2s_tensor *on(s2s_ctx *ctx, const s2s_tensor *c, bool grad) {
    s2s_tensor *g = s2s_new(ctx, c->dtype, c->ndim, c->shape);
    s2s_dev_copy(ctx->device, g->data, S2S_CPU, c->data, s2s_nbytes(c));
    g->requires_grad = grad;
    return g;
}

static s2s_tensor *rand3(s2s_ctx *ctx, int64_t a, int64_t b, int64_t c, bool grad) {
    s2s_tensor *t = s2s_new3(ctx, S2S_F32, a, b, c);
    float *p = t->data;
    for (int64_t i = 0; i < s2s_numel(t); i++) p[i] = frand();
    t->requires_grad = grad;
    return t;
}

// One case: lens[0..S) (S == 0: one sample of lens[0] rows, cu_seqlens = NULL). Returns the worst error.
// With det, also runs the GPU forward + backward a second time and demands identical gradient bits.
static double run_case(s2s_ctx *cpu, s2s_ctx *gpu, const int *lens, int S, int64_t Hkv, int64_t ratio, int64_t D,
                       bool causal, bool k_frozen, bool det) {
    int nS = S ? S : 1;
    int32_t cu[8] = {0};
    for (int s = 0; s < nS; s++) cu[s + 1] = cu[s] + lens[s];
    const int64_t T = cu[nS], Hq = Hkv * ratio;
    const float scale = 1.0f / sqrtf((float)D);
    char cas[96];
    snprintf(cas, sizeof cas, "attn T%lld S%d Hq%lld Hkv%lld D%lld %s%s", (long long)T, nS, (long long)Hq,
             (long long)Hkv, (long long)D, causal ? "causal" : "bidir", k_frozen ? " k frozen" : "");
    s2s_tensor *qc = rand3(cpu, T, Hq, D, true), *kc = rand3(cpu, T, Hkv, D, !k_frozen),
               *vc = rand3(cpu, T, Hkv, D, true);
    s2s_tensor *cuc = NULL;
    if (S) {
        cuc = s2s_new(cpu, S2S_I32, 1, (int64_t[]){S + 1});
        memcpy(cuc->data, cu, (size_t)(S + 1) * sizeof(int32_t));
    }
    float *dy = malloc((size_t)(T * Hq * D) * sizeof(float));
    for (int64_t i = 0; i < T * Hq * D; i++) dy[i] = frand();

    s2s_tensor *oc = s2s_attention(cpu, qc, kc, vc, cuc, causal, scale);
    s2s_backward(cpu, oc, dy);

    double worst = 0.0;
    float *first[3] = {0};
    for (int rep = 0; rep < (det ? 2 : 1); rep++) {
        s2s_tensor *qg = on(gpu, qc, true), *kg = on(gpu, kc, !k_frozen), *vg = on(gpu, vc, true);
        s2s_tensor *cug = cuc ? on(gpu, cuc, false) : NULL;
        s2s_tensor *og = s2s_attention(gpu, qg, kg, vg, cug, causal, scale);
        s2s_backward(gpu, og, dy);
        s2s_tensor *gg[3] = {qg->grad, kg->grad, vg->grad}, *gc[3] = {qc->grad, kc->grad, vc->grad};
        if (rep == 0) {
            double e[4] = {compare(cas, "out", oc, og), compare(cas, "dq", gc[0], gg[0]),
                           compare(cas, "dk", gc[1], gg[1]), compare(cas, "dv", gc[2], gg[2])};
            for (int i = 0; i < 4; i++)
                if (e[i] > worst) worst = e[i];
        }
        for (int i = 0; i < 3; i++) {
            if (!gg[i]) continue;
            float *h = to_host(gg[i]);
            if (rep == 0) first[i] = h;
            else {
                if (memcmp(first[i], h, s2s_nbytes(gg[i])) != 0) {
                    fprintf(stderr, "FAIL %s: d%c differs between two identical GPU runs\n", cas, "qkv"[i]);
                    g_fails++;
                }
                free(h);
            }
        }
        s2s_ctx_step_reset(gpu);
    }
    for (int i = 0; i < 3; i++) free(first[i]);
    free(dy);
    printf("%-52s max error %.2e%s\n", cas, worst, det ? " (backward repeated: bit-identical check)" : "");
    s2s_ctx_step_reset(cpu);
    return worst;
}

// s2s_attention_kv: q [Tq, Hq, D] against k / v [Tk, Hkv, D], forward only (no grad anywhere).
static double run_kv_case(s2s_ctx *cpu, s2s_ctx *gpu, int64_t Tq, int64_t Tk, int64_t Hkv, int64_t ratio, int64_t D) {
    const int64_t Hq = Hkv * ratio;
    char cas[96];
    snprintf(cas, sizeof cas, "attn_kv Tq%lld Tk%lld Hq%lld Hkv%lld D%lld", (long long)Tq, (long long)Tk,
             (long long)Hq, (long long)Hkv, (long long)D);
    s2s_tensor *qc = rand3(cpu, Tq, Hq, D, false), *kc = rand3(cpu, Tk, Hkv, D, false),
               *vc = rand3(cpu, Tk, Hkv, D, false);
    s2s_tensor *oc = s2s_attention_kv(cpu, qc, kc, vc, 1.0f / sqrtf((float)D));
    s2s_tensor *og = s2s_attention_kv(gpu, on(gpu, qc, false), on(gpu, kc, false), on(gpu, vc, false),
                                      1.0f / sqrtf((float)D));
    const double e = compare(cas, "out", oc, og);
    printf("%-52s max error %.2e\n", cas, e);
    s2s_ctx_step_reset(gpu);
    s2s_ctx_step_reset(cpu);
    return e;
}

int main(void) {
    if (s2s_cuda_available() == 0) {
        printf("no GPU: skipped\n");
        return 77;
    }
#ifndef S2S_HAVE_CUDA
    return 77;
#else
    s2s_ctx *cpu = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2});
    s2s_ctx *gpu = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CUDA});
    const int lens[3] = {37, 1, 54};  // T = 92: not a multiple of any tile; a 1-row sample in the middle
    const int64_t Ds[3] = {64, 128, 24}, ratios[3] = {1, 2, 4};
    for (int di = 0; di < 3; di++)
        for (int ri = 0; ri < 3; ri++)
            for (int causal = 0; causal < 2; causal++)
                run_case(cpu, gpu, lens, 3, 2, ratios[ri], Ds[di], causal, false, false);
    const int one[1] = {45};
    run_case(cpu, gpu, one, 0, 2, 2, 64, true, false, false);    // cu_seqlens NULL
    run_case(cpu, gpu, one, 0, 1, 4, 24, false, false, false);   // cu_seqlens NULL, one kv head
    run_case(cpu, gpu, lens, 3, 2, 2, 64, true, true, false);    // frozen k: dk absent, dq / dv present
    const int big[3] = {130, 1, 77};
    run_case(cpu, gpu, big, 3, 2, 4, 128, true, false, true);    // determinism, causal
    run_case(cpu, gpu, big, 3, 2, 2, 64, false, false, true);    // determinism, bidirectional
    const int64_t kv_ratios[3] = {1, 2, 4};
    for (int ri = 0; ri < 3; ri++) {
        run_kv_case(cpu, gpu, 1, 1, 2, kv_ratios[ri], 64);     // the first token: out = v
        run_kv_case(cpu, gpu, 1, 300, 2, kv_ratios[ri], 128);  // one decode step, cache over two key tiles
        run_kv_case(cpu, gpu, 7, 129, 1, kv_ratios[ri], 24);   // a chunk of rows, tile edge + 1, odd D
        run_kv_case(cpu, gpu, 45, 45, 2, kv_ratios[ri], 64);   // prefill: Tk == Tq
    }
    s2s_ctx_free(gpu);
    s2s_ctx_free(cpu);
    if (g_fails) {
        fprintf(stderr, "%d failure(s)\n", g_fails);
        return 1;
    }
    printf("all attention checks passed\n");
    return 0;
#endif
}
