// omnispeech_forward.c — OpenS2S OmniSpeechModel.forward and the parts stages compose it from (omnispeech.h):
// audio features, the LLM over spliced embeddings, the LLM loss, the TTS-LM over the interleave, and the stage-2a
// TTS-LM alone on text + units.
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "interleave.h"
#include "omnispeech.h"

static s2s_tensor *i32_on(s2s_ctx *ctx, const int32_t *host, int64_t n) {
    s2s_tensor *t = s2s_new1(ctx, S2S_I32, n);  // [n]
    s2s_dev_copy(ctx->device, t->data, S2S_CPU, host, (size_t)n * sizeof(int32_t));
    return t;
}

static double scalar_of(const s2s_tensor *t) {
    float v;
    s2s_dev_copy(S2S_CPU, &v, t->device, t->data, sizeof v);
    return v;
}

// weight * sum CE / div of the lm_head logits of h against targets (n_targets supervised rows); *ce gets the
// plain mean. A zero weight leaves the term out of the graph (NULL) and measures it without recording.
static s2s_tensor *loss_term(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, s2s_tensor *targets,
                             int64_t n_targets, float weight, double div, double *ce, const int32_t *host_targets,
                             int64_t *correct) {
    if (correct && n_targets > 0) *correct += s2s_qwen3_count_correct(ctx, q, h, host_targets);
    if (weight != 0.0f && n_targets > 0) {
        // s2s_qwen3_loss is weight' * mean; mean * n_targets / div is the sum over the global divisor.
        const float w = div > 0 ? (float)((double)weight * (double)n_targets / div) : weight;
        s2s_tensor *term = s2s_qwen3_loss(ctx, q, h, targets, w);  // scalar
        *ce = scalar_of(term) / w;
        return term;
    }
    s2s_no_grad_begin(ctx);
    *ce = n_targets > 0 ? scalar_of(s2s_qwen3_loss(ctx, q, h, targets, 1.0f)) : 0.0;
    s2s_no_grad_end(ctx);
    return NULL;
}

s2s_tensor *s2s_omni_audio(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, int64_t *audio_len) {
    if (b->A == 0) return NULL;
    S2S_CHECK(b->mel && b->chunk_off && b->mel_frames, "omnispeech: %lld audios but no mel / chunk_off / mel_frames",
              (long long)b->A);
    int64_t *enc_len = s2s_malloc((size_t)b->A * sizeof(int64_t));
    s2s_tensor *enc = s2s_audio_encoder_forward_chunks(ctx, &m->enc, b->mel, b->chunk_off, b->mel_frames, b->A,
                                                       enc_len);                           // [N, d]
    s2s_tensor *a = s2s_adapter_forward(ctx, &m->adapter, enc, enc_len, b->A, audio_len);  // [N', Hl]
    free(enc_len);
    return a;
}

s2s_tensor *s2s_omni_llm_inputs(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *p, s2s_tensor *audio) {
    s2s_tensor *x = p->n_text ? s2s_qwen3_embed(ctx, &m->llm, i32_on(ctx, p->text_ids, p->n_text)) : NULL;
    if (audio && audio->shape[0] > 0) {  // text order is packed order when there are no audio rows
        s2s_tensor *all = x ? s2s_concat(ctx, (s2s_tensor *[]){x, audio}, 2, 0) : audio;  // [n_text + n_audio, H]
        x = s2s_gather_rows(ctx, all, i32_on(ctx, p->src, p->T));                           // [T, H]
    }
    return x;  // [T, H]
}

s2s_tensor *s2s_omni_llm(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *p, s2s_tensor *audio) {
    s2s_tensor *x = s2s_omni_llm_inputs(ctx, m, p, audio);  // [T, H]
    return s2s_qwen3_forward(ctx, &m->llm, x, i32_on(ctx, p->pos, p->T), i32_on(ctx, p->cu, p->n_seq + 1),
                             &(s2s_qwen3_fwd){.recompute = m->recompute});  // [T, H]
}

s2s_tensor *s2s_omni_llm_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_seq *p, s2s_tensor *h,
                              float weight, double div, double *ce) {
    return loss_term(ctx, &m->llm, h, i32_on(ctx, p->targets, p->T), p->n_targets, weight, div, ce, p->targets,
                     m->stats ? &m->stats->llm_correct : NULL);
}

// The TTS-LM's causal-LM term over packed sequences x [T, Ht] with unshifted labels.
static s2s_tensor *tts_lm_term(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *x, const int32_t *labels,
                               const int32_t *pos, const int32_t *cu, int64_t n_seq, float weight, double div,
                               double *ce, int64_t *n_targets) {
    const int64_t T = x->shape[0];
    s2s_tensor *ht = s2s_qwen3_forward(ctx, &m->tts, x, i32_on(ctx, pos, T), i32_on(ctx, cu, n_seq + 1),
                                       &(s2s_qwen3_fwd){.recompute = m->recompute});  // [T, Ht]
    int32_t *targets = s2s_malloc((size_t)T * sizeof *targets);
    s2s_qwen3_shift_labels(targets, labels, T, cu, (int)n_seq);
    *n_targets = 0;
    for (int64_t t = 0; t < T; t++) *n_targets += targets[t] != S2S_IGNORE_INDEX;
    s2s_tensor *term = loss_term(ctx, &m->tts, ht, i32_on(ctx, targets, T), *n_targets, weight, div, ce, targets,
                                 m->stats ? &m->stats->tts_correct : NULL);
    free(targets);
    return term;
}

// OpenS2S prepare_inputs_labels_for_tts_lm + the TTS-LM's loss.
s2s_tensor *s2s_omni_tts_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, const s2s_omni_seq *p,
                              s2s_tensor *h, float weight, double div, double *ce, int64_t *n_targets) {
    const int64_t n_spans = b->n_units;
    int64_t *start = s2s_malloc((size_t)(n_spans + 1) * sizeof *start), *end = s2s_malloc((size_t)(n_spans + 1) * sizeof *end);
    int64_t *text_len = s2s_malloc((size_t)(n_spans + 1) * sizeof *text_len);
    const int64_t found = s2s_interleave_find_spans(p->token_types, p->cu, (int)p->n_seq, start, end, n_spans);
    S2S_CHECK(found == n_spans, "omnispeech: %lld unit sequences for %lld speech spans (token_type 1 runs); OpenS2S "
              "pairs them one to one", (long long)n_spans, (long long)found);
    int64_t n_text = 0;
    for (int64_t i = 0; i < n_spans; i++) n_text += text_len[i] = end[i] - start[i];
    int32_t *rows = s2s_malloc((size_t)(n_text + 1) * sizeof *rows);
    for (int64_t i = 0, k = 0; i < n_spans; i++)
        for (int64_t t = start[i]; t < end[i]; t++) rows[k++] = (int32_t)t;

    s2s_interleave il;
    s2s_interleave_build(&il, n_spans, text_len, b->units, b->units_len, m->cfg.interleave_text,
                         m->cfg.interleave_speech);
    // The speaker rows: spk_ln(spk2tts(spk)); OpenS2S's collator gives zeros for a missing embedding.
    s2s_tensor *spk = b->spk;
    if (!spk) {
        spk = s2s_new2(ctx, S2S_F32, n_spans, S2S_SPK_DIM);  // [n_spans, 512]
        s2s_dev_memset0(spk->device, spk->data, s2s_nbytes(spk));
    }
    char ss[64];
    S2S_CHECK(spk->ndim == 2 && spk->shape[0] == n_spans && spk->shape[1] == S2S_SPK_DIM,
              "omnispeech: speaker embeddings must be [%lld, %d] (one per unit sequence), got %s",
              (long long)n_spans, S2S_SPK_DIM, s2s_shape_str(spk, ss, sizeof ss));
    s2s_tensor *spk_rows = s2s_qwen3_speaker(ctx, &m->tts, spk);  // [n_spans, Ht]
    // The response hidden states through the bridge: llm_ln(llm2tts(h)) — OpenS2S applies it to every row and
    // then selects; selecting first computes the same rows.
    s2s_tensor *sel = s2s_gather_rows(ctx, h, i32_on(ctx, rows, n_text));  // [n_text, Hl]
    s2s_tensor *text = s2s_layernorm(ctx, s2s_linear(ctx, sel, m->llm2tts, NULL), m->llm_ln_w, m->llm_ln_b,
                                     1e-5f);                                                  // [n_text, Ht]
    s2s_tensor *unit = s2s_qwen3_embed(ctx, &m->tts, i32_on(ctx, b->units, il.n_units));    // [n_units, Ht]
    s2s_tensor *all = s2s_concat(ctx, (s2s_tensor *[]){spk_rows, text, unit}, 3, 0);       // [n_spans + .., Ht]
    s2s_tensor *x = s2s_gather_rows(ctx, all, i32_on(ctx, il.src, il.T));                 // [T_tts, Ht]
    s2s_tensor *term = tts_lm_term(ctx, m, x, il.labels, il.pos, il.cu_seqlens, n_spans, weight, div, ce, n_targets);
    free(rows), free(start), free(end), free(text_len);
    s2s_interleave_free(&il);
    return term;
}

s2s_tensor *s2s_omni_tts_pretrain_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, float weight,
                                       double div, double *ce, int64_t *n_targets) {
    S2S_CHECK(b->n_units == b->n, "stage 2a: %lld unit sequences for %lld samples (one per sample)",
              (long long)b->n_units, (long long)b->n);
    S2S_CHECK(b->A == 0, "stage 2a: the TTS-LM pretraining batch has %lld audios; its samples are text + units",
              (long long)b->A);
    const int64_t T = b->tok_off[b->n] - b->tok_off[0];
    int64_t U = 0;
    for (int64_t i = 0; i < b->n; i++) U += b->units_len[i];
    // Per sample: its text ids, then its units; labels the units (unshifted).
    int32_t *ids = s2s_malloc((size_t)(T + U + 1) * sizeof *ids), *labels = s2s_malloc((size_t)(T + U + 1) * sizeof *labels);
    int32_t *pos = s2s_malloc((size_t)(T + U + 1) * sizeof *pos), *cu = s2s_malloc((size_t)(b->n + 1) * sizeof *cu);
    int64_t r = 0, u = 0;
    cu[0] = 0;
    for (int64_t s = 0; s < b->n; s++) {
        const int64_t r0 = r;
        for (int64_t t = b->tok_off[s]; t < b->tok_off[s + 1]; t++, r++) {
            S2S_CHECK(b->input_ids[t] >= 0 && b->input_ids[t] < m->cfg.tts.vocab_size,
                      "stage 2a: sample %lld text id %d outside the TTS vocabulary (%lld): the shard's text must be "
                      "encoded with the TTS tokenizer", (long long)s, (int)b->input_ids[t],
                      (long long)m->cfg.tts.vocab_size);
            ids[r] = b->input_ids[t], labels[r] = S2S_IGNORE_INDEX;
        }
        for (int64_t k = 0; k < b->units_len[s]; k++, r++, u++) ids[r] = labels[r] = b->units[u];
        for (int64_t t = r0; t < r; t++) pos[t] = (int32_t)(t - r0);
        cu[s + 1] = (int32_t)r;
    }
    s2s_tensor *x = s2s_qwen3_embed(ctx, &m->tts, i32_on(ctx, ids, r));  // [T + U, Ht]
    s2s_tensor *term = tts_lm_term(ctx, m, x, labels, pos, cu, b->n, weight, div, ce, n_targets);
    free(ids), free(labels), free(pos), free(cu);
    return term;
}

s2s_omni_out s2s_omnispeech_forward_ex(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b,
                                       const s2s_omni_fwd *f) {
    S2S_CHECK(b->n > 0 && b->tok_off && b->input_ids, "omnispeech: empty batch");
    S2S_CHECK(b->n_units == 0 || (b->units && b->units_len), "omnispeech: unit sequences without units");
    s2s_omni_fwd none = {0};
    if (!f) f = &none;
    s2s_omni_out out = {0};

    int64_t *audio_len = s2s_malloc((size_t)(b->A + 1) * sizeof(int64_t));
    s2s_tensor *h = NULL, *llm_term = NULL;
    s2s_omni_seq p;
    if (f->llm_no_grad) {
        // Forward only (stage 2b): nothing is recorded, and the frozen encoder and LLM give each layer's
        // activations back as they go, so only the hidden states stay for the TTS-LM.
        s2s_no_grad_begin(ctx);
        s2s_tensor *audio = s2s_omni_audio(ctx, m, b, audio_len);
        p = s2s_omni_seq_pack(b, audio_len);
        h = s2s_omni_llm(ctx, m, &p, audio);                        // [T, Hl]
        s2s_omni_llm_loss(ctx, m, &p, h, 0.0f, 0, &out.loss_llm);  // measured, not trained
        s2s_no_grad_end(ctx);
    } else {
        s2s_tensor *audio = s2s_omni_audio(ctx, m, b, audio_len);  // [sum audio_len, Hl] or NULL
        p = s2s_omni_seq_pack(b, audio_len);
        h = s2s_omni_llm(ctx, m, &p, audio);  // [T, Hl]
        llm_term = s2s_omni_llm_loss(ctx, m, &p, h, m->w_llm, f->div_llm, &out.loss_llm);
    }
    out.llm_hidden = h;
    out.llm_cu_seqlens = i32_on(ctx, p.cu, b->n + 1);
    out.n_llm_targets = p.n_targets;

    // TTS loss on the speech spans. OpenS2S without speech_units runs a dummy TTS pass weighted 0: no value, no
    // gradient, so it is left out.
    out.n_spans = s2s_interleave_find_spans(p.token_types, p.cu, (int)b->n, NULL, NULL, 0);
    s2s_tensor *tts_term = NULL;
    if (b->n_units > 0)
        tts_term = s2s_omni_tts_loss(ctx, m, b, &p, h, m->w_tts, f->div_tts, &out.loss_tts, &out.n_tts_targets);

    if (llm_term && tts_term) out.loss = s2s_add(ctx, llm_term, tts_term);
    else if (llm_term || tts_term) out.loss = llm_term ? llm_term : tts_term;
    else {
        out.loss = s2s_new(ctx, S2S_F32, 0, NULL);  // nothing trains: a constant zero
        s2s_dev_memset0(out.loss->device, out.loss->data, sizeof(float));
    }
    s2s_omni_seq_free(&p);
    free(audio_len);
    return out;
}

s2s_omni_out s2s_omnispeech_forward(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b) {
    return s2s_omnispeech_forward_ex(ctx, m, b, NULL);
}
