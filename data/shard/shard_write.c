// shard_write.c — appends samples to "<path>.tmp" and publishes the shard under `path` at close. Values are
// staged in memory and written in whole chunks (no read-modify-write of partial chunks); offsets, flags and
// emotion stay in memory (~40 bytes a sample) and are written at close, as are the root attributes, so a file
// under the final name is always complete.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/fs.h"
#include "data/shard/shard.h"
#include "shard_h5.h"

#define FLUSH_CHUNKS 4  // stage up to this many chunks before writing

static const float spk_none[S2S_SHARD_SPK_DIM];  // the row of a sample without a speaker embedding

// One values dataset being appended to. Rows are single elements (row 0) or fixed-width rows (spk_emb).
typedef struct stream {
    const char *name;
    hid_t file_type, mem_type;
    size_t row_bytes;
    int64_t row;          // 0 = 1-D, else elements per row
    int64_t chunk;        // rows per chunk
    hid_t dset;           // -1 until the first write
    char *pending;        // [npending * row_bytes] rows not yet written
    int64_t npending, cap, written;
} stream;

// Growable in-memory int64 array (the offsets).
typedef struct i64vec {
    int64_t *v;
    int64_t n, cap;
} i64vec;

enum { S_IDS, S_LABELS, S_TYPES, S_AUDIO, S_UNITS, S_TIDS, S_TLABELS, S_SPK, S_COUNT };

struct s2s_shard_writer {
    char *path, *tmp;
    s2s_shard_meta meta;
    hid_t file;
    stream s[S_COUNT];
    i64vec text_off, saudio_off, audio_off, unit_off, teacher_off;  // each [n+1] ([A+1] for audio_off)
    uint8_t *flags;                                                 // [n]
    int8_t *emotion;                                                // [n]
    int64_t n, cap_n, bytes;
    int any_spk, any_emotion;
    int broken;  // an HDF5 write failed: the file is inconsistent, only abort is left
};

static void stream_init(stream *s, const char *name, hid_t ft, hid_t mt, size_t elem, int64_t row, int64_t chunk) {
    *s = (stream){.name = name, .file_type = ft, .mem_type = mt, .row_bytes = elem * (row ? row : 1),
                  .row = row, .chunk = chunk, .dset = -1};
}

static int stream_write(s2s_shard_writer *w, stream *s, int64_t nrows) {
    if (s->dset < 0) {
        // A small shard written in one go gets one chunk of exactly its size rather than a mostly-empty one.
        int64_t chunk = s->written + s->npending < s->chunk ? s->npending : s->chunk;
        s->dset = s2s_h5_create_ext(w->file, s->name, s->file_type, chunk > 0 ? chunk : 1, s->row);
        if (s->dset < 0) return -1;
    }
    if (s2s_h5_append(s->dset, s->mem_type, s->pending, nrows, s->row)) return -1;
    if (s->npending > nrows)  // keep the partial chunk for later
        memmove(s->pending, s->pending + nrows * s->row_bytes, (s->npending - nrows) * s->row_bytes);
    s->npending -= nrows;
    s->written += nrows;
    return 0;
}

static int stream_push(s2s_shard_writer *w, stream *s, const void *rows, int64_t nrows, s2s_derr *e) {
    if (nrows <= 0) return 0;
    if (s->npending + nrows > s->cap) {
        int64_t cap = s->cap ? s->cap : s->chunk;
        while (cap < s->npending + nrows) cap *= 2;
        char *p = realloc(s->pending, cap * s->row_bytes);
        if (!p) return s2s_derr_set(e, "%s: out of memory staging '%s'", w->tmp, s->name);
        s->pending = p, s->cap = cap;
    }
    memcpy(s->pending + s->npending * s->row_bytes, rows, nrows * s->row_bytes);
    s->npending += nrows;
    w->bytes += nrows * s->row_bytes;
    if (s->npending >= FLUSH_CHUNKS * s->chunk && stream_write(w, s, s->npending / s->chunk * s->chunk)) {
        w->broken = 1;
        return s2s_derr_set(e, "%s: cannot write dataset '%s'", w->tmp, s->name);
    }
    return 0;
}

static int i64vec_push(i64vec *v, int64_t x) {
    if (v->n == v->cap) {
        int64_t cap = v->cap ? 2 * v->cap : 1024;
        int64_t *p = realloc(v->v, cap * sizeof *p);
        if (!p) return -1;
        v->v = p, v->cap = cap;
    }
    v->v[v->n++] = x;
    return 0;
}

static int64_t last(const i64vec *v) { return v->v[v->n - 1]; }

static void writer_free(s2s_shard_writer *w) {
    for (int k = 0; k < S_COUNT; k++) {
        if (w->s[k].dset >= 0) H5Dclose(w->s[k].dset);
        free(w->s[k].pending);
    }
    if (w->file >= 0) H5Fclose(w->file);
    i64vec *vs[] = {&w->text_off, &w->saudio_off, &w->audio_off, &w->unit_off, &w->teacher_off};
    for (int k = 0; k < 5; k++) free(vs[k]->v);
    free(w->flags);
    free(w->emotion);
    free(w->path);
    free(w->tmp);
    free(w);
}

static int hash_ok(const char *h) {
    size_t n = strlen(h);
    if (n != 0 && n != 64) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f'))) return 0;
    return 1;
}

s2s_shard_writer *s2s_shard_writer_open(const char *path, const s2s_shard_meta *meta, s2s_derr *e) {
    if (!hash_ok(meta->llm_tokenizer_sha256) || !hash_ok(meta->tts_tokenizer_sha256)) {
        s2s_derr_set(e, "%s: tokenizer hashes must be 64 lower-case hex digits or empty", path);
        return NULL;
    }
    if (!strcmp(s2s_shard_kind_name(meta->kind), "?")) {
        s2s_derr_set(e, "%s: unknown shard kind %d", path, (int)meta->kind);
        return NULL;
    }
    if (meta->sample_rate && meta->sample_rate != S2S_SHARD_SAMPLE_RATE) {
        s2s_derr_set(e, "%s: sample_rate %lld; schema version %d stores %d Hz audio", path,
                     (long long)meta->sample_rate, S2S_SHARD_VERSION, S2S_SHARD_SAMPLE_RATE);
        return NULL;
    }
    s2s_shard_writer *w = calloc(1, sizeof *w);
    if (!w) return s2s_derr_set(e, "%s: out of memory", path), NULL;
    w->file = -1;
    w->meta = *meta;
    w->meta.sample_rate = S2S_SHARD_SAMPLE_RATE;
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 5);
    if (w->tmp) sprintf(w->tmp, "%s.tmp", path);
    stream_init(&w->s[S_IDS], "input_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 0, 65536);
    stream_init(&w->s[S_LABELS], "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 0, 65536);
    stream_init(&w->s[S_TYPES], "token_types", H5T_STD_I8LE, H5T_NATIVE_INT8, 1, 0, 65536);
    stream_init(&w->s[S_AUDIO], "audio", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, 0, 262144);  // 16 s a chunk
    stream_init(&w->s[S_UNITS], "units", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 0, 65536);
    stream_init(&w->s[S_TIDS], "teacher_ids", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 0, 65536);
    stream_init(&w->s[S_TLABELS], "teacher_labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 4, 0, 65536);
    stream_init(&w->s[S_SPK], "spk_emb", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 4, S2S_SHARD_SPK_DIM, 64);
    if (!w->path || !w->tmp || i64vec_push(&w->text_off, 0) || i64vec_push(&w->saudio_off, 0) ||
        i64vec_push(&w->audio_off, 0) || i64vec_push(&w->unit_off, 0) || i64vec_push(&w->teacher_off, 0)) {
        s2s_derr_set(e, "%s: out of memory", path);
        writer_free(w);
        return NULL;
    }
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) {
        char why[256];
        s2s_h5_last_error(why, sizeof why);
        s2s_derr_set(e, "%s: cannot create file: %s", w->tmp, why);
        writer_free(w);
        w = NULL;
    }
    s2s_h5_quiet_end(q);
    return w;
}

int64_t s2s_shard_writer_num_samples(const s2s_shard_writer *w) { return w->n; }
int64_t s2s_shard_writer_bytes(const s2s_shard_writer *w) { return w->bytes; }

static int writer_add(s2s_shard_writer *w, const s2s_shard_sample *x, s2s_derr *e) {
    if (w->broken) return s2s_derr_set(e, "%s: an earlier write failed; the shard cannot be completed", w->tmp);
    if (s2s_shard_sample_check(w->meta.kind, x, w->path, w->n, e)) return -1;
    if (w->n == w->cap_n) {
        int64_t cap = w->cap_n ? 2 * w->cap_n : 1024;
        uint8_t *f = realloc(w->flags, cap);
        if (f) w->flags = f;
        int8_t *em = realloc(w->emotion, cap);
        if (em) w->emotion = em;
        if (!f || !em) return s2s_derr_set(e, "%s: out of memory", w->tmp);
        w->cap_n = cap;
    }
    int64_t audio_total = 0;
    for (int64_t a = 0; a < x->n_audio; a++) audio_total += x->audio_len[a];
    if (stream_push(w, &w->s[S_IDS], x->input_ids, x->n_tokens, e) ||
        stream_push(w, &w->s[S_LABELS], x->labels, x->n_tokens, e) ||
        stream_push(w, &w->s[S_TYPES], x->token_types, x->n_tokens, e) ||
        stream_push(w, &w->s[S_AUDIO], x->audio, audio_total, e) ||
        stream_push(w, &w->s[S_UNITS], x->units, x->n_units, e) ||
        stream_push(w, &w->s[S_TIDS], x->teacher_ids, x->n_teacher, e) ||
        stream_push(w, &w->s[S_TLABELS], x->teacher_labels, x->n_teacher, e))
        goto fail;
    if (x->has_spk_emb && !w->any_spk) {
        // The first embedding: earlier samples get their zero rows now, so row i stays sample i.
        for (int64_t i = 0; i < w->n; i++)
            if (stream_push(w, &w->s[S_SPK], spk_none, 1, e)) goto fail;
        w->any_spk = 1;
    }
    if (w->any_spk && stream_push(w, &w->s[S_SPK], x->has_spk_emb ? x->spk_emb : spk_none, 1, e)) goto fail;
    int64_t a0 = last(&w->audio_off);
    for (int64_t a = 0; a < x->n_audio; a++)
        if (i64vec_push(&w->audio_off, a0 += x->audio_len[a])) goto oom;
    if (i64vec_push(&w->text_off, last(&w->text_off) + x->n_tokens) ||
        i64vec_push(&w->saudio_off, last(&w->saudio_off) + x->n_audio) ||
        i64vec_push(&w->unit_off, last(&w->unit_off) + x->n_units) ||
        i64vec_push(&w->teacher_off, last(&w->teacher_off) + x->n_teacher))
        goto oom;
    w->flags[w->n] = s2s_shard_sample_flags(x);
    w->emotion[w->n] = (int8_t)x->emotion;
    w->any_emotion |= x->emotion >= 0;
    w->n++;
    return 0;
oom:
    s2s_derr_set(e, "%s: out of memory", w->tmp);
fail:
    w->broken = 1;  // some streams took the sample and others did not
    return -1;
}

int s2s_shard_writer_add(s2s_shard_writer *w, const s2s_shard_sample *x, s2s_derr *e) {
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    int rc = writer_add(w, x, e);
    s2s_h5_quiet_end(q);
    return rc;
}

// Writes a whole in-memory array as a new dataset.
static int put_array(s2s_shard_writer *w, const char *name, hid_t ft, hid_t mt, const void *v, int64_t n) {
    hid_t d = s2s_h5_create_ext(w->file, name, ft, n < 65536 ? (n ? n : 1) : 65536, 0);
    if (d < 0) return -1;
    int rc = s2s_h5_append(d, mt, v, n, 0);
    H5Dclose(d);
    return rc;
}

static int writer_finish(s2s_shard_writer *w, s2s_derr *e) {
    if (w->broken) return s2s_derr_set(e, "%s: an earlier write failed; the shard cannot be completed", w->tmp);
    int any_audio = last(&w->saudio_off) > 0, any_units = last(&w->unit_off) > 0,
        any_teacher = last(&w->teacher_off) > 0;
    // Text is always present; an optional group is written only when some sample has it.
    int present[S_COUNT] = {1, 1, 1, any_audio, any_units, any_teacher, any_teacher, w->any_spk};
    for (int k = 0; k < S_COUNT; k++)
        if (present[k] && stream_write(w, &w->s[k], w->s[k].npending))
            return s2s_derr_set(e, "%s: cannot write dataset '%s'", w->tmp, w->s[k].name);
    const hid_t I64F = H5T_STD_I64LE, I64M = H5T_NATIVE_INT64;
    if (put_array(w, "text_offsets", I64F, I64M, w->text_off.v, w->n + 1) ||
        put_array(w, "flags", H5T_STD_U8LE, H5T_NATIVE_UINT8, w->flags, w->n) ||
        (any_audio && (put_array(w, "sample_audio_offsets", I64F, I64M, w->saudio_off.v, w->n + 1) ||
                       put_array(w, "audio_offsets", I64F, I64M, w->audio_off.v, w->audio_off.n))) ||
        (any_units && put_array(w, "unit_offsets", I64F, I64M, w->unit_off.v, w->n + 1)) ||
        (any_teacher && put_array(w, "teacher_offsets", I64F, I64M, w->teacher_off.v, w->n + 1)) ||
        (w->any_emotion && put_array(w, "emotion", H5T_STD_I8LE, H5T_NATIVE_INT8, w->emotion, w->n)))
        return s2s_derr_set(e, "%s: cannot write the offsets", w->tmp);
    const s2s_shard_meta *m = &w->meta;
    if (s2s_h5_attr_put_str(w->file, "format", S2S_SHARD_FORMAT) ||
        s2s_h5_attr_put_i64(w->file, "version", S2S_SHARD_VERSION) ||
        s2s_h5_attr_put_str(w->file, "kind", s2s_shard_kind_name(m->kind)) ||
        s2s_h5_attr_put_i64(w->file, "num_samples", w->n) ||
        s2s_h5_attr_put_i64(w->file, "sample_rate", S2S_SHARD_SAMPLE_RATE) ||
        s2s_h5_attr_put_str(w->file, "llm_tokenizer_sha256", m->llm_tokenizer_sha256) ||
        s2s_h5_attr_put_str(w->file, "tts_tokenizer_sha256", m->tts_tokenizer_sha256) ||
        s2s_h5_attr_put_str(w->file, "created_by", m->created_by))
        return s2s_derr_set(e, "%s: cannot write the root attributes", w->tmp);
    for (int k = 0; k < S_COUNT; k++)
        if (w->s[k].dset >= 0) H5Dclose(w->s[k].dset), w->s[k].dset = -1;
    herr_t closed = H5Fclose(w->file);
    w->file = -1;
    if (closed < 0) return s2s_derr_set(e, "%s: closing the file failed", w->tmp);
    return s2s_publish(w->tmp, w->path, S2S_DERR_BUF(e));  // fsync, rename, fsync of the directory
}

int s2s_shard_writer_close(s2s_shard_writer *w, s2s_derr *e) {
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    int rc = writer_finish(w, e);
    if (rc) {
        if (w->file >= 0) {
            for (int k = 0; k < S_COUNT; k++)
                if (w->s[k].dset >= 0) H5Dclose(w->s[k].dset), w->s[k].dset = -1;
            H5Fclose(w->file);
            w->file = -1;
        }
        unlink(w->tmp);
    }
    writer_free(w);
    s2s_h5_quiet_end(q);
    return rc;
}

void s2s_shard_writer_abort(s2s_shard_writer *w) {
    if (!w) return;
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    for (int k = 0; k < S_COUNT; k++)
        if (w->s[k].dset >= 0) H5Dclose(w->s[k].dset), w->s[k].dset = -1;
    if (w->file >= 0) H5Fclose(w->file), w->file = -1;
    unlink(w->tmp);
    writer_free(w);
    s2s_h5_quiet_end(q);
}
