// decode.h — incremental forward of a Qwen3 decoder against its KV cache (eval/kv_cache.h): the prompt in one
// pass (prefill, n rows), then one row per generated token (n = 1). The math is s2s_qwen3_forward's (model/qwen3.h)
// layer for layer: rmsnorm, q / k projections with q_norm / k_norm before RoPE at the rows' absolute positions
// (cache length .. cache length + n - 1), attention of the new rows against every cached key (s2s_attention_kv),
// o_proj, SwiGLU MLP, final norm; LoRA adapters, when attached, apply as at evaluation (no dropout).
// It runs without a tape (grad mode off inside, whatever the caller's), and gives each layer's intermediates
// back to the arena as soon as the layer is done: a step allocates the same few [n, *] buffers every time.
#pragma once
#include "../model/qwen3.h"
#include "kv_cache.h"

// x [n, H] input embeddings (token rows from s2s_qwen3_embed, or audio / speaker rows spliced in, as OpenS2S feeds
// inputs_embeds). Appends the n rows' keys and values to kv and returns their final-norm hidden states [n, H] in
// ctx's arena. Fails, before changing kv, when kv is not q's shape or would exceed its max_len.
s2s_tensor *s2s_decode_step(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *kv, s2s_tensor *x);
// B sequences stepped together: x [B*r, H] holds r rows of each sequence in turn (sequence b's rows are
// b*r .. b*r+r-1), and sequence b attends against, and appends to, its own cache kv[b] (B distinct caches of any
// lengths). The projections and the MLP run on all B*r rows in one GEMM each, so a token step of B sequences
// reads every weight once instead of B times. Returns [B*r, H]; each row is what s2s_decode_step of its sequence
// alone gives (the same math; the GEMM's summation order for B rows may differ from one row's in the last bit).
#define S2S_DECODE_MAX_BATCH 256
s2s_tensor *s2s_decode_step_batch(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *const *kv, int B, s2s_tensor *x);
// Logits [n, V] of rows row0 .. row0+n-1 of h [T, H] through the lm_head (embed_tokens when tied), no tape.
s2s_tensor *s2s_decode_logits(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, int64_t row0, int64_t n);
