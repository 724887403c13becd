// vocab_resize.h — growing (or shrinking) a Qwen3 vocabulary: the LLM gains OpenS2S's four special tokens
// (train.py: llm_model.resize_token_embeddings(len(tokenizer))), the TTS-LM gains 16,384 speech tokens + EOS.
//
// New rows follow transformers' resize_token_embeddings(mean_resizing=True), the default OpenS2S gets:
// with mu the mean of the old rows and Sigma = (X - mu)^T (X - mu) / n_old their covariance, new rows are
// drawn from N(mu, 1e-9 * Sigma) when 1e-9 * Sigma is positive definite, else set to mu exactly. So the noise
// is tiny (std ~3e-5 of the old rows' spread per direction): it only breaks the symmetry between new tokens,
// while starting them where the model's average token sits, which keeps the first softmax over the enlarged
// vocabulary close to the old one (the new logits equal the mean logit instead of dominating it).
// Differences from transformers, none of which changes the distribution: Sigma is accumulated in f32 GEMMs
// and factored in f64 (a Cholesky pivot below 1e-7 of the largest diagonal counts as "not positive
// definite", the f32 resolution at which torch's check would fail), and the normal draws come from s2s's
// generator, so the values are not torch's. The lm_head, when untied, gets its own draw from its own
// statistics (transformers does the same); a tied lm_head is the embedding and stays so.
#pragma once
#include <stdint.h>
#include "../autograd/ctx.h"
#include "qwen3.h"

#define S2S_VOCAB_MEAN_RESIZE_EPS 1e-9  // transformers' covariance scale

// Rows [n_old, N) of w [N, C] := mean-resizing draws from rows [0, n_old). For a model loaded with
// s2s_ckpt_load's resize_vocab (the report gives the file's row count), call this on embed_tokens and an untied
// lm_head. Deterministic from seed. n_old == N does nothing.
void s2s_vocab_init_rows(s2s_ctx *ctx, s2s_tensor *w, int64_t n_old, uint64_t seed);

// Resize q's embed_tokens (and untied lm_head) to n_rows in place, keeping the tensors (and so the registry
// entries and a tied head) the same objects; old rows are kept, new rows from s2s_vocab_init_rows; shrinking
// drops the last rows (as transformers does). Gradients are reset to zero at the new size. cfg.vocab_size is
// updated. Call before an optimizer holds per-parameter state.
void s2s_vocab_resize(s2s_ctx *ctx, s2s_qwen3 *q, int64_t n_rows, uint64_t seed);
