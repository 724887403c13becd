// qwen3.h — the Qwen3 decoder (Hugging Face Qwen3ForCausalLM), as the LLM and as the TTS-LM.
// Built from a config.json of any size. Per layer (pre-norm):
//   h = rmsnorm(x);  q = rope(q_norm(h Wq^T)), k = rope(k_norm(h Wk^T)), v = h Wv^T   (norms over head_dim)
//   x = x + attention(q, k, v; causal, GQA, per-sample) Wo^T
//   x = x + down(silu(gate(rmsnorm(x))) * up(rmsnorm(x)))
// then the final norm. Inputs are packed: T rows holding S samples (cu_seqlens), each with its own
// positions; attention never crosses samples. The output is the final-norm hidden state (what OpenS2S takes
// from hidden_states[-1] and hands to the TTS); logits / loss use the lm_head (embed_tokens when tied).
//
// Parameters live in a registry under a prefix ("llm_model." or "tts_lm_model.") with the HF names:
//   <prefix>model.embed_tokens.weight [V, H], <prefix>model.layers.L.{input_layernorm, post_attention_layernorm}
//   .weight [H], ...self_attn.{q,k,v,o}_proj.weight, ...self_attn.{q,k}_norm.weight [D],
//   ...mlp.{gate,up,down}_proj.weight, <prefix>model.norm.weight [H], <prefix>lm_head.weight [V, H] (untied),
//   and for the TTS-LM <prefix>spk2tts.weight [H, 512], <prefix>spk_ln.{weight,bias} [H].
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/params.h"
#include "../ops/ops.h"
#include "hf_config.h"
#include "lora.h"

#define S2S_SPK_DIM 512  // OpenS2S speaker embedding width (spk2tts input)
#ifndef S2S_IGNORE_INDEX
#define S2S_IGNORE_INDEX (-100)  // HF labels: not supervised
#endif

typedef struct s2s_qwen3_layer {
    s2s_tensor *input_ln;   // [H]
    s2s_tensor *wq;         // [Hq * D, H]
    s2s_tensor *wk, *wv;    // [Hkv * D, H]
    s2s_tensor *wo;         // [H, Hq * D]
    s2s_tensor *q_norm;     // [D]
    s2s_tensor *k_norm;     // [D]
    s2s_tensor *post_ln;    // [H]
    s2s_tensor *w_gate;     // [I, H]
    s2s_tensor *w_up;       // [I, H]
    s2s_tensor *w_down;     // [H, I]
    s2s_lora lora_q, lora_k, lora_v, lora_o;  // adapters (A == NULL: none); see lora.h
} s2s_qwen3_layer;

typedef struct s2s_qwen3 {
    s2s_qwen3_config cfg;
    char prefix[64];        // registry name prefix, e.g. "llm_model."
    s2s_tensor *embed;      // [V, H]
    s2s_tensor *lm_head;    // [V, H]; NULL when tied (s2s_qwen3_lm_head returns embed)
    s2s_tensor *norm;       // [H]
    s2s_qwen3_layer *layers;  // [num_hidden_layers]
    s2s_tensor *spk2tts;    // [H, 512] or NULL (TTS-LM only)
    s2s_tensor *spk_ln_w, *spk_ln_b;  // [H] or NULL
} s2s_qwen3;

typedef struct s2s_qwen3_opts {
    bool speaker;        // register the TTS-LM speaker bridge (spk2tts, spk_ln)
    bool trainable;      // initial trainable flag of every parameter (freeze / unfreeze later by prefix)
} s2s_qwen3_opts;

// Register every parameter of a model with config c under prefix (values zero; init or load next).
// Weight decay applies to matrices (projections, embeddings, lm_head), not to norms or biases.
void s2s_qwen3_create(s2s_qwen3 *q, s2s_params *p, const s2s_qwen3_config *c, const char *prefix,
                      const s2s_qwen3_opts *o);
void s2s_qwen3_free(s2s_qwen3 *q);  // the struct only: parameters belong to the registry
// Hugging Face's _init_weights: projections, embeddings and spk2tts ~ normal(0, init_std) (initializer_range,
// 0.02 in every Qwen3 config), the pad_token_id row of the embedding zero, RMSNorm weights 1, LayerNorm 1 / 0.
// Each tensor draws from its own stream seeded by (seed, name): values do not depend on registration order.
void s2s_qwen3_init(s2s_qwen3 *q, double init_std, uint64_t seed);

// The output projection: lm_head, or embed_tokens when the config ties them.
s2s_tensor *s2s_qwen3_lm_head(const s2s_qwen3 *q);

// ids i32 [T] -> [T, H]. nn.Embedding(padding_idx = pad_token_id) semantics: rows of the pad id receive no
// gradient through the embedding (they still do through a tied lm_head).
s2s_tensor *s2s_qwen3_embed(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *ids);
// OpenS2S's speaker row: spk_ln(spk2tts(spk)); spk [S, 512] -> [S, H]. A missing speaker embedding is zeros.
s2s_tensor *s2s_qwen3_speaker(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *spk);

typedef struct s2s_qwen3_fwd {
    bool recompute;        // each decoder layer in a recompute region (keeps only layer inputs)
    bool training;         // LoRA dropout on
    uint64_t dropout_seed; // new per step when LoRA dropout is on
} s2s_qwen3_fwd;

// x [T, H] input embeddings (token embeddings, possibly with audio / speaker rows spliced in), pos i32 [T]
// (positions restart at 0 in each sample for a packed batch), cu_seqlens i32 [S+1] (NULL: one sample).
// Returns the final-norm hidden states [T, H].
s2s_tensor *s2s_qwen3_forward(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *x, s2s_tensor *pos,
                              s2s_tensor *cu_seqlens, const s2s_qwen3_fwd *f);
// h [T, H] -> logits [T, V] (materialised: for inference and tests; training uses s2s_qwen3_loss).
s2s_tensor *s2s_qwen3_logits(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h);
// weight * mean cross-entropy of the lm_head logits of h [T, H] against targets i32 [T], S2S_IGNORE_INDEX
// ignored. The targets are already shifted: targets[t] is the token row t predicts (s2s_qwen3_shift_labels).
// Fused and chunked (ops.h s2s_cross_entropy_fused): call it outside recompute regions.
s2s_tensor *s2s_qwen3_loss(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, s2s_tensor *targets, float weight);
// Rows of h [T, H] whose lm_head argmax (the first index on ties, torch.argmax) equals their target i32 [T] (host,
// already shifted; S2S_IGNORE_INDEX rows skipped): greedy next-token accuracy = the result / the supervised rows.
// No tape; the logits of at most 256 supervised rows exist at once. For evaluation.
int64_t s2s_qwen3_count_correct(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, const int32_t *targets);
// Hugging Face's causal shift inside each packed sample: targets[t] = labels[t + 1] when row t + 1 belongs to
// the same sample, else S2S_IGNORE_INDEX. Host arrays; cu_seqlens [n_seq + 1] (NULL: one sample of T rows).
void s2s_qwen3_shift_labels(int32_t *targets, const int32_t *labels, int64_t T, const int32_t *cu_seqlens,
                            int n_seq);
