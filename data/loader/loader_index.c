// loader_index.c — the loader's view of the data, built once at open: expands the shard list, opens every
// shard once to validate it (s2s_shard_open checks schema, version, dtypes and offsets; here also one kind per
// loader and the tokenizer hashes), records each sample's batching cost and closes the shard again. Everything a
// bad file can break is thus found before the first step, with the file's name in the message.
#include <dirent.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "base/mix.h"
#include "loader_internal.h"

// ---- cost ---------------------------------------------------------------------------------------------------

static int64_t floordiv2(int64_t x) { return x >= 0 ? x / 2 : -((-x + 1) / 2); }

// Qwen2-Audio encoder per 30 s chunk of L valid mel frames: L1 = (L-1)//2+1, L2 = (L1-2)//2+1 (25 Hz); then the
// OpenS2S subsampler's two stride-2 convs, floor((L-1)/2)+1 each (6.25 Hz).
int64_t s2s_loader_audio_frames(int64_t samples) {
    if (samples <= 0) return 0;
    int64_t valid = s2s_logmel_valid_frames(samples), enc = 0;
    for (int64_t c = 0; c * S2S_MEL_CHUNK_FRAMES < valid; c++) {
        int64_t L = valid - c * S2S_MEL_CHUNK_FRAMES;
        if (L > S2S_MEL_CHUNK_FRAMES) L = S2S_MEL_CHUNK_FRAMES;
        int64_t L1 = floordiv2(L - 1) + 1, L2 = floordiv2(L1 - 2) + 1;
        enc += L2 > 0 ? L2 : 0;
    }
    if (enc == 0) return 0;
    int64_t a1 = floordiv2(enc - 1) + 1;
    return floordiv2(a1 - 1) + 1;
}

// A sample's audios are costed as one audio of their total length: exact for the usual single audio, a few
// frames off for several (the shard keeps per-sample totals in memory, not per-audio lengths).
int64_t s2s_loader_sample_cost(const s2s_shard_len *len) {
    int64_t c = len->n_tokens - len->n_audio + len->n_units;
    if (len->n_audio > 0) c += s2s_loader_audio_frames(len->audio_samples);
    return c;
}

// ---- paths ----------------------------------------------------------------------------------------------

typedef struct paths {
    char **v;
    int n, cap;
} paths;

static int paths_add(paths *p, const char *s, s2s_derr *e) {
    if (p->n == p->cap) {
        int c = p->cap ? 2 * p->cap : 16;
        char **v = realloc(p->v, sizeof(char *) * c);
        if (!v) return s2s_derr_set(e, "loader: out of memory");
        p->v = v, p->cap = c;
    }
    if (!(p->v[p->n] = strdup(s))) return s2s_derr_set(e, "loader: out of memory");
    p->n++;
    return 0;
}

static int is_h5(const struct dirent *d) {
    size_t n = strlen(d->d_name);
    return n > 3 && !strcmp(d->d_name + n - 3, ".h5");
}

static int expand_one(paths *p, const char *spec, s2s_derr *e) {
    if (strpbrk(spec, "*?[")) {
        glob_t g;
        int rc = glob(spec, 0, NULL, &g);  // sorted by name
        if (rc == GLOB_NOMATCH) return s2s_derr_set(e, "loader: %s: the pattern matches no file", spec);
        if (rc) return s2s_derr_set(e, "loader: %s: cannot expand the pattern", spec);
        for (size_t i = 0; i < g.gl_pathc; i++)
            if (paths_add(p, g.gl_pathv[i], e)) return globfree(&g), -1;
        globfree(&g);
        return 0;
    }
    struct stat st;
    if (stat(spec, &st)) return s2s_derr_set(e, "loader: %s: no such file or directory", spec);
    if (!S_ISDIR(st.st_mode)) return paths_add(p, spec, e);
    struct dirent **list;
    int n = scandir(spec, &list, is_h5, alphasort);
    if (n < 0) return s2s_derr_set(e, "loader: %s: cannot list the directory", spec);
    int rc = n ? 0 : s2s_derr_set(e, "loader: %s: the directory holds no *.h5 shard", spec);
    char buf[PATH_MAX + 256];
    for (int i = 0; i < n; i++) {
        snprintf(buf, sizeof buf, "%s%s%s", spec, spec[strlen(spec) - 1] == '/' ? "" : "/", list[i]->d_name);
        if (!rc) rc = paths_add(p, buf, e);
        free(list[i]);
    }
    free(list);
    return rc;
}

typedef struct named {
    const char *real;
    int i;
} named;

static int cmp_named(const void *a, const void *b) {
    return strcmp(((const named *)a)->real, ((const named *)b)->real);
}

// A shard listed twice (a directory and a glob overlapping) would silently double its weight: refuse it.
static int refuse_duplicates(const paths *p, s2s_derr *e) {
    named *v = calloc(p->n ? p->n : 1, sizeof *v);
    if (!v) return s2s_derr_set(e, "loader: out of memory");
    int rc = 0;
    for (int i = 0; i < p->n; i++) {
        char *r = realpath(p->v[i], NULL);
        v[i].real = r ? r : strdup(p->v[i]);
        v[i].i = i;
        if (!v[i].real) rc = s2s_derr_set(e, "loader: out of memory");
    }
    if (!rc) qsort(v, p->n, sizeof *v, cmp_named);
    for (int i = 1; !rc && i < p->n; i++)
        if (!strcmp(v[i].real, v[i - 1].real))
            rc = s2s_derr_set(e, "loader: %s is listed twice (as %s and %s)", v[i].real, p->v[v[i - 1].i],
                              p->v[v[i].i]);
    for (int i = 0; i < p->n; i++) free((char *)v[i].real);
    free(v);
    return rc;
}

// ---- validation -----------------------------------------------------------------------------------------

typedef struct agree {
    const char *kind_from;  // file that fixed the kind
    const char *hash_from[2];
    char hash[2][65];
} agree;

static int check_hash(const char *path, const char *name, const char *have, const char *want, agree *a, int k,
                      s2s_derr *e) {
    if (!have[0]) return 0;  // this shard holds no ids of that tokenizer
    if (want) {
        if (strcmp(have, want))
            return s2s_derr_set(e, "loader: %s: %s = %s does not match the run's tokenizer (%s)", path, name, have,
                                want);
        return 0;
    }
    if (!a->hash_from[k]) {
        a->hash_from[k] = path;
        memcpy(a->hash[k], have, 65);
    } else if (strcmp(a->hash[k], have)) {
        return s2s_derr_set(e, "loader: %s: %s = %s differs from %s's %s (shards of different tokenizers)", path,
                            name, have, a->hash_from[k], a->hash[k]);
    }
    return 0;
}

static int scan_shard(loader_index *ix, int si, const s2s_loader_config *cfg, agree *a, s2s_derr *e) {
    const char *path = ix->paths[si];
    s2s_derr inner;
    loader_h5_lock();
    s2s_shard *s = s2s_shard_open(path, &inner);
    int rc = 0;
    if (!s) {
        rc = s2s_derr_set(e, "loader: %s", inner.msg);
        goto out;
    }
    const s2s_shard_meta *m = s2s_shard_get_meta(s);
    if (si == 0) {
        ix->kind = m->kind, a->kind_from = path;
    } else if (m->kind != ix->kind) {
        rc = s2s_derr_set(e, "loader: %s: kind '%s' differs from '%s' of %s (one loader reads one kind)", path,
                          s2s_shard_kind_name(m->kind), s2s_shard_kind_name(ix->kind), a->kind_from);
        goto out;
    }
    if (check_hash(path, "llm_tokenizer_sha256", m->llm_tokenizer_sha256, cfg->llm_tokenizer_sha256, a, 0, e) ||
        check_hash(path, "tts_tokenizer_sha256", m->tts_tokenizer_sha256, cfg->tts_tokenizer_sha256, a, 1, e)) {
        rc = -1;
        goto out;
    }
    if (cfg->check_samples && s2s_shard_check(s, NULL, &inner)) {
        rc = s2s_derr_set(e, "loader: %s", inner.msg);
        goto out;
    }
    int64_t n = s2s_shard_num_samples(s), base = ix->first[si];
    int32_t *cost = realloc(ix->cost, sizeof(int32_t) * ((base + n) ? base + n : 1));
    if (!cost) {
        rc = s2s_derr_set(e, "loader: out of memory indexing %s", path);
        goto out;
    }
    ix->cost = cost;
    for (int64_t i = 0; i < n; i++) {
        s2s_shard_len len;
        s2s_shard_lengths(s, i, &len);
        int64_t c = s2s_loader_sample_cost(&len);
        if (c > INT32_MAX) {
            rc = s2s_derr_set(e, "loader: %s: sample %lld: cost %lld is beyond any batch", path, (long long)i,
                              (long long)c);
            goto out;
        }
        if (cfg->token_budget > 0 && c > cfg->token_budget) {
            rc = s2s_derr_set(e,
                              "loader: %s: sample %lld: cost %lld (tokens %lld, audios %lld of %lld samples, units "
                              "%lld) exceeds token_budget %lld; raise the budget or filter the data",
                              path, (long long)i, (long long)c, (long long)len.n_tokens, (long long)len.n_audio,
                              (long long)len.audio_samples, (long long)len.n_units, (long long)cfg->token_budget);
            goto out;
        }
        cost[base + i] = (int32_t)c;
        const int emo = cfg->emotion_classes > 0 ? s2s_shard_emotion(s, i) : -1;
        if (emo >= cfg->emotion_classes) {
            rc = s2s_derr_set(e, "loader: %s: sample %lld: emotion class %d, but emotion.classes is %d (the classes "
                              "the shards were made with must fit the head)", path, (long long)i, emo,
                              cfg->emotion_classes);
            goto out;
        }
    }
    ix->first[si + 1] = base + n;
out:
    s2s_shard_close(s);
    loader_h5_unlock();
    return rc;
}

void loader_index_free(loader_index *ix) {
    for (int i = 0; i < ix->n_shards; i++) free(ix->paths[i]);
    free(ix->paths);
    free(ix->first);
    free(ix->cost);
    memset(ix, 0, sizeof *ix);
}

int loader_index_build(loader_index *ix, const s2s_loader_config *cfg, s2s_derr *e) {
    memset(ix, 0, sizeof *ix);
    paths p = {0};
    if (cfg->n_paths < 1) return s2s_derr_set(e, "loader: no shard given");
    for (int i = 0; i < cfg->n_paths; i++)
        if (expand_one(&p, cfg->paths[i], e)) goto fail;
    if (refuse_duplicates(&p, e)) goto fail;
    ix->paths = p.v, ix->n_shards = p.n;
    p.v = NULL, p.n = 0;
    if (!(ix->first = calloc(ix->n_shards + 1, sizeof(int64_t)))) {
        s2s_derr_set(e, "loader: out of memory");
        goto fail;
    }
    agree a = {0};
    for (int si = 0; si < ix->n_shards; si++)
        if (scan_shard(ix, si, cfg, &a, e)) goto fail;
    ix->n = ix->first[ix->n_shards];
    if (ix->n == 0) {
        s2s_derr_set(e, "loader: the %d shard(s) from %s hold no sample", ix->n_shards, cfg->paths[0]);
        goto fail;
    }
    uint64_t h = s2s_fnv1a(S2S_FNV1A_OFFSET, &ix->kind, sizeof ix->kind);
    h = s2s_fnv1a(h, ix->first, sizeof(int64_t) * (ix->n_shards + 1));
    ix->hash = s2s_fnv1a(h, ix->cost, sizeof(int32_t) * ix->n);
    return 0;
fail:
    for (int i = 0; i < p.n; i++) free(p.v[i]);
    free(p.v);
    loader_index_free(ix);
    return -1;
}

int loader_index_shard_of(const loader_index *ix, int64_t g) {
    int lo = 0, hi = ix->n_shards - 1;  // the last shard s with first[s] <= g (empty shards are skipped over)
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ix->first[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}
