// export_files.c — the non-weight files of an export (export.h): the two tokenizers, the generation configs and
// the feature-extractor config, copied from the source (a checkpoint's hf/, an OpenS2S directory) or, for the
// configs, made from config.json when the source has none (a model that started from `s2s init`).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "base/err.h"
#include "base/fs.h"
#include "data/tokenizer/tok_hf_files.h"
#include "data/tokenizer/tokenizer.h"
#include "export_internal.h"

static void note(char (*list)[64], int *n, int cap, const char *sub, const char *name) {
    if (*n < cap) snprintf(list[(*n)++], 64, "%s%s", sub, name);
}

// Copies each tokenizer file src has into dst; sub ("" or "tts/") names them in the report.
static int copy_tokenizer(const char *src, const char *dst, const char *sub, s2s_export_report *rep, char *err,
                          size_t errlen) {
    for (const char *const *f = s2s_tok_hf_files(); *f; f++) {
        if (!s2s_export_has(src, *f)) continue;
        char a[8400], b[8400];
        snprintf(a, sizeof a, "%s/%s", src, *f);
        snprintf(b, sizeof b, "%s/%s", dst, *f);
        if (s2s_copy_file(a, b, err, errlen)) return -1;
        note(rep->copied, &rep->n_copied, 16, sub, *f);
    }
    return 0;
}

// The tokenizer directory to export: --tokenizer, else the source's, else the recipe's (relative to here).
static const char *pick_tokenizer(const char *opt, const char *assets, const char *recipe, char *buf, size_t n) {
    if (opt) return opt;
    if (s2s_export_has(assets, "tokenizer.json")) return snprintf(buf, n, "%s", assets), buf;
    if (s2s_export_has(recipe, "tokenizer.json")) return recipe;
    return NULL;
}

// The tokenizer must not name ids the model's embeddings lack (OpenS2S: vocab_size = len(tokenizer)).
static int check_tokenizer(const char *dir, int64_t vocab, const char *what, char *err, size_t errlen) {
    s2s_derr de;
    s2s_tokenizer *t = s2s_tok_load(dir, &de);
    if (!t) return s2s_errf(err, errlen, "%s tokenizer: %s", what, de.msg);
    const int32_t n = s2s_tok_vocab_size(t);
    s2s_tok_free(t);
    if (n > vocab)
        return s2s_errf(err, errlen, "%s tokenizer %s has ids up to %d, the model's vocab_size is %lld: not this "
                        "model's tokenizer", what, dir, n - 1, (long long)vocab);
    return 0;
}

static int write_json(cJSON *j, const char *path, char *err, size_t errlen) {
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    int rc = s2s_write_file_atomic(path, s, strlen(s), err, errlen);
    free(s);
    return rc;
}

// GenerationConfig from the model config's special ids, as transformers' GenerationConfig.from_model_config.
static cJSON *generation_config(const s2s_qwen3_config *c) {
    cJSON *j = cJSON_CreateObject();
    if (c->bos_token_id >= 0) cJSON_AddNumberToObject(j, "bos_token_id", (double)c->bos_token_id);
    if (c->n_eos == 1) {
        cJSON_AddNumberToObject(j, "eos_token_id", (double)c->eos_token_id[0]);
    } else if (c->n_eos > 1) {
        cJSON *a = cJSON_AddArrayToObject(j, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->eos_token_id[i]));
    }
    if (c->pad_token_id >= 0) cJSON_AddNumberToObject(j, "pad_token_id", (double)c->pad_token_id);
    cJSON_AddStringToObject(j, "transformers_version", "4.51.0");
    return j;
}

// WhisperFeatureExtractor as Qwen2-Audio ships it: what s2s's log-mel computes (docs/audio.md).
static cJSON *preprocessor_config(const s2s_audio_encoder_config *a) {
    const int64_t frames = 2 * a->max_source_positions, hop = 160, rate = 16000;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "chunk_length", (double)(frames * hop / rate));
    cJSON_AddStringToObject(j, "feature_extractor_type", "WhisperFeatureExtractor");
    cJSON_AddNumberToObject(j, "feature_size", (double)a->num_mel_bins);
    cJSON_AddNumberToObject(j, "hop_length", (double)hop);
    cJSON_AddNumberToObject(j, "n_fft", 400);
    cJSON_AddNumberToObject(j, "n_samples", (double)(frames * hop));
    cJSON_AddNumberToObject(j, "nb_max_frames", (double)frames);
    cJSON_AddStringToObject(j, "padding_side", "right");
    cJSON_AddNumberToObject(j, "padding_value", 0.0);
    cJSON_AddBoolToObject(j, "return_attention_mask", true);
    cJSON_AddNumberToObject(j, "sampling_rate", (double)rate);
    return j;
}

// dst/name copied from src_dir/name when it exists, else made.
static int copy_or_make(const char *src_dir, const char *dst_dir, const char *name, const char *sub, cJSON *made,
                        s2s_export_report *rep, char *err, size_t errlen) {
    char a[8400], b[8400];
    snprintf(a, sizeof a, "%s/%s", src_dir, name);
    snprintf(b, sizeof b, "%s/%s", dst_dir, name);
    if (s2s_export_has(src_dir, name)) {
        cJSON_Delete(made);
        note(rep->copied, &rep->n_copied, 16, sub, name);
        return s2s_copy_file(a, b, err, errlen);
    }
    note(rep->made, &rep->n_made, 8, sub, name);
    return write_json(made, b, err, errlen);
}

int s2s_export_files(const s2s_export_opts *o, const s2s_model_src *s, const s2s_omnispeech_config *cfg,
                     const char *tmp, s2s_export_report *rep, char *err, size_t errlen) {
    char buf[8400], src_tts[8400], d[8400];
    const char *tok = pick_tokenizer(o->tokenizer, s->assets_dir, s->recipe_tokenizer, buf, sizeof buf);
    if (!tok)
        return s2s_errf(err, errlen, "no LLM tokenizer: %s has no tokenizer.json and the recipe's model.tokenizer "
                        "'%s' is not readable from here; give --tokenizer DIR", s->assets_dir, s->recipe_tokenizer);
    if (check_tokenizer(tok, cfg->llm.vocab_size, "the LLM", err, errlen)) return -1;
    if (copy_tokenizer(tok, tmp, "", rep, err, errlen)) return -1;
    if (copy_or_make(s->assets_dir, tmp, "generation_config.json", "", generation_config(&cfg->llm), rep, err, errlen))
        return -1;

    snprintf(src_tts, sizeof src_tts, "%s/audio", s->assets_dir);
    snprintf(d, sizeof d, "%s/audio", tmp);
    if (s2s_mkdir_p(d)) return s2s_errf(err, errlen, "%s: cannot create: %s", d, strerror(errno));
    if (copy_or_make(src_tts, d, "preprocessor_config.json", "audio/", preprocessor_config(&cfg->audio), rep, err,
                     errlen))
        return -1;

    snprintf(src_tts, sizeof src_tts, "%s/tts", s->assets_dir);
    const char *ttok = pick_tokenizer(o->tts_tokenizer, src_tts, s->recipe_tts_tokenizer, buf, sizeof buf);
    if (!ttok)
        return s2s_errf(err, errlen, "no TTS tokenizer: %s has no tokenizer.json and the recipe's "
                        "model.tts_tokenizer '%s' is not readable from here; give --tts-tokenizer DIR", src_tts,
                        s->recipe_tts_tokenizer);
    if (check_tokenizer(ttok, cfg->tts.vocab_size, "the TTS", err, errlen)) return -1;
    snprintf(d, sizeof d, "%s/tts", tmp);
    if (s2s_mkdir_p(d)) return s2s_errf(err, errlen, "%s: cannot create: %s", d, strerror(errno));
    if (copy_tokenizer(ttok, d, "tts/", rep, err, errlen)) return -1;
    return copy_or_make(src_tts, d, "generation_config.json", "tts/", generation_config(&cfg->tts), rep, err, errlen);
}
