// units_io.c — codebooks as safetensors (docs/units.md): `counts` I64 [k], `centroids` F32 [k, dim] and the
// parameters that produced them as "__metadata__" strings. data/ stands alone, so this is a small writer and a
// validating reader of the two-tensor file rather than model/safetensors.c; h5py-free tools (safetensors.numpy)
// read it as is.
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "units.h"

#define CB_FORMAT "s2s-units"
#define CB_VERSION 1

const char *s2s_units_norm_name(s2s_units_norm n) { return n == S2S_UNITS_NORM_UTTERANCE_MEAN ? "utterance_mean" : "none"; }

static void meta_int(cJSON *m, const char *key, long long v) {
    char b[32];
    snprintf(b, sizeof b, "%lld", v);
    cJSON_AddStringToObject(m, key, b);
}

static void add_tensor(cJSON *h, const char *name, const char *dtype, int ndim, const long long *shape,
                       long long begin, long long end) {
    cJSON *t = cJSON_AddObjectToObject(h, name), *s = cJSON_AddArrayToObject(t, "shape"),
          *o = cJSON_AddArrayToObject(t, "data_offsets");
    cJSON_AddStringToObject(t, "dtype", dtype);
    for (int i = 0; i < ndim; i++) cJSON_AddItemToArray(s, cJSON_CreateNumber((double)shape[i]));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)begin));
    cJSON_AddItemToArray(o, cJSON_CreateNumber((double)end));
}

int s2s_units_codebook_save(const s2s_units_codebook *cb, const char *path, s2s_derr *e) {
    long long k = cb->k, dim = cb->dim, nc = k * 8, nf = k * dim * 4;
    cJSON *h = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(h, "__metadata__");
    // counts first: the 8-byte elements then start at offset 0, every tensor aligned to its element size.
    add_tensor(h, "counts", "I64", 1, &k, 0, nc);
    add_tensor(h, "centroids", "F32", 2, (long long[]){k, dim}, nc, nc + nf);
    cJSON_AddStringToObject(m, "format", CB_FORMAT);
    meta_int(m, "version", CB_VERSION);
    meta_int(m, "k", k);
    meta_int(m, "dim", dim);
    cJSON_AddStringToObject(m, "features", "whisper_logmel");
    meta_int(m, "mel_bins", cb->mel_bins);
    meta_int(m, "sample_rate", cb->sample_rate);
    meta_int(m, "hop", cb->hop);
    meta_int(m, "pool", cb->pool);
    cJSON_AddStringToObject(m, "pooling", "mean");
    char b[64];
    snprintf(b, sizeof b, "%g", (double)cb->sample_rate / cb->hop / cb->pool);
    cJSON_AddStringToObject(m, "frame_rate", b);
    cJSON_AddStringToObject(m, "norm", s2s_units_norm_name(cb->norm));
    snprintf(b, sizeof b, "%llu", (unsigned long long)cb->seed);
    cJSON_AddStringToObject(m, "seed", b);
    cJSON_AddStringToObject(m, "init", cb->from_init ? "codebook" : "kmeans++");
    meta_int(m, "max_iters", cb->max_iters);
    meta_int(m, "iterations", cb->stats.iterations);
    cJSON_AddStringToObject(m, "converged", cb->stats.converged ? "true" : "false");
    meta_int(m, "relocated", cb->stats.relocated);
    snprintf(b, sizeof b, "%.9g", cb->stats.inertia);
    cJSON_AddStringToObject(m, "inertia", b);
    meta_int(m, "frames", cb->frames);
    meta_int(m, "frames_seen", cb->frames_seen);
    meta_int(m, "utterances", cb->utterances);
    char *js = cJSON_PrintUnformatted(h);
    cJSON_Delete(h);
    if (!js) return s2s_derr_set(e, "codebook '%s': out of memory", path);
    size_t hl = strlen(js), pad = (8 - (8 + hl) % 8) % 8;  // data starts 8-byte aligned
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        free(js);
        return s2s_derr_set(e, "codebook '%s': cannot create: %s", tmp, strerror(errno));
    }
    uint64_t n8 = hl + pad;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)(n8 >> (8 * i));
    int ok = fwrite(le, 1, 8, f) == 8 && fwrite(js, 1, hl, f) == hl && fwrite("        ", 1, pad, f) == pad &&
             fwrite(cb->counts, 8, (size_t)k, f) == (size_t)k &&
             fwrite(cb->centroids, 4, (size_t)(k * dim), f) == (size_t)(k * dim);
    free(js);
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path)) {
        int err = errno;
        remove(tmp);
        return s2s_derr_set(e, "codebook '%s': write failed: %s", path, strerror(err));
    }
    return 0;
}

void s2s_units_codebook_free(s2s_units_codebook *cb) {
    free(cb->centroids);
    free(cb->counts);
    cb->centroids = NULL;
    cb->counts = NULL;
}

// The tensor `name`: checks dtype and shape and that its bytes lie in the data region; returns its offset.
static int tensor(const cJSON *h, const char *name, const char *dtype, int ndim, const long long *shape, size_t esz,
                  size_t data_len, size_t *begin, const char *path, s2s_derr *e) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(h, name);
    if (!cJSON_IsObject(t)) return s2s_derr_set(e, "codebook '%s': no tensor '%s'", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype"), *sh = cJSON_GetObjectItemCaseSensitive(t, "shape"),
                *of = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    if (!cJSON_IsString(dt) || strcmp(dt->valuestring, dtype))
        return s2s_derr_set(e, "codebook '%s': tensor '%s' must be %s", path, name, dtype);
    if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != ndim)
        return s2s_derr_set(e, "codebook '%s': tensor '%s' must have %d dimensions", path, name, ndim);
    for (int i = 0; i < ndim; i++) {
        const cJSON *v = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)shape[i])
            return s2s_derr_set(e, "codebook '%s': tensor '%s' dimension %d must be %lld (k and dim of the metadata)",
                                path, name, i, shape[i]);
    }
    const cJSON *b = cJSON_GetArrayItem(of, 0), *en = cJSON_GetArrayItem(of, 1);
    size_t need = esz;
    for (int i = 0; i < ndim; i++) need *= (size_t)shape[i];
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !cJSON_IsNumber(b) || !cJSON_IsNumber(en) ||
        b->valuedouble < 0 || en->valuedouble - b->valuedouble != (double)need || en->valuedouble > (double)data_len)
        return s2s_derr_set(e, "codebook '%s': tensor '%s' data_offsets do not hold its %zu bytes within the file's "
                            "%zu data bytes (truncated or corrupt)", path, name, need, data_len);
    *begin = (size_t)b->valuedouble;
    return 0;
}

// A metadata integer: present, decimal, in [lo, hi].
static int meta_get_int(const cJSON *m, const char *key, long long lo, long long hi, long long *out, const char *path,
                        s2s_derr *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    char *end;
    if (!cJSON_IsString(v)) return s2s_derr_set(e, "codebook '%s': metadata '%s' is missing", path, key);
    errno = 0;
    long long x = strtoll(v->valuestring, &end, 10);
    if (errno || end == v->valuestring || *end || x < lo || x > hi)
        return s2s_derr_set(e, "codebook '%s': metadata %s = '%s' is not an integer in [%lld, %lld]", path, key,
                            v->valuestring, lo, hi);
    *out = x;
    return 0;
}

static const char *meta_str(const cJSON *m, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// Metadata this build must agree with to compute the same features: what differs is refused, not ignored.
static int meta_fixed(const cJSON *m, const char *key, long long want, const char *path, s2s_derr *e) {
    long long v = 0;
    if (meta_get_int(m, key, 0, (long long)1 << 40, &v, path, e)) return -1;
    if (v != want)
        return s2s_derr_set(e, "codebook '%s': %s = %lld, but s2s units computes features with %s = %lld", path, key,
                            v, key, want);
    return 0;
}

static int parse(s2s_units_codebook *cb, const unsigned char *buf, size_t len, const char *path, s2s_derr *e) {
    if (len < 8) return s2s_derr_set(e, "codebook '%s': %zu bytes, too short for a safetensors file", path, len);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)buf[i] << (8 * i);
    if (hl > len - 8 || hl > (100u << 20))
        return s2s_derr_set(e, "codebook '%s': header length %llu exceeds the file (%zu bytes): not a safetensors "
                            "file or truncated", path, (unsigned long long)hl, len);
    cJSON *h = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hl);
    int rc = -1;
    if (!cJSON_IsObject(h)) {
        s2s_derr_set(e, "codebook '%s': the safetensors header is not a JSON object", path);
        goto done;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(h, "__metadata__");
    const char *fmt = meta_str(m, "format"), *norm = meta_str(m, "norm");
    if (!fmt || strcmp(fmt, CB_FORMAT)) {
        s2s_derr_set(e, "codebook '%s': metadata format is not \"%s\" (not an s2s units codebook)", path, CB_FORMAT);
        goto done;
    }
    long long ver, k, dim, v;
    if (meta_get_int(m, "version", 0, 1 << 30, &ver, path, e)) goto done;
    if (ver != CB_VERSION) {
        s2s_derr_set(e, "codebook '%s': version %lld, this build reads version %d", path, ver, CB_VERSION);
        goto done;
    }
    if (meta_get_int(m, "k", 1, S2S_UNITS_MAX_K, &k, path, e) || meta_fixed(m, "dim", S2S_UNITS_DIM, path, e) ||
        meta_fixed(m, "mel_bins", S2S_MEL_BINS, path, e) || meta_fixed(m, "sample_rate", 16000, path, e) ||
        meta_fixed(m, "hop", S2S_MEL_HOP, path, e) || meta_fixed(m, "pool", S2S_UNITS_POOL, path, e))
        goto done;
    dim = S2S_UNITS_DIM;
    if (!norm || (strcmp(norm, "none") && strcmp(norm, "utterance_mean"))) {
        s2s_derr_set(e, "codebook '%s': metadata norm must be \"utterance_mean\" or \"none\"", path);
        goto done;
    }
    memset(cb, 0, sizeof *cb);
    cb->k = (int)k, cb->dim = (int)dim, cb->mel_bins = S2S_MEL_BINS, cb->sample_rate = 16000;
    cb->hop = S2S_MEL_HOP, cb->pool = S2S_UNITS_POOL;
    cb->norm = strcmp(norm, "none") ? S2S_UNITS_NORM_UTTERANCE_MEAN : S2S_UNITS_NORM_NONE;
    // Provenance: read when present, not required to encode.
    const char *s = meta_str(m, "seed");
    if (s) cb->seed = strtoull(s, NULL, 10);
    if (!meta_get_int(m, "max_iters", 0, 1 << 30, &v, path, NULL)) cb->max_iters = (int)v;
    if (!meta_get_int(m, "iterations", 0, 1 << 30, &v, path, NULL)) cb->stats.iterations = (int)v;
    if (!meta_get_int(m, "relocated", 0, 1 << 30, &v, path, NULL)) cb->stats.relocated = (int)v;
    if (!meta_get_int(m, "frames", 0, (long long)1 << 50, &v, path, NULL)) cb->frames = v;
    if (!meta_get_int(m, "frames_seen", 0, (long long)1 << 50, &v, path, NULL)) cb->frames_seen = v;
    if (!meta_get_int(m, "utterances", 0, (long long)1 << 50, &v, path, NULL)) cb->utterances = v;
    s = meta_str(m, "init");
    cb->from_init = s && !strcmp(s, "codebook");
    s = meta_str(m, "converged");
    cb->stats.converged = s && !strcmp(s, "true");
    s = meta_str(m, "inertia");
    if (s) cb->stats.inertia = strtod(s, NULL);
    size_t data_len = len - 8 - (size_t)hl, bc, bf;
    const unsigned char *data = buf + 8 + hl;
    if (tensor(h, "centroids", "F32", 2, (long long[]){k, dim}, 4, data_len, &bf, path, e) ||
        tensor(h, "counts", "I64", 1, &k, 8, data_len, &bc, path, e))
        goto done;
    cb->centroids = malloc(sizeof(float) * (size_t)(k * dim));
    cb->counts = malloc(sizeof(int64_t) * (size_t)k);
    if (!cb->centroids || !cb->counts) {
        s2s_units_codebook_free(cb);
        s2s_derr_set(e, "codebook '%s': out of memory", path);
        goto done;
    }
    memcpy(cb->centroids, data + bf, sizeof(float) * (size_t)(k * dim));
    memcpy(cb->counts, data + bc, sizeof(int64_t) * (size_t)k);
    for (long long i = 0; i < k * dim; i++)
        if (!isfinite(cb->centroids[i])) {
            s2s_units_codebook_free(cb);
            s2s_derr_set(e, "codebook '%s': centroid %lld holds a non-finite value", path, i / dim);
            goto done;
        }
    rc = 0;
done:
    cJSON_Delete(h);
    return rc;
}

int s2s_units_codebook_load(s2s_units_codebook *cb, const char *path, s2s_derr *e) {
    memset(cb, 0, sizeof *cb);
    FILE *f = fopen(path, "rb");
    if (!f) return s2s_derr_set(e, "codebook '%s': cannot open: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t len = 0, cap = 0, got;
    do {
        if (len == cap) {
            unsigned char *q = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
            if (!q) {
                free(buf);
                fclose(f);
                return s2s_derr_set(e, "codebook '%s': out of memory", path);
            }
            buf = q;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got);
    int bad = ferror(f);
    fclose(f);
    int rc = bad ? s2s_derr_set(e, "codebook '%s': read error", path) : parse(cb, buf, len, path, e);
    free(buf);
    return rc;
}
