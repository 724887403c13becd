// adapter.c — OpenS2S's Subsampler adapter: per-audio strided convolutions with GLU, then a residual
// bottleneck and LayerNorm over the packed rows.
#include "adapter.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"

s2s_adapter_config s2s_adapter_config_from_omnispeech(const s2s_omnispeech_config *c) {
    s2s_adapter_config a = {.in_dim = c->audio.d_model, .hidden = c->llm.hidden_size,
                            .inner_dim = c->adapter_inner_dim, .n_conv = c->n_conv};
    for (int i = 0; i < c->n_conv; i++) a.kernel[i] = c->conv_kernel_sizes[i];
    return a;
}

// Channels out of convolution i: every one but the last writes mid = 2 in, which GLU halves back to in (so
// every convolution reads in channels), the last writes 2 H.
static int64_t conv_cout(const s2s_adapter_config *c, int i) {
    return i < c->n_conv - 1 ? 2 * c->in_dim : 2 * c->hidden;
}

static s2s_tensor *adapter_param(s2s_params *P, const char *name, int ndim, const int64_t *shape, bool decay) {
    char full[160];
    snprintf(full, sizeof full, "audio_adapter.%s", name);
    return s2s_params_add(P, full, "audio_adapter", ndim, shape, true, decay);
}

void s2s_adapter_init(s2s_adapter *m, const s2s_adapter_config *cfg, s2s_params *P) {
    memset(m, 0, sizeof *m);
    S2S_CHECK(cfg->in_dim > 0 && cfg->hidden > 0 && cfg->inner_dim > 0,
              "adapter: in_dim, hidden and inner_dim must be positive (got %lld, %lld, %lld)",
              (long long)cfg->in_dim, (long long)cfg->hidden, (long long)cfg->inner_dim);
    S2S_CHECK(cfg->n_conv >= 1 && cfg->n_conv <= S2S_CFG_MAX_CONV, "adapter: 1..%d convolutions (conv_kernel_sizes), "
              "got %d", S2S_CFG_MAX_CONV, cfg->n_conv);
    m->cfg = *cfg;
    m->ln_eps = 1e-5f;
    for (int i = 0; i < cfg->n_conv; i++) {
        S2S_CHECK(cfg->kernel[i] >= 1, "adapter: conv_kernel_sizes[%d] = %lld must be >= 1", i,
                  (long long)cfg->kernel[i]);
        char name[96];
        snprintf(name, sizeof name, "subsampler.conv_layers.%d.weight", i);
        m->conv_w[i] = adapter_param(P, name, 3, (int64_t[]){conv_cout(cfg, i), cfg->in_dim, cfg->kernel[i]}, true);
        snprintf(name, sizeof name, "subsampler.conv_layers.%d.bias", i);
        m->conv_b[i] = adapter_param(P, name, 1, (int64_t[]){conv_cout(cfg, i)}, false);
    }
    m->fc1_w = adapter_param(P, "fc1.weight", 2, (int64_t[]){cfg->inner_dim, cfg->hidden}, true);
    m->fc2_w = adapter_param(P, "fc2.weight", 2, (int64_t[]){cfg->hidden, cfg->inner_dim}, true);
    m->ln_w = adapter_param(P, "ln.weight", 1, (int64_t[]){cfg->hidden}, false);
    m->ln_b = adapter_param(P, "ln.bias", 1, (int64_t[]){cfg->hidden}, false);
    s2s_params_set_norm(P, m->ln_w, S2S_NORM_LAYER);
    s2s_params_set_norm(P, m->ln_b, S2S_NORM_LAYER);
}

// t = U(-bound, bound), or = value when bound is 0; filled on the host, copied to the parameter's device.
static void fill_uniform(s2s_tensor *t, s2s_rng *rng, double bound, float value) {
    int64_t n = s2s_numel(t);
    float *h = s2s_malloc((size_t)n * sizeof *h);
    for (int64_t i = 0; i < n; i++) h[i] = bound > 0 ? (float)((2.0 * s2s_rng_uniform(rng) - 1.0) * bound) : value;
    s2s_dev_copy(t->device, t->data, S2S_CPU, h, (size_t)n * sizeof *h);
    free(h);
}

void s2s_adapter_init_weights(s2s_adapter *m, s2s_rng *rng) {
    // kaiming_uniform_(a = sqrt(5)) on weights and the bias rule of nn.Conv1d / nn.Linear both give
    // bound 1 / sqrt(fan_in), fan_in = in_channels * kernel (conv) or in_features (linear).
    for (int i = 0; i < m->cfg.n_conv; i++) {
        double b = 1.0 / sqrt((double)(m->cfg.in_dim * m->cfg.kernel[i]));
        fill_uniform(m->conv_w[i], rng, b, 0);
        fill_uniform(m->conv_b[i], rng, b, 0);
    }
    fill_uniform(m->fc1_w, rng, 1.0 / sqrt((double)m->cfg.hidden), 0);
    fill_uniform(m->fc2_w, rng, 1.0 / sqrt((double)m->cfg.inner_dim), 0);
    fill_uniform(m->ln_w, rng, 0, 1.0f);
    fill_uniform(m->ln_b, rng, 0, 0.0f);
}

int64_t s2s_adapter_out_len(const s2s_adapter *m, int64_t in_len) {
    int64_t n = in_len;
    // floor((n - 1) / 2 + 1): 0 for n = 0, (n - 1) / 2 + 1 (integer) for n >= 1.
    for (int i = 0; i < m->cfg.n_conv; i++) n = n <= 0 ? 0 : (n - 1) / 2 + 1;
    return n;
}

// One audio's rows through the convolutions: x [L, in] -> [L', H].
static s2s_tensor *subsample_one(s2s_ctx *ctx, const s2s_adapter *m, s2s_tensor *x, int64_t out_len) {
    const int64_t L = x->shape[0];
    s2s_tensor *h = s2s_transpose(ctx, s2s_reshape(ctx, x, 3, (int64_t[]){1, L, m->cfg.in_dim}), 1, 2);  // [1, in, L]
    for (int i = 0; i < m->cfg.n_conv; i++) {
        int k = (int)m->cfg.kernel[i];
        h = s2s_conv1d(ctx, h, m->conv_w[i], m->conv_b[i], 2, k / 2);  // [1, 2 C, L_i]
        h = s2s_glu(ctx, h, 1);                                        // [1, C, L_i]
    }
    S2S_CHECK(h->shape[2] >= out_len, "adapter: the convolutions yield %lld rows, fewer than the %lld OpenS2S counts",
              (long long)h->shape[2], (long long)out_len);
    if (h->shape[2] > out_len) h = s2s_slice(ctx, h, 2, 0, out_len);  // an even kernel's extra row: masked in OpenS2S
    h = s2s_transpose(ctx, h, 1, 2);                                         // [1, L', H]
    return s2s_reshape(ctx, h, 2, (int64_t[]){out_len, m->cfg.hidden});      // [L', H]
}

s2s_tensor *s2s_adapter_forward(s2s_ctx *ctx, const s2s_adapter *m, s2s_tensor *x, const int64_t *lens, int64_t A,
                                int64_t *out_lens) {
    char sx[64];
    S2S_CHECK(x->dtype == S2S_F32 && x->ndim == 2 && x->shape[1] == m->cfg.in_dim,
              "adapter: x must be f32 [rows, %lld] (the encoder's output), got %s", (long long)m->cfg.in_dim,
              s2s_shape_str(x, sx, sizeof sx));
    int64_t total = 0, n_out = 0;
    for (int64_t a = 0; a < A; a++) {
        S2S_CHECK(lens[a] >= 0, "adapter: audio %lld has a negative length %lld", (long long)a, (long long)lens[a]);
        total += lens[a];
        out_lens[a] = s2s_adapter_out_len(m, lens[a]);
        n_out += out_lens[a] > 0;
    }
    S2S_CHECK(total == x->shape[0], "adapter: the audio lengths sum to %lld but x %s has %lld rows",
              (long long)total, s2s_shape_str(x, sx, sizeof sx), (long long)x->shape[0]);
    if (n_out == 0) return s2s_new2(ctx, S2S_F32, 0, m->cfg.hidden);  // [0, H]

    s2s_tensor **parts = s2s_malloc((size_t)n_out * sizeof *parts);
    int64_t off = 0, np = 0;
    for (int64_t a = 0; a < A; a++) {
        if (out_lens[a] > 0) parts[np++] = subsample_one(ctx, m, s2s_slice(ctx, x, 0, off, lens[a]), out_lens[a]);
        off += lens[a];
    }
    s2s_tensor *h = np == 1 ? parts[0] : s2s_concat(ctx, parts, (int)np, 0);  // [N, H]
    free(parts);
    s2s_tensor *f = s2s_gelu(ctx, s2s_linear(ctx, h, m->fc1_w, NULL));          // [N, inner]
    f = s2s_linear(ctx, f, m->fc2_w, NULL);                                      // [N, H]
    return s2s_layernorm(ctx, s2s_add(ctx, f, h), m->ln_w, m->ln_b, m->ln_eps);  // [N, H]
}
