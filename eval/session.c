// session.c — a loaded model answering turns (session.h).
#include "session.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "base/err.h"
#include "data/audio/audio.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// A generation config: dir/generation_config.json when there, else the decoder config's EOS and HF's defaults.
static int gen_config(const char *dir, const s2s_qwen3_config *c, s2s_gen_config *g, char *err, size_t errlen) {
    char p[8400];
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    FILE *f = fopen(p, "r");
    if (f) {
        fclose(f);
        if (s2s_gen_config_read(g, p, err, errlen)) return -1;
    } else {
        memset(g, 0, sizeof *g);
        g->sample = s2s_sample_defaults();
    }
    if (g->n_eos == 0)  // HF falls back on the model config's eos_token_id
        for (int i = 0; i < c->n_eos; i++) g->eos[g->n_eos++] = (int32_t)c->eos_token_id[i];
    if (g->n_eos == 0) return s2s_errf(err, errlen, "%s: no eos_token_id in generation_config.json or config.json", dir);
    return 0;
}

// The tokenizer directory: the source's files, else the training recipe's (relative to the working directory).
static const char *tokenizer_dir(const char *assets, const char *recipe, char *buf, size_t n) {
    char p[8500];
    snprintf(p, sizeof p, "%s/tokenizer.json", assets);
    FILE *f = fopen(p, "r");
    if (f) {
        fclose(f);
        snprintf(buf, n, "%s", assets);
        return buf;
    }
    return *recipe ? recipe : assets;
}

int s2s_session_open(s2s_session *s, const char *model, const char *device, int threads, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s2s_device dev;
    if (s2s_device_open(device, 0, &dev, s->device, sizeof s->device, err, errlen)) return -1;
    if (s2s_model_src_resolve(model, &s->src, err, errlen)) return -1;
    if (s2s_model_src_load(&s->src, dev, threads, &s->cfg, &s->P, &s->m, NULL, err, errlen)) return -1;
    s->ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .n_threads = threads});
    char tdir[8400], ttdir[8400], sub[8400];
    snprintf(sub, sizeof sub, "%s/tts", s->src.assets_dir);
    s2s_derr de;
    const char *td = tokenizer_dir(s->src.assets_dir, s->src.recipe_tokenizer, tdir, sizeof tdir);
    const char *ttd = tokenizer_dir(sub, s->src.recipe_tts_tokenizer, ttdir, sizeof ttdir);
    int rc = 0;
    if (!(s->tok = s2s_tok_load(td, &de))) rc = s2s_errf(err, errlen, "the LLM tokenizer: %s", de.msg);
    if (!rc && !(s->tts_tok = s2s_tok_load(ttd, &de))) rc = s2s_errf(err, errlen, "the TTS tokenizer: %s", de.msg);
    if (!rc && !(s->enc = s2s_tok_encoder_new(s->tok, &de))) rc = s2s_errf(err, errlen, "%s: %s", td, de.msg);
    if (!rc) {
        s->units_bias = s2s_tok_token_to_id(s->tts_tok, "<|audio_0|>");
        if (s->units_bias < 0) rc = s2s_errf(err, errlen, "%s: no <|audio_0|>: not a TTS tokenizer", ttd);
    }
    if (!rc) rc = gen_config(s->src.assets_dir, &s->cfg.llm, &s->gen, err, errlen);
    if (!rc) rc = gen_config(sub, &s->cfg.tts, &s->tts_gen, err, errlen);
    if (!rc && s2s_logmel_new(&s->mel, &de)) rc = s2s_errf(err, errlen, "log-mel: %s", de.msg);
    if (rc) s2s_session_close(s);
    return rc;
}

void s2s_session_close(s2s_session *s) {
    if (s->mel) s2s_logmel_free(s->mel);
    if (s->enc) s2s_tok_encoder_free(s->enc);
    if (s->tok) s2s_tok_free(s->tok);
    if (s->tts_tok) s2s_tok_free(s->tts_tok);
    if (s->ctx) {
        s2s_omnispeech_free(&s->m);
        s2s_params_free(&s->P);
        s2s_ctx_free(s->ctx);
    }
    memset(s, 0, sizeof *s);
}

s2s_reply_opts s2s_reply_defaults(void) {
    return (s2s_reply_opts){.temperature = -1, .top_p = -1};
}

// The audio's log-mel, chunk-major [C, 128, 3000] on the device, as the loader gives the model; *frames valid.
static s2s_tensor *audio_mel(s2s_session *s, const char *spec, int64_t *chunks, int64_t *frames, char *err,
                             size_t errlen) {
    float *pcm = NULL;
    int64_t n = 0;
    s2s_derr de;
    if (s2s_audio_load(spec, &pcm, &n, &de)) {
        s2s_errf(err, errlen, "--audio: %s", de.msg);
        return NULL;
    }
    const int64_t F = s2s_logmel_padded_frames(n), C = F / S2S_MEL_CHUNK_FRAMES;
    float *mel = s2s_malloc((size_t)(S2S_MEL_BINS * F) * sizeof *mel);   // [128, F]
    float *cm = s2s_malloc((size_t)(S2S_MEL_BINS * F) * sizeof *cm);     // [C, 128, 3000]
    if (s2s_logmel_compute(s->mel, pcm, n, F, mel, &de)) {
        free(pcm), free(mel), free(cm);
        s2s_errf(err, errlen, "--audio %s: %s", spec, de.msg);
        return NULL;
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t b = 0; b < S2S_MEL_BINS; b++)
            memcpy(cm + (c * S2S_MEL_BINS + b) * S2S_MEL_CHUNK_FRAMES, mel + b * F + c * S2S_MEL_CHUNK_FRAMES,
                   S2S_MEL_CHUNK_FRAMES * sizeof *cm);
    s2s_tensor *t = s2s_new3(s->ctx, S2S_F32, C, S2S_MEL_BINS, S2S_MEL_CHUNK_FRAMES);
    s2s_dev_copy(t->device, t->data, S2S_CPU, cm, s2s_nbytes(t));
    free(pcm), free(mel), free(cm);
    *chunks = C, *frames = s2s_logmel_valid_frames(n);
    return t;
}

// The turn's prompt (r->prompt) and its LLM input embeddings [T, H] in the session's arena.
static s2s_tensor *prepare(s2s_session *s, const s2s_turn *turn, s2s_reply *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    const double t0 = now();
    s2s_prompt_item items[2];
    int n_items = 0;
    if (turn->audio) items[n_items++] = (s2s_prompt_item){.text = NULL};
    if (turn->text && *turn->text) items[n_items++] = (s2s_prompt_item){.text = turn->text};
    if (!n_items) {
        s2s_errf(err, errlen, "a turn needs an audio or a text");
        return NULL;
    }
    if (s2s_prompt_build(s->enc, turn->system, items, n_items, &r->prompt, err, errlen)) return NULL;
    if (r->prompt.n_audio != (turn->audio ? 1 : 0)) {
        s2s_reply_free(r);
        s2s_errf(err, errlen, "the text holds <|im_audio|>: it would take an audio's place");
        return NULL;
    }
    int64_t tok_off[2] = {0, r->prompt.n}, chunk_off[2] = {0, 0}, frames = 0, audio_len[1] = {0};
    s2s_omni_batch b = {.n = 1, .tok_off = tok_off, .input_ids = r->prompt.ids, .A = turn->audio ? 1 : 0,
                        .chunk_off = chunk_off, .mel_frames = &frames};
    if (turn->audio) {
        int64_t C;
        b.mel = audio_mel(s, turn->audio, &C, &frames, err, errlen);
        if (!b.mel) {
            s2s_reply_free(r);
            return NULL;
        }
        chunk_off[1] = C;
    }
    s2s_no_grad_begin(s->ctx);
    s2s_tensor *audio = s2s_omni_audio(s->ctx, &s->m, &b, audio_len);  // [audio rows, H] or NULL
    s2s_omni_seq q = s2s_omni_seq_pack(&b, audio_len);
    s2s_tensor *prompt = s2s_omni_llm_inputs(s->ctx, &s->m, &q, audio);  // [T, H]
    s2s_omni_seq_free(&q);
    s2s_no_grad_end(s->ctx);
    r->t_prompt = now() - t0;
    return prompt;
}

static s2s_chat_cfg chat_cfg(const s2s_session *s, const s2s_reply_opts *o) {
    s2s_chat_cfg c = {.max_new_tokens = o->max_new_tokens > 0 ? o->max_new_tokens
                                        : s->gen.max_new_tokens > 0 ? s->gen.max_new_tokens : 512,
                      .tts_max_new_tokens = o->tts_max_new_tokens > 0 ? o->tts_max_new_tokens
                                            : s->tts_gen.max_new_tokens > 0 ? s->tts_gen.max_new_tokens : 512,
                      .eos = s->gen.eos, .n_eos = s->gen.n_eos, .tts_eos = s->tts_gen.eos,
                      .n_tts_eos = s->tts_gen.n_eos, .sample = s->gen.sample, .tts_sample = s->tts_gen.sample,
                      .seed = o->seed, .spk = o->spk, .on_text = o->on_text, .on_units = o->on_units,
                      .user = o->user};
    // model_worker.py: do_sample when temperature > 0.001, with that temperature and top_p.
    if (o->temperature >= 0) {
        c.sample.do_sample = o->temperature > 0.001;
        if (c.sample.do_sample) c.sample.temperature = o->temperature;
    }
    if (o->top_p >= 0) c.sample.top_p = o->top_p;
    if (o->tts_sample) c.tts_sample.do_sample = true;
    return c;
}

int s2s_session_reply(s2s_session *s, const s2s_turn *turn, const s2s_reply_opts *o, s2s_reply *r, char *err,
                      size_t errlen) {
    s2s_tensor *prompt = prepare(s, turn, r, err, errlen);
    if (!prompt) {
        s2s_ctx_step_reset(s->ctx);
        return -1;
    }
    const s2s_chat_cfg c = chat_cfg(s, o);
    s2s_chat_generate(s->ctx, &s->m, prompt, &c, &r->out);
    s2s_ctx_step_reset(s->ctx);
    return 0;
}

int s2s_session_reply_batch(s2s_session *s, const s2s_turn *turns, int n, const s2s_reply_opts *o,
                            const uint64_t *seeds, s2s_reply *r, int *failed, char (*errs)[1024]) {
    s2s_tensor **prompts = s2s_malloc((size_t)(n + 1) * sizeof *prompts);
    uint64_t *sd = s2s_malloc((size_t)(n + 1) * sizeof *sd);
    int *at = s2s_malloc((size_t)(n + 1) * sizeof *at);
    int k = 0;
    for (int i = 0; i < n; i++) {
        s2s_tensor *p = prepare(s, &turns[i], &r[i], errs[i], sizeof errs[i]);
        failed[i] = p == NULL;
        if (p) prompts[k] = p, sd[k] = seeds[i], at[k++] = i;
    }
    s2s_chat_out *out = s2s_calloc((size_t)(k + 1), sizeof *out);
    if (k) {
        const s2s_chat_cfg c = chat_cfg(s, o);
        s2s_chat_generate_batch(s->ctx, &s->m, prompts, k, &c, sd, out);
    }
    for (int j = 0; j < k; j++) r[at[j]].out = out[j];
    s2s_ctx_step_reset(s->ctx);
    free(prompts), free(sd), free(at), free(out);
    return k;
}

void s2s_reply_free(s2s_reply *r) {
    s2s_prompt_free(&r->prompt);
    s2s_chat_out_free(&r->out);
}

int64_t s2s_session_units(const s2s_session *s, const int32_t *ids, int64_t n, int32_t *out) {
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if (ids[i] >= s->units_bias && ids[i] < s->units_bias + S2S_N_UNITS) out[k++] = ids[i] - s->units_bias;
    return k;
}
