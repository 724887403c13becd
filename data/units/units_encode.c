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

int64_t s2s_units_encode_batch(const s2s_units_codebook *cb, const s2s_logmel *lm, const char *const *specs,
                               int64_t count, int dedup, int32_t **units, int64_t *n, s2s_derr *errs) {
    int64_t bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (int64_t i = 0; i < count; i++) bad += s2s_units_encode_audio(cb, lm, specs[i], dedup, &units[i], &n[i], &errs[i]) != 0;
    return bad;
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

// ---- manifests: lines are read in batches; their audios are encoded in parallel, then written in order ----------

#define ENC_LINES 256  // lines per batch

typedef struct enc_job {
    cJSON *obj;       // the content item (dialogue) or the record (stage 2a) that gains units
    int tts;          // 1: {"text", "audio"} -> {"text", "units"}; 0: an assistant item gains speech_units
    int line;         // index into the batch
    char what[64];    // the field, for errors
    char spec[4200];  // the resolved audio spec
} enc_job;

typedef struct enc_batch {
    cJSON *root[ENC_LINES];
    long ln[ENC_LINES];
    s2s_derr err[ENC_LINES];
    int bad[ENC_LINES];
    int n;
    enc_job *jobs;
    int64_t n_jobs, cap_jobs;
} enc_batch;

static enc_job *job_new(enc_batch *b, cJSON *obj, int tts, const char *what, const char *spec, const char *root,
                        s2s_derr *e) {
    if (b->n_jobs == b->cap_jobs) {
        int64_t c = b->cap_jobs ? 2 * b->cap_jobs : 512;
        enc_job *q = realloc(b->jobs, sizeof *q * c);
        if (!q) return s2s_derr_set(e, "out of memory"), NULL;
        b->jobs = q, b->cap_jobs = c;
    }
    enc_job *j = &b->jobs[b->n_jobs];
    j->obj = obj, j->tts = tts, j->line = b->n;
    snprintf(j->what, sizeof j->what, "%s", what);
    if (units_resolve(root, spec, j->spec, sizeof j->spec)) return s2s_derr_set(e, "%s: path is too long", what), NULL;
    b->n_jobs++;
    return j;
}

// The audios of one record that get units, appended to the batch's jobs.
static int collect(enc_batch *b, cJSON *root, const char *audio_root, s2s_derr *e) {
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
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(it, "text");
                if (!cJSON_IsString(text) || !*text->valuestring)  // prep refuses speech without its text
                    return s2s_derr_set(e, "messages[%d].content[%d]: an assistant audio needs its \"text\"", mi, ci);
                char what[64];
                snprintf(what, sizeof what, "messages[%d].content[%d].audio", mi, ci);
                if (!job_new(b, it, 0, what, au->valuestring, audio_root, e)) return -1;
            }
        }
        return 0;
    }
    const cJSON *au = cJSON_GetObjectItemCaseSensitive(root, "audio");
    if (cJSON_IsString(au) && *au->valuestring && cJSON_HasObjectItem(root, "text") &&
        !cJSON_HasObjectItem(root, "continuation") && !job_new(b, root, 1, "audio", au->valuestring, audio_root, e))
        return -1;
    return 0;
}

static void set_item(cJSON *obj, const char *key, cJSON *v) {
    if (cJSON_HasObjectItem(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, v);
    else cJSON_AddItemToObject(obj, key, v);
}

static cJSON *units_json(const int32_t *u, int64_t n, s2s_units_format fmt) {
    if (fmt == S2S_UNITS_FMT_LIST) return cJSON_CreateIntArray(u, (int)n);
    char *s = s2s_units_format_str(u, n, S2S_UNITS_FMT_STRING);
    cJSON *v = s ? cJSON_CreateString(s) : NULL;
    free(s);
    return v;
}

// Encodes the batch's audios, puts the units into the records and writes the good records in order.
static int flush(enc_batch *b, const s2s_units_codebook *cb, const s2s_logmel *lm, const s2s_units_manifest_opts *o,
                 FILE *out, FILE *log, s2s_units_manifest_stats *st) {
    int64_t nj = b->n_jobs;
    const char **specs = malloc(sizeof(char *) * (nj ? nj : 1));
    int32_t **units = calloc((size_t)(nj ? nj : 1), sizeof(int32_t *));
    int64_t *len = calloc((size_t)(nj ? nj : 1), sizeof(int64_t));
    s2s_derr *errs = malloc(sizeof(s2s_derr) * (nj ? nj : 1));
    int io_bad = 0;
    if (!specs || !units || !len || !errs) {
        io_bad = 1;
        fprintf(log, "%s: out of memory\n", o->in);
        goto done;
    }
    for (int64_t j = 0; j < nj; j++) specs[j] = b->jobs[j].spec;
    s2s_units_encode_batch(cb, lm, specs, nj, o->dedup, units, len, errs);
    for (int64_t j = 0; j < nj; j++) {
        enc_job *jb = &b->jobs[j];
        if (b->bad[jb->line]) continue;  // the line's first failure is the one reported
        cJSON *v = units[j] ? units_json(units[j], len[j], o->format) : NULL;
        if (!v) {
            b->bad[jb->line] = 1;
            if (units[j]) s2s_derr_set(&b->err[jb->line], "%s: out of memory", jb->what);
            else s2s_derr_set(&b->err[jb->line], "%s: %s", jb->what, errs[j].msg);
            continue;
        }
        st->encoded_items++;
        st->units += len[j];
        set_item(jb->obj, jb->tts ? "units" : "speech_units", v);
        if (jb->tts) cJSON_DeleteItemFromObjectCaseSensitive(jb->obj, "audio");  // {text, audio} reads as stage 1
        else set_item(jb->obj, "audio", cJSON_CreateString(""));               // OpenS2S has no assistant audio
    }
    for (int i = 0; i < b->n && !io_bad; i++) {
        char *js = b->bad[i] ? NULL : cJSON_PrintUnformatted(b->root[i]);
        if (!b->bad[i] && !js) s2s_derr_set(&b->err[i], "out of memory"), b->bad[i] = 1;
        if (b->bad[i]) {
            fprintf(log, "%s:%ld: %s\n", o->in, b->ln[i], b->err[i].msg);
            st->errors++;
            continue;
        }
        io_bad = fputs(js, out) < 0 || fputc('\n', out) < 0;
        free(js);
    }
done:
    for (int64_t j = 0; j < nj; j++) free(units ? units[j] : NULL);
    free(specs), free(units), free(len), free(errs);
    for (int i = 0; i < b->n; i++) cJSON_Delete(b->root[i]);
    b->n = 0, b->n_jobs = 0;
    return io_bad ? -1 : 0;
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
    enc_batch *b = calloc(1, sizeof *b);
    s2s_logmel *lm = NULL;
    if (!out || !b || s2s_logmel_new(&lm, e)) {
        if (!out) s2s_derr_set(e, "cannot create '%s': %s", tmp, strerror(errno));
        else if (!b) s2s_derr_set(e, "out of memory");
        fclose(in);
        if (out) fclose(out), remove(tmp);
        free(b);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    long len, ln;
    int io_bad = 0;
    for (ln = 1; !io_bad && (len = units_getline(&line, &cap, in)) >= 0; ln++) {
        if (strspn(line, " \t") == (size_t)len) continue;
        st->records++;
        int i = b->n;  // the jobs collect() queues belong to line i of the batch
        b->ln[i] = ln;
        b->root[i] = cJSON_ParseWithLength(line, (size_t)len);
        b->bad[i] = !cJSON_IsObject(b->root[i]) ? s2s_derr_set(&b->err[i], "not a JSON object")
                                                : collect(b, b->root[i], o->audio_root, &b->err[i]);
        if (b->bad[i]) {  // drop the jobs a half-collected record queued
            while (b->n_jobs && b->jobs[b->n_jobs - 1].line == i) b->n_jobs--;
            b->bad[i] = 1;
        }
        if (++b->n == ENC_LINES) io_bad = flush(b, cb, lm, o, out, log, st);
    }
    if (!io_bad) io_bad = flush(b, cb, lm, o, out, log, st);
    free(line);
    free(b->jobs);
    for (int i = 0; i < b->n; i++) cJSON_Delete(b->root[i]);
    free(b);
    s2s_logmel_free(lm);
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
