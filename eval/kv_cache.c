// kv_cache.c — per-layer K / V buffers for incremental decoding (see kv_cache.h).
#include "kv_cache.h"
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"

static void header(s2s_tensor *t, const s2s_kv_cache *c, void *data) {
    memset(t, 0, sizeof *t);
    t->dtype = c->dtype;
    t->device = c->device;
    t->ndim = 3;
    t->shape[0] = c->max_len;
    t->shape[1] = c->n_kv_heads;
    t->shape[2] = c->head_dim;
    t->data = data;
}

void s2s_kv_cache_init(s2s_kv_cache *c, int64_t n_layers, int64_t max_len, int64_t n_kv_heads, int64_t head_dim,
                       s2s_dtype dt, s2s_device dev) {
    S2S_CHECK(n_layers > 0 && max_len > 0 && n_kv_heads > 0 && head_dim > 0,
              "kv_cache: layers %lld, max_len %lld, kv heads %lld and head_dim %lld must all be positive",
              (long long)n_layers, (long long)max_len, (long long)n_kv_heads, (long long)head_dim);
    memset(c, 0, sizeof *c);
    c->n_layers = n_layers;
    c->max_len = max_len;
    c->n_kv_heads = n_kv_heads;
    c->head_dim = head_dim;
    c->dtype = dt;
    c->device = dev;
    c->k = s2s_calloc((size_t)n_layers, sizeof *c->k);
    c->v = s2s_calloc((size_t)n_layers, sizeof *c->v);
    const size_t layer_bytes = (size_t)(max_len * n_kv_heads * head_dim) * s2s_dtype_size(dt);
    for (int64_t l = 0; l < n_layers; l++) {
        // Zeroed: rows past len are never read, but a cache dumped for debugging shows clean zeros there.
        void *k = s2s_dev_alloc(dev, layer_bytes), *v = s2s_dev_alloc(dev, layer_bytes);
        S2S_CHECK(k && v, "kv_cache: out of memory for layer %lld (2 x %zu bytes; lower max_len)", (long long)l,
                  layer_bytes);
        s2s_dev_memset0(dev, k, layer_bytes);
        s2s_dev_memset0(dev, v, layer_bytes);
        header(&c->k[l], c, k);
        header(&c->v[l], c, v);
    }
}

void s2s_kv_cache_init_qwen3(s2s_kv_cache *c, const s2s_qwen3 *q, int64_t max_len) {
    const s2s_qwen3_config *cfg = &q->cfg;
    s2s_kv_cache_init(c, cfg->num_hidden_layers, max_len, cfg->num_key_value_heads, cfg->head_dim, q->embed->dtype,
                      q->embed->device);
}

void s2s_kv_cache_free(s2s_kv_cache *c) {
    for (int64_t l = 0; c->k && l < c->n_layers; l++) {
        s2s_dev_free(c->device, c->k[l].data);
        s2s_dev_free(c->device, c->v[l].data);
    }
    free(c->k);
    free(c->v);
    memset(c, 0, sizeof *c);
}

void s2s_kv_cache_reset(s2s_kv_cache *c) { c->len = 0; }

void s2s_kv_cache_truncate(s2s_kv_cache *c, int64_t len) {
    S2S_CHECK(len >= 0 && len <= c->len, "kv_cache_truncate: length %lld outside 0..%lld (the cached positions)",
              (long long)len, (long long)c->len);
    c->len = len;
}

int64_t s2s_kv_cache_len(const s2s_kv_cache *c) { return c->len; }

size_t s2s_kv_cache_bytes(const s2s_kv_cache *c) {
    return 2 * (size_t)(c->n_layers * c->max_len * c->n_kv_heads * c->head_dim) * s2s_dtype_size(c->dtype);
}

static void check_rows(const s2s_kv_cache *c, const s2s_tensor *t, const char *what, int64_t n) {
    S2S_CHECK(t->ndim == 3 && t->shape[0] == n && t->shape[1] == c->n_kv_heads && t->shape[2] == c->head_dim,
              "kv_cache_write: %s must be [%lld, %lld, %lld] (rows, kv heads, head_dim)", what, (long long)n,
              (long long)c->n_kv_heads, (long long)c->head_dim);
    S2S_CHECK(t->dtype == c->dtype && t->device == c->device,
              "kv_cache_write: %s is %s on another device or dtype than the cache (%s)", what, s2s_dtype_name(t->dtype),
              s2s_dtype_name(c->dtype));
}

void s2s_kv_cache_write(s2s_kv_cache *c, int64_t layer, const s2s_tensor *k, const s2s_tensor *v) {
    S2S_CHECK(layer >= 0 && layer < c->n_layers, "kv_cache_write: layer %lld outside 0..%lld", (long long)layer,
              (long long)c->n_layers - 1);
    const int64_t n = k->ndim == 3 ? k->shape[0] : -1;
    check_rows(c, k, "k", n);
    check_rows(c, v, "v", n);
    S2S_CHECK(c->len + n <= c->max_len,
              "kv_cache: %lld cached + %lld new positions exceed max_len %lld (create the cache longer)",
              (long long)c->len, (long long)n, (long long)c->max_len);
    const size_t row = (size_t)(c->n_kv_heads * c->head_dim) * s2s_dtype_size(c->dtype);
    s2s_dev_copy(c->device, (char *)c->k[layer].data + (size_t)c->len * row, k->device, k->data, (size_t)n * row);
    s2s_dev_copy(c->device, (char *)c->v[layer].data + (size_t)c->len * row, v->device, v->data, (size_t)n * row);
}

void s2s_kv_cache_advance(s2s_kv_cache *c, int64_t n) {
    S2S_CHECK(n >= 0 && c->len + n <= c->max_len, "kv_cache_advance: %lld + %lld outside 0..max_len %lld",
              (long long)c->len, (long long)n, (long long)c->max_len);
    c->len += n;
}

static s2s_tensor *view(s2s_ctx *ctx, const s2s_tensor *buf, int64_t n, int64_t max_len) {
    S2S_CHECK(n >= 0 && n <= max_len, "kv_cache view: %lld rows of %lld", (long long)n, (long long)max_len);
    s2s_tensor *t = s2s_host_alloc(ctx, sizeof *t);
    *t = *buf;
    t->shape[0] = n;
    return t;
}

s2s_tensor *s2s_kv_cache_keys(s2s_ctx *ctx, const s2s_kv_cache *c, int64_t layer, int64_t n) {
    return view(ctx, &c->k[layer], n, c->max_len);
}

s2s_tensor *s2s_kv_cache_values(s2s_ctx *ctx, const s2s_kv_cache *c, int64_t layer, int64_t n) {
    return view(ctx, &c->v[layer], n, c->max_len);
}
