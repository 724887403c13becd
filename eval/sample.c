// sample.c — HF generate's greedy choice and its do_sample warpers + draw (see sample.h).
#include "sample.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"

s2s_sample_cfg s2s_sample_defaults(void) {
    return (s2s_sample_cfg){.do_sample = false, .temperature = 1.0, .top_k = 50, .top_p = 1.0};
}

void s2s_sampler_init(s2s_sampler *s, const s2s_sample_cfg *cfg, int64_t V, uint64_t seed) {
    S2S_CHECK(V > 0, "sampler: vocabulary size %lld must be positive", (long long)V);
    S2S_CHECK(cfg->temperature > 0 && isfinite(cfg->temperature),
              "sampler: temperature %g must be a positive number (HF TemperatureLogitsWarper); for greedy decoding "
              "set do_sample false",
              cfg->temperature);
    S2S_CHECK(cfg->top_k >= 0, "sampler: top_k %lld must be >= 0 (0: off)", (long long)cfg->top_k);
    S2S_CHECK(cfg->top_p >= 0 && cfg->top_p <= 1, "sampler: top_p %g must lie in [0, 1] (1: off)", cfg->top_p);
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->V = V;
    s->sorted = s2s_malloc((size_t)V * sizeof *s->sorted);
    s->val = s2s_malloc((size_t)V * sizeof *s->val);
    s2s_rng_seed(&s->rng, seed);
}

void s2s_sampler_free(s2s_sampler *s) {
    free(s->sorted);
    free(s->val);
    memset(s, 0, sizeof *s);
}

int32_t s2s_sample_argmax(const float *scores, int64_t V) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (scores[i] > scores[best] || (isnan(scores[best]) && !isnan(scores[i]))) best = i;
    return (int32_t)best;
}

// The k-th largest of a[0..n) (1 <= k <= n), reordering a: quickselect with a middle pivot (Hoare partition).
static float kth_largest(float *a, int64_t n, int64_t k) {
    int64_t lo = 0, hi = n - 1, want = k - 1;  // position want in descending order
    while (lo < hi) {
        const float pivot = a[lo + (hi - lo) / 2];
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                const float t = a[i];
                a[i++] = a[j];
                a[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else return a[want];
    }
    return a[want];
}

// Ascending by score, then by token id: the order of torch.sort(stable=True).
static int cmp_asc(const void *pa, const void *pb) {
    const s2s_sample_entry *a = pa, *b = pb;
    if (a->score != b->score) return a->score < b->score ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}

static void top_p(s2s_sampler *s, float *scores) {
    s2s_sample_entry *e = s->sorted;
    int64_t n = 0;  // entries already at -inf have probability 0: they stay removed and add 0 to the cumsum
    for (int64_t i = 0; i < s->V; i++)
        if (scores[i] != -INFINITY) e[n++] = (s2s_sample_entry){scores[i], (int32_t)i};
    if (n == 0) return;
    qsort(e, (size_t)n, sizeof *e, cmp_asc);
    const float mx = e[n - 1].score;
    double sum = 0.0;  // the exact sum rounded once: what torch's vectorised f32 tree sum gets to within an ulp
    for (int64_t j = 0; j < n; j++) {
        s->val[j] = expf(e[j].score - mx);
        sum += s->val[j];
    }
    const float inv = 1.0f / (float)sum;            // torch's softmax scales by the reciprocal of the sum
    const float thr = (float)(1.0 - s->cfg.top_p);  // HF: cumulative_probs <= (1 - top_p), f32 tensor vs float
    double cum = 0.0;  // torch's CPU cumsum of f32 accumulates in f64 (acc_type) and rounds each output to f32
    for (int64_t j = 0; j < n - 1; j++) {  // the last (largest) is always kept: min_tokens_to_keep = 1
        cum += s->val[j] * inv;
        if ((float)cum <= thr) scores[e[j].id] = -INFINITY;
    }
}

int64_t s2s_sampler_warp(s2s_sampler *s, float *scores) {
    const int64_t V = s->V;
    if (s->cfg.temperature != 1.0) {
        const float t = (float)s->cfg.temperature;  // torch divides an f32 tensor by the scalar cast to f32
        for (int64_t i = 0; i < V; i++) scores[i] = scores[i] / t;
    }
    if (s->cfg.top_k != 0) {
        const int64_t k = s->cfg.top_k < V ? s->cfg.top_k : V;
        memcpy(s->val, scores, (size_t)V * sizeof *s->val);
        const float kth = kth_largest(s->val, V, k);
        for (int64_t i = 0; i < V; i++)
            if (scores[i] < kth) scores[i] = -INFINITY;
    }
    if (s->cfg.top_p < 1.0) top_p(s, scores);
    int64_t kept = 0;
    for (int64_t i = 0; i < V; i++) kept += scores[i] != -INFINITY;
    return kept;
}

int32_t s2s_sampler_next(s2s_sampler *s, float *scores) {
    if (!s->cfg.do_sample) return s2s_sample_argmax(scores, s->V);
    s2s_sampler_warp(s, scores);
    const int32_t top = s2s_sample_argmax(scores, s->V);
    const double mx = scores[top];
    double total = 0.0;  // softmax in f64 over the kept entries, then the inverse CDF in token order
    for (int64_t i = 0; i < s->V; i++) total += scores[i] == -INFINITY ? 0.0 : exp((double)scores[i] - mx);
    const double u = s2s_rng_uniform(&s->rng) * total;
    double cum = 0.0;
    int32_t last = top;
    for (int64_t i = 0; i < s->V; i++) {
        if (scores[i] == -INFINITY) continue;
        cum += exp((double)scores[i] - mx);
        last = (int32_t)i;
        if (u < cum) return (int32_t)i;
    }
    return last;  // u within rounding of total
}
