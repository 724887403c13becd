// attention_kv.c — attention of Tq new query rows against Tk cached keys on the CPU (see attention_kv.h).
//
// One work unit per (query row, query head): it walks its visible keys in tiles of KV_BK with an online softmax
// (base 2: scores scaled by scale*log2(e)) and writes its output row. Decoding has Tq = 1, so a unit is one head's
// whole dot-product sweep over the cache; the packed, tiled kernel of attention.c would spend more on packing the
// cache than on the products. ops/cuda/attention_kv.cu runs the same steps, one thread block per unit.
// Every output's summation order is fixed by the shapes alone (no dependence on the thread count).
#include "attention_kv.h"
#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define KV_BK 128  // keys per tile
#define KV_LOG2E 1.44269504088896340736f

static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static int n_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

// One (query row i, query head h). ws: [KV_BK] scores, then [D] output accumulator.
static void kv_unit(float *out, const float *q, const float *k, const float *v, int64_t i, int64_t h, int64_t Tq,
                    int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float sl2, float *ws) {
    const int64_t hk = h / (Hq / Hkv);
    const int64_t n = Tk - Tq + i + 1;   // visible keys 0 .. n-1 (causal at absolute position n - 1)
    const float *qr = q + (i * Hq + h) * D;  // [D]
    float *s = ws, *o = ws + KV_BK;          // s [BK] scores, o [D] unnormalised output
    float m = -INFINITY, l = 0.0f;           // running max (base 2) and sum of exp2(s - m)
    for (int64_t d = 0; d < D; d++) o[d] = 0.0f;
    for (int64_t j0 = 0; j0 < n; j0 += KV_BK) {
        const int64_t nk = n - j0 < KV_BK ? n - j0 : KV_BK;
        float mx = m;
        for (int64_t c = 0; c < nk; c++) {
            const float *kc = k + ((j0 + c) * Hkv + hk) * D;  // [D]
            float acc = 0.0f;
            for (int64_t d = 0; d < D; d++) acc = fmaf(qr[d], kc[d], acc);
            s[c] = acc * sl2;
            mx = fmaxf(mx, s[c]);
        }
        const float alpha = exp2f(m - mx);  // 0 on the first tile (m = -inf)
        float sum = 0.0f;
        for (int64_t c = 0; c < nk; c++) {
            s[c] = exp2f(s[c] - mx);
            sum += s[c];
        }
        l = l * alpha + sum;
        m = mx;
        for (int64_t d = 0; d < D; d++) {
            float acc = 0.0f;
            for (int64_t c = 0; c < nk; c++) acc = fmaf(s[c], v[((j0 + c) * Hkv + hk) * D + d], acc);
            o[d] = o[d] * alpha + acc;
        }
    }
    float *orow = out + (i * Hq + h) * D;  // [D]
    for (int64_t d = 0; d < D; d++) orow[d] = o[d] / l;
}

void attention_kv_forward_cpu(s2s_ctx *ctx, float *out, const float *q, const float *k, const float *v, int64_t Tq,
                              int64_t Tk, int64_t Hq, int64_t Hkv, int64_t D, float scale) {
    const int nt = n_threads();
    const int64_t wsf = KV_BK + D;  // per-thread floats
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    float *ws = s2s_scratch_alloc(ctx, (size_t)(nt * wsf) * sizeof(float));
    const float sl2 = scale * KV_LOG2E;
    const int64_t n_units = Tq * Hq;
    #pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (n_units > 1 && Tk * D * n_units > 16384)
    for (int64_t u = 0; u < n_units; u++)
        kv_unit(out, q, k, v, u / Hq, u % Hq, Tq, Tk, Hq, Hkv, D, sl2, ws + thread_id() * wsf);
    s2s_arena_rewind(ctx->cur, mark);
}
