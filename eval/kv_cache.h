// kv_cache.h — the key / value cache of one decoder (the LLM or the TTS-LM) for incremental decoding.
// Per layer one K and one V buffer [max_len, Hkv, D], GQA-sized (kv heads, not query heads), preallocated for the
// maximum length on the model's device in the model's dtype: decoding never allocates. Rows 0 .. len-1 hold the
// keys (after k_norm and RoPE at their absolute positions) and values of every position fed so far, so the cached
// prefix of a layer is itself a contiguous [len, Hkv, D] tensor.
#pragma once
#include <stdint.h>
#include "../autograd/ctx.h"
#include "../model/qwen3.h"

typedef struct s2s_kv_cache {
    int64_t n_layers, max_len, n_kv_heads, head_dim;
    s2s_dtype dtype;
    s2s_device device;
    s2s_tensor *k, *v;  // [n_layers] headers, each [max_len, Hkv, D], data owned by the cache
    int64_t len;        // positions cached (the next row fed sits at position len)
} s2s_kv_cache;

// Buffers for n_layers layers of [max_len, Hkv, D] in dt on dev. Fails (naming the size) when memory runs out.
void s2s_kv_cache_init(s2s_kv_cache *c, int64_t n_layers, int64_t max_len, int64_t n_kv_heads, int64_t head_dim,
                       s2s_dtype dt, s2s_device dev);
// Sized for model q: its layers, kv heads, head_dim, the dtype and device of its weights.
void s2s_kv_cache_init_qwen3(s2s_kv_cache *c, const s2s_qwen3 *q, int64_t max_len);
void s2s_kv_cache_free(s2s_kv_cache *c);
// Forget every position (len = 0); the buffers stay.
void s2s_kv_cache_reset(s2s_kv_cache *c);
// Keep positions 0 .. len-1 and drop the rest (rewind to a shared prefix, or undo a speculative chunk).
void s2s_kv_cache_truncate(s2s_kv_cache *c, int64_t len);
int64_t s2s_kv_cache_len(const s2s_kv_cache *c);
// Bytes held by the buffers (2 * n_layers * max_len * Hkv * D * dtype size).
size_t s2s_kv_cache_bytes(const s2s_kv_cache *c);

// Copy k, v [n, Hkv, D] of layer l into rows len .. len+n-1 (len is not advanced: the decoder advances it once
// every layer has written, s2s_kv_cache_advance). Fails when the cache would overflow max_len.
void s2s_kv_cache_write(s2s_kv_cache *c, int64_t layer, const s2s_tensor *k, const s2s_tensor *v);
void s2s_kv_cache_advance(s2s_kv_cache *c, int64_t n);
// Views (headers in ctx's arena, data in the cache) of layer l's rows 0 .. n-1: [n, Hkv, D], no gradient.
s2s_tensor *s2s_kv_cache_keys(s2s_ctx *ctx, const s2s_kv_cache *c, int64_t layer, int64_t n);
s2s_tensor *s2s_kv_cache_values(s2s_ctx *ctx, const s2s_kv_cache *c, int64_t layer, int64_t n);
