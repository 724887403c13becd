// batch.h — a loader batch (data/loader/loader.h: plain ragged arrays) as a model batch (model/omnispeech.h): the one
// conversion between the data library and the model. The host arrays are copied, so a step can hold all its
// micro-batches (their token counts normalise the step) while the loader moves on; the log-mel goes to the
// device when the micro-batch runs.
#pragma once
#include <stdint.h>
#include "data/loader/loader.h"
#include "model/omnispeech.h"

typedef struct s2s_train_batch {
    int64_t n, n_tok, A, n_chunks, n_spans, n_units_total;
    int64_t *tok_off;              // [n + 1]
    int32_t *ids, *labels, *types; // [n_tok]
    int64_t *chunk_off, *frames;   // [A + 1], [A]
    float *mel;                    // [n_chunks, 128, 3000] host
    int32_t *units;                // [n_units_total]
    int64_t *units_len;            // [n_spans] one run per speech span (stage 2a: per sample)
    float *spk;                    // [n_spans, 512] or NULL (no sample has a speaker embedding)
    int64_t *teacher_off;          // [n + 1] stage 1 kl
    int32_t *teacher_ids, *teacher_labels;
    int32_t *emotion;              // [n]
    int64_t n_llm, n_tts;          // supervised rows of each term (s2s_omni_count_targets)
    int64_t epoch, step;           // the loader position it came from
} s2s_train_batch;

typedef enum { S2S_BATCH_INSTRUCT, S2S_BATCH_ALIGN, S2S_BATCH_TTS } s2s_batch_mode;

// Copy and convert; units are split into one EOS-terminated run per speech span (tts_eos: the TTS EOS id), with
// each sample's speaker embedding copied to its spans. Returns -1 with a message naming the shard and sample
// when a sample's units do not pair with its spans.
int s2s_train_batch_from_loader(s2s_train_batch *t, const s2s_batch *b, const s2s_loader *l, s2s_batch_mode mode,
                                int32_t tts_eos, char *err, size_t errlen);
void s2s_train_batch_free(s2s_train_batch *t);
// The model's view of it; the log-mel is copied into ctx's arena. Valid until t is freed or ctx reset.
s2s_omni_batch s2s_train_batch_view(s2s_ctx *ctx, const s2s_train_batch *t);
