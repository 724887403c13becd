// omnispeech_batch.c — the packed OmniSpeech batch: OpenS2S's padded layout in, the LLM sequence with audio rows
// spliced in, and the target counts a trainer normalises by (omnispeech.h).
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "interleave.h"
#include "omnispeech.h"

void s2s_omni_batch_from_padded(s2s_ctx *ctx, s2s_omni_batch *b, s2s_omni_padded *own, int64_t B, int64_t L,
                                const int32_t *input_ids, const int32_t *attention_mask, const int32_t *labels,
                                const int32_t *token_types, s2s_tensor *mel, const int64_t *mel_frames,
                                int64_t chunk_frames) {
    memset(b, 0, sizeof *b);
    memset(own, 0, sizeof *own);
    own->tok_off = s2s_malloc((size_t)(B + 1) * sizeof(int64_t));
    own->ids = s2s_malloc((size_t)(B * L + 1) * sizeof(int32_t));
    own->labels = s2s_malloc((size_t)(B * L + 1) * sizeof(int32_t));
    own->types = s2s_malloc((size_t)(B * L + 1) * sizeof(int32_t));
    int64_t at = 0;
    own->tok_off[0] = 0;
    for (int64_t s = 0; s < B; s++) {
        const int32_t *mask = attention_mask ? attention_mask + s * L : NULL;
        int64_t n = 0;
        while (n < L && (!mask || mask[n] == 1)) n++;
        for (int64_t t = n; t < L; t++) {
            S2S_CHECK(mask[t] == 0, "omnispeech: attention_mask row %lld is not right-padded (1 ... 1 0 ... 0) at "
                      "column %lld; OpenS2S's collator pads on the right", (long long)s, (long long)t);
            S2S_CHECK(!labels || labels[s * L + t] == S2S_IGNORE_INDEX,
                      "omnispeech: label %d at padded position [%lld, %lld]; padded labels must be -100 "
                      "(transformers would count them in the loss of a batch without audio)",
                      (int)labels[s * L + t], (long long)s, (long long)t);
        }
        for (int64_t t = 0; t < n; t++, at++) {
            own->ids[at] = input_ids[s * L + t];
            own->labels[at] = labels ? labels[s * L + t] : S2S_IGNORE_INDEX;
            own->types[at] = token_types ? token_types[s * L + t] : 0;
        }
        own->tok_off[s + 1] = at;
    }
    b->n = B, b->tok_off = own->tok_off, b->input_ids = own->ids, b->labels = own->labels;
    b->token_types = own->types;
    if (mel) {
        const int64_t A = mel->shape[0], mels = mel->shape[1];
        S2S_CHECK(mel->ndim == 3 && mel->shape[2] % chunk_frames == 0, "omnispeech: mel must be [A, %lld, k * %lld]",
                  (long long)mels, (long long)chunk_frames);
        const int64_t K = mel->shape[2] / chunk_frames;
        // [A, mels, K, F] -> [A, K, mels, F]: chunk-major, audio a owning chunks a K .. a K + K - 1.
        s2s_tensor *x = mel;
        if (K > 1) x = s2s_transpose(ctx, s2s_reshape(ctx, mel, 4, (int64_t[]){A, mels, K, chunk_frames}), 1, 2);
        b->mel = s2s_reshape(ctx, x, 3, (int64_t[]){A * K, mels, chunk_frames});  // [A K, mels, F]
        own->chunk_off = s2s_malloc((size_t)(A + 1) * sizeof(int64_t));
        for (int64_t a = 0; a <= A; a++) own->chunk_off[a] = a * K;
        b->A = A, b->chunk_off = own->chunk_off, b->mel_frames = mel_frames;
    }
}

void s2s_omni_padded_free(s2s_omni_padded *own) {
    free(own->tok_off), free(own->chunk_off), free(own->ids), free(own->labels), free(own->types);
    memset(own, 0, sizeof *own);
}

void s2s_omni_count_targets(const s2s_omni_batch *b, int64_t *n_llm, int64_t *n_tts) {
    // The causal shift drops each sample's first label; a placeholder's rows are all unlabelled, so expanding it
    // moves no label across the first position.
    int64_t llm = 0, tts = 0;
    for (int64_t s = 0; s < b->n; s++)
        for (int64_t t = b->tok_off[s] + 1; b->labels && t < b->tok_off[s + 1]; t++)
            llm += b->labels[t] != S2S_IGNORE_INDEX && b->input_ids[t] != S2S_AUDIO_TOKEN_INDEX;
    // Every unit is a target: the row before it (speaker, hidden state or unit) predicts it.
    for (int64_t i = 0; i < b->n_units; i++) tts += b->units_len[i];
    *n_llm = llm, *n_tts = tts;
}

// OpenS2S prepare_inputs_labels_for_llm: each -200 becomes the next audio's adapter rows (labels ignored,
// token_type 0). audio_len[a] are the adapter's row counts.
s2s_omni_seq s2s_omni_seq_pack(const s2s_omni_batch *b, const int64_t *audio_len) {
    const int64_t n = b->n, N = b->tok_off[n];
    int64_t T = 0, n_text = 0, a = 0;
    for (int64_t t = 0; t < N; t++) {
        if (b->input_ids[t] == S2S_AUDIO_TOKEN_INDEX) {
            S2S_CHECK(a < b->A, "omnispeech: the batch has more -200 placeholders than audios (%lld)", (long long)b->A);
            T += audio_len[a++];
        } else {
            T++, n_text++;
        }
    }
    S2S_CHECK(a == b->A, "omnispeech: the batch has %lld audios but %lld -200 placeholders", (long long)b->A,
              (long long)a);
    S2S_CHECK(T > 0 && T <= INT32_MAX, "omnispeech: the packed batch has %lld rows", (long long)T);

    s2s_omni_seq p = {.T = T, .n_text = n_text, .n_seq = n};
    p.text_ids = s2s_malloc((size_t)(n_text + 1) * sizeof(int32_t));
    p.src = s2s_malloc((size_t)T * sizeof(int32_t));
    p.labels = s2s_malloc((size_t)T * sizeof(int32_t));
    p.token_types = s2s_malloc((size_t)T * sizeof(int32_t));
    p.pos = s2s_malloc((size_t)T * sizeof(int32_t));
    p.targets = s2s_malloc((size_t)T * sizeof(int32_t));
    p.cu = s2s_malloc((size_t)(n + 1) * sizeof(int32_t));
    int64_t r = 0, x = 0, audio_off = n_text;  // audio rows follow the text rows in [text | audio]
    a = 0;
    p.cu[0] = 0;
    for (int64_t s = 0; s < n; s++) {
        const int64_t r0 = r;
        for (int64_t i = b->tok_off[s]; i < b->tok_off[s + 1]; i++) {
            if (b->input_ids[i] == S2S_AUDIO_TOKEN_INDEX) {
                for (int64_t k = 0; k < audio_len[a]; k++, r++)
                    p.src[r] = (int32_t)(audio_off + k), p.labels[r] = S2S_IGNORE_INDEX, p.token_types[r] = 0;
                audio_off += audio_len[a++];
            } else {
                p.text_ids[x] = b->input_ids[i];
                p.src[r] = (int32_t)x++;
                p.labels[r] = b->labels ? b->labels[i] : S2S_IGNORE_INDEX;
                p.token_types[r] = b->token_types ? b->token_types[i] : 0;
                r++;
            }
        }
        for (int64_t t = r0; t < r; t++) p.pos[t] = (int32_t)(t - r0);
        p.cu[s + 1] = (int32_t)r;
    }
    s2s_qwen3_shift_labels(p.targets, p.labels, p.T, p.cu, (int)n);
    for (int64_t t = 0; t < p.T; t++) p.n_targets += p.targets[t] != S2S_IGNORE_INDEX;
    return p;
}

void s2s_omni_seq_free(s2s_omni_seq *p) {
    free(p->text_ids), free(p->src), free(p->labels), free(p->token_types), free(p->pos), free(p->cu), free(p->targets);
    memset(p, 0, sizeof *p);
}
