// shard_read.c — opens an s2s-shard, validates everything that does not need the values (attributes, schema,
// dtypes, shapes, offsets, flags), keeps the offsets in memory, and reads sample i with one hyperslab per values
// dataset. Content rules are checked per sample as it is read (shard_check.c).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "data/shard/shard.h"
#include "shard_h5.h"

// No shard holds more rows than this in one dataset (2^40 is 2 years of 16 kHz audio); larger dimensions come
// from a damaged header, and refusing them keeps n + 1 and the allocations below far from overflow.
#define S2S_SHARD_MAX_ROWS ((int64_t)1 << 40)

// The schema: every dataset, its dtype and the group it belongs to (0 = always required).
typedef struct field {
    const char *name;
    int is_float;
    size_t size;
    int is_signed;
    int row;  // 0 = 1-D, else the required second dimension
    int group;
    const char *dtype;
} field;

enum {
    F_TEXT_OFF, F_IDS, F_LABELS, F_TYPES, F_FLAGS, F_SAUDIO_OFF, F_AUDIO_OFF, F_AUDIO, F_UNIT_OFF, F_UNITS,
    F_TEACHER_OFF, F_TIDS, F_TLABELS, F_SPK, F_EMOTION, F_COUNT
};

static const field schema[F_COUNT] = {
    [F_TEXT_OFF] = {"text_offsets", 0, 8, 1, 0, 0, "int64"},
    [F_IDS] = {"input_ids", 0, 4, 1, 0, 0, "int32"},
    [F_LABELS] = {"labels", 0, 4, 1, 0, 0, "int32"},
    [F_TYPES] = {"token_types", 0, 1, 1, 0, 0, "int8"},
    [F_FLAGS] = {"flags", 0, 1, 0, 0, 0, "uint8"},
    [F_SAUDIO_OFF] = {"sample_audio_offsets", 0, 8, 1, 0, S2S_SHARD_GROUP_AUDIO, "int64"},
    [F_AUDIO_OFF] = {"audio_offsets", 0, 8, 1, 0, S2S_SHARD_GROUP_AUDIO, "int64"},
    [F_AUDIO] = {"audio", 0, 2, 1, 0, S2S_SHARD_GROUP_AUDIO, "int16"},
    [F_UNIT_OFF] = {"unit_offsets", 0, 8, 1, 0, S2S_SHARD_HAS_UNITS, "int64"},
    [F_UNITS] = {"units", 0, 4, 1, 0, S2S_SHARD_HAS_UNITS, "int32"},
    [F_TEACHER_OFF] = {"teacher_offsets", 0, 8, 1, 0, S2S_SHARD_HAS_TEACHER, "int64"},
    [F_TIDS] = {"teacher_ids", 0, 4, 1, 0, S2S_SHARD_HAS_TEACHER, "int32"},
    [F_TLABELS] = {"teacher_labels", 0, 4, 1, 0, S2S_SHARD_HAS_TEACHER, "int32"},
    [F_SPK] = {"spk_emb", 1, 4, 1, S2S_SHARD_SPK_DIM, S2S_SHARD_HAS_SPK_EMB, "float32"},
    [F_EMOTION] = {"emotion", 0, 1, 1, 0, S2S_SHARD_HAS_EMOTION, "int8"},
};

struct s2s_shard {
    char *path;
    hid_t file;
    s2s_shard_meta meta;
    hid_t d[F_COUNT];    // -1 when absent
    int64_t len[F_COUNT];  // first dimension of each present dataset
    int groups;          // S2S_SHARD_HAS_* / S2S_SHARD_GROUP_AUDIO of the groups present
    int64_t n;
    int64_t *text_off;     // [n+1]
    int64_t *saudio_off;   // [n+1] (all 0 when the audio group is absent)
    int64_t *audio_off;    // [A+1]
    int64_t *unit_off;     // [n+1]
    int64_t *teacher_off;  // [n+1]
    uint8_t *flags;        // [n]
    int8_t *emotion;       // [n] (all -1 when absent)
};

const s2s_shard_meta *s2s_shard_get_meta(const s2s_shard *s) { return &s->meta; }
const char *s2s_shard_path(const s2s_shard *s) { return s->path; }
int64_t s2s_shard_num_samples(const s2s_shard *s) { return s->n; }
int s2s_shard_groups(const s2s_shard *s) { return s->groups; }

void s2s_shard_lengths(const s2s_shard *s, int64_t i, s2s_shard_len *o) {
    int64_t a0 = s->saudio_off[i], a1 = s->saudio_off[i + 1];
    o->n_tokens = s->text_off[i + 1] - s->text_off[i];
    o->n_audio = a1 - a0;
    o->audio_samples = s->audio_off[a1] - s->audio_off[a0];
    o->n_units = s->unit_off[i + 1] - s->unit_off[i];
    o->n_teacher = s->teacher_off[i + 1] - s->teacher_off[i];
    o->flags = s->flags[i];
}

void s2s_shard_close(s2s_shard *s) {
    if (!s) return;
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    for (int f = 0; f < F_COUNT; f++)
        if (s->d[f] >= 0) H5Dclose(s->d[f]);
    if (s->file >= 0) H5Fclose(s->file);
    s2s_h5_quiet_end(q);
    free(s->text_off);
    free(s->saudio_off);
    free(s->audio_off);
    free(s->unit_off);
    free(s->teacher_off);
    free(s->flags);
    free(s->emotion);
    free(s->path);
    free(s);
}

// ---- attributes ----------------------------------------------------------------------------------

static int need_str(s2s_shard *s, const char *name, char *out, size_t n, s2s_derr *e) {
    int rc = s2s_h5_attr_get_str(s->file, name, out, n, s->path, e);
    if (rc == 1) return s2s_derr_set(e, "%s: missing root attribute '%s'", s->path, name);
    return rc;
}

static int need_i64(s2s_shard *s, const char *name, int64_t *out, s2s_derr *e) {
    int rc = s2s_h5_attr_get_i64(s->file, name, out, s->path, e);
    if (rc == 1) return s2s_derr_set(e, "%s: missing root attribute '%s'", s->path, name);
    return rc;
}

static int hash_check(s2s_shard *s, const char *name, const char *h, s2s_derr *e) {
    size_t n = strlen(h);
    int ok = n == 0 || n == 64;
    for (size_t i = 0; ok && i < n; i++) ok = (h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f');
    char shown[300];
    if (!ok)
        return s2s_derr_set(e, "%s: root attribute '%s' = '%s' is not a sha256 (64 lower-case hex digits) or ''",
                            s->path, name, s2s_h5_printable(h, shown, sizeof shown));
    return 0;
}

static int read_attrs(s2s_shard *s, s2s_derr *e) {
    char fmt[64], kind[64];
    int rc = s2s_h5_attr_get_str(s->file, "format", fmt, sizeof fmt, s->path, e);
    if (rc == 1)
        return s2s_derr_set(e, "%s: missing root attribute 'format' (not an %s file?)", s->path, S2S_SHARD_FORMAT);
    if (rc) return -1;
    char shown[256];
    if (strcmp(fmt, S2S_SHARD_FORMAT))
        return s2s_derr_set(e, "%s: root attribute 'format' is '%s', expected '%s'", s->path,
                            s2s_h5_printable(fmt, shown, sizeof shown), S2S_SHARD_FORMAT);
    s2s_shard_meta *m = &s->meta;
    if (need_i64(s, "version", &m->version, e)) return -1;
    if (m->version != S2S_SHARD_VERSION)
        return s2s_derr_set(e, "%s: schema version %lld is not supported (this reader reads version %d)", s->path,
                            (long long)m->version, S2S_SHARD_VERSION);
    if (need_str(s, "kind", kind, sizeof kind, e)) return -1;
    if (s2s_shard_kind_parse(kind, &m->kind))
        return s2s_derr_set(e, "%s: root attribute 'kind' = '%s', expected instruct, align or tts_pretrain",
                            s->path, s2s_h5_printable(kind, shown, sizeof shown));
    if (need_i64(s, "num_samples", &m->num_samples, e)) return -1;
    if (m->num_samples < 0 || m->num_samples > S2S_SHARD_MAX_ROWS)
        return s2s_derr_set(e, "%s: root attribute 'num_samples' = %lld is out of range", s->path,
                            (long long)m->num_samples);
    if (need_i64(s, "sample_rate", &m->sample_rate, e)) return -1;
    if (m->sample_rate != S2S_SHARD_SAMPLE_RATE)
        return s2s_derr_set(e, "%s: root attribute 'sample_rate' = %lld, schema version %d stores %d Hz audio",
                            s->path, (long long)m->sample_rate, S2S_SHARD_VERSION, S2S_SHARD_SAMPLE_RATE);
    if (need_str(s, "llm_tokenizer_sha256", m->llm_tokenizer_sha256, sizeof m->llm_tokenizer_sha256, e) ||
        hash_check(s, "llm_tokenizer_sha256", m->llm_tokenizer_sha256, e) ||
        need_str(s, "tts_tokenizer_sha256", m->tts_tokenizer_sha256, sizeof m->tts_tokenizer_sha256, e) ||
        hash_check(s, "tts_tokenizer_sha256", m->tts_tokenizer_sha256, e) ||
        need_str(s, "created_by", m->created_by, sizeof m->created_by, e))
        return -1;
    s->n = m->num_samples;
    return 0;
}

// ---- datasets ------------------------------------------------------------------------------------

// A dataset access list with a chunk cache sized for one-sample reads. Uncompressed chunks get none: a sample is
// a small slice of a chunk, and without a cache HDF5 reads exactly that slice from the file, where caching would
// read (and copy) the whole chunk for each random access (measured 2-3x slower per sample). Compressed chunks
// must be decoded whole, so they get room for two, which makes sequential reads decode each chunk once.
static hid_t cache_plist(hid_t d) {
    hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
    hid_t dcpl = H5Dget_create_plist(d);
    size_t bytes = 0;
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_nfilters(dcpl) > 0) {
        hsize_t chunk[2] = {1, 1};
        int rank = H5Pget_chunk(dcpl, 2, chunk);
        hid_t t = H5Dget_type(d);
        size_t cb = H5Tget_size(t) * chunk[0] * (rank > 1 ? chunk[1] : 1);
        H5Tclose(t);
        bytes = 2 * cb < ((size_t)1 << 20) ? (size_t)1 << 20 : 2 * cb < ((size_t)64 << 20) ? 2 * cb : (size_t)64 << 20;
    }
    H5Pclose(dcpl);
    H5Pset_chunk_cache(dapl, 521, bytes, 1.0);
    return dapl;
}

static int open_field(s2s_shard *s, int f, s2s_derr *e) {
    const field *fd = &schema[f];
    htri_t ex = H5Lexists(s->file, fd->name, H5P_DEFAULT);
    if (ex < 0) return s2s_h5_fail(e, "%s: cannot look up '%s'", s->path, fd->name);
    if (!ex) return 0;
    hid_t o = H5Oopen(s->file, fd->name, H5P_DEFAULT);
    if (o < 0) return s2s_h5_fail(e, "%s: cannot open '%s'", s->path, fd->name);
    H5I_type_t it = H5Iget_type(o);
    H5Oclose(o);
    if (it != H5I_DATASET) return s2s_derr_set(e, "%s: '%s' is not a dataset", s->path, fd->name);
    hid_t d = H5Dopen2(s->file, fd->name, H5P_DEFAULT);
    if (d < 0) return s2s_h5_fail(e, "%s: cannot open dataset '%s'", s->path, fd->name);
    hid_t dapl = cache_plist(d);
    H5Dclose(d);
    d = s->d[f] = H5Dopen2(s->file, fd->name, dapl);
    if (d < 0) s2s_h5_fail(e, "%s: cannot open dataset '%s'", s->path, fd->name);
    H5Pclose(dapl);
    if (d < 0) return -1;
    hid_t t = H5Dget_type(d);
    int ok = s2s_h5_type_is(t, fd->is_float, fd->size, fd->is_signed);
    char tn[64];
    s2s_h5_type_name(t, tn, sizeof tn);
    H5Tclose(t);
    if (!ok)
        return s2s_derr_set(e, "%s: dataset '%s' has dtype %s, the schema requires %s", s->path, fd->name, tn,
                            fd->dtype);
    hid_t sp = H5Dget_space(d);
    int rank = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[2] = {0, 0};
    if (rank >= 1 && rank <= 2) H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    int want = fd->row ? 2 : 1;
    if (rank != want)
        return s2s_derr_set(e, "%s: dataset '%s' has %d dimensions, the schema requires %d", s->path, fd->name,
                            rank, want);
    if (fd->row && dims[1] != (hsize_t)fd->row)
        return s2s_derr_set(e, "%s: dataset '%s' has shape [%llu, %llu], the schema requires [n, %d]", s->path,
                            fd->name, (unsigned long long)dims[0], (unsigned long long)dims[1], fd->row);
    if (dims[0] > (hsize_t)S2S_SHARD_MAX_ROWS)
        return s2s_derr_set(e, "%s: dataset '%s' claims %llu entries, more than any shard holds", s->path, fd->name,
                            (unsigned long long)dims[0]);
    s->len[f] = (int64_t)dims[0];
    return 0;
}

// Every group is all there or not there at all; text and flags always.
static int check_groups(s2s_shard *s, s2s_derr *e) {
    const int groups[] = {0, S2S_SHARD_GROUP_AUDIO, S2S_SHARD_HAS_UNITS, S2S_SHARD_HAS_TEACHER,
                          S2S_SHARD_HAS_SPK_EMB, S2S_SHARD_HAS_EMOTION};
    for (int g = 0; g < (int)(sizeof groups / sizeof *groups); g++) {
        int have = -1, miss = -1;
        for (int f = 0; f < F_COUNT; f++)
            if (schema[f].group == groups[g]) *(s->d[f] >= 0 ? &have : &miss) = f;
        if (miss >= 0 && groups[g] == 0) return s2s_derr_set(e, "%s: missing dataset '%s'", s->path, schema[miss].name);
        if (miss >= 0 && have >= 0)
            return s2s_derr_set(e, "%s: missing dataset '%s' (while '%s' of its group is present)", s->path,
                                schema[miss].name, schema[have].name);
        if (have >= 0) s->groups |= groups[g];
    }
    return 0;
}

static int check_len(s2s_shard *s, int f, int64_t want, const char *why, s2s_derr *e) {
    if (s->len[f] != want)
        return s2s_derr_set(e, "%s: dataset '%s' has %lld entries, expected %lld (%s)", s->path, schema[f].name,
                            (long long)s->len[f], (long long)want, why);
    return 0;
}

// Reads a whole 1-D dataset into a fresh array of `count` elements.
static void *load_all(s2s_shard *s, int f, hid_t mem_type, size_t elem, int64_t count, s2s_derr *e) {
    void *v = malloc((count ? count : 1) * elem);
    if (!v) return s2s_derr_set(e, "%s: out of memory loading '%s'", s->path, schema[f].name), NULL;
    if (s2s_h5_read_rows(s->d[f], mem_type, 0, count, 0, v)) {
        char why[256];
        s2s_h5_last_error(why, sizeof why);
        s2s_derr_set(e, "%s: cannot read dataset '%s': %s", s->path, schema[f].name, why);
        free(v);
        return NULL;
    }
    return v;
}

// Offsets convention: n+1 entries, first 0, non-decreasing, last == values length.
static int check_offsets(s2s_shard *s, int f, const int64_t *o, int64_t n, int64_t values, const char *of,
                         s2s_derr *e) {
    const char *name = schema[f].name;
    if (o[0] != 0) return s2s_derr_set(e, "%s: %s[0] = %lld, must be 0", s->path, name, (long long)o[0]);
    for (int64_t i = 0; i < n; i++)
        if (o[i + 1] < o[i])
            return s2s_derr_set(e, "%s: %s[%lld] = %lld < %s[%lld] = %lld: offsets must not decrease (sample/row "
                                "%lld)", s->path, name, (long long)(i + 1), (long long)o[i + 1], name, (long long)i,
                                (long long)o[i], (long long)i);
    if (o[n] != values)
        return s2s_derr_set(e, "%s: %s[%lld] = %lld but there are %lld %s (the last offset must equal that count)",
                            s->path, name, (long long)n, (long long)o[n], (long long)values, of);
    return 0;
}

// Loads a per-sample offsets dataset, or n+1 zeros when its group is absent.
static int64_t *load_offsets(s2s_shard *s, int f, int64_t values, const char *of, s2s_derr *e) {
    if (s->d[f] < 0) {
        int64_t *z = calloc(s->n + 1, sizeof *z);
        if (!z) s2s_derr_set(e, "%s: out of memory", s->path);
        return z;
    }
    if (check_len(s, f, s->n + 1, "num_samples + 1", e)) return NULL;
    int64_t *o = load_all(s, f, H5T_NATIVE_INT64, 8, s->n + 1, e);
    if (o && check_offsets(s, f, o, s->n, values, of, e)) free(o), o = NULL;
    return o;
}

static int load_index(s2s_shard *s, s2s_derr *e) {
    int64_t n = s->n;
    int64_t T = s->len[F_IDS];
    if (check_len(s, F_LABELS, T, "as many as input_ids", e) || check_len(s, F_TYPES, T, "as many as input_ids", e) ||
        check_len(s, F_FLAGS, n, "num_samples", e))
        return -1;
    if (!(s->text_off = load_offsets(s, F_TEXT_OFF, T, "entries in 'input_ids'", e))) return -1;
    if (s->groups & S2S_SHARD_HAS_TEACHER &&
        check_len(s, F_TLABELS, s->len[F_TIDS], "as many as teacher_ids", e))
        return -1;
    if (!(s->unit_off = load_offsets(s, F_UNIT_OFF, s->len[F_UNITS], "entries in 'units'", e)) ||
        !(s->teacher_off = load_offsets(s, F_TEACHER_OFF, s->len[F_TIDS], "entries in 'teacher_ids'", e)))
        return -1;
    // The sample->audio map indexes audio_offsets' rows; audio_offsets indexes the PCM.
    int64_t A = s->d[F_AUDIO_OFF] >= 0 ? s->len[F_AUDIO_OFF] - 1 : 0;
    if (s->d[F_AUDIO_OFF] >= 0 && A < 0)
        return s2s_derr_set(e, "%s: dataset 'audio_offsets' is empty, it needs at least the leading 0", s->path);
    if (A > s->len[F_AUDIO])  // every audio has at least one sample; also bounds what we load
        return s2s_derr_set(e, "%s: dataset 'audio_offsets' has %lld entries but 'audio' only %lld samples", s->path,
                            (long long)(A + 1), (long long)s->len[F_AUDIO]);
    if (!(s->saudio_off = load_offsets(s, F_SAUDIO_OFF, A, "audios in 'audio_offsets'", e)))
        return -1;
    if (s->d[F_AUDIO_OFF] >= 0) {
        if (!(s->audio_off = load_all(s, F_AUDIO_OFF, H5T_NATIVE_INT64, 8, A + 1, e)) ||
            check_offsets(s, F_AUDIO_OFF, s->audio_off, A, s->len[F_AUDIO], "samples in 'audio'", e))
            return -1;
        for (int64_t a = 0; a < A; a++)
            if (s->audio_off[a + 1] == s->audio_off[a])
                return s2s_derr_set(e, "%s: audio %lld is empty (audio_offsets[%lld] == audio_offsets[%lld])",
                                    s->path, (long long)a, (long long)a, (long long)(a + 1));
    } else if (!(s->audio_off = calloc(1, sizeof *s->audio_off))) {
        return s2s_derr_set(e, "%s: out of memory", s->path);
    }
    if (!(s->flags = load_all(s, F_FLAGS, H5T_NATIVE_UINT8, 1, n, e))) return -1;
    if (s->d[F_EMOTION] >= 0) {
        if (check_len(s, F_EMOTION, n, "num_samples", e) ||
            !(s->emotion = load_all(s, F_EMOTION, H5T_NATIVE_INT8, 1, n, e)))
            return -1;
    } else {
        if (!(s->emotion = malloc(n ? n : 1))) return s2s_derr_set(e, "%s: out of memory", s->path);
        memset(s->emotion, -1, n);
    }
    if (s->d[F_SPK] >= 0 && check_len(s, F_SPK, n, "num_samples rows", e)) return -1;
    return 0;
}

// Flags agree with the offsets, the groups present and the kind.
static int check_flags(s2s_shard *s, s2s_derr *e) {
    static const struct { int bit; const char *name, *dataset; } bits[] = {
        {S2S_SHARD_HAS_UNITS, "HAS_UNITS", "units"},
        {S2S_SHARD_HAS_SPK_EMB, "HAS_SPK_EMB", "spk_emb"},
        {S2S_SHARD_HAS_EMOTION, "HAS_EMOTION", "emotion"},
        {S2S_SHARD_HAS_TEACHER, "HAS_TEACHER", "teacher_ids"},
    };
    for (int64_t i = 0; i < s->n; i++) {
        uint8_t fl = s->flags[i];
        if (fl & ~S2S_SHARD_FLAGS_KNOWN)
            return s2s_derr_set(e, "%s: sample %lld: flags = 0x%02x sets reserved bits", s->path, (long long)i, fl);
        int actual = (s->unit_off[i + 1] > s->unit_off[i] ? S2S_SHARD_HAS_UNITS : 0) |
                     (s->emotion[i] >= 0 ? S2S_SHARD_HAS_EMOTION : 0) |
                     (s->teacher_off[i + 1] > s->teacher_off[i] ? S2S_SHARD_HAS_TEACHER : 0) |
                     (fl & S2S_SHARD_HAS_SPK_EMB);
        for (int b = 0; b < 4; b++) {
            int bit = bits[b].bit;
            if ((fl & bit) && !(s->groups & bit))
                return s2s_derr_set(e, "%s: sample %lld: flags sets %s but the shard has no dataset '%s'", s->path,
                                    (long long)i, bits[b].name, bits[b].dataset);
            if ((fl & bit) != (actual & bit))
                return s2s_derr_set(e, "%s: sample %lld: flags %s %s but the sample %s '%s'", s->path, (long long)i,
                                    fl & bit ? "sets" : "clears", bits[b].name, fl & bit ? "has no" : "has",
                                    bits[b].dataset);
        }
        if (s->emotion[i] < -1)
            return s2s_derr_set(e, "%s: sample %lld: emotion = %d, must be -1 (none) or >= 0", s->path, (long long)i,
                                s->emotion[i]);
        if (s->meta.kind == S2S_SHARD_ALIGN && s->saudio_off[i + 1] == s->saudio_off[i])
            return s2s_derr_set(e, "%s: sample %lld: an align sample needs at least one audio", s->path, (long long)i);
        if (s->meta.kind == S2S_SHARD_TTS_PRETRAIN && !(fl & S2S_SHARD_HAS_UNITS))
            return s2s_derr_set(e, "%s: sample %lld: a tts_pretrain sample needs units", s->path, (long long)i);
    }
    return 0;
}

static int shard_open(s2s_shard *s, const char *path, s2s_derr *e) {
    struct stat st;
    if (stat(path, &st)) return s2s_derr_set(e, "%s: no such file", path);
    if (!S_ISREG(st.st_mode)) return s2s_derr_set(e, "%s: not a regular file", path);
    FILE *f = fopen(path, "rb");
    if (!f) return s2s_derr_set(e, "%s: cannot open: %s", path, strerror(errno));
    fclose(f);
    if (H5Fis_hdf5(path) <= 0) return s2s_derr_set(e, "%s: not an HDF5 file (no HDF5 signature)", path);
    // No file locking: a shard under its final name is never written again (the writer renames it into place),
    // and flock fails on some cluster filesystems (Lustre, NFS) where every rank opens the same shards.
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
#if H5_VERSION_GE(1, 10, 7)
    H5Pset_file_locking(fapl, 0, 1);
#endif
    s->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    char why[256];
    if (s->file < 0) s2s_h5_last_error(why, sizeof why);  // before H5Pclose clears the error stack
    H5Pclose(fapl);
    if (s->file < 0) {
        return s2s_derr_set(e, "%s: cannot open as HDF5, the file is damaged or truncated: %s", path, why);
    }
    if (read_attrs(s, e)) return -1;
    for (int f = 0; f < F_COUNT; f++)
        if (open_field(s, f, e)) return -1;
    if (check_groups(s, e) || load_index(s, e) || check_flags(s, e)) return -1;
    return 0;
}

s2s_shard *s2s_shard_open(const char *path, s2s_derr *e) {
    s2s_shard *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        s2s_derr_set(e, "%s: out of memory", path);
        return NULL;
    }
    s->file = -1;
    for (int f = 0; f < F_COUNT; f++) s->d[f] = -1;
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    int rc = shard_open(s, path, e);
    s2s_h5_quiet_end(q);
    if (rc) {
        s2s_shard_close(s);
        return NULL;
    }
    return s;
}

// ---- one sample ----------------------------------------------------------------------------------

// Grows *p, which holds `have` elements of `elem` bytes, to hold n.
static int grow(void **p, int64_t have, int64_t n, size_t elem) {
    if (n <= have && *p) return 0;
    void *q = realloc(*p, (n ? n : 1) * elem);
    if (!q) return -1;
    *p = q;
    return 0;
}

#define MAX(a, b) ((a) > (b) ? (a) : (b))

static int read_range(s2s_shard *s, int f, hid_t mt, int64_t start, int64_t n, void *buf, int64_t i,
                      s2s_derr *e) {
    if (s2s_h5_read_rows(s->d[f], mt, start, n, schema[f].row, buf)) {
        char why[256];
        s2s_h5_last_error(why, sizeof why);
        return s2s_derr_set(e, "%s: sample %lld: cannot read dataset '%s': %s", s->path, (long long)i,
                            schema[f].name, why);
    }
    return 0;
}

static int shard_read(s2s_shard *s, int64_t i, s2s_shard_sample *o, s2s_derr *e) {
    s2s_shard_len L;
    s2s_shard_lengths(s, i, &L);
    // Capacities are recorded only once every array has grown, so a failed allocation never leaves a recorded
    // capacity larger than an array.
    if (grow((void **)&o->input_ids, o->cap_tokens, L.n_tokens, 4) ||
        grow((void **)&o->labels, o->cap_tokens, L.n_tokens, 4) ||
        grow((void **)&o->token_types, o->cap_tokens, L.n_tokens, 1) ||
        grow((void **)&o->audio_len, o->cap_audio_len, L.n_audio, 8) ||
        grow((void **)&o->audio, o->cap_audio, L.audio_samples, 2) ||
        grow((void **)&o->units, o->cap_units, L.n_units, 4) ||
        grow((void **)&o->teacher_ids, o->cap_teacher, L.n_teacher, 4) ||
        grow((void **)&o->teacher_labels, o->cap_teacher, L.n_teacher, 4))
        return s2s_derr_set(e, "%s: sample %lld: out of memory", s->path, (long long)i);
    o->cap_tokens = MAX(o->cap_tokens, L.n_tokens);
    o->cap_audio_len = MAX(o->cap_audio_len, L.n_audio);
    o->cap_audio = MAX(o->cap_audio, L.audio_samples);
    o->cap_units = MAX(o->cap_units, L.n_units);
    o->cap_teacher = MAX(o->cap_teacher, L.n_teacher);
    int64_t t0 = s->text_off[i], a0 = s->saudio_off[i];
    if (read_range(s, F_IDS, H5T_NATIVE_INT32, t0, L.n_tokens, o->input_ids, i, e) ||
        read_range(s, F_LABELS, H5T_NATIVE_INT32, t0, L.n_tokens, o->labels, i, e) ||
        read_range(s, F_TYPES, H5T_NATIVE_INT8, t0, L.n_tokens, o->token_types, i, e) ||
        (L.n_audio && read_range(s, F_AUDIO, H5T_NATIVE_INT16, s->audio_off[a0], L.audio_samples, o->audio, i, e)) ||
        (L.n_units && read_range(s, F_UNITS, H5T_NATIVE_INT32, s->unit_off[i], L.n_units, o->units, i, e)) ||
        (L.n_teacher &&
         (read_range(s, F_TIDS, H5T_NATIVE_INT32, s->teacher_off[i], L.n_teacher, o->teacher_ids, i, e) ||
          read_range(s, F_TLABELS, H5T_NATIVE_INT32, s->teacher_off[i], L.n_teacher, o->teacher_labels, i, e))))
        return -1;
    o->n_tokens = L.n_tokens;
    o->n_audio = L.n_audio;
    for (int64_t a = 0; a < L.n_audio; a++) o->audio_len[a] = s->audio_off[a0 + a + 1] - s->audio_off[a0 + a];
    o->n_units = L.n_units;
    o->n_teacher = L.n_teacher;
    o->flags = L.flags;
    o->has_spk_emb = (L.flags & S2S_SHARD_HAS_SPK_EMB) != 0;
    if (o->has_spk_emb) {
        if (read_range(s, F_SPK, H5T_NATIVE_FLOAT, i, 1, o->spk_emb, i, e)) return -1;
    } else {
        memset(o->spk_emb, 0, sizeof o->spk_emb);
    }
    o->emotion = s->emotion[i];
    return s2s_shard_sample_check(s->meta.kind, o, s->path, i, e);
}

int s2s_shard_read(s2s_shard *s, int64_t i, s2s_shard_sample *o, s2s_derr *e) {
    if (i < 0 || i >= s->n)
        return s2s_derr_set(e, "%s: sample index %lld out of range (the shard has %lld samples)", s->path,
                            (long long)i, (long long)s->n);
    s2s_h5_quiet q = s2s_h5_quiet_begin();
    int rc = shard_read(s, i, o, e);
    s2s_h5_quiet_end(q);
    return rc;
}

int s2s_shard_emotion(const s2s_shard *s, int64_t i) { return s->emotion[i]; }
