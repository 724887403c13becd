// batch.c — loader batch -> model batch (batch.h).
#include "batch.h"
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "model/interleave.h"

#define MEL_BINS 128
#define MEL_FRAMES 3000

void s2s_train_batch_free(s2s_train_batch *t) {
    free(t->tok_off), free(t->ids), free(t->labels), free(t->types), free(t->chunk_off), free(t->frames);
    free(t->mel), free(t->units), free(t->units_len), free(t->spk), free(t->teacher_off), free(t->teacher_ids);
    free(t->teacher_labels), free(t->emotion);
    memset(t, 0, sizeof *t);
}

// Speech spans of sample s: runs of token_type 1 among its rows (a placeholder's rows are type 0).
static int64_t spans_of(const s2s_batch *b, int64_t s) {
    int64_t n = 0;
    int prev = 0;
    for (int64_t t = b->tok_off[s]; t < b->tok_off[s + 1]; t++) {
        int cur = b->input_ids[t] != S2S_AUDIO_TOKEN_INDEX && b->token_types[t] == 1;
        n += cur && !prev;
        prev = cur;
    }
    return n;
}

int s2s_train_batch_from_loader(s2s_train_batch *t, const s2s_batch *b, const s2s_loader *l, s2s_batch_mode mode,
                                int32_t tts_eos, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    const int64_t n = b->n, N = b->tok_off[n];
    t->n = n, t->n_tok = N, t->epoch = b->epoch, t->step = b->step;
    t->tok_off = s2s_malloc((size_t)(n + 1) * sizeof(int64_t));
    memcpy(t->tok_off, b->tok_off, (size_t)(n + 1) * sizeof(int64_t));
    t->ids = s2s_malloc((size_t)(N + 1) * sizeof(int32_t));
    t->labels = s2s_malloc((size_t)(N + 1) * sizeof(int32_t));
    t->types = s2s_malloc((size_t)(N + 1) * sizeof(int32_t));
    if (N) memcpy(t->ids, b->input_ids, (size_t)N * sizeof(int32_t));
    if (N) memcpy(t->labels, b->labels, (size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) t->types[i] = b->token_types[i];
    t->emotion = s2s_malloc((size_t)(n + 1) * sizeof(int32_t));
    memcpy(t->emotion, b->emotion, (size_t)n * sizeof(int32_t));

    // Audio: chunk-major log-mel as the loader made it.
    t->A = b->n_audio, t->n_chunks = b->n_chunks;
    t->chunk_off = s2s_malloc((size_t)(t->A + 1) * sizeof(int64_t));
    t->frames = s2s_malloc((size_t)(t->A + 1) * sizeof(int64_t));
    memcpy(t->chunk_off, b->chunk_off, (size_t)(t->A + 1) * sizeof(int64_t));
    if (t->A) memcpy(t->frames, b->valid_frames, (size_t)t->A * sizeof(int64_t));
    const size_t mel_n = (size_t)t->n_chunks * MEL_BINS * MEL_FRAMES;
    if (t->A) {
        S2S_CHECK(b->mel, "batch: the loader computed no log-mel (open it with mel = 1)");
        t->mel = s2s_malloc(mel_n * sizeof(float));
        memcpy(t->mel, b->mel, mel_n * sizeof(float));
    }

    // Units: per span (instruct), per sample (stage 2a).
    const int64_t U = b->unit_off[n];
    t->units = s2s_malloc((size_t)(U + 1) * sizeof(int32_t));
    if (U) memcpy(t->units, b->units, (size_t)U * sizeof(int32_t));  // a batch without units may have no array
    t->n_units_total = U;
    int64_t max_spans = 0;
    for (int64_t s = 0; s < n; s++) max_spans += mode == S2S_BATCH_TTS ? 1 : spans_of(b, s);
    t->units_len = s2s_malloc((size_t)(max_spans + 1) * sizeof(int64_t));
    bool any_spk = false;
    for (int64_t s = 0; s < n; s++) any_spk |= (b->flags[s] & S2S_SHARD_HAS_SPK_EMB) != 0;
    if (any_spk) t->spk = s2s_calloc((size_t)(max_spans + 1) * S2S_SPK_DIM, sizeof(float));
    for (int64_t s = 0; s < n; s++) {
        const int64_t u0 = b->unit_off[s], nu = b->unit_off[s + 1] - u0;
        const int64_t want = mode == S2S_BATCH_TTS ? 1 : spans_of(b, s);
        if (mode == S2S_BATCH_TTS) {
            if (nu < 1) return s2s_errf(err, errlen, "%s: sample %lld has no units (stage 2a trains text -> units)",
                                        s2s_loader_shard_path(l, b->shard[s]), (long long)b->index[s]);
            t->units_len[t->n_spans++] = nu;
            continue;
        }
        if (want == 0 && nu == 0) continue;
        if (nu == 0) {
            // A speech response without units: OpenS2S cannot pair it (it asserts). Train its text only.
            return s2s_errf(err, errlen, "%s: sample %lld has %lld speech spans (token_type 1) but no units",
                            s2s_loader_shard_path(l, b->shard[s]), (long long)b->index[s], (long long)want);
        }
        int64_t k = s2s_interleave_split_runs(b->units + u0, nu, tts_eos, t->units_len + t->n_spans, want);
        if (k != want)
            return s2s_errf(err, errlen, "%s: sample %lld: its units hold %lld EOS(%d)-terminated runs for %lld speech "
                            "spans", s2s_loader_shard_path(l, b->shard[s]), (long long)b->index[s], (long long)k,
                            (int)tts_eos, (long long)want);
        for (int64_t j = 0; j < k && t->spk; j++)
            memcpy(t->spk + (size_t)(t->n_spans + j) * S2S_SPK_DIM, b->spk_emb + (size_t)s * S2S_SPK_DIM,
                   S2S_SPK_DIM * sizeof(float));
        t->n_spans += k;
    }

    if (mode == S2S_BATCH_ALIGN && b->teacher_off) {
        const int64_t TN = b->teacher_off[n];
        t->teacher_off = s2s_malloc((size_t)(n + 1) * sizeof(int64_t));
        memcpy(t->teacher_off, b->teacher_off, (size_t)(n + 1) * sizeof(int64_t));
        t->teacher_ids = s2s_malloc((size_t)(TN + 1) * sizeof(int32_t));
        t->teacher_labels = s2s_malloc((size_t)(TN + 1) * sizeof(int32_t));
        memcpy(t->teacher_ids, b->teacher_ids, (size_t)TN * sizeof(int32_t));
        memcpy(t->teacher_labels, b->teacher_labels, (size_t)TN * sizeof(int32_t));
    }
    s2s_omni_batch v = {.n = n, .tok_off = t->tok_off, .input_ids = t->ids, .labels = t->labels,
                        .token_types = t->types, .units = t->units, .units_len = t->units_len, .n_units = t->n_spans};
    if (mode == S2S_BATCH_TTS) {
        t->n_llm = 0;
        t->n_tts = U;
    } else {
        s2s_omni_count_targets(&v, &t->n_llm, &t->n_tts);
    }
    return 0;
}

s2s_omni_batch s2s_train_batch_view(s2s_ctx *ctx, const s2s_train_batch *t) {
    s2s_omni_batch v = {.n = t->n, .tok_off = t->tok_off, .input_ids = t->ids, .labels = t->labels,
                        .token_types = t->types, .A = t->A, .chunk_off = t->chunk_off, .mel_frames = t->frames,
                        .units = t->units, .units_len = t->units_len, .n_units = t->n_spans};
    if (t->A) {
        v.mel = s2s_new3(ctx, S2S_F32, t->n_chunks, MEL_BINS, MEL_FRAMES);  // [C, 128, 3000]
        s2s_dev_copy(ctx->device, v.mel->data, S2S_CPU, t->mel, s2s_nbytes(v.mel));
    }
    if (t->spk && t->n_spans) {
        v.spk = s2s_new2(ctx, S2S_F32, t->n_spans, S2S_SPK_DIM);  // [n_spans, 512]
        s2s_dev_copy(ctx->device, v.spk->data, S2S_CPU, t->spk, s2s_nbytes(v.spk));
    }
    return v;
}
