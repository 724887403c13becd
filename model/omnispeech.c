// omnispeech.c — OpenS2S OmniSpeechModel: parameters, initialisation and the training forward (omnispeech.h).
#include "omnispeech.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../autograd/rng.h"
#include "interleave.h"

#define INIT_STD 0.02  // initializer_range / init_std of every Qwen3 and Qwen2-Audio config

void s2s_omnispeech_create(s2s_omnispeech *m, s2s_params *P, const s2s_omnispeech_config *c) {
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    m->w_llm = 1.0f, m->w_tts = 1.0f;
    S2S_CHECK(c->interleave_text >= 1 && c->interleave_speech >= 1,
              "omnispeech: interleave_strategy %lld:%lld must have both sides >= 1", (long long)c->interleave_text,
              (long long)c->interleave_speech);
    // OmniSpeechModel.__init__'s order: encoder, LLM, TTS-LM, adapter, llm2tts, llm_ln.
    s2s_audio_encoder_init(&m->enc, &c->audio, P);
    s2s_qwen3_create(&m->llm, P, &c->llm, "llm_model.", &(s2s_qwen3_opts){.trainable = true});
    s2s_qwen3_create(&m->tts, P, &c->tts, "tts_lm_model.", &(s2s_qwen3_opts){.speaker = true, .trainable = true});
    s2s_adapter_config ac = s2s_adapter_config_from_omnispeech(c);
    s2s_adapter_init(&m->adapter, &ac, P);
    const int64_t Hl = c->llm.hidden_size, Ht = c->tts.hidden_size;
    m->llm2tts = s2s_params_add(P, "llm2tts.weight", "llm2tts", 2, (int64_t[]){Ht, Hl}, true, true);
    m->llm_ln_w = s2s_params_add(P, "llm_ln.weight", "llm_ln", 1, (int64_t[]){Ht}, true, false);
    m->llm_ln_b = s2s_params_add(P, "llm_ln.bias", "llm_ln", 1, (int64_t[]){Ht}, true, false);
    s2s_params_set_norm(P, m->llm_ln_w, S2S_NORM_LAYER);
    s2s_params_set_norm(P, m->llm_ln_b, S2S_NORM_LAYER);
}

void s2s_omnispeech_set_recompute(s2s_omnispeech *m, bool on) {
    m->recompute = on;
    m->enc.recompute = on;
}

void s2s_omnispeech_free(s2s_omnispeech *m) {
    s2s_audio_encoder_free(&m->enc);
    s2s_qwen3_free(&m->llm);
    s2s_qwen3_free(&m->tts);
}

// ---- initialisation ----------------------------------------------------------------------------------

// One generator per tensor, seeded by (seed, name), as qwen3.c does: values do not depend on registration order.
static void rng_for(s2s_rng *r, uint64_t seed, const char *name) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (const char *s = name; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    s2s_rng_seed(r, seed ^ h);
}

// kind 'n': normal(0, a); 'u': uniform(-a, a); 'c': the constant a. Made on the host, copied to the device.
static void fill(s2s_tensor *t, char kind, double a, uint64_t seed) {
    const int64_t n = s2s_numel(t);
    float *v = s2s_malloc((size_t)(n + 1) * sizeof(float));
    s2s_rng r;
    rng_for(&r, seed, t->name);
    if (kind == 'n') s2s_rng_fill_normal(&r, v, n, (float)a);
    else if (kind == 'u')
        for (int64_t i = 0; i < n; i++) v[i] = (float)((2 * s2s_rng_uniform(&r) - 1) * a);
    else
        for (int64_t i = 0; i < n; i++) v[i] = (float)a;
    s2s_dev_copy(t->device, t->data, S2S_CPU, v, (size_t)n * sizeof(float));
    free(v);
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

// transformers' _init_weights on Qwen2AudioEncoder: Conv1d / Linear / Embedding (embed_positions included)
// weights normal(0, init_std), biases zero, LayerNorms 1 / 0.
static void init_encoder(s2s_audio_encoder *e, uint64_t seed) {
    s2s_tensor *t[] = {e->conv1_w, e->conv1_b, e->conv2_w, e->conv2_b, e->embed_positions, e->ln_w, e->ln_b};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        fill(t[i], t[i]->ndim >= 2 ? 'n' : 'c', t[i]->ndim >= 2 ? INIT_STD : ends_with(t[i]->name, "norm.weight"), seed);
    for (int64_t l = 0; l < e->n_layers; l++) {
        s2s_audio_encoder_layer *L = &e->layers[l];
        s2s_tensor *mats[] = {L->q_w, L->k_w, L->v_w, L->o_w, L->fc1_w, L->fc2_w};
        s2s_tensor *zero[] = {L->q_b, L->v_b, L->o_b, L->fc1_b, L->fc2_b, L->attn_ln_b, L->ffn_ln_b};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) fill(mats[i], 'n', INIT_STD, seed);
        for (size_t i = 0; i < sizeof zero / sizeof *zero; i++) fill(zero[i], 'c', 0, seed);
        fill(L->attn_ln_w, 'c', 1, seed);
        fill(L->ffn_ln_w, 'c', 1, seed);
    }
}

void s2s_omnispeech_init_weights(s2s_omnispeech *m, uint64_t seed) {
    init_encoder(&m->enc, seed);
    s2s_qwen3_init(&m->llm, INIT_STD, seed);
    s2s_qwen3_init(&m->tts, INIT_STD, seed);
    s2s_rng r;
    rng_for(&r, seed, "audio_adapter");
    s2s_adapter_init_weights(&m->adapter, &r);
    // nn.Linear's default: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); nn.LayerNorm 1 / 0.
    fill(m->llm2tts, 'u', 1.0 / sqrt((double)m->cfg.llm.hidden_size), seed);
    fill(m->llm_ln_w, 'c', 1, seed);
    fill(m->llm_ln_b, 'c', 0, seed);
}

// ---- forward ---------------------------------------------------------------------------------------------

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

// weight * CE of the lm_head logits of h against targets, and the plain CE for reporting. A zero weight
// leaves the term out of the graph (*term NULL) and measures it without recording.
static double weighted_loss(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, s2s_tensor *targets, float w,
                            s2s_tensor **term) {
    if (w != 0.0f) {
        *term = s2s_qwen3_loss(ctx, q, h, targets, w);  // scalar
        return scalar_of(*term) / w;
    }
    s2s_no_grad_begin(ctx);
    double v = scalar_of(s2s_qwen3_loss(ctx, q, h, targets, 1.0f));
    s2s_no_grad_end(ctx);
    *term = NULL;
    return v;
}

// The packed LLM sequence: per sample, its valid tokens with each placeholder replaced by its audio's rows.
typedef struct packed {
    int64_t T, n_text;
    int32_t *text_ids;  // [n_text] token ids of the non-placeholder rows, in packed order
    int32_t *src;       // [T] row of [text embeddings | audio rows] each packed row takes
    int32_t *labels, *token_types, *pos;  // [T]
    int32_t *cu;        // [B + 1]
} packed;

static void packed_free(packed *p) {
    free(p->text_ids), free(p->src), free(p->labels), free(p->token_types), free(p->pos), free(p->cu);
}

// OpenS2S prepare_inputs_labels_for_llm: keep the attention-mask tokens of each sample; each -200 becomes the next
// audio's adapter rows (labels ignored, token_type 0). audio_len[a] are the adapter's row counts.
static packed pack_batch(const s2s_omni_batch *b, const int64_t *audio_len) {
    const int64_t B = b->B, L = b->L;
    int64_t *valid = s2s_malloc((size_t)B * sizeof *valid);
    int64_t T = 0, n_text = 0, a = 0;
    for (int64_t s = 0; s < B; s++) {
        const int32_t *mask = b->attention_mask ? b->attention_mask + s * L : NULL;
        int64_t n = 0;
        while (n < L && (!mask || mask[n] == 1)) n++;
        for (int64_t t = n; t < L; t++) {
            S2S_CHECK(mask[t] == 0, "omnispeech: attention_mask row %lld is not right-padded (1 ... 1 0 ... 0) at "
                      "column %lld; OpenS2S's collator pads on the right", (long long)s, (long long)t);
            S2S_CHECK(!b->labels || b->labels[s * L + t] == S2S_IGNORE_INDEX,
                      "omnispeech: label %d at padded position [%lld, %lld]; padded labels must be -100 "
                      "(transformers would count them in the loss of a batch without audio)",
                      (int)b->labels[s * L + t], (long long)s, (long long)t);
        }
        valid[s] = n;
        for (int64_t t = 0; t < n; t++) {
            if (b->input_ids[s * L + t] == S2S_AUDIO_TOKEN_INDEX) {
                S2S_CHECK(a < b->A, "omnispeech: sample %lld has more -200 placeholders than the batch has audios "
                          "(%lld)", (long long)s, (long long)b->A);
                T += audio_len[a++];
            } else {
                T++, n_text++;
            }
        }
    }
    S2S_CHECK(a == b->A, "omnispeech: the batch has %lld audios but %lld -200 placeholders", (long long)b->A,
              (long long)a);
    S2S_CHECK(T > 0 && T <= INT32_MAX, "omnispeech: the packed batch has %lld rows", (long long)T);

    packed p = {.T = T, .n_text = n_text};
    p.text_ids = s2s_malloc((size_t)(n_text + 1) * sizeof(int32_t));
    p.src = s2s_malloc((size_t)T * sizeof(int32_t));
    p.labels = s2s_malloc((size_t)T * sizeof(int32_t));
    p.token_types = s2s_malloc((size_t)T * sizeof(int32_t));
    p.pos = s2s_malloc((size_t)T * sizeof(int32_t));
    p.cu = s2s_malloc((size_t)(B + 1) * sizeof(int32_t));
    int64_t r = 0, x = 0, audio_off = n_text;  // audio rows follow the text rows in [text | audio]
    a = 0;
    p.cu[0] = 0;
    for (int64_t s = 0; s < B; s++) {
        const int64_t r0 = r;
        for (int64_t t = 0; t < valid[s]; t++) {
            const int64_t i = s * L + t;
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
    free(valid);
    return p;
}

// The LLM input rows [T, H]: token embeddings with the audio rows spliced in.
static s2s_tensor *llm_inputs(s2s_ctx *ctx, const s2s_omnispeech *m, const packed *p, s2s_tensor *audio) {
    s2s_tensor *text = p->n_text ? s2s_qwen3_embed(ctx, &m->llm, i32_on(ctx, p->text_ids, p->n_text)) : NULL;
    if (!audio || audio->shape[0] == 0) return text;  // [T, H]: no audio rows, packed order is text order
    if (!text) return s2s_gather_rows(ctx, audio, i32_on(ctx, p->src, p->T));
    s2s_tensor *both = s2s_concat(ctx, (s2s_tensor *[]){text, audio}, 2, 0);  // [n_text + n_audio, H]
    return s2s_gather_rows(ctx, both, i32_on(ctx, p->src, p->T));            // [T, H]
}

// OpenS2S prepare_inputs_labels_for_tts_lm + the TTS-LM's loss. Returns w_tts * CE (NULL if w_tts is 0) and
// writes the plain CE.
static s2s_tensor *tts_loss(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b, const packed *p,
                            s2s_tensor *h, int64_t n_spans, double *loss, int64_t *n_targets) {
    int64_t *start = s2s_malloc((size_t)n_spans * sizeof *start), *end = s2s_malloc((size_t)n_spans * sizeof *end);
    int64_t *text_len = s2s_malloc((size_t)n_spans * sizeof *text_len);
    s2s_interleave_find_spans(p->token_types, p->cu, (int)b->B, start, end, n_spans);
    int64_t n_text = 0;
    for (int64_t i = 0; i < n_spans; i++) n_text += text_len[i] = end[i] - start[i];
    int32_t *rows = s2s_malloc((size_t)n_text * sizeof *rows);
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
    s2s_tensor *sel = s2s_gather_rows(ctx, h, i32_on(ctx, rows, n_text));       // [n_text, Hl]
    s2s_tensor *text = s2s_layernorm(ctx, s2s_linear(ctx, sel, m->llm2tts, NULL), m->llm_ln_w, m->llm_ln_b,
                                     1e-5f);                                  // [n_text, Ht]
    s2s_tensor *unit = s2s_qwen3_embed(ctx, &m->tts, i32_on(ctx, b->units, il.n_units));  // [n_units, Ht]
    s2s_tensor *all = s2s_concat(ctx, (s2s_tensor *[]){spk_rows, text, unit}, 3, 0);     // [n_spans + .., Ht]
    s2s_tensor *x = s2s_gather_rows(ctx, all, i32_on(ctx, il.src, il.T));               // [T_tts, Ht]

    s2s_tensor *cu = i32_on(ctx, il.cu_seqlens, n_spans + 1);
    s2s_tensor *ht = s2s_qwen3_forward(ctx, &m->tts, x, i32_on(ctx, il.pos, il.T), cu,
                                       &(s2s_qwen3_fwd){.recompute = m->recompute});  // [T_tts, Ht]
    int32_t *targets = s2s_malloc((size_t)il.T * sizeof *targets);
    s2s_qwen3_shift_labels(targets, il.labels, il.T, il.cu_seqlens, (int)n_spans);
    *n_targets = 0;
    for (int64_t t = 0; t < il.T; t++) *n_targets += targets[t] != S2S_IGNORE_INDEX;
    s2s_tensor *term;
    *loss = weighted_loss(ctx, &m->tts, ht, i32_on(ctx, targets, il.T), m->w_tts, &term);

    free(targets), free(rows), free(start), free(end), free(text_len);
    s2s_interleave_free(&il);
    return term;
}

s2s_omni_out s2s_omnispeech_forward(s2s_ctx *ctx, const s2s_omnispeech *m, const s2s_omni_batch *b) {
    S2S_CHECK(b->B > 0 && b->L > 0 && b->input_ids, "omnispeech: empty batch");
    S2S_CHECK(b->A == 0 || (b->mel && b->mel_frames), "omnispeech: %lld audios but no mel / mel_frames",
              (long long)b->A);
    S2S_CHECK(b->n_units == 0 || (b->units && b->units_len), "omnispeech: unit sequences without units");
    s2s_omni_out out = {0};

    // Audio -> encoder (30 s chunks) -> adapter: [sum audio_len, H_llm], audio 0's rows first.
    s2s_tensor *audio = NULL;
    int64_t *enc_len = s2s_malloc((size_t)(b->A + 1) * sizeof(int64_t));
    int64_t *audio_len = s2s_malloc((size_t)(b->A + 1) * sizeof(int64_t));
    if (b->A > 0) {
        S2S_CHECK(b->mel->shape[0] == b->A, "omnispeech: mel holds %lld audios, mel_frames %lld",
                  (long long)b->mel->shape[0], (long long)b->A);
        s2s_tensor *enc = s2s_audio_encoder_forward(ctx, &m->enc, b->mel, b->mel_frames, enc_len);  // [N, d]
        audio = s2s_adapter_forward(ctx, &m->adapter, enc, enc_len, b->A, audio_len);              // [N', Hl]
    }

    packed p = pack_batch(b, audio_len);
    s2s_tensor *x = llm_inputs(ctx, m, &p, audio);  // [T, Hl]
    s2s_tensor *cu = i32_on(ctx, p.cu, b->B + 1);
    s2s_tensor *h = s2s_qwen3_forward(ctx, &m->llm, x, i32_on(ctx, p.pos, p.T), cu,
                                      &(s2s_qwen3_fwd){.recompute = m->recompute});  // [T, Hl]
    out.llm_hidden = h;
    out.llm_cu_seqlens = cu;

    // LLM loss: transformers' causal-LM loss over the padded batch = the shifted packed labels' mean.
    int32_t *targets = s2s_malloc((size_t)p.T * sizeof *targets);
    s2s_qwen3_shift_labels(targets, p.labels, p.T, p.cu, (int)b->B);
    for (int64_t t = 0; t < p.T; t++) out.n_llm_targets += targets[t] != S2S_IGNORE_INDEX;
    s2s_tensor *llm_term;
    out.loss_llm = weighted_loss(ctx, &m->llm, h, i32_on(ctx, targets, p.T), m->w_llm, &llm_term);
    free(targets);

    // TTS loss on the speech spans. OpenS2S without speech_units runs a dummy TTS pass weighted 0: no value, no
    // gradient, so it is left out.
    out.n_spans = s2s_interleave_find_spans(p.token_types, p.cu, (int)b->B, NULL, NULL, 0);
    s2s_tensor *tts_term = NULL;
    if (b->n_units > 0) {
        S2S_CHECK(b->n_units == out.n_spans, "omnispeech: %lld unit sequences for %lld speech spans (token_type 1 "
                  "runs); OpenS2S pairs them one to one", (long long)b->n_units, (long long)out.n_spans);
        tts_term = tts_loss(ctx, m, b, &p, h, out.n_spans, &out.loss_tts, &out.n_tts_targets);
    }

    if (llm_term && tts_term) out.loss = s2s_add(ctx, llm_term, tts_term);
    else if (llm_term || tts_term) out.loss = llm_term ? llm_term : tts_term;
    else {
        out.loss = s2s_new(ctx, S2S_F32, 0, NULL);  // both weights 0: a constant zero
        s2s_dev_memset0(out.loss->device, out.loss->data, sizeof(float));
    }
    packed_free(&p);
    free(enc_len), free(audio_len);
    return out;
}
