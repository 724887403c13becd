// generate.h — a whole text generation with a Qwen3 decoder, as Hugging Face `generate` runs it for one sequence:
// the prompt in one pass, then one token at a time (each chosen token embedded and fed back) until a token of the
// EOS set is produced or max_new_tokens are out. Greedy or sampled per eval/sample.h.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "decode.h"
#include "sample.h"

typedef struct s2s_generate_cfg {
    int64_t max_new_tokens;  // > 0 (HF's max_new_tokens; no max_length default: say how many)
    const int32_t *eos;      // ids that end the generation (HF eos_token_id, a list); may be NULL
    int n_eos;
    s2s_sample_cfg sample;   // s2s_sample_defaults() is HF's GenerationConfig default (greedy)
    uint64_t seed;           // the sampler's generator (unused when greedy)
    bool want_hidden;        // also return the final-norm hidden state of every fed row
} s2s_generate_cfg;

typedef struct s2s_generate_out {
    int32_t *ids;     // [n_ids] the generated tokens, the EOS included when one was produced
    int64_t n_ids;
    bool hit_eos;     // stopped on an EOS (else on max_new_tokens)
    // want_hidden: [n_hidden, H] f32 host, one row per fed row: the prompt rows, then each generated token that
    // was fed back, in order (n_hidden = prompt rows + n_ids - 1: the last token is not fed, as in HF). The rows
    // OpenS2S's TTS bridge reads (hidden_states[-1] of every step).
    float *hidden;
    int64_t n_hidden, hidden_size;
} s2s_generate_out;

// prompt [T, H] input embeddings, appended to kv after what it already holds (a conversation continues from its
// cache; s2s_kv_cache_reset for a fresh one). kv must have room for T + max_new_tokens - 1 more positions.
// The arena is used per step and rewound: after the prompt's pass no step takes more than the first did.
void s2s_generate_qwen3(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *kv, s2s_tensor *prompt,
                        const s2s_generate_cfg *cfg, s2s_generate_out *out);
void s2s_generate_out_free(s2s_generate_out *o);

// B independent generations stepped together (s2s_decode_step_batch): sequence b's prompt prompts[b] [T_b, H]
// is prefilled alone into kv[b] (prompts differ in length), then every unfinished sequence feeds its token in
// one batched step, until each has hit an EOS or max_new_tokens; a finished one drops out of the batch. Each
// sequence has its own sampler seeded with cfg->seed, so out[b] is what s2s_generate_qwen3 gives for that prompt
// alone (greedy: the same argmax, up to the last-bit GEMM order of a batch, see decode.h). cfg->want_hidden is
// not supported here.
void s2s_generate_qwen3_batch(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *const *kv, s2s_tensor *const *prompts,
                              int B, const s2s_generate_cfg *cfg, s2s_generate_out *out);
