// omnispeech.c — OpenS2S OmniSpeechModel: parameters and initialisation (omnispeech.h). The batch is in
// omnispeech_batch.c, the forward and its parts in omnispeech_forward.c.
#include "omnispeech.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../autograd/rng.h"

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
    // The registry keeps OpenS2S's order; the gradients are laid out in the forward's (encoder, adapter, LLM,
    // bridge, the TTS-LM's speaker row, the TTS-LM), so the backward completes them from the layout's end and the
    // data-parallel buckets go out (and under ZeRO-2 are freed) while it runs.
    static const char *const forward_order[] = {"audio_encoder_model.", "audio_adapter.", "llm_model.", "llm2tts.",
                                                "llm_ln.", "tts_lm_model.spk", "tts_lm_model."};
    for (int k = (int)(sizeof forward_order / sizeof *forward_order) - 1; k >= 0; k--)
        s2s_params_set_layout(P, forward_order[k], k);  // "tts_lm_model." first: "tts_lm_model.spk" overrides it
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

// One generator per tensor, seeded by (seed, name) as in qwen3.c (s2s_rng_seed_named): values do not depend on
// registration order. kind 'n': normal(0, a); 'u': uniform(-a, a); 'c': the constant a. Made on the host, copied
// to the device.
static void fill(s2s_tensor *t, char kind, double a, uint64_t seed) {
    const int64_t n = s2s_numel(t);
    float *v = s2s_malloc((size_t)(n + 1) * sizeof(float));
    s2s_rng r;
    s2s_rng_seed_named(&r, seed, t->name);
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
    s2s_rng_seed_named(&r, seed, "audio_adapter");
    s2s_adapter_init_weights(&m->adapter, &r);
    // nn.Linear's default: kaiming_uniform(a = sqrt(5)) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)); nn.LayerNorm 1 / 0.
    fill(m->llm2tts, 'u', 1.0 / sqrt((double)m->cfg.llm.hidden_size), seed);
    fill(m->llm_ln_w, 'c', 1, seed);
    fill(m->llm_ln_b, 'c', 0, seed);
}
