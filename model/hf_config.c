#include "hf_config.h"
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "../autograd/check.h"
#include "../base/fs.h"
#include "safetensors.h"

#define CONFIG_MAX_BYTES ((long)64 << 20)

// Where a field lives, for messages: "<file>: field '<prefix><key>' ...".
typedef struct loc {
    const char *file, *prefix;
    char *err;
    size_t n;
} loc;

static int bad(const loc *l, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const loc *l, const char *key, const char *fmt, ...) {
    if (!l->err || !l->n) return -1;
    const char *pre = l->prefix ? l->prefix : "";
    int k;
    if (key[0]) k = snprintf(l->err, l->n, "%s: field '%s%s' ", l->file, pre, key);
    else if (pre[0]) k = snprintf(l->err, l->n, "%s: field '%.*s' ", l->file, (int)strlen(pre) - 1, pre);  // drop the '.'
    else k = snprintf(l->err, l->n, "%s: the config ", l->file);
    if (k >= 0 && (size_t)k < l->n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(l->err + k, l->n - (size_t)k, fmt, ap);
        va_end(ap);
    }
    return -1;
}

static const cJSON *field(const cJSON *j, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return v && !cJSON_IsNull(v) ? v : NULL;  // transformers treats null as "not set"
}

static bool as_int(const cJSON *v, int64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0) return false;
    *out = (int64_t)d;
    return true;
}

// An integer >= min; absent means dflt, or an error when required.
static int get_int(const cJSON *j, const char *key, int64_t *out, bool required, int64_t dflt, int64_t min,
                   const loc *l) {
    const cJSON *v = field(j, key);
    if (!v) {
        if (required) return bad(l, key, "is missing");
        *out = dflt;
        return 0;
    }
    if (!as_int(v, out)) return bad(l, key, "must be an integer");
    if (*out < min) return bad(l, key, "is %lld, must be >= %lld", (long long)*out, (long long)min);
    return 0;
}

static int get_pos_double(const cJSON *j, const char *key, double *out, double dflt, const loc *l) {
    const cJSON *v = field(j, key);
    if (!v) { *out = dflt; return 0; }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble <= 0)
        return bad(l, key, "must be a positive number");
    *out = v->valuedouble;
    return 0;
}

static int get_bool(const cJSON *j, const char *key, bool *out, bool dflt, const loc *l) {
    const cJSON *v = field(j, key);
    if (!v) { *out = dflt; return 0; }
    if (!cJSON_IsBool(v)) return bad(l, key, "must be true or false");
    *out = cJSON_IsTrue(v);
    return 0;
}

// A string field that must equal `want` when present.
static int want_string(const cJSON *j, const char *key, const char *want, const char *why, const loc *l) {
    const cJSON *v = field(j, key);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return bad(l, key, "must be a string");
    if (strcmp(v->valuestring, want) != 0) return bad(l, key, "is '%.64s': %s", v->valuestring, why);
    return 0;
}

// "torch_dtype" (transformers 4) or "dtype" (transformers 5).
static int get_dtype(const cJSON *j, char *out, size_t n, const loc *l) {
    out[0] = 0;
    const char *keys[] = {"torch_dtype", "dtype"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = field(j, keys[i]);
        if (!v) continue;
        if (!cJSON_IsString(v) || strlen(v->valuestring) >= n) return bad(l, keys[i], "must be a dtype name");
        snprintf(out, n, "%s", v->valuestring);
        return 0;
    }
    return 0;
}

static int get_token_id(const cJSON *j, const char *key, int64_t *out, const loc *l) {
    const cJSON *v = field(j, key);
    *out = -1;
    if (v && (!as_int(v, out) || *out < 0)) return bad(l, key, "must be a token id or null");
    return 0;
}

// ---- Qwen3 --------------------------------------------------------------------------------------------

static int qwen3_rope(s2s_qwen3_config *c, const cJSON *j, const loc *l) {
    c->rope_theta = 10000.0;
    if (get_pos_double(j, "rope_theta", &c->rope_theta, 10000.0, l)) return -1;
    const cJSON *rp = field(j, "rope_parameters");
    if (rp) {  // transformers 5 moves rope_theta here
        if (!cJSON_IsObject(rp)) return bad(l, "rope_parameters", "must be an object");
        loc sub = *l;
        char pre[128];
        snprintf(pre, sizeof pre, "%srope_parameters.", l->prefix ? l->prefix : "");
        sub.prefix = pre;
        if (want_string(rp, "rope_type", "default", "s2s implements plain RoPE only", &sub)) return -1;
        if (get_pos_double(rp, "rope_theta", &c->rope_theta, c->rope_theta, &sub)) return -1;
    }
    const cJSON *rs = field(j, "rope_scaling");
    if (rs) {
        if (!cJSON_IsObject(rs)) return bad(l, "rope_scaling", "must be an object or null");
        const cJSON *t = field(rs, "rope_type");
        if (!t) t = field(rs, "type");
        if (!cJSON_IsString(t) || strcmp(t->valuestring, "default") != 0)
            return bad(l, "rope_scaling", "is set: s2s implements plain RoPE only (rope_scaling must be null)");
    }
    return 0;
}

static int qwen3_from_json(s2s_qwen3_config *c, const cJSON *j, const loc *l) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return bad(l, "", "is not a JSON object");
    if (want_string(j, "model_type", "qwen3", "s2s implements Qwen3 (model_type \"qwen3\")", l)) return -1;
    if (get_int(j, "vocab_size", &c->vocab_size, true, 0, 1, l) ||
        get_int(j, "hidden_size", &c->hidden_size, true, 0, 1, l) ||
        get_int(j, "intermediate_size", &c->intermediate_size, true, 0, 1, l) ||
        get_int(j, "num_hidden_layers", &c->num_hidden_layers, true, 0, 1, l) ||
        get_int(j, "num_attention_heads", &c->num_attention_heads, true, 0, 1, l) ||
        get_int(j, "num_key_value_heads", &c->num_key_value_heads, false, c->num_attention_heads, 1, l) ||
        get_int(j, "head_dim", &c->head_dim, false, 128, 1, l) ||
        get_int(j, "max_position_embeddings", &c->max_position_embeddings, false, 32768, 1, l) ||
        get_pos_double(j, "rms_norm_eps", &c->rms_norm_eps, 1e-6, l) ||
        get_bool(j, "tie_word_embeddings", &c->tie_word_embeddings, false, l) || qwen3_rope(c, j, l) ||
        get_dtype(j, c->torch_dtype, sizeof c->torch_dtype, l) ||
        get_token_id(j, "bos_token_id", &c->bos_token_id, l) || get_token_id(j, "pad_token_id", &c->pad_token_id, l))
        return -1;
    if (c->num_attention_heads % c->num_key_value_heads)
        return bad(l, "num_key_value_heads", "(%lld) must divide num_attention_heads (%lld)",
                   (long long)c->num_key_value_heads, (long long)c->num_attention_heads);
    if (c->head_dim % 2) return bad(l, "head_dim", "must be even for rotate-half RoPE");
    bool flag = false;
    if (get_bool(j, "attention_bias", &flag, false, l)) return -1;
    if (flag) return bad(l, "attention_bias", "is true: Qwen3 attention has no biases and s2s implements none");
    if (get_bool(j, "use_sliding_window", &flag, false, l)) return -1;
    if (flag) return bad(l, "use_sliding_window", "is true: s2s implements full attention only");
    if (want_string(j, "hidden_act", "silu", "Qwen3's MLP is SwiGLU (silu)", l)) return -1;
    const cJSON *lt = field(j, "layer_types"), *x;
    if (lt) {
        if (!cJSON_IsArray(lt)) return bad(l, "layer_types", "must be a list");
        cJSON_ArrayForEach(x, lt)
            if (!cJSON_IsString(x) || strcmp(x->valuestring, "full_attention") != 0)
                return bad(l, "layer_types", "may only hold \"full_attention\" (s2s has no sliding-window layers)");
    }
    const cJSON *eos = field(j, "eos_token_id");
    if (eos) {
        const cJSON *one = eos;
        bool list = cJSON_IsArray(eos);
        if (list && cJSON_GetArraySize(eos) > S2S_CFG_MAX_EOS)
            return bad(l, "eos_token_id", "lists more than %d ids", S2S_CFG_MAX_EOS);
        for (one = list ? eos->child : eos; one; one = list ? one->next : NULL) {
            int64_t id;
            if (!as_int(one, &id) || id < 0) return bad(l, "eos_token_id", "must be a token id or a list of them");
            c->eos_token_id[c->n_eos++] = id;
        }
    }
    return 0;
}

int s2s_qwen3_config_from_json(s2s_qwen3_config *c, const cJSON *j, const char *file, const char *prefix, char *err,
                               size_t n) {
    loc l = {file, prefix, err, n};
    return qwen3_from_json(c, j, &l);
}

static void add_int(cJSON *o, const char *k, int64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

static void add_id_or_null(cJSON *o, const char *k, int64_t v) {
    if (v < 0) cJSON_AddNullToObject(o, k);
    else add_int(o, k, v);
}

cJSON *s2s_qwen3_config_to_json(const s2s_qwen3_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen3ForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "qwen3");
    add_int(o, "vocab_size", c->vocab_size);
    add_int(o, "hidden_size", c->hidden_size);
    add_int(o, "intermediate_size", c->intermediate_size);
    add_int(o, "num_hidden_layers", c->num_hidden_layers);
    add_int(o, "num_attention_heads", c->num_attention_heads);
    add_int(o, "num_key_value_heads", c->num_key_value_heads);
    add_int(o, "head_dim", c->head_dim);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    add_int(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "rms_norm_eps", c->rms_norm_eps);
    // Top-level rope_theta with rope_scaling null is what transformers 4.x reads and 5.x converts.
    cJSON_AddNumberToObject(o, "rope_theta", c->rope_theta);
    cJSON_AddNullToObject(o, "rope_scaling");
    cJSON_AddBoolToObject(o, "attention_bias", false);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddBoolToObject(o, "use_sliding_window", false);
    cJSON_AddNullToObject(o, "sliding_window");
    add_int(o, "max_window_layers", c->num_hidden_layers);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    add_id_or_null(o, "bos_token_id", c->bos_token_id);
    if (c->n_eos == 0) cJSON_AddNullToObject(o, "eos_token_id");
    else if (c->n_eos == 1) add_int(o, "eos_token_id", c->eos_token_id[0]);
    else {
        cJSON *a = cJSON_AddArrayToObject(o, "eos_token_id");
        for (int i = 0; i < c->n_eos; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)c->eos_token_id[i]));
    }
    add_id_or_null(o, "pad_token_id", c->pad_token_id);
    if (c->torch_dtype[0]) cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    cJSON_AddBoolToObject(o, "use_cache", true);
    return o;
}

// ---- Qwen2-Audio encoder ----------------------------------------------------------------------------

static int encoder_fields(s2s_audio_encoder_config *c, const cJSON *j, const loc *l) {
    if (get_int(j, "num_mel_bins", &c->num_mel_bins, false, 128, 1, l) ||
        get_int(j, "d_model", &c->d_model, false, 1280, 1, l) ||
        get_int(j, "encoder_layers", &c->encoder_layers, false, 32, 1, l) ||
        get_int(j, "encoder_attention_heads", &c->encoder_attention_heads, false, 20, 1, l) ||
        get_int(j, "encoder_ffn_dim", &c->encoder_ffn_dim, false, 5120, 1, l) ||
        get_int(j, "max_source_positions", &c->max_source_positions, false, 1500, 1, l) ||
        want_string(j, "activation_function", "gelu", "the Qwen2-Audio encoder uses exact (erf) GELU", l))
        return -1;
    if (c->d_model % c->encoder_attention_heads)
        return bad(l, "encoder_attention_heads", "(%lld) must divide d_model (%lld)",
                   (long long)c->encoder_attention_heads, (long long)c->d_model);
    return 0;
}

static int encoder_from_json(s2s_audio_encoder_config *c, const cJSON *j, const loc *l) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return bad(l, "", "is not a JSON object");
    if (get_dtype(j, c->torch_dtype, sizeof c->torch_dtype, l)) return -1;
    const cJSON *mt = field(j, "model_type");
    if (mt && !cJSON_IsString(mt)) return bad(l, "model_type", "must be a string");
    const char *type = mt ? mt->valuestring : "qwen2_audio_encoder";  // OpenS2S's default when absent
    if (strcmp(type, "qwen2_audio") == 0) {  // the full Qwen2-Audio model: its encoder is audio_config
        const cJSON *ac = field(j, "audio_config");
        char pre[128];
        snprintf(pre, sizeof pre, "%saudio_config.", l->prefix ? l->prefix : "");
        loc sub = {l->file, pre, l->err, l->n};
        char dt[16];
        memcpy(dt, c->torch_dtype, sizeof dt);
        if (!ac) return encoder_fields(c, NULL, &sub);  // no audio_config: transformers' defaults throughout
        if (!cJSON_IsObject(ac)) return bad(l, "audio_config", "must be an object");
        if (encoder_from_json(c, ac, &sub)) return -1;
        if (!c->torch_dtype[0]) memcpy(c->torch_dtype, dt, sizeof dt);
        return 0;
    }
    if (strcmp(type, "qwen2_audio_encoder") != 0)
        return bad(l, "model_type", "is '%.64s': s2s implements the Qwen2-Audio encoder (qwen2_audio_encoder or "
                   "qwen2_audio)", type);
    return encoder_fields(c, j, l);
}

int s2s_audio_encoder_config_from_json(s2s_audio_encoder_config *c, const cJSON *j, const char *file,
                                       const char *prefix, char *err, size_t n) {
    loc l = {file, prefix, err, n};
    return encoder_from_json(c, j, &l);
}

cJSON *s2s_audio_encoder_config_to_json(const s2s_audio_encoder_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model_type", "qwen2_audio_encoder");
    add_int(o, "num_mel_bins", c->num_mel_bins);
    add_int(o, "d_model", c->d_model);
    add_int(o, "encoder_layers", c->encoder_layers);
    add_int(o, "encoder_attention_heads", c->encoder_attention_heads);
    add_int(o, "encoder_ffn_dim", c->encoder_ffn_dim);
    add_int(o, "max_source_positions", c->max_source_positions);
    cJSON_AddStringToObject(o, "activation_function", "gelu");
    cJSON_AddNumberToObject(o, "dropout", 0.0);
    cJSON_AddNumberToObject(o, "attention_dropout", 0.0);
    cJSON_AddNumberToObject(o, "activation_dropout", 0.0);
    cJSON_AddNumberToObject(o, "encoder_layerdrop", 0.0);
    cJSON_AddBoolToObject(o, "scale_embedding", false);
    cJSON_AddNumberToObject(o, "initializer_range", 0.02);
    if (c->torch_dtype[0]) cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype);
    return o;
}

// ---- OmniSpeechConfig -------------------------------------------------------------------------------

static int parse_kernels(s2s_omnispeech_config *c, const cJSON *j, const loc *l) {
    const cJSON *v = field(j, "conv_kernel_sizes");
    c->n_conv = 0;
    if (!v) {
        c->conv_kernel_sizes[0] = c->conv_kernel_sizes[1] = 5;  // OpenS2S default "5,5"
        c->n_conv = 2;
        return 0;
    }
    if (cJSON_IsArray(v)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, v) {
            int64_t k;
            if (c->n_conv == S2S_CFG_MAX_CONV) return bad(l, "conv_kernel_sizes", "lists more than %d", S2S_CFG_MAX_CONV);
            if (!as_int(x, &k) || k < 1) return bad(l, "conv_kernel_sizes", "must hold positive integers");
            c->conv_kernel_sizes[c->n_conv++] = k;
        }
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (*s) {
            char *end;
            errno = 0;
            long long k = strtoll(s, &end, 10);
            if (end == s || errno || k < 1 || (*end && *end != ','))
                return bad(l, "conv_kernel_sizes", "'%.64s' is not a list like \"5,5\"", v->valuestring);
            if (c->n_conv == S2S_CFG_MAX_CONV) return bad(l, "conv_kernel_sizes", "lists more than %d", S2S_CFG_MAX_CONV);
            c->conv_kernel_sizes[c->n_conv++] = k;
            s = *end ? end + 1 : end;
            if (*end && !*s) return bad(l, "conv_kernel_sizes", "'%.64s' ends with a comma", v->valuestring);
        }
    } else {
        return bad(l, "conv_kernel_sizes", "must be a string like \"5,5\" or a list of integers");
    }
    if (c->n_conv == 0) return bad(l, "conv_kernel_sizes", "is empty");
    return 0;
}

static int parse_interleave(s2s_omnispeech_config *c, const cJSON *j, const loc *l) {
    const cJSON *v = field(j, "interleave_strategy");
    c->interleave_text = 1;
    c->interleave_speech = 2;
    if (!v) return 0;
    long long m, k;
    int end = 0;
    if (!cJSON_IsString(v) || sscanf(v->valuestring, "%lld:%lld%n", &m, &k, &end) != 2 || v->valuestring[end] ||
        m < 1 || k < 1)
        return bad(l, "interleave_strategy", "must be a string \"M:N\" of two positive integers (text:speech)");
    c->interleave_text = m;
    c->interleave_speech = k;
    return 0;
}

static int omni_from_json(s2s_omnispeech_config *c, const cJSON *j, const loc *l) {
    memset(c, 0, sizeof *c);
    if (!cJSON_IsObject(j)) return bad(l, "", "is not a JSON object");
    const char *sub_keys[] = {"audio_encoder_config", "llm_config", "tts_lm_config"};
    const cJSON *sub[3];
    for (int i = 0; i < 3; i++) {
        sub[i] = field(j, sub_keys[i]);
        if (!sub[i]) {
            const cJSON *mt = field(j, "model_type");
            return bad(l, sub_keys[i], "is missing: not an OpenS2S OmniSpeechConfig%s%.64s%s",
                       cJSON_IsString(mt) ? " (model_type '" : "", cJSON_IsString(mt) ? mt->valuestring : "",
                       cJSON_IsString(mt) ? "')" : "");
        }
        if (!cJSON_IsObject(sub[i])) return bad(l, sub_keys[i], "must be an object");
    }
    char pre[3][128];
    loc subl[3];
    for (int i = 0; i < 3; i++) {
        snprintf(pre[i], sizeof pre[i], "%s%s.", l->prefix ? l->prefix : "", sub_keys[i]);
        subl[i] = (loc){l->file, pre[i], l->err, l->n};
    }
    if (encoder_from_json(&c->audio, sub[0], &subl[0]) || qwen3_from_json(&c->llm, sub[1], &subl[1]) ||
        qwen3_from_json(&c->tts, sub[2], &subl[2]))
        return -1;
    const cJSON *lora = field(j, "lora_config");
    if (lora && !cJSON_IsFalse(lora) && !(cJSON_IsObject(lora) && !lora->child))
        return bad(l, "lora_config", "is set: the checkpoint holds un-merged LoRA weights; merge them first "
                   "(OpenS2S merge_lora)");
    if (parse_kernels(c, j, l) || parse_interleave(c, j, l) ||
        get_int(j, "adapter_inner_dim", &c->adapter_inner_dim, false, 512, 1, l) ||
        get_dtype(j, c->torch_dtype, sizeof c->torch_dtype, l))
        return -1;
    return 0;
}

int s2s_omnispeech_config_from_json(s2s_omnispeech_config *c, const cJSON *j, const char *file, const char *prefix,
                                    char *err, size_t n) {
    loc l = {file, prefix, err, n};
    return omni_from_json(c, j, &l);
}

cJSON *s2s_omnispeech_config_to_json(const s2s_omnispeech_config *c) {
    cJSON *o = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("OmniSpeechModel"));
    cJSON_AddItemToObject(o, "audio_encoder_config", s2s_audio_encoder_config_to_json(&c->audio));
    cJSON_AddItemToObject(o, "llm_config", s2s_qwen3_config_to_json(&c->llm));
    cJSON_AddItemToObject(o, "tts_lm_config", s2s_qwen3_config_to_json(&c->tts));
    cJSON_AddNullToObject(o, "lora_config");
    char buf[S2S_CFG_MAX_CONV * 24] = "";
    size_t at = 0;
    for (int i = 0; i < c->n_conv; i++)  // a string: OpenS2S's Subsampler splits it on ','
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%lld", i ? "," : "", (long long)c->conv_kernel_sizes[i]);
    cJSON_AddStringToObject(o, "conv_kernel_sizes", buf);
    add_int(o, "adapter_inner_dim", c->adapter_inner_dim);
    snprintf(buf, sizeof buf, "%lld:%lld", (long long)c->interleave_text, (long long)c->interleave_speech);
    cJSON_AddStringToObject(o, "interleave_strategy", buf);
    if (c->torch_dtype[0]) cJSON_AddStringToObject(o, "torch_dtype", c->torch_dtype);
    return o;
}

// ---- files ------------------------------------------------------------------------------------------

// Resolves a directory to its config.json; returns the parsed JSON or NULL with err set. *file is malloc'd.
static cJSON *read_json(const char *path, char **file, char *err, size_t n) {
    struct stat st;
    size_t len = strlen(path) + 16;
    *file = s2s_malloc(len);
    bool dir = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
    snprintf(*file, len, dir ? "%s/config.json" : "%s", path);
    FILE *fp = fopen(*file, "rb");
    if (!fp) {
        s2s_errf(err, n, "%s: cannot open: %s", *file, strerror(errno));
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long size = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (size < 0 || size > CONFIG_MAX_BYTES) {
        fclose(fp);
        s2s_errf(err, n, "%s: %ld bytes is not a plausible config.json", *file, size);
        return NULL;
    }
    char *text = s2s_malloc((size_t)size + 1);
    size_t got = fread(text, 1, (size_t)size, fp);
    fclose(fp);
    text[got] = 0;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (!j) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        s2s_errf(err, n, "%s: not valid JSON (near byte %zu)", *file, at);
    } else if (!cJSON_IsObject(j)) {
        s2s_errf(err, n, "%s: not a JSON object", *file);
        cJSON_Delete(j);
        j = NULL;
    }
    free(text);
    return j;
}

int s2s_qwen3_config_read(s2s_qwen3_config *c, const char *path, char *err, size_t n) {
    char *file;
    cJSON *j = read_json(path, &file, err, n);
    int rc = j ? s2s_qwen3_config_from_json(c, j, file, NULL, err, n) : -1;
    cJSON_Delete(j);
    free(file);
    return rc;
}

int s2s_audio_encoder_config_read(s2s_audio_encoder_config *c, const char *path, char *err, size_t n) {
    char *file;
    cJSON *j = read_json(path, &file, err, n);
    int rc = j ? s2s_audio_encoder_config_from_json(c, j, file, NULL, err, n) : -1;
    cJSON_Delete(j);
    free(file);
    return rc;
}

int s2s_omnispeech_config_read(s2s_omnispeech_config *c, const char *path, char *err, size_t n) {
    char *file;
    cJSON *j = read_json(path, &file, err, n);
    int rc = j ? s2s_omnispeech_config_from_json(c, j, file, NULL, err, n) : -1;
    cJSON_Delete(j);
    free(file);
    return rc;
}

int s2s_omnispeech_config_from_hf(s2s_omnispeech_config *c, const char *audio_dir, const char *llm_dir,
                                  const char *tts_dir, char *err, size_t n) {
    memset(c, 0, sizeof *c);
    if (s2s_audio_encoder_config_read(&c->audio, audio_dir, err, n) || s2s_qwen3_config_read(&c->llm, llm_dir, err, n) ||
        s2s_qwen3_config_read(&c->tts, tts_dir, err, n))
        return -1;
    c->n_conv = 2;
    c->conv_kernel_sizes[0] = c->conv_kernel_sizes[1] = 5;
    c->adapter_inner_dim = 512;
    c->interleave_text = 1;
    c->interleave_speech = 2;
    return 0;
}

static int write_json(cJSON *j, const char *path, char *err, size_t n) {
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    size_t len = strlen(text);
    char *buf = s2s_malloc(len + 2);
    memcpy(buf, text, len);
    buf[len] = '\n';
    free(text);
    int rc = s2s_write_file_atomic(path, buf, len + 1, err, n);
    free(buf);
    return rc;
}

int s2s_qwen3_config_write(const s2s_qwen3_config *c, const char *path, char *err, size_t n) {
    return write_json(s2s_qwen3_config_to_json(c), path, err, n);
}

int s2s_audio_encoder_config_write(const s2s_audio_encoder_config *c, const char *path, char *err, size_t n) {
    return write_json(s2s_audio_encoder_config_to_json(c), path, err, n);
}

int s2s_omnispeech_config_write(const s2s_omnispeech_config *c, const char *path, char *err, size_t n) {
    return write_json(s2s_omnispeech_config_to_json(c), path, err, n);
}
