// chat.h — speech-and-text generation as OpenS2S's OmniSpeechModel.generate(units_gen=True) runs it (batch 1):
// rounds of up to M text tokens from the LLM (M:N, the model's interleave_strategy) whose final-norm hidden states
// go through llm2tts + llm_ln onto the TTS-LM's input after the speaker row, then up to N units from the TTS-LM;
// once the LLM has produced an EOS (or spent its budget) the TTS-LM runs to its EOS (or budget). Each round is one
// Hugging Face generate call continuing that model's KV cache (eval/generate.h): the prompt of a round is the
// uncached suffix HF would feed. Neither model recomputes a prefix.
#pragma once
#include <stdint.h>
#include "../model/omnispeech.h"
#include "generate.h"

typedef struct s2s_chat_cfg {
    int64_t max_new_tokens, tts_max_new_tokens;  // budgets of the whole reply (OpenS2S: 512 each by default)
    const int32_t *eos;                          // the LLM's EOS set (generation_config.json)
    int n_eos;
    const int32_t *tts_eos;                      // the TTS-LM's (tts/generation_config.json)
    int n_tts_eos;
    s2s_sample_cfg sample, tts_sample;           // greedy or HF's warpers, per model
    uint64_t seed;                               // one stream per model and round is derived from it
    const float *spk;                            // [512] speaker embedding; NULL: zeros (what OpenS2S's generate uses)
    // Streaming: called after each round with sequence b's new ids (text tokens; units in the TTS vocabulary).
    void (*on_text)(void *user, int b, const int32_t *ids, int64_t n);
    void (*on_units)(void *user, int b, const int32_t *ids, int64_t n);
    void *user;
} s2s_chat_cfg;

typedef struct s2s_chat_out {
    int32_t *text_ids;            // [n_text] every LLM token, the EOS included when one was produced
    int64_t n_text;
    int32_t *units;               // [n_units] every TTS-LM token (TTS vocabulary ids, EOS included), in order
    int64_t n_units;
    int64_t rounds;
    // Seconds from the call: the prompt's prefill with the first token, the first unit chunk; and the time spent
    // in each model (tokens per second = n / time).
    double t_first_text, t_first_units, t_llm, t_tts;
    // The first round's LLM call on its own (the prompt's prefill and its first tokens), so that the decode rate
    // (n_text - n_text_first) / (t_llm - t_llm_first) compares with HF's time after the first token; the whole call.
    double t_llm_first, t_total;
    int64_t n_text_first;
} s2s_chat_out;

// prompt [T, H_llm] on ctx's device: the LLM's input embeddings (s2s_omni_llm_inputs). Preallocates both KV caches
// for the budgets.
void s2s_chat_generate(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *prompt, const s2s_chat_cfg *cfg,
                       s2s_chat_out *out);
// B replies in lockstep (a benchmark's items): prompts[b] [T_b, H_llm], sequence b sampling from seeds[b] (cfg->seed
// unused); out[b] is what s2s_chat_generate gives for prompts[b] with seed seeds[b] alone (greedy: the same tokens;
// the batched GEMMs could differ from one sequence's in the last bit). Each model's steps run batched.
void s2s_chat_generate_batch(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *const *prompts, int B,
                             const s2s_chat_cfg *cfg, const uint64_t *seeds, s2s_chat_out *out);
void s2s_chat_out_free(s2s_chat_out *o);
