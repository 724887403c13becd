// decode.c — one incremental forward of a Qwen3 against its KV cache (see decode.h).
#include "decode.h"
#include <math.h>
#include "../autograd/check.h"
#include "../autograd/device.h"

static const s2s_lora_drop NO_DROP = {.training = false};

// Layer l on x [n, H] whose rows sit at positions pos [n]: B sequences of r = n / B consecutive rows each,
// sequence b against its own cache kv[b]. Writes each sequence's k / v rows into its cache (at kv[b]->len, which
// the caller advances after the last layer) and returns x [n, H]. Only the attention is per sequence: the
// projections and the MLP see all n rows at once, which is what makes a batch cheaper than B steps.
static s2s_tensor *layer_step(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *const *kv, int B, int64_t l,
                              s2s_tensor *x, s2s_tensor *pos) {
    const s2s_qwen3_config *cfg = &q->cfg;
    const s2s_qwen3_layer *L = &q->layers[l];
    const int64_t n = x->shape[0], Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    const int64_t D = cfg->head_dim;
    const float eps = (float)cfg->rms_norm_eps, theta = (float)cfg->rope_theta;

    s2s_tensor *h = s2s_rmsnorm(ctx, x, L->input_ln, eps);                 // h [n, H]
    s2s_tensor *qh = s2s_lora_linear(ctx, h, L->wq, &L->lora_q, NO_DROP);  // qh [n, Hq*D]
    s2s_tensor *kh = s2s_lora_linear(ctx, h, L->wk, &L->lora_k, NO_DROP);  // kh [n, Hkv*D]
    s2s_tensor *vh = s2s_lora_linear(ctx, h, L->wv, &L->lora_v, NO_DROP);  // vh [n, Hkv*D]
    qh = s2s_reshape(ctx, qh, 3, (int64_t[]){n, Hq, D});   // qh [n, Hq, D]
    kh = s2s_reshape(ctx, kh, 3, (int64_t[]){n, Hkv, D});  // kh [n, Hkv, D]
    vh = s2s_reshape(ctx, vh, 3, (int64_t[]){n, Hkv, D});  // vh [n, Hkv, D]
    qh = s2s_rope(ctx, s2s_rmsnorm(ctx, qh, L->q_norm, eps), pos, theta);
    kh = s2s_rope(ctx, s2s_rmsnorm(ctx, kh, L->k_norm, eps), pos, theta);
    const int64_t r = n / B;
    s2s_tensor *parts[S2S_DECODE_MAX_BATCH];
    for (int b = 0; b < B; b++) {
        s2s_tensor *qb = B == 1 ? qh : s2s_slice(ctx, qh, 0, b * r, r);  // qb [r, Hq, D]
        s2s_kv_cache_write(kv[b], l, B == 1 ? kh : s2s_slice(ctx, kh, 0, b * r, r),
                           B == 1 ? vh : s2s_slice(ctx, vh, 0, b * r, r));
        const int64_t Tk = kv[b]->len + r;
        parts[b] = s2s_attention_kv(ctx, qb, s2s_kv_cache_keys(ctx, kv[b], l, Tk),
                                    s2s_kv_cache_values(ctx, kv[b], l, Tk), 1.0f / sqrtf((float)D));  // [r, Hq, D]
    }
    s2s_tensor *a = B == 1 ? parts[0] : s2s_concat(ctx, parts, B, 0);  // a [n, Hq, D]
    a = s2s_reshape(ctx, a, 2, (int64_t[]){n, Hq * D});                  // a [n, Hq*D]
    x = s2s_add(ctx, x, s2s_lora_linear(ctx, a, L->wo, &L->lora_o, NO_DROP));  // x [n, H]

    h = s2s_rmsnorm(ctx, x, L->post_ln, eps);             // h [n, H]
    s2s_tensor *g = s2s_linear(ctx, h, L->w_gate, NULL);  // g [n, I]
    s2s_tensor *u = s2s_linear(ctx, h, L->w_up, NULL);    // u [n, I]
    s2s_tensor *m = s2s_linear(ctx, s2s_silu_mul(ctx, g, u), L->w_down, NULL);  // m [n, H]
    return s2s_add(ctx, x, m);
}

static void check_cache(const s2s_qwen3 *q, const s2s_kv_cache *kv, int64_t r, int b) {
    const s2s_qwen3_config *cfg = &q->cfg;
    S2S_CHECK(kv->n_layers == cfg->num_hidden_layers && kv->n_kv_heads == cfg->num_key_value_heads &&
                  kv->head_dim == cfg->head_dim,
              "decode_step (%s): cache %d is %lld layers x %lld kv heads x %lld, the model %lld x %lld x %lld "
              "(s2s_kv_cache_init_qwen3 sizes it)",
              q->prefix, b, (long long)kv->n_layers, (long long)kv->n_kv_heads, (long long)kv->head_dim,
              (long long)cfg->num_hidden_layers, (long long)cfg->num_key_value_heads, (long long)cfg->head_dim);
    S2S_CHECK(kv->len + r <= kv->max_len,
              "decode_step (%s): cache %d: %lld cached + %lld new positions exceed its max_len %lld", q->prefix, b,
              (long long)kv->len, (long long)r, (long long)kv->max_len);
}

s2s_tensor *s2s_decode_step_batch(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *const *kv, int B, s2s_tensor *x) {
    const s2s_qwen3_config *cfg = &q->cfg;
    S2S_CHECK(x->ndim == 2 && x->shape[1] == cfg->hidden_size && x->shape[0] > 0,
              "decode_step (%s): input must be [n, %lld] embeddings with n >= 1", q->prefix,
              (long long)cfg->hidden_size);
    const int64_t n = x->shape[0];
    S2S_CHECK(B >= 1 && B <= S2S_DECODE_MAX_BATCH && n % B == 0,
              "decode_step (%s): %lld rows for %d sequences (1..%d, the same number of rows each)", q->prefix,
              (long long)n, B, S2S_DECODE_MAX_BATCH);
    const int64_t r = n / B;
    for (int b = 0; b < B; b++) {
        check_cache(q, kv[b], r, b);
        for (int c = 0; c < b; c++)
            S2S_CHECK(kv[c] != kv[b], "decode_step (%s): cache %d is also cache %d", q->prefix, b, c);
    }

    s2s_no_grad_begin(ctx);
    int32_t *hp = s2s_host_alloc(ctx, (size_t)n * sizeof *hp);
    for (int b = 0; b < B; b++)
        for (int64_t i = 0; i < r; i++) hp[b * r + i] = (int32_t)(kv[b]->len + i);  // absolute positions, per sequence
    s2s_tensor *pos = s2s_new1(ctx, S2S_I32, n);                                   // pos [n]
    s2s_dev_copy(ctx->device, pos->data, S2S_CPU, hp, (size_t)n * sizeof *hp);
    s2s_tensor *buf[2] = {s2s_new_like(ctx, x), s2s_new_like(ctx, x)};  // [n, H] ping-pong
    for (int64_t l = 0; l < cfg->num_hidden_layers; l++) {
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *y = layer_step(ctx, q, kv, B, l, x, pos);  // y [n, H]
        s2s_dev_copy(ctx->device, buf[l % 2]->data, ctx->device, y->data, s2s_nbytes(y));
        s2s_arena_rewind(ctx->cur, mark);
        x = buf[l % 2];
    }
    for (int b = 0; b < B; b++) s2s_kv_cache_advance(kv[b], r);
    s2s_tensor *h = s2s_rmsnorm(ctx, x, q->norm, (float)cfg->rms_norm_eps);  // h [n, H]
    s2s_no_grad_end(ctx);
    return h;
}

s2s_tensor *s2s_decode_step(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *kv, s2s_tensor *x) {
    return s2s_decode_step_batch(ctx, q, &kv, 1, x);
}

s2s_tensor *s2s_decode_logits(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, int64_t row0, int64_t n) {
    S2S_CHECK(h->ndim == 2 && row0 >= 0 && n >= 1 && row0 + n <= h->shape[0],
              "decode_logits: rows %lld..%lld of a [%lld, *] hidden state", (long long)row0, (long long)(row0 + n - 1),
              (long long)h->shape[0]);
    s2s_no_grad_begin(ctx);
    s2s_tensor *rows = n == h->shape[0] ? h : s2s_slice(ctx, h, 0, row0, n);  // rows [n, H]
    s2s_tensor *lg = s2s_qwen3_logits(ctx, q, rows);                           // lg [n, V]
    s2s_no_grad_end(ctx);
    return lg;
}
