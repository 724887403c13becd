// units_fit.c — a codebook from audio: gather the unit frames of every input (audio specs and the audio of
// .jsonl manifests, each distinct audio once, in input order), keep a seeded uniform sample of --max-frames of
// them, seed with k-means++ and run Lloyd.
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "units_internal.h"

// The reservoir's generator is seeded apart from k-means++'s so that sampling does not shift its draws.
#define RESERVOIR_SALT 0x5265736572766f69ull  // "Reservoi"
#define FIT_BATCH 64                          // audios whose features are computed in parallel, then kept in order

typedef struct audio_list {
    char **spec;    // resolved audio specs
    char **origin;  // "manifest.jsonl:3: messages[1].content[0].audio" or "" for a command-line audio
    int64_t n, cap;
    const char *root, *file;
    long line;
} audio_list;

static void list_free(audio_list *l) {
    for (int64_t i = 0; i < l->n; i++) free(l->spec[i]), free(l->origin[i]);
    free(l->spec), free(l->origin);
}

static int list_push(audio_list *l, const char *spec, const char *origin) {
    if (l->n == l->cap) {
        int64_t c = l->cap ? 2 * l->cap : 64;
        char **a = realloc(l->spec, sizeof(char *) * c), **b = a ? realloc(l->origin, sizeof(char *) * c) : NULL;
        if (a) l->spec = a;
        if (!a || !b) return -1;
        l->origin = b, l->cap = c;
    }
    if (!(l->spec[l->n] = strdup(spec))) return -1;
    if (!(l->origin[l->n] = strdup(origin))) return free(l->spec[l->n]), -1;
    l->n++;
    return 0;
}

static int push_record_audio(void *ctx, const char *spec, const char *what) {
    audio_list *l = ctx;
    char path[4200], origin[4400];
    snprintf(origin, sizeof origin, "%s:%ld: %s: ", l->file, l->line, what);
    if (units_resolve(l->root, spec, path, sizeof path)) return 2;
    return list_push(l, path, origin) ? 1 : 0;
}

static int read_manifest(audio_list *l, const char *file, s2s_derr *e) {
    FILE *f = fopen(file, "r");
    if (!f) return s2s_derr_set(e, "cannot open manifest '%s': %s", file, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    long len;
    int rc = 0;
    l->file = file;
    for (l->line = 1; (len = units_getline(&line, &cap, f)) >= 0; l->line++) {
        if (strspn(line, " \t") == (size_t)len) continue;
        cJSON *root = cJSON_ParseWithLength(line, (size_t)len);
        if (!cJSON_IsObject(root)) {
            cJSON_Delete(root);
            rc = s2s_derr_set(e, "%s:%ld: not a JSON object", file, l->line);
            break;
        }
        int r = units_record_audios(root, push_record_audio, l);
        cJSON_Delete(root);
        if (r) {
            rc = s2s_derr_set(e, "%s:%ld: %s", file, l->line, r == 2 ? "audio path is too long" : "out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

static int cmp_spec(const void *a, const void *b, void *specs) {
    char **s = specs;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    int c = strcmp(s[i], s[j]);
    return c ? c : (i > j) - (i < j);
}

// Drops repeated specs, keeping each one's first occurrence in place: a response referenced by several records
// (a dialogue and its stage-2a pair) is one utterance, not several.
static int list_unique(audio_list *l) {
    if (l->n < 2) return 0;
    int64_t *idx = malloc(sizeof(int64_t) * l->n);
    char *drop = calloc((size_t)l->n, 1);
    if (!idx || !drop) return free(idx), free(drop), -1;
    for (int64_t i = 0; i < l->n; i++) idx[i] = i;
    qsort_r(idx, (size_t)l->n, sizeof *idx, cmp_spec, l->spec);
    for (int64_t i = 1; i < l->n; i++)
        if (!strcmp(l->spec[idx[i]], l->spec[idx[i - 1]])) drop[idx[i]] = 1;  // idx[i-1] is the earlier one
    int64_t m = 0;
    for (int64_t i = 0; i < l->n; i++) {
        if (drop[i]) {
            free(l->spec[i]), free(l->origin[i]);
            continue;
        }
        l->spec[m] = l->spec[i], l->origin[m] = l->origin[i], m++;
    }
    l->n = m;
    free(idx), free(drop);
    return 0;
}

// Frames kept for clustering: all of them, or Algorithm R's uniform sample of max rows.
typedef struct reservoir {
    float *x;  // [cap, dim]
    int64_t n, cap, max, seen;
    uint64_t rng;
} reservoir;

static int reservoir_add(reservoir *r, const float *rows, int64_t T) {
    for (int64_t t = 0; t < T; t++, r->seen++) {
        int64_t slot;
        if (r->max <= 0 || r->n < r->max) {
            if (r->n == r->cap) {
                int64_t c = r->cap ? 2 * r->cap : 4096;
                if (r->max > 0 && c > r->max) c = r->max;
                float *q = realloc(r->x, sizeof(float) * S2S_UNITS_DIM * c);
                if (!q) return -1;
                r->x = q, r->cap = c;
            }
            slot = r->n++;
        } else {
            slot = (int64_t)(s2s_units_rng_uniform(&r->rng) * (double)(r->seen + 1));
            if (slot >= r->max) continue;
        }
        memcpy(r->x + slot * S2S_UNITS_DIM, rows + t * S2S_UNITS_DIM, sizeof(float) * S2S_UNITS_DIM);
    }
    return 0;
}

int s2s_units_fit(const s2s_units_fit_opts *o, s2s_units_codebook *cb, s2s_units_fit_trace *trace, s2s_derr *e) {
    memset(cb, 0, sizeof *cb);
    if (trace) memset(trace, 0, sizeof *trace);
    if (o->k < 1 || o->k > S2S_UNITS_MAX_K)
        return s2s_derr_set(e, "k = %d must be in 1..%d (the TTS vocabulary's <|audio_N|> tokens)", o->k,
                            S2S_UNITS_MAX_K);
    audio_list l = {.root = o->audio_root};
    reservoir r = {.max = o->max_frames, .rng = o->seed ^ RESERVOIR_SALT};
    s2s_logmel *lm = NULL;
    int64_t *picks = NULL;
    int32_t *assign = NULL;
    int rc = -1;
    for (int i = 0; i < o->n_inputs; i++) {
        if (units_is_manifest(o->inputs[i])) {
            if (read_manifest(&l, o->inputs[i], e)) goto done;
        } else if (list_push(&l, o->inputs[i], "")) {
            s2s_derr_set(e, "out of memory");
            goto done;
        }
    }
    if (list_unique(&l)) {
        s2s_derr_set(e, "out of memory");
        goto done;
    }
    if (!l.n) {
        s2s_derr_set(e, "no audio: the inputs name none");
        goto done;
    }
    if (s2s_logmel_new(&lm, e)) goto done;
    for (int64_t a = 0; a < l.n; a += FIT_BATCH) {
        int64_t nb = l.n - a < FIT_BATCH ? l.n - a : FIT_BATCH, T[FIT_BATCH];
        float *feat[FIT_BATCH];  // [T[b], 128] each
        static_assert(FIT_BATCH <= 64, "batch arrays live on the stack");
        s2s_derr fe[FIT_BATCH];
        s2s_units_features_batch(lm, (const char *const *)l.spec + a, nb, o->norm, feat, T, fe);
        int bad = 0;
        for (int64_t b = 0; b < nb; b++) {  // in input order, so the reservoir sees the same stream for any threads
            if (!bad && !feat[b]) bad = s2s_derr_set(e, "%s%s", l.origin[a + b], fe[b].msg);
            else if (!bad && reservoir_add(&r, feat[b], T[b]))
                bad = s2s_derr_set(e, "out of memory for %lld frames", (long long)r.n);
            free(feat[b]);
        }
        if (bad) goto done;
        if (o->log && ((a + nb) % 512 == 0 || a + nb == l.n))
            fprintf(o->log, "units fit: %lld / %lld audios, %lld frames\n", (long long)(a + nb), (long long)l.n,
                    (long long)r.seen);
    }
    if (o->k > r.n) {
        s2s_derr_set(e, "k = %d is more than the %lld frames (12.5 Hz) of the %lld audio(s) given (%s%s)", o->k,
                     (long long)r.n, (long long)l.n, l.spec[0], l.n > 1 ? ", ..." : "");
        goto done;
    }
    picks = malloc(sizeof(int64_t) * o->k);
    assign = malloc(sizeof(int32_t) * r.n);
    cb->centroids = malloc(sizeof(float) * S2S_UNITS_DIM * o->k);
    cb->counts = malloc(sizeof(int64_t) * o->k);
    if (!picks || !assign || !cb->centroids || !cb->counts) {
        s2s_derr_set(e, "out of memory for k = %d", o->k);
        goto done;
    }
    s2s_derr ke;
    if (o->init) {
        memcpy(cb->centroids, o->init, sizeof(float) * S2S_UNITS_DIM * o->k);
        for (int j = 0; j < o->k; j++) picks[j] = -1;
    } else if (s2s_kmeans_pp(r.x, r.n, S2S_UNITS_DIM, o->k, o->seed, picks, &ke)) {
        s2s_derr_set(e, "%s (inputs %s%s)", ke.msg, l.spec[0], l.n > 1 ? ", ..." : "");
        goto done;
    } else
        for (int j = 0; j < o->k; j++)
            memcpy(cb->centroids + (int64_t)j * S2S_UNITS_DIM, r.x + picks[j] * S2S_UNITS_DIM,
                   sizeof(float) * S2S_UNITS_DIM);
    if (s2s_kmeans_lloyd(r.x, r.n, S2S_UNITS_DIM, o->k, o->max_iters, cb->centroids, assign, cb->counts, &cb->stats,
                         e))
        goto done;
    cb->k = o->k, cb->dim = S2S_UNITS_DIM, cb->pool = S2S_UNITS_POOL, cb->mel_bins = S2S_MEL_BINS;
    cb->sample_rate = 16000, cb->hop = S2S_MEL_HOP, cb->norm = o->norm, cb->seed = o->seed;
    cb->max_iters = o->max_iters, cb->from_init = o->init != NULL, cb->frames = r.n, cb->frames_seen = r.seen, cb->utterances = l.n;
    if (o->log)
        fprintf(o->log, "units fit: k %d on %lld frames: %d Lloyd iterations (%s), %d empty clusters re-seeded, "
                "inertia %.6g\n", o->k, (long long)r.n, cb->stats.iterations,
                cb->stats.converged ? "converged" : "iteration limit", cb->stats.relocated, cb->stats.inertia);
    if (trace) {
        trace->frames = r.x, trace->n = r.n, trace->picks = picks, trace->assign = assign;
        r.x = NULL, picks = NULL, assign = NULL;
    }
    rc = 0;
done:
    if (rc) s2s_units_codebook_free(cb);
    free(r.x), free(picks), free(assign);
    s2s_logmel_free(lm);
    list_free(&l);
    return rc;
}

void s2s_units_fit_trace_free(s2s_units_fit_trace *t) {
    free(t->frames), free(t->picks), free(t->assign);
    memset(t, 0, sizeof *t);
}
