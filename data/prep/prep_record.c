// prep_record.c — one JSONL line to one sample: the shared context (tokenizers and the ids the prompt format
// needs), per-thread workers, and the building blocks every record form uses: separately encoded pieces,
// audio, speech units. The forms themselves are in prep_instruct.c and prep_stage.c.
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "data/audio/audio.h"
#include "data/hash.h"
#include "prep_internal.h"

// ---- context ----------------------------------------------------------------------------------------

// The tokenizer.json a tokenizer argument names (a directory or the file itself), for hashing.
static void tokenizer_json_path(const char *arg, char *buf, size_t cap) {
    size_t n = strlen(arg);
    if (n >= 5 && !strcmp(arg + n - 5, ".json")) snprintf(buf, cap, "%s", arg);
    else snprintf(buf, cap, "%s/tokenizer.json", arg);
}

static int need_token(const s2s_tokenizer *t, const char *tok, const char *which, const char *path, int32_t *id,
                      s2s_derr *e) {
    *id = s2s_tok_token_to_id(t, tok);
    if (*id < 0)
        return s2s_derr_set(e, "%s tokenizer %s has no %s token; OpenS2S adds <|im_audio_start|> <|im_audio_end|> "
                            "<|im_tts_start|> <|im_tts_end|> to the LLM tokenizer (use the OpenS2S checkpoint's "
                            "tokenizer or add them as special tokens)", which, path, tok);
    return 0;
}

static int tts_vocab(s2s_prep_ctx *c, s2s_derr *e) {
    const char *path = c->opts.tts_tokenizer;
    c->unit0 = s2s_tok_token_to_id(c->tts, "<|audio_0|>");
    if (c->unit0 < 0) return s2s_derr_set(e, "TTS tokenizer %s has no <|audio_0|> token", path);
    // The speech vocabulary is the run of <|audio_k|> tokens with consecutive ids from <|audio_0|>.
    char tok[32];
    for (c->n_units = 1;; c->n_units++) {
        snprintf(tok, sizeof tok, "<|audio_%d|>", c->n_units);
        if (s2s_tok_token_to_id(c->tts, tok) != c->unit0 + c->n_units) break;
    }
    c->tts_eos = s2s_tok_eos_id(c->tts);
    if (c->tts_eos < 0)
        return s2s_derr_set(e, "TTS tokenizer %s has no eos_token (tokenizer_config.json); OpenS2S closes every unit "
                            "sequence with it", path);
    return 0;
}

s2s_prep_ctx *s2s_prep_ctx_new(const s2s_prep_opts *o, s2s_derr *e) {
    s2s_prep_ctx *c = calloc(1, sizeof *c);
    if (!c) return s2s_derr_set(e, "out of memory"), NULL;
    c->opts = *o;
    char path[4200];
    if (!(c->llm = s2s_tok_load(o->llm_tokenizer, e))) goto fail;
    tokenizer_json_path(o->llm_tokenizer, path, sizeof path);
    if (s2s_sha256_file(path, c->llm_sha, e)) goto fail;
    const char *p = o->llm_tokenizer;
    if (need_token(c->llm, "<|im_start|>", "LLM", p, &c->im_start, e) ||
        need_token(c->llm, "<|im_end|>", "LLM", p, &c->im_end, e) ||
        need_token(c->llm, "<|im_audio_start|>", "LLM", p, &c->audio_start, e) ||
        need_token(c->llm, "<|im_audio_end|>", "LLM", p, &c->audio_end, e) ||
        need_token(c->llm, "<|im_tts_start|>", "LLM", p, &c->tts_start, e) ||
        need_token(c->llm, "<|im_tts_end|>", "LLM", p, &c->tts_end, e))
        goto fail;
    c->unit0 = c->n_units = c->tts_eos = -1;
    if (o->tts_tokenizer) {
        if (!(c->tts = s2s_tok_load(o->tts_tokenizer, e))) goto fail;
        tokenizer_json_path(o->tts_tokenizer, path, sizeof path);
        if (s2s_sha256_file(path, c->tts_sha, e) || tts_vocab(c, e)) goto fail;
    }
    return c;
fail:
    s2s_prep_ctx_free(c);
    return NULL;
}

void s2s_prep_ctx_free(s2s_prep_ctx *c) {
    if (!c) return;
    s2s_tok_free(c->llm);
    s2s_tok_free(c->tts);
    free(c);
}

const char *s2s_prep_ctx_llm_sha256(const s2s_prep_ctx *c) { return c->llm_sha; }
const char *s2s_prep_ctx_tts_sha256(const s2s_prep_ctx *c) { return c->tts_sha; }

s2s_prep_worker *s2s_prep_worker_new(const s2s_prep_ctx *c, s2s_derr *e) {
    s2s_prep_worker *w = calloc(1, sizeof *w);
    if (!w) return s2s_derr_set(e, "out of memory"), NULL;
    w->c = c;
    if (!(w->llm = s2s_tok_encoder_new(c->llm, e)) || (c->tts && !(w->tts = s2s_tok_encoder_new(c->tts, e)))) {
        s2s_prep_worker_free(w);
        return NULL;
    }
    return w;
}

void s2s_prep_worker_free(s2s_prep_worker *w) {
    if (!w) return;
    s2s_tok_encoder_free(w->llm);
    s2s_tok_encoder_free(w->tts);
    free(w->piece.ids);
    free(w->text);
    free(w);
}

// ---- record buffers -----------------------------------------------------------------------------------

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static void record_reset(s2s_prep_record *r) {
    s2s_shard_sample *s = &r->sample;
    s->n_tokens = s->n_audio = s->n_units = s->n_teacher = 0;
    s->has_spk_emb = 0;
    memset(s->spk_emb, 0, sizeof s->spk_emb);
    s->emotion = -1;
}

void s2s_prep_record_free(s2s_prep_record *r) {
    s2s_shard_sample_free(&r->sample);
    memset(r, 0, sizeof *r);
}

int64_t s2s_prep_sample_bytes(const s2s_shard_sample *s) {
    int64_t b = s->n_tokens * 9 + s->n_units * 4 + s->n_teacher * 8;
    for (int64_t a = 0; a < s->n_audio; a++) b += s->audio_len[a] * 2;
    return b + (s->has_spk_emb ? S2S_SHARD_SPK_DIM * 4 : 0);
}

int prep_push_tokens(prep_seq *q, const int32_t *ids, int64_t n, int labelled, int type) {
    s2s_prep_record *r = q->r;
    s2s_shard_sample *s = &r->sample;
    if (q->teacher) {
        int64_t cap = r->cap_teacher;
        if (grow((void **)&s->teacher_ids, &cap, s->n_teacher + n, 4) ||
            grow((void **)&s->teacher_labels, &r->cap_teacher, s->n_teacher + n, 4))
            return -1;
        for (int64_t j = 0; j < n; j++) {
            s->teacher_ids[s->n_teacher + j] = ids[j];
            s->teacher_labels[s->n_teacher + j] = labelled ? ids[j] : S2S_SHARD_IGNORE;
        }
        s->n_teacher += n;
        return 0;
    }
    int64_t cap1 = r->cap_tokens, cap2 = r->cap_tokens;
    if (grow((void **)&s->input_ids, &cap1, s->n_tokens + n, 4) ||
        grow((void **)&s->labels, &cap2, s->n_tokens + n, 4) ||
        grow((void **)&s->token_types, &r->cap_tokens, s->n_tokens + n, 1))
        return -1;
    for (int64_t j = 0; j < n; j++) {
        s->input_ids[s->n_tokens + j] = ids[j];
        s->labels[s->n_tokens + j] = labelled && ids[j] >= 0 ? ids[j] : S2S_SHARD_IGNORE;
        s->token_types[s->n_tokens + j] = (int8_t)type;
    }
    s->n_tokens += n;
    return 0;
}

int prep_piece(s2s_prep_worker *w, prep_seq *q, const char *text, size_t len, int labelled, int type, s2s_derr *e) {
    w->piece.n = 0;
    if (s2s_tok_encode(w->llm, text, len, &w->piece, e)) return -1;
    if (prep_push_tokens(q, w->piece.ids, (int64_t)w->piece.n, labelled, type))
        return s2s_derr_set(e, "out of memory");
    return 0;
}

// ---- fields -----------------------------------------------------------------------------------------

int prep_get_str(const cJSON *obj, const char *key, const char **out, const char *what, s2s_derr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsString(v)) return s2s_derr_set(e, "%s%s%s must be a string", what, *what ? "." : "", key);
    *out = v->valuestring;
    return 0;
}

int prep_resolve_path(const s2s_prep_ctx *c, const char *path, char *buf, size_t cap, const char *what,
                      s2s_derr *e) {
    const char *root = c->opts.audio_root;
    int n = root && *root && path[0] != '/' ? snprintf(buf, cap, "%s/%s", root, path) : snprintf(buf, cap, "%s", path);
    if (n < 0 || (size_t)n >= cap) return s2s_derr_set(e, "%s: path is too long", what);
    return 0;
}

int prep_push_audio(s2s_prep_worker *w, s2s_prep_record *r, const char *spec, const char *what, s2s_derr *e) {
    char path[4200];
    if (prep_resolve_path(w->c, spec, path, sizeof path, what, e)) return -1;
    float *pcm = NULL;
    int64_t n = 0;
    s2s_derr ae;
    if (s2s_audio_load(path, &pcm, &n, &ae)) return s2s_derr_set(e, "%s: %s", what, ae.msg);
    int rc = 0;
    double max_s = w->c->opts.max_audio_s;
    if (n < S2S_PREP_MIN_AUDIO_SAMPLES)
        rc = s2s_derr_set(e, "%s: '%s' has %lld samples at 16 kHz, fewer than %d (0.5 s), which OpenS2S drops", what,
                          spec, (long long)n, S2S_PREP_MIN_AUDIO_SAMPLES);
    else if (max_s > 0 && (double)n > max_s * S2S_AUDIO_RATE)
        rc = s2s_derr_set(e, "%s: '%s' lasts %.2f s, more than --max-audio-s %g", what, spec,
                          (double)n / S2S_AUDIO_RATE, max_s);
    s2s_shard_sample *s = &r->sample;
    int64_t used = 0;
    for (int64_t a = 0; a < s->n_audio; a++) used += s->audio_len[a];
    if (!rc && (grow((void **)&s->audio_len, &r->cap_audio_len, s->n_audio + 1, 8) ||
                grow((void **)&s->audio, &r->cap_audio, used + n, 2)))
        rc = s2s_derr_set(e, "%s: out of memory", what);
    if (!rc) {
        // int16 as soundfile writes PCM_16: scale by 32768, round to nearest, clip. A 16-bit source at 16 kHz
        // comes back sample for sample.
        int16_t *dst = s->audio + used;
        for (int64_t j = 0; j < n; j++) {
            float v = rintf(pcm[j] * 32768.0f);
            dst[j] = (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : v);
        }
        s->audio_len[s->n_audio++] = n;
    }
    free(pcm);
    return rc;
}

static int push_unit_ids(s2s_prep_record *r, const int32_t *ids, int64_t n, int32_t eos, const char *what,
                         s2s_derr *e) {
    s2s_shard_sample *s = &r->sample;
    if (grow((void **)&s->units, &r->cap_units, s->n_units + n + 1, 4))
        return s2s_derr_set(e, "%s: out of memory", what);
    memcpy(s->units + s->n_units, ids, (size_t)n * 4);
    s->n_units += n;
    s->units[s->n_units++] = eos;
    return 0;
}

int prep_push_units(s2s_prep_worker *w, s2s_prep_record *r, const cJSON *units, const char *what, s2s_derr *e) {
    const s2s_prep_ctx *c = w->c;
    if (!c->tts) return s2s_derr_set(e, "%s: speech units need a TTS tokenizer (--tts-tokenizer)", what);
    w->piece.n = 0;
    if (cJSON_IsString(units)) {
        // OpenS2S: tts_tokenizer.encode(units). Anything in the string that is not a unit token would be
        // trained on as a speech unit, so it is refused here.
        const char *str = units->valuestring;
        s2s_derr te;
        if (s2s_tok_encode(w->tts, str, strlen(str), &w->piece, &te)) return s2s_derr_set(e, "%s: %s", what, te.msg);
        for (size_t j = 0; j < w->piece.n; j++) {
            int32_t id = w->piece.ids[j];
            if (id < c->unit0 || id >= c->unit0 + c->n_units) {
                char *tok = s2s_tok_decode(c->tts, &id, 1, 0, NULL, NULL);
                s2s_derr_set(e, "%s: token %zu ('%s') of the unit string is not a speech unit <|audio_0|>.."
                             "<|audio_%d|>", what, j, tok ? tok : "?", c->n_units - 1);
                free(tok);
                return -1;
            }
        }
    } else if (cJSON_IsArray(units)) {
        int j = 0;
        for (const cJSON *u = units->child; u; u = u->next, j++) {
            double v = cJSON_IsNumber(u) ? u->valuedouble : -1;
            if (!cJSON_IsNumber(u) || v != floor(v) || v < 0 || v >= c->n_units)
                return s2s_derr_set(e, "%s[%d]: a unit index must be an integer in 0..%d", what, j, c->n_units - 1);
            if (s2s_tok_ids_push(&w->piece, c->unit0 + (int32_t)v)) return s2s_derr_set(e, "out of memory");
        }
    } else
        return s2s_derr_set(e, "%s must be a unit string \"<|audio_N|>...\" or an array of unit indices", what);
    if (w->piece.n == 0) return s2s_derr_set(e, "%s: no speech units", what);
    return push_unit_ids(r, w->piece.ids, (int64_t)w->piece.n, c->tts_eos, what, e);
}

// ---- dispatch -----------------------------------------------------------------------------------------

static int check_limits(const s2s_prep_ctx *c, const s2s_shard_sample *s, s2s_derr *e) {
    const s2s_prep_opts *o = &c->opts;
    if (o->max_tokens > 0 && s->n_tokens > o->max_tokens)
        return s2s_derr_set(e, "%lld tokens, more than --max-tokens %lld", (long long)s->n_tokens,
                            (long long)o->max_tokens);
    if (o->max_tokens > 0 && s->n_teacher > o->max_tokens)
        return s2s_derr_set(e, "teacher prompt of %lld tokens, more than --max-tokens %lld", (long long)s->n_teacher,
                            (long long)o->max_tokens);
    if (o->max_units > 0 && s->n_units > o->max_units)
        return s2s_derr_set(e, "%lld units, more than --max-units %lld", (long long)s->n_units,
                            (long long)o->max_units);
    return 0;
}

int s2s_prep_record_build(s2s_prep_worker *w, const char *line, size_t len, s2s_prep_record *r, s2s_derr *e) {
    record_reset(r);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!root) {
        size_t at = end && end >= line ? (size_t)(end - line) : 0;
        return s2s_derr_set(e, "invalid JSON near byte %zu", at);
    }
    for (; end && end < line + len; end++)
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(root);
            return s2s_derr_set(e, "invalid JSON: text after the record at byte %zu", (size_t)(end - line));
        }
    int rc;
    if (!cJSON_IsObject(root)) rc = s2s_derr_set(e, "a record must be a JSON object");
    else if (cJSON_HasObjectItem(root, "messages"))
        r->kind = S2S_SHARD_INSTRUCT, rc = prep_build_instruct(w, root, r, e);
    else if (cJSON_HasObjectItem(root, "continuation") || cJSON_HasObjectItem(root, "audio"))
        r->kind = S2S_SHARD_ALIGN, rc = prep_build_align(w, root, r, e);
    else if (cJSON_HasObjectItem(root, "units") || cJSON_HasObjectItem(root, "text"))
        r->kind = S2S_SHARD_TTS_PRETRAIN, rc = prep_build_tts(w, root, r, e);
    else
        rc = s2s_derr_set(e, "unknown record: expected \"messages\" (OpenS2S dialogue), \"audio\" + \"continuation\" "
                          "(stage 1) or \"text\" + \"units\" (stage 2a)");
    cJSON_Delete(root);
    if (!rc) rc = check_limits(w->c, &r->sample, e);
    if (!rc && s2s_shard_sample_check(r->kind, &r->sample, "record", 0, e)) rc = -1;
    return rc;
}
