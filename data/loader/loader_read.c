// loader_read.c — fills one rank-batch: reads each sample from its shard (handles opened on first use and kept,
// least recently used closed beyond max_open), appends its fields to the batch's concatenated arrays, and
// computes the log-mel of every audio into chunk-major [chunks, 128, 3000]. Buffers grow and are reused, so a
// steady stream of batches does not allocate.
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "loader_internal.h"

// The one piece of process-wide state: see loader_internal.h.
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;
void loader_h5_lock(void) { pthread_mutex_lock(&h5_lock); }
void loader_h5_unlock(void) { pthread_mutex_unlock(&h5_lock); }

int loader_reader_init(loader_reader *r, const loader_index *ix, int max_open, int mel, s2s_derr *e) {
    memset(r, 0, sizeof *r);
    r->ix = ix;
    r->max_open = max_open > 0 ? max_open : 256;
    r->mel = mel;
    r->open = calloc(ix->n_shards, sizeof *r->open);
    r->used = calloc(ix->n_shards, sizeof *r->used);
    if (!r->open || !r->used) return loader_reader_free(r), s2s_derr_set(e, "loader: out of memory");
    if (mel && s2s_logmel_new(&r->logmel, e)) return loader_reader_free(r), -1;
    return 0;
}

void loader_reader_free(loader_reader *r) {
    if (r->open) {
        loader_h5_lock();
        for (int i = 0; i < r->ix->n_shards; i++) s2s_shard_close(r->open[i]);
        loader_h5_unlock();
    }
    free(r->open);
    free(r->used);
    s2s_shard_sample_free(&r->sample);
    if (r->logmel) s2s_logmel_free(r->logmel);
    free(r->pcm);
    free(r->melbuf);
    memset(r, 0, sizeof *r);
}

// The open handle of shard si. A reopened shard must still be the file validated at open.
static s2s_shard *shard_get(loader_reader *r, int si, s2s_derr *e) {
    r->used[si] = ++r->tick;
    if (r->open[si]) return r->open[si];
    if (r->n_open >= r->max_open) {
        int lru = -1;
        for (int i = 0; i < r->ix->n_shards; i++)
            if (r->open[i] && (lru < 0 || r->used[i] < r->used[lru])) lru = i;
        s2s_shard_close(r->open[lru]);
        r->open[lru] = NULL, r->n_open--;
    }
    s2s_derr inner;
    s2s_shard *s = s2s_shard_open(r->ix->paths[si], &inner);
    if (!s) return s2s_derr_set(e, "loader: %s", inner.msg), NULL;
    int64_t want = r->ix->first[si + 1] - r->ix->first[si];
    if (s2s_shard_num_samples(s) != want) {
        s2s_derr_set(e, "loader: %s: now holds %lld samples, %lld when the job started (the file was replaced)",
                     r->ix->paths[si], (long long)s2s_shard_num_samples(s), (long long)want);
        s2s_shard_close(s);
        return NULL;
    }
    r->n_open++;
    return r->open[si] = s;
}

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, elem * c);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

// Capacities: cap_n covers every [n] and [n+1] array, cap_audio every per-audio one.
static int reserve_n(s2s_batch *b, int64_t n) {
    if (n + 1 <= b->cap_n) return 0;
    int64_t c = b->cap_n, c0;
#define G(f, T) (c0 = c, grow((void **)&b->f, &c0, n + 1, sizeof(T)))
    if (G(shard, int32_t) || G(index, int64_t) || G(cost, int64_t) || G(tok_off, int64_t) || G(audio_off, int64_t) ||
        G(unit_off, int64_t) || G(teacher_off, int64_t) || G(flags, uint8_t) || G(emotion, int32_t) ||
        G(spk_emb, float[S2S_SHARD_SPK_DIM]))
        return -1;
#undef G
    b->cap_n = c0;
    return 0;
}

static int reserve_audio(s2s_batch *b, int64_t na) {
    if (na + 1 <= b->cap_audio) return 0;
    int64_t c = b->cap_audio, c0;
    if ((c0 = c, grow((void **)&b->pcm_off, &c0, na + 1, 8)) || (c0 = c, grow((void **)&b->chunk_off, &c0, na + 1, 8)) ||
        (c0 = c, grow((void **)&b->valid_frames, &c0, na + 1, 8)))
        return -1;
    b->cap_audio = c0;
    return 0;
}

static int reserve_tok(s2s_batch *b, int64_t nt) {
    if (nt <= b->cap_tok) return 0;
    int64_t c = b->cap_tok, c0;
    if ((c0 = c, grow((void **)&b->input_ids, &c0, nt, 4)) || (c0 = c, grow((void **)&b->labels, &c0, nt, 4)) ||
        (c0 = c, grow((void **)&b->token_types, &c0, nt, 1)))
        return -1;
    b->cap_tok = c0;
    return 0;
}

static int reserve_teacher(s2s_batch *b, int64_t nt) {
    if (nt <= b->cap_teacher) return 0;
    int64_t c = b->cap_teacher, c0;
    if ((c0 = c, grow((void **)&b->teacher_ids, &c0, nt, 4)) || (c0 = c, grow((void **)&b->teacher_labels, &c0, nt, 4)))
        return -1;
    b->cap_teacher = c0;
    return 0;
}

static int reserve_chunks(s2s_batch *b, int64_t nc) {
    if (nc <= b->cap_chunks) return 0;
    int64_t c = b->cap_chunks, c0;
    if ((c0 = c, grow((void **)&b->chunk_valid, &c0, nc, 8)) ||
        (c0 = c, grow((void **)&b->mel, &c0, nc, sizeof(float) * S2S_MEL_BINS * S2S_MEL_CHUNK_FRAMES)))
        return -1;
    b->cap_chunks = c0;
    return 0;
}

// The log-mel of audio a (already in b->pcm) into its chunks. An audio of one chunk is computed in place; longer
// ones go through [128, F] scratch and are split into chunk-major order.
static int audio_mel(loader_reader *r, s2s_batch *b, int64_t a, const char *path, int64_t index, s2s_derr *e) {
    int64_t n = b->pcm_off[a + 1] - b->pcm_off[a];
    int64_t F = s2s_logmel_padded_frames(n), k = F / S2S_MEL_CHUNK_FRAMES, c0 = b->n_chunks;
    const int64_t CH = (int64_t)S2S_MEL_BINS * S2S_MEL_CHUNK_FRAMES;
    if (grow((void **)&r->pcm, &r->cap_pcm, n, sizeof(float)) || reserve_chunks(b, c0 + k) ||
        (k > 1 && grow((void **)&r->melbuf, &r->cap_melbuf, (int64_t)S2S_MEL_BINS * F, sizeof(float))))
        return s2s_derr_set(e, "loader: out of memory for the log-mel of %s sample %lld", path, (long long)index);
    const int16_t *x = b->pcm + b->pcm_off[a];
    for (int64_t i = 0; i < n; i++) r->pcm[i] = (float)x[i] * (1.0f / 32768.0f);  // as soundfile reads i16
    s2s_derr inner;
    float *dst = k == 1 ? b->mel + c0 * CH : r->melbuf;
    if (s2s_logmel_compute(r->logmel, r->pcm, n, F, dst, &inner))
        return s2s_derr_set(e, "loader: %s: sample %lld: %s", path, (long long)index, inner.msg);
    for (int64_t c = 0; k > 1 && c < k; c++)
        for (int m = 0; m < S2S_MEL_BINS; m++)
            memcpy(b->mel + (c0 + c) * CH + (int64_t)m * S2S_MEL_CHUNK_FRAMES,
                   r->melbuf + (int64_t)m * F + c * S2S_MEL_CHUNK_FRAMES, sizeof(float) * S2S_MEL_CHUNK_FRAMES);
    int64_t valid = s2s_logmel_valid_frames(n);
    b->valid_frames[a] = valid;
    for (int64_t c = 0; c < k; c++) {
        int64_t v = valid - c * S2S_MEL_CHUNK_FRAMES;
        b->chunk_valid[c0 + c] = v < S2S_MEL_CHUNK_FRAMES ? v : S2S_MEL_CHUNK_FRAMES;
    }
    b->n_chunks = c0 + k;
    b->chunk_off[a + 1] = b->n_chunks;
    return 0;
}

// memcpy that accepts the NULL arrays of empty fields.
static void copy(void *dst, const void *src, size_t n) {
    if (n) memcpy(dst, src, n);
}

// Appends r->sample as sample i of b.
static int append(loader_reader *r, s2s_batch *b, int64_t i, s2s_derr *e) {
    const s2s_shard_sample *s = &r->sample;
    int64_t t0 = b->tok_off[i], a0 = b->audio_off[i], u0 = b->unit_off[i], h0 = b->teacher_off[i];
    int64_t p0 = b->pcm_off[a0], pn = 0;
    for (int64_t a = 0; a < s->n_audio; a++) pn += s->audio_len[a];
    if (reserve_tok(b, t0 + s->n_tokens) || reserve_audio(b, a0 + s->n_audio) ||
        grow((void **)&b->pcm, &b->cap_pcm, p0 + pn, 2) || grow((void **)&b->units, &b->cap_units, u0 + s->n_units, 4) ||
        reserve_teacher(b, h0 + s->n_teacher))
        return s2s_derr_set(e, "loader: out of memory");
    copy(b->input_ids + t0, s->input_ids, 4 * s->n_tokens);
    copy(b->labels + t0, s->labels, 4 * s->n_tokens);
    copy(b->token_types + t0, s->token_types, s->n_tokens);
    b->tok_off[i + 1] = t0 + s->n_tokens;
    copy(b->pcm + p0, s->audio, 2 * pn);
    for (int64_t a = 0; a < s->n_audio; a++) b->pcm_off[a0 + a + 1] = b->pcm_off[a0 + a] + s->audio_len[a];
    b->audio_off[i + 1] = a0 + s->n_audio;
    b->n_audio = a0 + s->n_audio;
    copy(b->units + u0, s->units, 4 * s->n_units);
    b->unit_off[i + 1] = u0 + s->n_units;
    copy(b->teacher_ids + h0, s->teacher_ids, 4 * s->n_teacher);
    copy(b->teacher_labels + h0, s->teacher_labels, 4 * s->n_teacher);
    b->teacher_off[i + 1] = h0 + s->n_teacher;
    copy(b->spk_emb + i * S2S_SHARD_SPK_DIM, s->spk_emb, sizeof s->spk_emb);
    b->flags[i] = s->flags;
    b->emotion[i] = s->emotion;
    return 0;
}

int loader_reader_fill(loader_reader *r, const int64_t *ids, int64_t n, s2s_batch *b, atomic_int *stop, s2s_derr *e) {
    if (reserve_n(b, n) || reserve_audio(b, 0)) return s2s_derr_set(e, "loader: out of memory");
    b->n = 0, b->n_audio = 0, b->n_chunks = 0;
    b->tok_off[0] = b->audio_off[0] = b->unit_off[0] = b->teacher_off[0] = 0;
    b->pcm_off[0] = b->chunk_off[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        if (stop && atomic_load(stop)) return 1;
        int si = loader_index_shard_of(r->ix, ids[i]);
        int64_t k = ids[i] - r->ix->first[si];
        const char *path = r->ix->paths[si];
        s2s_derr inner;
        loader_h5_lock();
        s2s_shard *s = shard_get(r, si, e);
        int rc = s ? s2s_shard_read(s, k, &r->sample, &inner) : -1;
        loader_h5_unlock();
        if (!s) return -1;
        if (rc) return s2s_derr_set(e, "loader: %s", inner.msg);
        b->shard[i] = si, b->index[i] = k, b->cost[i] = r->ix->cost[ids[i]];
        int64_t a0 = b->audio_off[i];
        if (append(r, b, i, e)) return -1;
        for (int64_t a = a0; a < b->audio_off[i + 1]; a++) {
            if (r->mel) {
                if (audio_mel(r, b, a, path, k, e)) return -1;
            } else {
                b->valid_frames[a] = s2s_logmel_valid_frames(b->pcm_off[a + 1] - b->pcm_off[a]);
                b->chunk_off[a + 1] = 0;
            }
        }
        b->n = i + 1;
    }
    return 0;
}

void s2s_batch_free(s2s_batch *b) {
    void *p[] = {b->shard, b->index, b->cost, b->tok_off, b->input_ids, b->labels, b->token_types, b->audio_off,
                 b->pcm_off, b->pcm, b->chunk_off, b->valid_frames, b->chunk_valid, b->mel, b->unit_off, b->units,
                 b->teacher_off, b->teacher_ids, b->teacher_labels, b->spk_emb, b->flags, b->emotion};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) free(p[i]);
    memset(b, 0, sizeof *b);
}
