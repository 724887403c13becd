// omnispeech.h — OpenS2S's OmniSpeechModel (src/modeling_omnispeech.py): audio encoder -> adapter spliced into
// the LLM at the -200 placeholders -> LLM loss; final-norm hidden states of the token_type 1 spans -> llm2tts +
// llm_ln -> interleaved M:N with unit embeddings after a speaker row -> TTS-LM loss; loss = w_llm CE_llm +
// w_tts CE_tts (OpenS2S: both weights 1).
//
// A batch is OpenS2S's collated batch (input_ids / attention_mask / labels / token_types [B, L], right-padded),
// the log-mel of its audios in placeholder order, and one unit sequence (EOS included) per speech span.
// Inside, everything is packed: the valid tokens of each sample with its audio rows spliced in, positions
// restarting at 0 per sample, attention never crossing samples — what transformers computes on OpenS2S's
// right-padded batch (positions arange(L), padding masked). docs/forward-batch.md has the details and the few
// places where OpenS2S's behaviour is degenerate and s2s does the sane thing instead.
//
// Parameters (one registry, OpenS2S names): audio_encoder_model.* (registered frozen, as in every stage),
// audio_adapter.*, llm_model.*, tts_lm_model.* (with spk2tts / spk_ln), llm2tts.weight [H_tts, H_llm],
// llm_ln.{weight,bias} [H_tts]. Freezing is the registry's trainable flag (s2s_params_set_trainable by prefix);
// a frozen part records nothing and computes no weight gradient.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/params.h"
#include "../ops/ops.h"
#include "adapter.h"
#include "audio_encoder.h"
#include "hf_config.h"
#include "qwen3.h"

#define S2S_AUDIO_TOKEN_INDEX (-200)  // OpenS2S AUDIO_TOKEN_INDEX: the next audio's adapter rows go here

typedef struct s2s_omnispeech {
    s2s_omnispeech_config cfg;
    s2s_audio_encoder enc;
    s2s_adapter adapter;
    s2s_qwen3 llm;            // "llm_model."
    s2s_qwen3 tts;            // "tts_lm_model." with the speaker bridge
    s2s_tensor *llm2tts;      // [H_tts, H_llm], no bias
    s2s_tensor *llm_ln_w, *llm_ln_b;  // [H_tts], LayerNorm eps 1e-5
    float w_llm, w_tts;       // loss weights (1, 1 as OpenS2S)
    bool recompute;           // a recompute region per decoder layer (set with s2s_omnispeech_set_recompute)
    struct s2s_omni_stats *stats;  // NULL, or where the loss terms add their greedy hits (evaluation)
} s2s_omnispeech;

// Greedy next-token hits of the loss terms' supervised rows, added to by every forward while m->stats points here
// (s2s eval: text-token and unit accuracy = hits / the terms' target counts).
typedef struct s2s_omni_stats {
    int64_t llm_correct, tts_correct;
} s2s_omni_stats;

// Register every parameter of a model described by c in P (zero-filled: load a checkpoint or call
// s2s_omnispeech_init_weights). Encoder frozen, everything else trainable.
void s2s_omnispeech_create(s2s_omnispeech *m, s2s_params *P, const s2s_omnispeech_config *c);
void s2s_omnispeech_free(s2s_omnispeech *m);  // the structs only: parameters belong to the registry
// One recompute region per encoder and decoder layer: only layer inputs stay for backward.
void s2s_omnispeech_set_recompute(s2s_omnispeech *m, bool on);

// A freshly constructed OpenS2S model: the encoder, LLM and TTS-LM as transformers' _init_weights leaves them
// (normal(0, initializer_range) matrices and embeddings, zero biases and pad rows, unit norms), the adapter,
// llm2tts and llm_ln with PyTorch's module defaults (OmniSpeechModel runs no init of its own on them).
// Deterministic from seed.
void s2s_omnispeech_init_weights(s2s_omnispeech *m, uint64_t seed);

// One batch, packed (docs/forward-batch.md): per-sample token runs, chunk-major log-mel, one unit sequence per
// speech span. Host arrays except mel / spk (on ctx's device). s2s_omni_batch_from_padded converts OpenS2S's
// padded collated layout; train/batch.c converts a loader batch.
typedef struct s2s_omni_batch {
    int64_t n;                      // samples
    const int64_t *tok_off;         // [n + 1] sample i's tokens are [tok_off[i], tok_off[i+1])
    const int32_t *input_ids;       // [tok_off[n]]; S2S_AUDIO_TOKEN_INDEX marks an audio
    const int32_t *labels;          // [tok_off[n]] S2S_IGNORE_INDEX = not supervised; NULL = none
    const int32_t *token_types;     // [tok_off[n]] 1 = speech response; NULL = all 0
    int64_t A;                      // audios, in placeholder order (sample 0's first)
    s2s_tensor *mel;                // [C, n_mels, chunk_frames] f32: 30 s chunks, or NULL when A == 0
    const int64_t *chunk_off;       // [A + 1] audio a owns mel chunks [chunk_off[a], chunk_off[a+1])
    const int64_t *mel_frames;      // [A] valid frames
    const int32_t *units;           // unit ids (TTS vocabulary, EOS included) of all spans, concatenated
    const int64_t *units_len;       // [n_units] one per speech span, in span order
    int64_t n_units;                // 0: no speech output in the batch (OpenS2S's speech_units None)
    s2s_tensor *spk;                // [n_units, 512] speaker embeddings, or NULL = zeros
} s2s_omni_batch;

// OpenS2S's padded batch: input_ids / attention_mask / labels / token_types [B, L] right-padded (mask NULL = all
// valid), mel [A, n_mels, k * chunk_frames] on ctx's device. Fills b (its arrays malloc'd: s2s_omni_padded_free;
// the mel becomes a chunk-major view made with ctx's ops) and checks the padding is OpenS2S's.
typedef struct s2s_omni_padded {
    int64_t *tok_off, *chunk_off;
    int32_t *ids, *labels, *types;
} s2s_omni_padded;
void s2s_omni_batch_from_padded(s2s_ctx *ctx, s2s_omni_batch *b, s2s_omni_padded *own, int64_t B, int64_t L,
                                const int32_t *input_ids, const int32_t *attention_mask, const int32_t *labels,
                                const int32_t *token_types, s2s_tensor *mel, const int64_t *mel_frames,
                                int64_t chunk_frames);
void s2s_omni_padded_free(s2s_omni_padded *own);

// Supervised rows of each loss term in b (after the causal shift), as the forward will count them: what a
// trainer sums over micro-batches and ranks to normalise by the whole global batch.
void s2s_omni_count_targets(const s2s_omni_batch *b, int64_t *n_llm, int64_t *n_tts);

// ---- the parts, for stages that compose their own forward --------------------------------------------------

// Encoder (30 s chunks) + adapter: [sum audio_len, H_llm], audio 0's rows first; writes audio_len[A].
s2s_tensor *s2s_omni_audio(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, int64_t *audio_len);

// The packed LLM sequence: per sample, its tokens with each placeholder replaced by its audio's rows.
typedef struct s2s_omni_seq {
    int64_t T, n_text, n_seq;
    int32_t *text_ids;  // [n_text] ids of the non-placeholder rows, packed order
    int32_t *src;       // [T] row of [text embeddings | audio rows] each packed row takes
    int32_t *labels, *token_types, *pos;  // [T]
    int32_t *cu;        // [n_seq + 1]
    int32_t *targets;   // [T] labels shifted inside each sample (what row t predicts)
    int64_t n_targets;
} s2s_omni_seq;
s2s_omni_seq s2s_omni_seq_pack(const s2s_omni_batch *b, const int64_t *audio_len);
void s2s_omni_seq_free(s2s_omni_seq *q);

// The LLM's input embeddings [T, H_llm]: token embeddings with each placeholder's audio rows spliced in
// (OpenS2S prepare_inputs_labels_for_llm); what generation feeds the LLM as inputs_embeds. audio NULL when A == 0.
s2s_tensor *s2s_omni_llm_inputs(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *q, s2s_tensor *audio);
// The LLM over the spliced embeddings: final-norm hidden states [T, H_llm]. audio NULL when A == 0.
s2s_tensor *s2s_omni_llm(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *q, s2s_tensor *audio);

// A loss term: weight * (sum of CE over the supervised rows) / div, div <= 0 meaning this batch's own count
// (OpenS2S's mean). The plain mean CE of the batch is written to *ce. A zero weight measures without recording.
s2s_tensor *s2s_omni_llm_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *q, s2s_tensor *h,
                              float weight, double div, double *ce);
// The TTS-LM over [spk] + interleave(M hidden rows of each speech span, N units, ...). n_spans must equal
// b->n_units. *n_targets gets the supervised unit rows.
s2s_tensor *s2s_omni_tts_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, const s2s_omni_seq *q,
                              s2s_tensor *h, float weight, double div, double *ce, int64_t *n_targets);
// Stage 2a: the TTS-LM alone on [text ids embedded by its own embeddings] + units per sample (b->input_ids hold
// TTS-vocabulary ids, b->units one EOS-terminated run per sample, units_len[i] sample i's), labels on units.
s2s_tensor *s2s_omni_tts_pretrain_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, float weight,
                                       double div, double *ce, int64_t *n_targets);

typedef struct s2s_omni_out {
    s2s_tensor *loss;          // scalar: w_llm loss_llm + w_tts loss_tts, what backward starts from
    double loss_llm, loss_tts; // the unweighted mean terms (loss_tts 0 without speech output)
    s2s_tensor *llm_hidden;    // [T, H_llm] final-norm LLM hidden states, packed (audio spliced in)
    s2s_tensor *llm_cu_seqlens;  // i32 [n + 1] sample b owns llm_hidden rows cu[b]..cu[b+1]
    int64_t n_llm_targets, n_tts_targets;  // supervised rows behind each mean
    int64_t n_spans;
} s2s_omni_out;

typedef struct s2s_omni_fwd {
    double div_llm, div_tts;   // loss divisors (<= 0: the batch's own counts, OpenS2S)
    bool llm_no_grad;          // run encoder, adapter and LLM forward-only, keeping no activations (stage 2b)
} s2s_omni_fwd;

// The forward of OpenS2S OmniSpeechModel.forward on one batch (f NULL: OpenS2S's means). With grad mode on,
// backward from out.loss reaches every trainable parameter.
s2s_omni_out s2s_omnispeech_forward(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b);
s2s_omni_out s2s_omnispeech_forward_ex(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b,
                                       const s2s_omni_fwd *f);
