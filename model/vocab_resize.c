// vocab_resize.c — transformers' mean resizing of embedding rows (see vocab_resize.h).
#include "vocab_resize.h"
#include <math.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../autograd/rng.h"
#include "../ops/ops.h"

#define ROW_BLOCK 1024  // rows per GEMM block: bounded workspace whatever the vocabulary

// In-place lower Cholesky factor of the symmetric a [n, n] (f64). false when a pivot is not clearly positive.
static bool cholesky(double *a, int64_t n) {
    double dmax = 0;
    for (int64_t i = 0; i < n; i++) dmax = fmax(dmax, a[i * n + i]);
    if (!(dmax > 0)) return false;
    const double floor_ = 1e-7 * dmax;
    for (int64_t j = 0; j < n; j++) {
        const double *lj = a + j * n;  // row j of L, columns < j done
        double d = a[j * n + j];
        for (int64_t k = 0; k < j; k++) d -= lj[k] * lj[k];
        if (!(d > floor_)) return false;
        const double ljj = sqrt(d);
        a[j * n + j] = ljj;
        #pragma omp parallel for schedule(static) if (n - j > 256)
        for (int64_t i = j + 1; i < n; i++) {
            double *li = a + i * n;
            double s = li[j];
            for (int64_t k = 0; k < j; k++) s -= li[k] * lj[k];
            li[j] = s / ljj;
        }
    }
    return true;
}

void s2s_vocab_init_rows(s2s_ctx *ctx, s2s_tensor *w, int64_t n_old, uint64_t seed) {
    S2S_CHECK(w->dtype == S2S_F32 && w->ndim == 2, "vocab_init_rows: %s must be an f32 [V, C] matrix",
              w->name ? w->name : "weight");
    const int64_t N = w->shape[0], C = w->shape[1];
    S2S_CHECK(n_old >= 1 && n_old <= N, "vocab_init_rows: %lld old rows of %s's %lld", (long long)n_old,
              w->name ? w->name : "weight", (long long)N);
    if (n_old == N) return;
    const bool host = w->device == S2S_CPU;
    float *x = host ? w->data : s2s_malloc((size_t)(N * C) * sizeof(float));  // x [N, C]
    if (!host) s2s_dev_copy(S2S_CPU, x, w->device, w->data, (size_t)(N * C) * sizeof(float));

    double *mu = s2s_calloc((size_t)C, sizeof(double));  // mu [C]
    for (int64_t r = 0; r < n_old; r++)
        for (int64_t c = 0; c < C; c++) mu[c] += x[r * C + c];
    for (int64_t c = 0; c < C; c++) mu[c] /= (double)n_old;

    // Sigma [C, C] = sum over row blocks of Xc^T Xc / n_old.
    float *sig = s2s_calloc((size_t)(C * C), sizeof(float));
    float *blk = s2s_malloc((size_t)(ROW_BLOCK * C) * sizeof(float));  // blk [ROW_BLOCK, C]
    for (int64_t r0 = 0; r0 < n_old; r0 += ROW_BLOCK) {
        const int64_t nb = n_old - r0 < ROW_BLOCK ? n_old - r0 : ROW_BLOCK;
        for (int64_t r = 0; r < nb; r++)
            for (int64_t c = 0; c < C; c++) blk[r * C + c] = (float)(x[(r0 + r) * C + c] - mu[c]);
        s2s_gemm_host(ctx, true, false, C, C, nb, 1.0f / (float)n_old, blk, C, blk, C, 1.0f, sig, C);
    }
    double *L = s2s_malloc((size_t)(C * C) * sizeof(double));  // L [C, C]
    for (int64_t i = 0; i < C; i++)  // symmetrise: the GEMM's two triangles may differ in the last bit
        for (int64_t j = 0; j < C; j++)
            L[i * C + j] = S2S_VOCAB_MEAN_RESIZE_EPS * 0.5 * ((double)sig[i * C + j] + (double)sig[j * C + i]);
    const bool pd = cholesky(L, C);

    const int64_t K = N - n_old;
    if (!pd) {  // transformers: the distribution cannot be built, every new row is the mean
        for (int64_t r = n_old; r < N; r++)
            for (int64_t c = 0; c < C; c++) x[r * C + c] = (float)mu[c];
    } else {
        float *lt = sig;  // reuse: lt [C, C] = L (lower, f32), read transposed by the GEMM
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j < C; j++) lt[i * C + j] = j <= i ? (float)L[i * C + j] : 0.0f;
        s2s_rng rng;
        s2s_rng_seed(&rng, seed);
        for (int64_t r0 = 0; r0 < K; r0 += ROW_BLOCK) {
            const int64_t nb = K - r0 < ROW_BLOCK ? K - r0 : ROW_BLOCK;
            s2s_rng_fill_normal(&rng, blk, nb * C, 1.0f);  // z [nb, C]
            float *dst = x + (n_old + r0) * C;              // dst [nb, C]
            for (int64_t r = 0; r < nb; r++)
                for (int64_t c = 0; c < C; c++) dst[r * C + c] = (float)mu[c];
            s2s_gemm_host(ctx, false, true, nb, C, C, 1.0f, blk, C, lt, C, 1.0f, dst, C);  // mu + z L^T
        }
    }
    if (!host) {
        s2s_dev_copy(w->device, (float *)w->data + n_old * C, S2S_CPU, x + n_old * C, (size_t)(K * C) * sizeof(float));
        free(x);
    }
    free(mu);
    free(sig);
    free(blk);
    free(L);
}

// New storage of n_rows rows for a parameter tensor (and its gradient), keeping the leading rows.
static void resize_rows(s2s_tensor *t, int64_t n_rows) {
    S2S_CHECK(!t->flat_view && !(t->grad && t->grad->flat_view),
              "vocab_resize: %s lives in a flattened registry; resize before s2s_params_flatten (or unflatten)",
              t->name ? t->name : "?");
    const int64_t C = t->shape[1], keep = n_rows < t->shape[0] ? n_rows : t->shape[0];
    const size_t bytes = (size_t)(n_rows * C) * sizeof(float);
    void *d = s2s_dev_alloc(t->device, bytes);
    s2s_dev_memset0(t->device, d, bytes);
    s2s_dev_copy(t->device, d, t->device, t->data, (size_t)(keep * C) * sizeof(float));
    s2s_dev_free(t->device, t->data);
    t->data = d;
    t->shape[0] = n_rows;
    if (t->grad) {
        s2s_dev_free(t->grad->device, t->grad->data);
        t->grad->data = s2s_dev_alloc(t->grad->device, bytes);
        s2s_dev_memset0(t->grad->device, t->grad->data, bytes);
        t->grad->shape[0] = n_rows;
    }
}

void s2s_vocab_resize(s2s_ctx *ctx, s2s_qwen3 *q, int64_t n_rows, uint64_t seed) {
    S2S_CHECK(n_rows >= 1, "vocab_resize: %lld rows", (long long)n_rows);
    const int64_t old = q->embed->shape[0];
    s2s_tensor *w[2] = {q->embed, q->lm_head};  // lm_head NULL when tied: the embedding is the head
    for (int i = 0; i < 2; i++) {
        if (!w[i]) continue;
        S2S_CHECK(w[i]->shape[0] == old, "vocab_resize: %s has %lld rows, embed_tokens %lld", w[i]->name,
                  (long long)w[i]->shape[0], (long long)old);
        resize_rows(w[i], n_rows);
        if (n_rows > old) s2s_vocab_init_rows(ctx, w[i], old, seed + (uint64_t)i * 0x9e3779b97f4a7c15ull);
    }
    q->cfg.vocab_size = n_rows;
}
