// tok_load.c — reads a Hugging Face tokenizer.json (+ tokenizer_config.json) into an s2s_tokenizer.
// Every component is checked against what the encoder implements; anything else is refused with the file
// and the field, because a silently different pipeline would give ids that differ from HF.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include "tok_internal.h"

// Qwen2's split regex is given in the file; GPT-2's is implied by ByteLevel(use_regex = true).
static const char GPT2_PATTERN[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static char *read_file(const char *path, size_t *len, s2s_derr *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        s2s_derr_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 1 << 20;
            char *p = realloc(buf, cap + 1);
            if (!p) {
                free(buf);
                fclose(f);
                s2s_derr_set(err, "%s: out of memory", path);
                return NULL;
            }
            buf = p;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        s2s_derr_set(err, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static cJSON *parse_json(const char *path, s2s_derr *err) {
    size_t n;
    char *text = read_file(path, &n, err);
    if (!text) return NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, n, &end, 0);
    if (!j) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < off && i < n; i++) line += text[i] == '\n';
        s2s_derr_set(err, "%s: invalid JSON near line %zu (byte %zu)", path, line, off);
    } else if (!cJSON_IsObject(j)) {
        s2s_derr_set(err, "%s: top level is not a JSON object", path);
        cJSON_Delete(j);
        j = NULL;
    }
    free(text);
    return j;
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static int is_null_or_absent(const cJSON *o) { return !o || cJSON_IsNull(o); }

// Boolean field with a default; anything but true/false/null is an error.
static int get_bool(const cJSON *o, const char *key, int dflt, int *out, const char *file, const char *where,
                    s2s_derr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = dflt;
    if (is_null_or_absent(v)) return 0;
    else if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else return s2s_derr_set(err, "%s: %s.%s: expected true or false", file, where, key);
    return 0;
}

static int arena_add(s2s_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (t->arena_n + n + 1 > t->arena_cap) {
        size_t c = t->arena_cap ? t->arena_cap * 2 : 1 << 16;
        while (c < t->arena_n + n + 1) c *= 2;
        char *p = realloc(t->arena, c);
        if (!p) return -1;
        t->arena = p;
        t->arena_cap = c;
    }
    if (t->arena_n > UINT32_MAX - n - 1) return -1;
    memcpy(t->arena + t->arena_n, s, n);
    t->arena[t->arena_n + n] = 0;
    *off = (uint32_t)t->arena_n;
    t->arena_n += n + 1;
    return 0;
}

// ---- pre-tokenizer / normalizer / decoder ---------------------------------------------------------------

// HF's regexes run on Oniguruma, whose \s is Unicode White_Space; PCRE2's \s (with UCP) also takes U+180E.
// Spelling the property out makes the two agree, inside and outside character classes.
static char *onig_to_pcre2(const char *pat, size_t len, size_t *out_len) {
    char *o = malloc(len * 8 + 1);
    if (!o) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < len; i++) {
        if (pat[i] == '\\' && i + 1 < len && (pat[i + 1] == 's' || pat[i + 1] == 'S')) {
            k += (size_t)sprintf(o + k, "\\%c{White_Space}", pat[i + 1] == 's' ? 'p' : 'P');
            i++;
        } else if (pat[i] == '\\' && i + 1 < len) {  // any other escape pair is copied whole
            o[k++] = pat[i++];
            o[k++] = pat[i];
        } else {
            o[k++] = pat[i];
        }
    }
    o[k] = 0;
    *out_len = k;
    return o;
}

static int add_regex(s2s_tokenizer *t, const char *pat, size_t len, int literal, const char *where,
                     s2s_derr *err) {
    if (t->n_re == TOK_MAX_REGEX)
        return s2s_derr_set(err, "%s: %s: more than %d splitting steps", t->file, where, TOK_MAX_REGEX);
    int code;
    PCRE2_SIZE off;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : 0);
    size_t plen = len;
    char *p = literal ? NULL : onig_to_pcre2(pat, len, &plen);
    if (!literal && !p) return s2s_derr_set(err, "%s: out of memory", t->file);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(literal ? pat : p), plen, opts, &code, &off, NULL);
    free(p);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return s2s_derr_set(err, "%s: %s: regex does not compile at offset %zu: %s", t->file, where, (size_t)off,
                            (char *)msg);
    }
    // where JIT is unavailable the interpreter does the same work, slower
    size_t jit_size = 0;
    t->re_jit[t->n_re] = !pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) &&
                         !pcre2_pattern_info(re, PCRE2_INFO_JITSIZE, &jit_size) && jit_size > 0;
    t->re[t->n_re++] = re;
    return 0;
}

static int load_pre_tokenizer(s2s_tokenizer *t, const cJSON *p, const char *where, int *seen_byte_level,
                              s2s_derr *err) {
    const char *type = type_of(p);
    if (!type) return s2s_derr_set(err, "%s: %s: missing \"type\"", t->file, where);
    if (*seen_byte_level)
        return s2s_derr_set(err, "%s: %s: %s after ByteLevel is not supported (ByteLevel must come last)", t->file,
                            where, type);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list)) return s2s_derr_set(err, "%s: %s.pretokenizers: expected an array", t->file, where);
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) {
            char w[128];
            snprintf(w, sizeof w, "%s.pretokenizers[%d]", where, i++);
            if (load_pre_tokenizer(t, c, w, seen_byte_level, err)) return -1;
        }
        return 0;
    }
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = pat ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const cJSON *lit = pat ? cJSON_GetObjectItemCaseSensitive(pat, "String") : NULL;
        const cJSON *beh = cJSON_GetObjectItemCaseSensitive(p, "behavior");
        int invert;
        if (!cJSON_IsString(re) && !cJSON_IsString(lit))
            return s2s_derr_set(err, "%s: %s.pattern: expected {\"Regex\": ...} or {\"String\": ...}", t->file, where);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated"))
            return s2s_derr_set(err, "%s: %s.behavior: only \"Isolated\" is supported", t->file, where);
        if (get_bool(p, "invert", 0, &invert, t->file, where, err)) return -1;
        if (invert) return s2s_derr_set(err, "%s: %s.invert: true is not supported", t->file, where);
        const char *s = cJSON_IsString(re) ? re->valuestring : lit->valuestring;
        return add_regex(t, s, strlen(s), !cJSON_IsString(re), where, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        int use_regex, prefix;
        if (get_bool(p, "use_regex", 1, &use_regex, t->file, where, err)) return -1;
        if (get_bool(p, "add_prefix_space", 1, &prefix, t->file, where, err)) return -1;
        if (prefix && t->n_re)
            return s2s_derr_set(err, "%s: %s.add_prefix_space: only supported when ByteLevel is the only splitter",
                                t->file, where);
        t->add_prefix_space = prefix;
        *seen_byte_level = 1;
        if (use_regex) return add_regex(t, GPT2_PATTERN, sizeof GPT2_PATTERN - 1, 0, where, err);
        return 0;
    }
    return s2s_derr_set(err, "%s: %s: pre-tokenizer type \"%s\" is not supported (Split, ByteLevel, Sequence)",
                        t->file, where, type);
}

static int load_normalizer(s2s_tokenizer *t, const cJSON *n, const char *where, s2s_derr *err) {
    if (is_null_or_absent(n)) return 0;
    const char *type = type_of(n);
    if (type && !strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list)) return s2s_derr_set(err, "%s: %s.normalizers: expected an array", t->file, where);
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, list) {
            char w[128];
            snprintf(w, sizeof w, "%s.normalizers[%d]", where, i++);
            if (load_normalizer(t, c, w, err)) return -1;
        }
        return 0;
    }
    return s2s_derr_set(err, "%s: %s: normalizer type \"%s\" is not supported (NFC, Sequence, null)", t->file, where,
                        type ? type : "(missing)");
}

static int load_pipeline(s2s_tokenizer *t, const cJSON *root, s2s_derr *err) {
    if (load_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), "normalizer", err)) return -1;
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    int byte_level = 0;
    if (is_null_or_absent(pre)) return s2s_derr_set(err, "%s: pre_tokenizer: null; a ByteLevel pre-tokenizer is required", t->file);
    if (load_pre_tokenizer(t, pre, "pre_tokenizer", &byte_level, err)) return -1;
    if (!byte_level) return s2s_derr_set(err, "%s: pre_tokenizer: no ByteLevel step; only byte-level BPE is supported", t->file);

    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    if (is_null_or_absent(dec)) t->byte_decoder = 0;
    else if (type_of(dec) && !strcmp(type_of(dec), "ByteLevel")) t->byte_decoder = 1;
    else return s2s_derr_set(err, "%s: decoder: type \"%s\" is not supported (ByteLevel, null)", t->file,
                             type_of(dec) ? type_of(dec) : "(missing)");

    // A post-processor that adds tokens (TemplateProcessing...) would change encode(); ByteLevel adds none.
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!is_null_or_absent(post) && !(type_of(post) && !strcmp(type_of(post), "ByteLevel")))
        return s2s_derr_set(err, "%s: post_processor: type \"%s\" is not supported (ByteLevel, null)", t->file,
                            type_of(post) ? type_of(post) : "(missing)");
    if (!is_null_or_absent(cJSON_GetObjectItemCaseSensitive(root, "truncation")))
        return s2s_derr_set(err, "%s: truncation: must be null (s2s does not truncate)", t->file);
    return 0;
}

// ---- model: vocab and merges ----------------------------------------------------------------------------

static int check_empty_string(const s2s_tokenizer *t, const cJSON *m, const char *key, s2s_derr *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    if (is_null_or_absent(v) || (cJSON_IsString(v) && !v->valuestring[0])) return 0;
    return s2s_derr_set(err, "%s: model.%s: only null or \"\" is supported", t->file, key);
}

static int load_vocab(s2s_tokenizer *t, const cJSON *vocab, int32_t *max_id, s2s_derr *err) {
    if (!cJSON_IsObject(vocab)) return s2s_derr_set(err, "%s: model.vocab: expected an object of token -> id", t->file);
    if (tok_strmap_init(&t->vocab, (uint32_t)cJSON_GetArraySize(vocab)))
        return s2s_derr_set(err, "%s: out of memory", t->file);
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        double d = v->valuedouble;
        if (!cJSON_IsNumber(v) || d < 0 || d > INT32_MAX - 1 || d != (double)(int64_t)d)
            return s2s_derr_set(err, "%s: model.vocab[\"%.64s\"]: id must be an integer in [0, 2^31-1)", t->file,
                                v->string);
        if (tok_strmap_put(&t->vocab, v->string, strlen(v->string), (int32_t)d))
            return s2s_derr_set(err, "%s: out of memory", t->file);
        if ((int32_t)d > *max_id) *max_id = (int32_t)d;
    }
    t->n_model = (int32_t)t->vocab.n;
    if (t->vocab.n != (uint32_t)cJSON_GetArraySize(vocab))
        return s2s_derr_set(err, "%s: model.vocab: duplicate token", t->file);
    return 0;
}

static int merge_id(s2s_tokenizer *t, const char *s, size_t n, int idx, s2s_derr *err) {
    int32_t id = tok_strmap_get(&t->vocab, s, n, -1);
    if (id < 0) s2s_derr_set(err, "%s: model.merges[%d]: token \"%.*s\" is not in model.vocab", t->file, idx, (int)(n < 64 ? n : 64), s);
    return id;
}

static int load_merges(s2s_tokenizer *t, const cJSON *merges, s2s_derr *err) {
    if (!cJSON_IsArray(merges)) return s2s_derr_set(err, "%s: model.merges: expected an array", t->file);
    if (tok_u64map_init(&t->merges, (uint32_t)cJSON_GetArraySize(merges)))
        return s2s_derr_set(err, "%s: out of memory", t->file);
    char buf[1024];
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges) {
        const char *a, *b;
        size_t na, nb;
        if (cJSON_IsString(m)) {  // legacy "a b"
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return s2s_derr_set(err, "%s: model.merges[%d]: \"%.64s\" is not two tokens separated by one space",
                                    t->file, i, m->valuestring);
            a = m->valuestring, na = (size_t)(sp - a), b = sp + 1, nb = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {  // ["a", "b"]
            a = m->child->valuestring, na = strlen(a), b = m->child->next->valuestring, nb = strlen(b);
        } else {
            return s2s_derr_set(err, "%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", t->file, i);
        }
        int32_t ia = merge_id(t, a, na, i, err), ib = ia < 0 ? -1 : merge_id(t, b, nb, i, err);
        if (ib < 0) return -1;
        if (na + nb > sizeof buf)
            return s2s_derr_set(err, "%s: model.merges[%d]: merged token longer than %zu bytes", t->file, i, sizeof buf);
        memcpy(buf, a, na);
        memcpy(buf + na, b, nb);
        int32_t im = tok_strmap_get(&t->vocab, buf, na + nb, -1);
        if (im < 0)
            return s2s_derr_set(err, "%s: model.merges[%d]: merged token \"%.*s\" is not in model.vocab", t->file, i,
                                (int)((na + nb) < 64 ? na + nb : 64), buf);
        // a repeated pair keeps its last rank, as HF's HashMap collect does
        if (tok_u64map_put(&t->merges, (uint64_t)(uint32_t)ia << 32 | (uint32_t)ib, i, im))
            return s2s_derr_set(err, "%s: out of memory", t->file);
        i++;
    }
    return 0;
}

static int load_model(s2s_tokenizer *t, const cJSON *model, int32_t *max_id, s2s_derr *err) {
    if (!cJSON_IsObject(model)) return s2s_derr_set(err, "%s: model: missing or not an object", t->file);
    const char *type = type_of(model);
    if (type && strcmp(type, "BPE"))
        return s2s_derr_set(err, "%s: model.type: \"%s\" is not supported (BPE)", t->file, type);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (!is_null_or_absent(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return s2s_derr_set(err, "%s: model.dropout: BPE dropout is not supported", t->file);
    if (!is_null_or_absent(cJSON_GetObjectItemCaseSensitive(model, "unk_token")))
        return s2s_derr_set(err, "%s: model.unk_token: must be null for byte-level BPE", t->file);
    if (check_empty_string(t, model, "continuing_subword_prefix", err)) return -1;
    if (check_empty_string(t, model, "end_of_word_suffix", err)) return -1;
    int byte_fallback;
    if (get_bool(model, "byte_fallback", 0, &byte_fallback, t->file, "model", err)) return -1;
    if (byte_fallback) return s2s_derr_set(err, "%s: model.byte_fallback: true is not supported", t->file);
    if (get_bool(model, "ignore_merges", 0, &t->ignore_merges, t->file, "model", err)) return -1;
    if (load_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), max_id, err)) return -1;
    if (load_merges(t, cJSON_GetObjectItemCaseSensitive(model, "merges"), err)) return -1;
    for (int b = 0; b < 256; b++) {
        char s[4];
        int n = tok_utf8_put(s, tok_byte_to_cp(b));
        t->byte_id[b] = tok_strmap_get(&t->vocab, s, (size_t)n, -1);
    }
    return 0;
}

// ---- added tokens ------------------------------------------------------------------------------------------

// HF ignores the ids written in added_tokens and re-assigns them as it adds the tokens in order: a token
// already known keeps its id, a new one gets max(added ids) + 1 (or the model vocabulary size). We do the
// same so that a file whose ids disagree still gives HF's ids.
static int load_added(s2s_tokenizer *t, const cJSON *list, int32_t *max_id, s2s_derr *err) {
    if (is_null_or_absent(list)) return 0;
    if (!cJSON_IsArray(list)) return s2s_derr_set(err, "%s: added_tokens: expected an array", t->file);
    int n = cJSON_GetArraySize(list);
    t->added = calloc((size_t)n + 1, sizeof *t->added);
    if (!t->added || tok_strmap_init(&t->added_map, (uint32_t)n + 1)) return s2s_derr_set(err, "%s: out of memory", t->file);
    int32_t max_added = -1;
    int i = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, list) {
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%d]", i++);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        if (!cJSON_IsObject(a) || !cJSON_IsString(content))
            return s2s_derr_set(err, "%s: %s: expected an object with a string \"content\"", t->file, where);
        const cJSON *jid = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!cJSON_IsNumber(jid) || jid->valuedouble < 0)
            return s2s_derr_set(err, "%s: %s.id: expected a non-negative integer", t->file, where);
        tok_added tk = {0};
        int special, normalized, lstrip, rstrip, single;
        if (get_bool(a, "special", 0, &special, t->file, where, err) ||
            get_bool(a, "normalized", !special, &normalized, t->file, where, err) ||
            get_bool(a, "lstrip", 0, &lstrip, t->file, where, err) ||
            get_bool(a, "rstrip", 0, &rstrip, t->file, where, err) ||
            get_bool(a, "single_word", 0, &single, t->file, where, err))
            return -1;
        tk.special = (uint8_t)special, tk.normalized = (uint8_t)normalized, tk.lstrip = (uint8_t)lstrip;
        tk.rstrip = (uint8_t)rstrip, tk.single_word = (uint8_t)single;
        const char *c = content->valuestring;
        size_t len = strlen(c);
        if (!len) continue;  // HF skips empty tokens
        int32_t prev = tok_strmap_get(&t->added_map, c, len, -1);
        if (prev >= 0) {  // same content again: same id, new flags
            tk.id = t->added[prev].id;
            t->added[prev] = tk;
            continue;
        }
        int32_t id = tok_strmap_get(&t->vocab, c, len, -1);
        if (id < 0) id = max_added >= 0 && (max_added >= t->n_model || t->n_model == 0) ? max_added + 1 : t->n_model;
        tk.id = id;
        if (id > max_added) max_added = id;
        if (id > *max_id) *max_id = id;
        if (tok_strmap_put(&t->added_map, c, len, t->n_added)) return s2s_derr_set(err, "%s: out of memory", t->file);
        t->added[t->n_added++] = tk;
    }
    return 0;
}

// ---- id tables ------------------------------------------------------------------------------------------

// HF's ByteLevel decoder maps each character back to its byte; a token with any character outside the
// byte table is emitted as its UTF-8 text instead.
static int set_id(s2s_tokenizer *t, int32_t id, const char *s, size_t n) {
    if (arena_add(t, s, n, &t->tok_off[id])) return -1;
    if (!t->byte_decoder) {
        t->dec_off[id] = t->tok_off[id];
        t->dec_len[id] = (uint32_t)n;
        return 0;
    }
    char *tmp = malloc(n + 1);
    if (!tmp) return -1;
    size_t k = 0;
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        int adv, b = tok_cp_to_byte(tok_utf8_get(p + i, &adv));
        if (b < 0) {
            memcpy(tmp, s, n);
            k = n;
            break;
        }
        tmp[k++] = (char)b;
        i += (size_t)adv;
    }
    int r = arena_add(t, tmp, k, &t->dec_off[id]);
    t->dec_len[id] = (uint32_t)k;
    free(tmp);
    return r;
}

static int build_id_tables(s2s_tokenizer *t, int32_t max_id, s2s_derr *err) {
    t->n_ids = max_id + 1;
    size_t n = (size_t)t->n_ids;
    t->tok_off = malloc(n * sizeof *t->tok_off);
    t->dec_off = malloc(n * sizeof *t->dec_off);
    t->dec_len = calloc(n, sizeof *t->dec_len);
    t->special = calloc(n, 1);
    if (!t->tok_off || !t->dec_off || !t->dec_len || !t->special) return s2s_derr_set(err, "%s: out of memory", t->file);
    memset(t->tok_off, 0xFF, n * sizeof *t->tok_off);
    memset(t->dec_off, 0xFF, n * sizeof *t->dec_off);
    for (uint32_t i = 0; i < t->vocab.n; i++) {
        const struct tok_strent *e = &t->vocab.ent[i];
        if (t->tok_off[e->val] != UINT32_MAX)
            return s2s_derr_set(err, "%s: model.vocab: id %d is given to two tokens", t->file, e->val);
        if (set_id(t, e->val, t->vocab.arena + e->off, e->len)) return s2s_derr_set(err, "%s: out of memory", t->file);
    }
    // added tokens override the model's string for their id, as HF's id_to_token looks them up first
    for (uint32_t i = 0; i < t->added_map.n; i++) {
        const struct tok_strent *e = &t->added_map.ent[i];
        const tok_added *a = &t->added[e->val];
        if (set_id(t, a->id, t->added_map.arena + e->off, e->len)) return s2s_derr_set(err, "%s: out of memory", t->file);
        t->special[a->id] = a->special;
    }
    return 0;
}

// ---- tokenizer_config.json ------------------------------------------------------------------------------

static int config_token(s2s_tokenizer *t, const cJSON *cfg, const char *key, const char *cfg_path, int32_t *out,
                        s2s_derr *err) {
    *out = -1;
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, key) : NULL;
    if (is_null_or_absent(v)) return 0;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v))
        return s2s_derr_set(err, "%s: %s: expected a token string or {\"content\": ...}", cfg_path, key);
    *out = s2s_tok_token_to_id(t, v->valuestring);
    if (*out < 0)
        return s2s_derr_set(err, "%s: %s: \"%.64s\" is not a token of %s", cfg_path, key, v->valuestring, t->file);
    return 0;
}

// ---- public -----------------------------------------------------------------------------------------------

s2s_tokenizer *s2s_tok_load(const char *path, s2s_derr *err) {
    s2s_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        s2s_derr_set(err, "%s: out of memory", path);
        return NULL;
    }
    char cfg_path[sizeof t->file + 32];
    struct stat st;
    if (stat(path, &st)) {
        s2s_derr_set(err, "%s: %s", path, strerror(errno));
        free(t);
        return NULL;
    }
    if (strlen(path) + 32 > sizeof t->file) {
        s2s_derr_set(err, "%.64s...: path longer than %zu bytes", path, sizeof t->file - 32);
        free(t);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        snprintf(t->file, sizeof t->file, "%s/tokenizer.json", path);
        snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", path);
    } else {
        snprintf(t->file, sizeof t->file, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(cfg_path, sizeof cfg_path, "%.*stokenizer_config.json", slash ? (int)(slash - path + 1) : 0, path);
    }
    t->eos_id = t->pad_id = -1;
    cJSON *root = parse_json(t->file, err), *cfg = NULL;
    int32_t max_id = -1;
    if (!root || load_pipeline(t, root, err) ||
        load_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"), &max_id, err) ||
        load_added(t, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), &max_id, err))
        goto fail;
    if (max_id < 0) {
        s2s_derr_set(err, "%s: model.vocab: empty", t->file);
        goto fail;
    }
    if (!t->added_map.slot && tok_strmap_init(&t->added_map, 1)) goto oom;
    if (build_id_tables(t, max_id, err)) goto fail;
    if (tok_trie_build(&t->trie_raw, t, 0, err) || tok_trie_build(&t->trie_norm, t, 1, err)) goto fail;
    if (!stat(cfg_path, &st)) {
        cfg = parse_json(cfg_path, err);
        if (!cfg || config_token(t, cfg, "eos_token", cfg_path, &t->eos_id, err) ||
            config_token(t, cfg, "pad_token", cfg_path, &t->pad_id, err))
            goto fail;
    }
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    return t;
oom:
    s2s_derr_set(err, "%s: out of memory", t->file);
fail:
    cJSON_Delete(root);
    cJSON_Delete(cfg);
    s2s_tok_free(t);
    return NULL;
}

void s2s_tok_free(s2s_tokenizer *t) {
    if (!t) return;
    free(t->tok_off);
    free(t->dec_off);
    free(t->dec_len);
    free(t->special);
    free(t->arena);
    tok_strmap_free(&t->vocab);
    tok_strmap_free(&t->added_map);
    free(t->added);
    tok_u64map_free(&t->merges);
    tok_trie_free(&t->trie_raw);
    tok_trie_free(&t->trie_norm);
    for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
    free(t);
}

int32_t s2s_tok_vocab_size(const s2s_tokenizer *t) { return t->n_ids; }
int32_t s2s_tok_model_vocab_size(const s2s_tokenizer *t) { return t->n_model; }
int32_t s2s_tok_eos_id(const s2s_tokenizer *t) { return t->eos_id; }
int32_t s2s_tok_pad_id(const s2s_tokenizer *t) { return t->pad_id; }

int32_t s2s_tok_token_to_id(const s2s_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    int32_t a = t->added_map.slot ? tok_strmap_get(&t->added_map, token, n, -1) : -1;
    return a >= 0 ? t->added[a].id : tok_strmap_get(&t->vocab, token, n, -1);
}

const char *s2s_tok_id_to_token(const s2s_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || t->tok_off[id] == UINT32_MAX) return NULL;
    return t->arena + t->tok_off[id];
}

int s2s_tok_is_special(const s2s_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->special[id];
}
