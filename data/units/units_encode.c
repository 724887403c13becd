// units_encode.c — audio to unit sequences, and manifests rewritten to carry them where `s2s prep` reads units.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "units_internal.h"

int s2s_units_encode_audio(const s2s_units_codebook *cb, const s2s_logmel *lm, const char *spec, int dedup,
                           int32_t **units, int64_t *n, s2s_derr *e) {
    *units = NULL;
    *n = 0;
    float *feat = NULL;  // [T, 128]
    int64_t T = 0;
    if (s2s_units_features_file(lm, spec, cb->norm, &feat, &T, e)) return -1;
    int32_t *u = malloc(sizeof(int32_t) * (T ? T : 1));
    if (!u) {
        free(feat);
        return s2s_derr_set(e, "%s: out of memory", spec);
    }
    s2s_kmeans_assign(feat, T, cb->dim, cb->centroids, cb->k, u, NULL);
    free(feat);
    int64_t m = T;
    if (dedup) {
        m = 0;
        for (int64_t t = 0; t < T; t++)
            if (!m || u[m - 1] != u[t]) u[m++] = u[t];
    }
    *units = u;
    *n = m;
    return 0;
}

char *s2s_units_format_str(const int32_t *units, int64_t n, s2s_units_format fmt) {
    size_t cap = 16 + (size_t)n * 16, len = 0;  // "<|audio_16383|>" is 15 characters
    char *s = malloc(cap);
    if (!s) return NULL;
    if (fmt == S2S_UNITS_FMT_LIST) s[len++] = '[';
    for (int64_t i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len, fmt == S2S_UNITS_FMT_LIST ? (i ? ", %d" : "%d") : "<|audio_%d|>",
                                units[i]);
    if (fmt == S2S_UNITS_FMT_LIST) s[len++] = ']';
    s[len] = 0;
    return s;
}

typedef struct enc_ctx {
    const s2s_units_codebook *cb;
    const s2s_logmel *lm;
    const s2s_units_manifest_opts *o;
    int64_t items, units;
} enc_ctx;

// The units of one audio field as a JSON value of the chosen form.
static cJSON *units_value(enc_ctx *c, const char *spec, const char *what, s2s_derr *e) {
    char path[4200];
    if (units_resolve(c->o->audio_root, spec, path, sizeof path))
        return s2s_derr_set(e, "%s: path is too long", what), NULL;
    int32_t *u = NULL;
    int64_t n = 0;
    s2s_derr ae;
    if (s2s_units_encode_audio(c->cb, c->lm, path, c->o->dedup, &u, &n, &ae))
        return s2s_derr_set(e, "%s: %s", what, ae.msg), NULL;
    cJSON *v = NULL;
    if (c->o->format == S2S_UNITS_FMT_LIST) v = cJSON_CreateIntArray(u, (int)n);
    else {
        char *s = s2s_units_format_str(u, n, S2S_UNITS_FMT_STRING);
        v = s ? cJSON_CreateString(s) : NULL;
        free(s);
    }
    free(u);
    if (!v) return s2s_derr_set(e, "%s: out of memory", what), NULL;
    c->items++;
    c->units += n;
    return v;
}

static void set_item(cJSON *obj, const char *key, cJSON *v) {
    if (cJSON_HasObjectItem(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else cJSON_AddItemToObject(obj, key, v);
}

// One record, rewritten in place.
static int encode_record(enc_ctx *c, cJSON *root, s2s_derr *e) {
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (msgs) {
        int mi = 0;
        for (cJSON *m = cJSON_IsArray(msgs) ? msgs->child : NULL; m; m = m->next, mi++) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsString(role) || strcmp(role->valuestring, "assistant") || !cJSON_IsArray(content)) continue;
            int ci = 0;
            for (cJSON *it = content->child; it; it = it->next, ci++) {
                const cJSON *au = cJSON_GetObjectItemCaseSensitive(it, "audio");
                if (!cJSON_IsString(au) || !*au->valuestring) continue;
                char what[64];
                snprintf(what, sizeof what, "messages[%d].content[%d].audio", mi, ci);
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(it, "text");
                if (!cJSON_IsString(text) || !*text->valuestring)  // prep refuses speech without its text
                    return s2s_derr_set(e, "messages[%d].content[%d]: an assistant audio needs its \"text\"", mi, ci);
                cJSON *v = units_value(c, au->valuestring, what, e);
                if (!v) return -1;
                set_item(it, "speech_units", v);
                set_item(it, "audio", cJSON_CreateString(""));
            }
        }
        return 0;
    }
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(root, "audio");
    if (cJSON_IsString(au) && *au->valuestring && cJSON_HasObjectItem(root, "text") &&
        !cJSON_HasObjectItem(root, "continuation")) {
        cJSON *v = units_value(c, au->valuestring, "audio", e);
        if (!v) return -1;
        set_item(root, "units", v);
        cJSON_DeleteItemFromObjectCaseSensitive(root, "audio");  // {"text", "audio"} would read as a stage-1 record
    }
    return 0;
}

int s2s_units_encode_manifest(const s2s_units_codebook *cb, const s2s_units_manifest_opts *o,
                              s2s_units_manifest_stats *st, s2s_derr *e) {
    memset(st, 0, sizeof *st);
    FILE *log = o->log ? o->log : stderr;
    FILE *in = fopen(o->in, "r");
    if (!in) return s2s_derr_set(e, "cannot open manifest '%s': %s", o->in, strerror(errno));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", o->out);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return s2s_derr_set(e, "cannot create '%s': %s", tmp, strerror(errno));
    }
    s2s_logmel *lm = NULL;
    if (s2s_logmel_new(&lm, e)) {
        fclose(in), fclose(out), remove(tmp);
        return -1;
    }
    enc_ctx c = {.cb = cb, .lm = lm, .o = o};
    char *line = NULL;
    size_t cap = 0;
    long len, ln;
    int io_bad = 0;
    for (ln = 1; (len = units_getline(&line, &cap, in)) >= 0 && !io_bad; ln++) {
        if (strspn(line, " \t") == (size_t)len) continue;
        st->records++;
        cJSON *root = cJSON_ParseWithLength(line, (size_t)len);
        s2s_derr le;
        int bad = !cJSON_IsObject(root) ? s2s_derr_set(&le, "not a JSON object") : encode_record(&c, root, &le);
        char *js = bad ? NULL : cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (bad || !js) {
            fprintf(log, "%s:%ld: %s\n", o->in, ln, bad ? le.msg : "out of memory");
            st->errors++;
            continue;
        }
        io_bad = fputs(js, out) < 0 || fputc('\n', out) < 0;
        free(js);
    }
    free(line);
    s2s_logmel_free(lm);
    st->encoded_items = c.items;
    st->units = c.units;
    io_bad |= ferror(in);
    fclose(in);
    io_bad |= fflush(out) != 0;
    io_bad |= fclose(out) != 0;
    if (io_bad || rename(tmp, o->out)) {
        remove(tmp);
        return s2s_derr_set(e, "writing '%s' failed: %s", o->out, strerror(errno));
    }
    if (st->errors)
        return s2s_derr_set(e, "%s: %lld of %lld records failed (reported above) and were left out of %s", o->in,
                            (long long)st->errors, (long long)st->records, o->out);
    return 0;
}
