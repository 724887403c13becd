// test_checkpoint.c — safetensors reader/writer (single and sharded), config.json I/O and checkpoint
// loading/saving, self-contained in a temporary directory. Every malformed input must fail with a message
// that names the file; tests/model/test_checkpoint.py covers files written by Python safetensors and
// transformers.
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "autograd/params.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "model/safetensors_index.h"
#include "expect.h"

static char root[256];

static char *path_of(const char *fmt, ...) {
    static char bufs[8][512];
    static int k;
    char *b = bufs[k++ % 8];
    int at = snprintf(b, 512, "%s/", root);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b + at, (size_t)(512 - at), fmt, ap);
    va_end(ap);
    return b;
}

// A copy that outlives path_of's ring of buffers.
static const char *keep(const char *path) {
    static char bufs[32][512];
    static int k;
    char *b = bufs[k++ % 32];
    snprintf(b, 512, "%s", path);
    return b;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    fwrite(data, 1, n, fp);
    fclose(fp);
}

static void write_text(const char *path, const char *text) { write_bytes(path, text, strlen(text)); }

// A safetensors file from a header text and data_len bytes of data; hlen overrides the length field.
static void write_st(const char *path, const char *header, size_t data_len, long long hlen) {
    size_t hl = strlen(header);
    unsigned char *buf = calloc(1, 8 + hl + data_len + 1);
    unsigned long long v = hlen >= 0 ? (unsigned long long)hlen : hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(v >> (8 * i));
    memcpy(buf + 8, header, hl);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
}

static void expect_open_fails(const char *path, const char *needle, int line) {
    s2s_st_file f;
    char err[1024] = "";
    int rc = s2s_st_open(&f, path, err, sizeof err);
    if (rc == 0 || !strstr(err, path) || !strstr(err, needle)) {
        failures++;
        fprintf(stderr, "line %d: %s: expected failure mentioning '%s', got rc=%d err='%s'\n", line, path, needle, rc, err);
    }
    s2s_st_close(&f);
}

static void test_roundtrip(void) {
    float a[6] = {1.5f, -2.25f, 3.0f, 1e-8f, 65504.0f, -0.0f};
    uint16_t bf[3] = {s2s_f32_to_bf16(1.0f), s2s_f32_to_bf16(-3.5f), s2s_f32_to_bf16(0.1f)};
    uint16_t h[2] = {s2s_f32_to_f16(0.5f), s2s_f32_to_f16(-1024.0f)};
    int32_t ids[3] = {7, -1, 151643};
    float conv[5] = {0.1f, 0.2f, 1.0f / 3, -7.77f, 1e20f};
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "h", S2S_F16, 1, (int64_t[]){2}, h);  // smaller elements first: writer reorders
    s2s_st_writer_add(&w, "bf", S2S_BF16, 2, (int64_t[]){1, 3}, bf);
    s2s_st_writer_add(&w, "a", S2S_F32, 2, (int64_t[]){2, 3}, a);
    s2s_st_writer_add(&w, "ids", S2S_I32, 1, (int64_t[]){3}, ids);
    s2s_st_writer_add(&w, "empty", S2S_F32, 2, (int64_t[]){0, 4}, NULL);
    s2s_st_writer_add(&w, "scalar", S2S_F32, 0, NULL, &a[2]);
    s2s_st_writer_add_from(&w, "conv", S2S_BF16, 1, (int64_t[]){5}, conv, S2S_F32, S2S_CPU);
    s2s_st_writer_meta(&w, "format", "pt");
    s2s_st_writer_meta(&w, "note", "x");
    s2s_st_writer_meta(&w, "note", "y");  // replaces
    char err[1024];
    const char *p = path_of("rt.safetensors");
    EXPECT(s2s_st_writer_write(&w, p, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);

    s2s_st_file f;
    EXPECT(s2s_st_open(&f, p, err, sizeof err) == 0, "%s", err);
    EXPECT(f.n == 7, "n=%d", f.n);
    const s2s_st_entry *e = s2s_st_find(&f, "a");
    EXPECT(e && e->dtype == S2S_F32 && e->ndim == 2 && e->shape[0] == 2 && e->shape[1] == 3 && e->supported, "a");
    EXPECT(e && memcmp(e->data, a, sizeof a) == 0, "a values");
    EXPECT(e && (uintptr_t)e->data % 4 == 0, "f32 data aligned");
    e = s2s_st_find(&f, "bf");
    EXPECT(e && e->dtype == S2S_BF16 && memcmp(e->data, bf, sizeof bf) == 0, "bf");
    e = s2s_st_find(&f, "h");
    EXPECT(e && e->dtype == S2S_F16 && memcmp(e->data, h, sizeof h) == 0, "h");
    e = s2s_st_find(&f, "ids");
    EXPECT(e && e->dtype == S2S_I32 && memcmp(e->data, ids, sizeof ids) == 0, "ids");
    e = s2s_st_find(&f, "empty");
    EXPECT(e && e->nbytes == 0 && e->shape[0] == 0 && e->shape[1] == 4, "empty");
    e = s2s_st_find(&f, "scalar");
    EXPECT(e && e->ndim == 0 && e->nbytes == 4 && ((const float *)e->data)[0] == 3.0f, "scalar");
    e = s2s_st_find(&f, "conv");
    EXPECT(e && e->dtype == S2S_BF16, "conv dtype");
    for (int i = 0; e && i < 5; i++) {
        uint16_t v;
        memcpy(&v, (const char *)e->data + 2 * i, 2);
        EXPECT(v == s2s_f32_to_bf16(conv[i]), "conv[%d]", i);
    }
    EXPECT(!s2s_st_find(&f, "nope"), "find absent");
    EXPECT(s2s_st_meta(&f, "note") && strcmp(s2s_st_meta(&f, "note"), "y") == 0, "meta");
    EXPECT(s2s_st_meta(&f, "format") && !s2s_st_meta(&f, "other"), "meta format");
    s2s_st_close(&f);
    s2s_st_close(&f);  // closing twice is harmless
    EXPECT(access(path_of("rt.safetensors.tmp.%d", (int)getpid()), F_OK) != 0, "temporary file left behind");
}

static void test_malformed(void) {
    const char *p;
    p = path_of("short.safetensors");
    write_bytes(p, "\x01\x02\x03\x04", 4);
    expect_open_fails(p, "too short", __LINE__);
    p = path_of("huge.safetensors");
    write_st(p, "{}", 0, 1LL << 40);
    expect_open_fails(p, "100 MB", __LINE__);
    p = path_of("trunc_header.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 0, 4096);
    expect_open_fails(p, "larger than the rest of the file", __LINE__);
    p = path_of("garbage.safetensors");
    write_st(p, "GARBAGE!", 0, -1);
    expect_open_fails(p, "does not start with '{'", __LINE__);
    p = path_of("badjson.safetensors");
    write_st(p, "{\"a\": {\"dtype\": ", 0, -1);
    expect_open_fails(p, "not valid JSON", __LINE__);
    p = path_of("trailing.safetensors");
    write_st(p, "{}  xx", 0, -1);
    expect_open_fails(p, "after the JSON object", __LINE__);
    p = path_of("nul.safetensors");
    write_bytes(p, "\x04\0\0\0\0\0\0\0{}\0 ", 12);
    expect_open_fails(p, "NUL", __LINE__);
    p = path_of("utf8.safetensors");
    write_st(p, "{\"\xc3\x28\":{}}", 0, -1);
    expect_open_fails(p, "UTF-8", __LINE__);
    p = path_of("truncated.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 10, -1);
    expect_open_fails(p, "truncated", __LINE__);
    p = path_of("gap.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, -1);
    expect_open_fails(p, "gap in the data before tensor 'b'", __LINE__);
    p = path_of("overlap.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1);
    expect_open_fails(p, "overlaps", __LINE__);
    p = path_of("uncovered.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, -1);
    expect_open_fails(p, "cover 4 bytes but the data region holds 8", __LINE__);
    p = path_of("count.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1);
    expect_open_fails(p, "need 12", __LINE__);
    p = path_of("dup.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, -1);
    expect_open_fails(p, "appears twice", __LINE__);
    p = path_of("meta.safetensors");
    write_st(p, "{\"__metadata__\":{\"format\":1}}", 0, -1);
    expect_open_fails(p, "__metadata__ value 'format' is not a string", __LINE__);
    p = path_of("dtype.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, -1);
    expect_open_fails(p, "dtype 'F33'", __LINE__);
    p = path_of("negshape.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, -1);
    expect_open_fails(p, "shape[0]", __LINE__);
    p = path_of("fracoff.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.5]}}", 4, -1);
    expect_open_fails(p, "data_offsets", __LINE__);
    p = path_of("noshape.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4, -1);
    expect_open_fails(p, "'shape'", __LINE__);
    p = path_of("notobj.safetensors");
    write_st(p, "{\"a\":[1,2]}", 0, -1);
    expect_open_fails(p, "not an object", __LINE__);
    p = path_of("overflow.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4, -1);
    expect_open_fails(p, "overflows", __LINE__);
    expect_open_fails(root, "not a regular file", __LINE__);
    expect_open_fails(path_of("absent.safetensors"), "cannot open", __LINE__);

    // Dtypes s2s does not compute with still open; they are listed as unsupported.
    p = path_of("i64.safetensors");
    write_st(p, "{\"pos\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, -1);
    s2s_st_file f;
    char err[512];
    EXPECT(s2s_st_open(&f, p, err, sizeof err) == 0, "%s", err);
    EXPECT(f.n == 1 && !f.entries[0].supported && strcmp(f.entries[0].dtype_name, "I64") == 0, "i64 entry");
    s2s_st_close(&f);
}

static void add_f32(s2s_st_writer *w, const char *name, int64_t r, int64_t c, const float *v) {
    s2s_st_writer_add(w, name, S2S_F32, 2, (int64_t[]){r, c}, v);
}

static void test_sharded(void) {
    static float v[5][100];
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 100; i++) v[t][i] = (float)(t * 1000 + i);
    const char *names[5] = {"w.e", "w.d", "w.c", "w.b", "w.a"};
    char err[1024];
    const char *dir = keep(path_of("sharded"));
    mkdir(dir, 0755);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    for (int t = 0; t < 5; t++) add_f32(&w, names[t], 10, 10, v[t]);
    EXPECT(s2s_st_write_sharded(&w, dir, 1000, err, sizeof err) == 0, "%s", err);  // 400-byte tensors, 2 per shard
    EXPECT(access(path_of("sharded/model-00003-of-00003.safetensors"), F_OK) == 0, "3 shards");
    EXPECT(access(path_of("sharded/model.safetensors"), F_OK) != 0, "no single file");
    s2s_st_dir d;
    EXPECT(s2s_st_dir_open(&d, dir, err, sizeof err) == 0, "%s", err);
    EXPECT(d.n == 5 && d.n_files == 3 && d.index_path, "dir n=%d files=%d", d.n, d.n_files);
    for (int t = 0; t < 5 && d.n == 5; t++) {
        const s2s_st_file *file;
        const s2s_st_entry *e = s2s_st_dir_find(&d, names[t], &file);
        EXPECT(e && memcmp(e->data, v[t], 400) == 0, "%s", names[t]);
        EXPECT(e && strcmp(s2s_st_meta(file, "format"), "pt") == 0, "format pt");
    }
    s2s_st_dir_close(&d);
    // The index opened directly, with total_size.
    EXPECT(s2s_st_dir_open(&d, path_of("sharded/model.safetensors.index.json"), err, sizeof err) == 0, "%s", err);
    s2s_st_dir_close(&d);
    FILE *fp = fopen(path_of("sharded/model.safetensors.index.json"), "r");
    char text[4096] = "";
    if (fp) { size_t k = fread(text, 1, sizeof text - 1, fp); text[k] = 0; fclose(fp); }
    EXPECT(strstr(text, "\"total_size\":\t2000"), "total_size in %s", text);

    // Rewriting as one file removes the shards and the index; sharding again removes the single file.
    EXPECT(s2s_st_write_sharded(&w, dir, 0, err, sizeof err) == 0, "%s", err);
    EXPECT(access(path_of("sharded/model.safetensors"), F_OK) == 0, "single file");
    EXPECT(access(path_of("sharded/model-00001-of-00003.safetensors"), F_OK) != 0, "stale shard removed");
    EXPECT(access(path_of("sharded/model.safetensors.index.json"), F_OK) != 0, "stale index removed");
    EXPECT(s2s_st_dir_open(&d, dir, err, sizeof err) == 0 && d.n == 5 && !d.index_path, "%s", err);
    s2s_st_dir_close(&d);
    EXPECT(s2s_st_write_sharded(&w, dir, 900, err, sizeof err) == 0, "%s", err);
    EXPECT(access(path_of("sharded/model.safetensors"), F_OK) != 0, "stale single file removed");
    EXPECT(access(path_of("sharded/model-00003-of-00003.safetensors"), F_OK) == 0, "shards again");
    // One tensor larger than the limit gets a shard of its own.
    EXPECT(s2s_st_write_sharded(&w, dir, 100, err, sizeof err) == 0, "%s", err);
    EXPECT(access(path_of("sharded/model-00005-of-00005.safetensors"), F_OK) == 0, "5 shards");
    EXPECT(access(path_of("sharded/model-00003-of-00003.safetensors"), F_OK) != 0, "old shards removed");
    EXPECT(s2s_st_dir_open(&d, dir, err, sizeof err) == 0 && d.n == 5 && d.n_files == 5, "%s", err);
    s2s_st_dir_close(&d);
    s2s_st_writer_free(&w);
}

static void expect_dir_fails(const char *path, const char *needle1, const char *needle2, int line) {
    s2s_st_dir d;
    char err[1024] = "";
    int rc = s2s_st_dir_open(&d, path, err, sizeof err);
    if (rc == 0 || !strstr(err, needle1) || (needle2 && !strstr(err, needle2))) {
        failures++;
        fprintf(stderr, "line %d: %s: expected failure mentioning '%s' and '%s', got rc=%d err='%s'\n", line, path,
                needle1, needle2 ? needle2 : "", rc, err);
    }
    s2s_st_dir_close(&d);
}

static void test_index_errors(void) {
    float v[4] = {1, 2, 3, 4};
    char err[512];
    const char *dir = keep(path_of("idx"));
    mkdir(dir, 0755);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    add_f32(&w, "a", 1, 4, v);
    add_f32(&w, "b", 1, 4, v);
    EXPECT(s2s_st_write_sharded(&w, dir, 16, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    const char *index = keep(path_of("idx/model.safetensors.index.json"));
    const char *shard2 = keep(path_of("idx/model-00002-of-00002.safetensors"));
    write_text(index, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": "
                      "\"model-00001-of-00002.safetensors\"}}");
    expect_dir_fails(dir, "model-00001-of-00002.safetensors", "no such tensor", __LINE__);
    // A shard holding a tensor the index does not list.
    const char *dir2 = keep(path_of("idx2"));
    mkdir(dir2, 0755);
    s2s_st_writer_init(&w);
    add_f32(&w, "a", 1, 4, v);
    add_f32(&w, "b", 1, 4, v);
    EXPECT(s2s_st_writer_write(&w, path_of("idx2/shard.safetensors"), err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    write_text(path_of("idx2/model.safetensors.index.json"), "{\"weight_map\": {\"a\": \"shard.safetensors\"}}");
    expect_dir_fails(dir2, "idx2/shard.safetensors: holds tensor 'b'", "does not map", __LINE__);
    write_text(index, "{\"weight_map\": {\"a\": \"../escape.safetensors\"}}");
    expect_dir_fails(dir, index, "inside the checkpoint directory", __LINE__);
    write_text(index, "[1, 2");
    expect_dir_fails(dir, index, "not a JSON object", __LINE__);
    write_text(index, "{\"metadata\": {}}");
    expect_dir_fails(dir, index, "weight_map", __LINE__);
    write_text(index, "{\"weight_map\": {\"a\": \"model-00001-of-00002.safetensors\", \"b\": "
                      "\"model-00002-of-00002.safetensors\"}}");
    s2s_st_dir d;
    EXPECT(s2s_st_dir_open(&d, dir, err, sizeof err) == 0, "valid again: %s", err);
    s2s_st_dir_close(&d);
    unlink(shard2);
    expect_dir_fails(dir, shard2, index, __LINE__);  // a missing shard names both files
    // A truncated shard names the shard.
    write_bytes(shard2, "\x10\0\0\0\0\0\0\0{", 9);
    expect_dir_fails(dir, shard2, "larger than the rest", __LINE__);
    const char *empty = keep(path_of("emptydir"));
    mkdir(empty, 0755);
    expect_dir_fails(empty, empty, "neither", __LINE__);
}

static char *slurp(const char *path) {
    FILE *fp = fopen(path, "r");
    if (!fp) return strdup("");
    char *buf = calloc(1, 1 << 16);
    size_t k = fread(buf, 1, (1 << 16) - 1, fp);
    buf[k] = 0;
    fclose(fp);
    return buf;
}

static void expect_cfg_fails(int kind, const char *text, const char *needle, int line) {
    const char *p = path_of("cfg_bad.json");
    write_text(p, text);
    char err[1024] = "";
    int rc;
    s2s_qwen3_config q;
    s2s_audio_encoder_config a;
    s2s_omnispeech_config o;
    if (kind == 0) rc = s2s_qwen3_config_read(&q, p, err, sizeof err);
    else if (kind == 1) rc = s2s_audio_encoder_config_read(&a, p, err, sizeof err);
    else rc = s2s_omnispeech_config_read(&o, p, err, sizeof err);
    if (rc == 0 || !strstr(err, p) || !strstr(err, needle)) {
        failures++;
        fprintf(stderr, "line %d: expected config failure mentioning '%s', got rc=%d err='%s'\n", line, needle, rc, err);
    }
}

static bool qwen3_equal(const s2s_qwen3_config *a, const s2s_qwen3_config *b) {
    bool eq = a->vocab_size == b->vocab_size && a->hidden_size == b->hidden_size &&
              a->intermediate_size == b->intermediate_size && a->num_hidden_layers == b->num_hidden_layers &&
              a->num_attention_heads == b->num_attention_heads && a->num_key_value_heads == b->num_key_value_heads &&
              a->head_dim == b->head_dim && a->max_position_embeddings == b->max_position_embeddings &&
              a->rope_theta == b->rope_theta && a->rms_norm_eps == b->rms_norm_eps &&
              a->tie_word_embeddings == b->tie_word_embeddings && strcmp(a->torch_dtype, b->torch_dtype) == 0 &&
              a->bos_token_id == b->bos_token_id && a->pad_token_id == b->pad_token_id && a->n_eos == b->n_eos;
    for (int i = 0; eq && i < a->n_eos; i++) eq = a->eos_token_id[i] == b->eos_token_id[i];
    return eq;
}

static bool encoder_equal(const s2s_audio_encoder_config *a, const s2s_audio_encoder_config *b) {
    return a->num_mel_bins == b->num_mel_bins && a->d_model == b->d_model && a->encoder_layers == b->encoder_layers &&
           a->encoder_attention_heads == b->encoder_attention_heads && a->encoder_ffn_dim == b->encoder_ffn_dim &&
           a->max_source_positions == b->max_source_positions && strcmp(a->torch_dtype, b->torch_dtype) == 0;
}

#define QWEN3_MIN "\"vocab_size\": 100, \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 2, " \
                  "\"num_attention_heads\": 4"

static void test_config(void) {
    char err[1024];
    s2s_qwen3_config q = {.vocab_size = 151936, .hidden_size = 4096, .intermediate_size = 12288,
                          .num_hidden_layers = 36, .num_attention_heads = 32, .num_key_value_heads = 8,
                          .head_dim = 128, .max_position_embeddings = 40960, .rope_theta = 1000000.0,
                          .rms_norm_eps = 1e-6, .tie_word_embeddings = false, .torch_dtype = "bfloat16",
                          .bos_token_id = 151643, .pad_token_id = -1, .eos_token_id = {151645}, .n_eos = 1};
    const char *p = path_of("qwen3.json");
    EXPECT(s2s_qwen3_config_write(&q, p, err, sizeof err) == 0, "%s", err);
    s2s_qwen3_config q2;
    EXPECT(s2s_qwen3_config_read(&q2, p, err, sizeof err) == 0, "%s", err);
    EXPECT(qwen3_equal(&q, &q2), "qwen3 round trip");

    s2s_omnispeech_config o = {.audio = {128, 1280, 32, 20, 5120, 1500, ""}, .llm = q, .tts = q,
                               .conv_kernel_sizes = {5, 5}, .n_conv = 2, .adapter_inner_dim = 512,
                               .interleave_text = 4, .interleave_speech = 8, .torch_dtype = "bfloat16"};
    o.tts.hidden_size = 2048;
    o.tts.tie_word_embeddings = true;
    o.tts.n_eos = 2;
    o.tts.eos_token_id[1] = 168029;
    mkdir(path_of("omni"), 0755);
    EXPECT(s2s_omnispeech_config_write(&o, path_of("omni/config.json"), err, sizeof err) == 0, "%s", err);
    s2s_omnispeech_config o2;
    EXPECT(s2s_omnispeech_config_read(&o2, path_of("omni"), err, sizeof err) == 0, "%s", err);  // a directory
    EXPECT(qwen3_equal(&o.llm, &o2.llm) && qwen3_equal(&o.tts, &o2.tts) && encoder_equal(&o.audio, &o2.audio) &&
           o2.n_conv == 2 && o2.conv_kernel_sizes[0] == 5 && o2.conv_kernel_sizes[1] == 5 &&
           o2.adapter_inner_dim == 512 && o2.interleave_text == 4 && o2.interleave_speech == 8 &&
           strcmp(o2.torch_dtype, "bfloat16") == 0, "omnispeech round trip");
    char *text = slurp(path_of("omni/config.json"));
    EXPECT(strstr(text, "\"conv_kernel_sizes\":\t\"5,5\"") && strstr(text, "\"interleave_strategy\":\t\"4:8\""),
           "OpenS2S string forms: %s", text);
    free(text);

    s2s_audio_encoder_config a;
    p = path_of("enc.json");
    write_text(p, "{\"model_type\": \"qwen2_audio\", \"torch_dtype\": \"bfloat16\", \"audio_config\": "
                  "{\"model_type\": \"qwen2_audio_encoder\", \"d_model\": 64, \"encoder_layers\": 2, "
                  "\"encoder_attention_heads\": 4, \"encoder_ffn_dim\": 128}, \"text_config\": {}}");
    EXPECT(s2s_audio_encoder_config_read(&a, p, err, sizeof err) == 0, "%s", err);
    EXPECT(a.d_model == 64 && a.encoder_layers == 2 && a.num_mel_bins == 128 && a.max_source_positions == 1500 &&
           strcmp(a.torch_dtype, "bfloat16") == 0, "qwen2_audio audio_config");
    write_text(p, "{\"model_type\": \"qwen2_audio\"}");
    EXPECT(s2s_audio_encoder_config_read(&a, p, err, sizeof err) == 0 && a.d_model == 1280 && a.encoder_layers == 32,
           "defaults: %s", err);

    // transformers 5 spelling: rope_parameters, dtype, eos list; head_dim and kv heads default.
    p = path_of("q5.json");
    write_text(p, "{\"model_type\": \"qwen3\", " QWEN3_MIN ", \"rope_parameters\": {\"rope_type\": \"default\", "
                  "\"rope_theta\": 5000.0}, \"dtype\": \"float32\", \"eos_token_id\": [1, 2], \"bos_token_id\": null, "
                  "\"layer_types\": [\"full_attention\", \"full_attention\"], \"rope_scaling\": null}");
    EXPECT(s2s_qwen3_config_read(&q2, p, err, sizeof err) == 0, "%s", err);
    EXPECT(q2.rope_theta == 5000.0 && strcmp(q2.torch_dtype, "float32") == 0 && q2.n_eos == 2 &&
           q2.eos_token_id[1] == 2 && q2.bos_token_id == -1 && q2.head_dim == 128 && q2.num_key_value_heads == 4 &&
           q2.rms_norm_eps == 1e-6 && !q2.tie_word_embeddings, "v5 form");

    // OmniSpeech with a list of kernel sizes and nested configs without model_type.
    p = path_of("omni2.json");
    write_text(p, "{\"audio_encoder_config\": {\"d_model\": 16, \"encoder_attention_heads\": 2}, "
                  "\"llm_config\": {" QWEN3_MIN "}, \"tts_lm_config\": {" QWEN3_MIN "}, "
                  "\"conv_kernel_sizes\": [3, 3, 3], \"lora_config\": null}");
    EXPECT(s2s_omnispeech_config_read(&o2, p, err, sizeof err) == 0, "%s", err);
    EXPECT(o2.n_conv == 3 && o2.conv_kernel_sizes[2] == 3 && o2.adapter_inner_dim == 512 && o2.interleave_text == 1 &&
           o2.interleave_speech == 2 && o2.audio.d_model == 16, "omni defaults");

    expect_cfg_fails(0, "{\"vocab_size\": 100}", "field 'hidden_size' is missing", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"attention_bias\": true}", "field 'attention_bias' is true", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"num_key_value_heads\": 3}", "field 'num_key_value_heads'", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"model_type\": \"llama\"}", "field 'model_type' is 'llama'", __LINE__);
    expect_cfg_fails(0, "{\"vocab_size\": 100, \"hidden_size\": \"32\"}", "field 'hidden_size' must be an integer",
                     __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4}}",
                     "field 'rope_scaling'", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"rope_parameters\": {\"rope_type\": \"linear\"}}",
                     "field 'rope_parameters.rope_type'", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"use_sliding_window\": true}", "use_sliding_window", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"hidden_act\": \"gelu\"}", "field 'hidden_act'", __LINE__);
    expect_cfg_fails(0, "{" QWEN3_MIN ", \"eos_token_id\": \"x\"}", "field 'eos_token_id'", __LINE__);
    expect_cfg_fails(0, "{\"vocab_size\": 1,", "not valid JSON", __LINE__);
    expect_cfg_fails(0, "[1]", "not a JSON object", __LINE__);
    expect_cfg_fails(1, "{\"model_type\": \"whisper\"}", "field 'model_type' is 'whisper'", __LINE__);
    expect_cfg_fails(1, "{\"activation_function\": \"relu\"}", "field 'activation_function'", __LINE__);
    expect_cfg_fails(1, "{\"model_type\": \"qwen2_audio\", \"audio_config\": {\"d_model\": 0}}",
                     "field 'audio_config.d_model'", __LINE__);
    expect_cfg_fails(2, "{\"model_type\": \"qwen3\", " QWEN3_MIN "}", "field 'audio_encoder_config' is missing",
                     __LINE__);
    expect_cfg_fails(2, "{\"audio_encoder_config\": {}, \"llm_config\": {\"vocab_size\": 5}, \"tts_lm_config\": {}}",
                     "field 'llm_config.hidden_size' is missing", __LINE__);
    expect_cfg_fails(2, "{\"audio_encoder_config\": {}, \"llm_config\": {" QWEN3_MIN "}, \"tts_lm_config\": {"
                        QWEN3_MIN "}, \"interleave_strategy\": \"4-8\"}", "field 'interleave_strategy'", __LINE__);
    expect_cfg_fails(2, "{\"audio_encoder_config\": {}, \"llm_config\": {" QWEN3_MIN "}, \"tts_lm_config\": {"
                        QWEN3_MIN "}, \"conv_kernel_sizes\": \"5,x\"}", "field 'conv_kernel_sizes'", __LINE__);
    expect_cfg_fails(2, "{\"audio_encoder_config\": {}, \"llm_config\": {" QWEN3_MIN "}, \"tts_lm_config\": {"
                        QWEN3_MIN "}, \"lora_config\": {\"r\": 8}}", "field 'lora_config'", __LINE__);
    char err2[512] = "";
    EXPECT(s2s_qwen3_config_read(&q2, path_of("nowhere"), err2, sizeof err2) != 0 && strstr(err2, "nowhere: cannot open"),
           "%s", err2);
}

// A registry of a tiny OpenS2S-shaped model: every part, no layers.
static void tiny_registry(s2s_params *p, bool tied) {
    s2s_params_init(p, S2S_CPU);
    s2s_params_add(p, "audio_encoder_model.conv1.weight", "audio_encoder_model", 3, (int64_t[]){4, 3, 3}, false, true);
    s2s_params_add(p, "audio_encoder_model.conv1.bias", "audio_encoder_model", 1, (int64_t[]){4}, false, false);
    s2s_params_add(p, "audio_adapter.fc1.weight", "audio_adapter", 2, (int64_t[]){2, 4}, true, true);
    s2s_params_add(p, "llm_model.model.embed_tokens.weight", "llm_model", 2, (int64_t[]){6, 4}, false, true);
    s2s_params_add(p, "llm_model.model.norm.weight", "llm_model", 1, (int64_t[]){4}, false, false);
    if (!tied) s2s_params_add(p, "llm_model.lm_head.weight", "llm_model", 2, (int64_t[]){6, 4}, false, true);
    s2s_params_add(p, "llm2tts.weight", "llm2tts", 2, (int64_t[]){4, 4}, true, true);
    s2s_params_add(p, "llm_ln.weight", "llm_ln", 1, (int64_t[]){4}, true, false);
    s2s_params_add(p, "tts_lm_model.model.embed_tokens.weight", "tts_lm_model", 2, (int64_t[]){8, 4}, true, true);
    s2s_params_add(p, "tts_lm_model.spk2tts.weight", "tts_lm_model", 2, (int64_t[]){4, 5}, true, true);
}

static void fill(s2s_params *p, float base) {
    for (int i = 0; i < p->n; i++) {
        float *d = p->items[i].t->data;
        for (int64_t k = 0; k < s2s_numel(p->items[i].t); k++) d[k] = base + (float)i + 0.001f * (float)k;
    }
}

static bool tensor_is(const s2s_params *p, const char *name, const float *want, int64_t n) {
    s2s_param *q = s2s_params_find((s2s_params *)p, name);
    return q && memcmp(q->t->data, want, (size_t)n * 4) == 0;
}

static void test_checkpoint(void) {
    char err[2048];
    static float conv[36], bias[4], emb[5 * 4], head[6 * 4], norm[4], tts_emb[8 * 4], junk[3];
    for (int i = 0; i < 36; i++) conv[i] = 0.5f * (float)i;
    for (int i = 0; i < 4; i++) { bias[i] = -(float)i; norm[i] = 1.0f + (float)i; }
    for (int i = 0; i < 20; i++) emb[i] = (float)i / 8;
    for (int i = 0; i < 24; i++) head[i] = -(float)i / 4;
    for (int i = 0; i < 32; i++) tts_emb[i] = (float)i * 0.25f;
    uint16_t tts_bf[32];
    for (int i = 0; i < 32; i++) tts_bf[i] = s2s_f32_to_bf16(tts_emb[i]);

    // Three Hugging Face directories: Qwen2-Audio (with a language model to skip), a Qwen3 LLM whose
    // vocabulary is smaller than the model's, a bf16 Qwen3 TTS-LM without spk2tts.
    const char *audio = keep(path_of("hf_audio")), *llm = keep(path_of("hf_llm")), *tts = keep(path_of("hf_tts"));
    mkdir(audio, 0755); mkdir(llm, 0755); mkdir(tts, 0755);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "audio_tower.conv1.weight", S2S_F32, 3, (int64_t[]){4, 3, 3}, conv);
    s2s_st_writer_add(&w, "audio_tower.conv1.bias", S2S_F32, 1, (int64_t[]){4}, bias);
    s2s_st_writer_add(&w, "language_model.model.norm.weight", S2S_F32, 1, (int64_t[]){3}, junk);
    s2s_st_writer_add(&w, "multi_modal_projector.linear.bias", S2S_F32, 1, (int64_t[]){3}, junk);
    EXPECT(s2s_st_write_sharded(&w, audio, 0, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "model.embed_tokens.weight", S2S_F32, 2, (int64_t[]){5, 4}, emb);
    s2s_st_writer_add(&w, "model.norm.weight", S2S_F32, 1, (int64_t[]){4}, norm);
    s2s_st_writer_add(&w, "lm_head.weight", S2S_F32, 2, (int64_t[]){6, 4}, head);
    EXPECT(s2s_st_write_sharded(&w, llm, 100, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "model.embed_tokens.weight", S2S_BF16, 2, (int64_t[]){8, 4}, tts_bf);
    EXPECT(s2s_st_write_sharded(&w, tts, 0, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);

    char name[256];
    EXPECT(s2s_ckpt_map_name(S2S_CKPT_HF_AUDIO, "audio_tower.layers.0.fc1.weight", false, name, sizeof name) &&
           strcmp(name, "audio_encoder_model.layers.0.fc1.weight") == 0, "%s", name);
    EXPECT(!s2s_ckpt_map_name(S2S_CKPT_HF_AUDIO, "language_model.lm_head.weight", false, name, sizeof name), "skip");
    EXPECT(s2s_ckpt_map_name(S2S_CKPT_HF_AUDIO, "conv1.weight", true, name, sizeof name) &&
           strcmp(name, "audio_encoder_model.conv1.weight") == 0, "bare encoder");
    EXPECT(s2s_ckpt_map_name(S2S_CKPT_HF_LLM, "lm_head.weight", false, name, sizeof name) &&
           strcmp(name, "llm_model.lm_head.weight") == 0, "llm");
    EXPECT(s2s_ckpt_map_name(S2S_CKPT_HF_TTS, "spk_ln.bias", false, name, sizeof name) &&
           strcmp(name, "tts_lm_model.spk_ln.bias") == 0, "tts");

    s2s_params p;
    tiny_registry(&p, false);
    fill(&p, 100.0f);
    s2s_ckpt_report r;
    EXPECT(s2s_ckpt_load_hf(&p, audio, llm, tts, NULL, &r, err, sizeof err) == 0, "%s", err);
    EXPECT(r.n_loaded == 6 && r.n_missing == 4 && r.n_resized == 1 && r.n_unexpected == 0, "report %d %d %d %d",
           r.n_loaded, r.n_missing, r.n_resized, r.n_unexpected);
    EXPECT(r.n_resized == 1 && strstr(r.resized[0], "llm_model.model.embed_tokens.weight: 5 rows"), "resized");
    s2s_ckpt_report_free(&r);
    EXPECT(tensor_is(&p, "audio_encoder_model.conv1.weight", conv, 36), "conv");
    EXPECT(tensor_is(&p, "audio_encoder_model.conv1.bias", bias, 4), "bias");
    EXPECT(tensor_is(&p, "llm_model.model.embed_tokens.weight", emb, 20), "emb rows");
    EXPECT(((float *)s2s_params_find(&p, "llm_model.model.embed_tokens.weight")->t->data)[20] == 103.0f + 0.001f * 20.0f,
           "new vocabulary row keeps its initial value");
    EXPECT(tensor_is(&p, "llm_model.lm_head.weight", head, 24), "head");
    EXPECT(tensor_is(&p, "tts_lm_model.model.embed_tokens.weight", tts_emb, 32), "bf16 -> f32 exact");
    EXPECT(((float *)s2s_params_find(&p, "llm2tts.weight")->t->data)[0] == 106.0f, "fresh module untouched");

    // Strict loading of the same directories: the fresh modules are missing, and nothing is written.
    s2s_params q;
    tiny_registry(&q, false);
    fill(&q, 7.0f);
    EXPECT(s2s_ckpt_load_hf(&q, audio, llm, tts, &(s2s_ckpt_load_opts){.resize_vocab = true}, NULL, err, sizeof err) != 0 &&
           strstr(err, "missing") && strstr(err, "audio_adapter.fc1.weight") && strstr(err, audio), "%s", err);
    EXPECT(s2s_ckpt_load_hf(&q, audio, llm, tts, &(s2s_ckpt_load_opts){0}, NULL, err, sizeof err) != 0 &&
           strstr(err, "has shape [5, 4], but the model's llm_model.model.embed_tokens.weight is [6, 4]") &&
           strstr(err, llm), "%s", err);
    EXPECT(((float *)q.items[0].t->data)[0] == 7.0f, "registry untouched after a failed load");
    // A tied LLM registers no lm_head: the checkpoint's copy is skipped.
    s2s_params tied;
    tiny_registry(&tied, true);
    EXPECT(s2s_ckpt_load_hf(&tied, audio, llm, tts, NULL, NULL, err, sizeof err) == 0, "tied: %s", err);
    EXPECT(tensor_is(&tied, "llm_model.model.embed_tokens.weight", emb, 20), "tied: embedding from embed_tokens");
    // A saver that kept only the lm_head name of a tied pair: that matrix is the embedding.
    const char *only_head = keep(path_of("hf_only_head"));
    mkdir(only_head, 0755);
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "model.norm.weight", S2S_F32, 1, (int64_t[]){4}, norm);
    s2s_st_writer_add(&w, "lm_head.weight", S2S_F32, 2, (int64_t[]){6, 4}, head);
    EXPECT(s2s_st_write_sharded(&w, only_head, 0, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    EXPECT(s2s_ckpt_load_hf(&tied, audio, only_head, tts, NULL, NULL, err, sizeof err) == 0, "tied: %s", err);
    EXPECT(tensor_is(&tied, "llm_model.model.embed_tokens.weight", head, 24), "tied: embedding from lm_head");
    s2s_params_free(&tied);

    // Save as an OpenS2S checkpoint (sharded, bf16) and load it back strictly.
    const char *out = keep(path_of("opens2s"));
    EXPECT(s2s_ckpt_save(&p, out, &(s2s_ckpt_save_opts){S2S_BF16, 200, NULL, NULL}, err, sizeof err) == 0, "%s", err);
    EXPECT(access(path_of("opens2s/model.safetensors.index.json"), F_OK) == 0, "sharded");
    EXPECT(s2s_ckpt_load_opens2s(&q, out, NULL, NULL, err, sizeof err) == 0, "%s", err);
    bool same = true;
    for (int i = 0; i < p.n; i++) {
        const float *a = p.items[i].t->data, *b = q.items[i].t->data;
        for (int64_t k = 0; k < s2s_numel(p.items[i].t); k++)
            same &= b[k] == s2s_bf16_to_f32(s2s_f32_to_bf16(a[k]));
    }
    EXPECT(same, "bf16 save/load equals bf16 rounding of the source");
    EXPECT(s2s_ckpt_save(&p, out, &(s2s_ckpt_save_opts){S2S_F32, 0, NULL, NULL}, err, sizeof err) == 0, "%s", err);
    EXPECT(s2s_ckpt_load_opens2s(&q, out, NULL, NULL, err, sizeof err) == 0, "%s", err);
    same = true;
    for (int i = 0; i < p.n; i++) same &= memcmp(p.items[i].t->data, q.items[i].t->data, s2s_nbytes(p.items[i].t)) == 0;
    EXPECT(same, "f32 save/load is exact");

    // Strict OpenS2S load: an extra model parameter is missing, a checkpoint tensor unexpected.
    s2s_params_add(&q, "llm_ln.bias", "llm_ln", 1, (int64_t[]){4}, true, false);
    EXPECT(s2s_ckpt_load_opens2s(&q, out, NULL, NULL, err, sizeof err) != 0 && strstr(err, out) &&
           strstr(err, "1 model parameter is missing from the checkpoint: llm_ln.bias"), "%s", err);
    s2s_params small;
    s2s_params_init(&small, S2S_CPU);
    s2s_params_add(&small, "llm_ln.weight", "llm_ln", 1, (int64_t[]){4}, true, false);
    EXPECT(s2s_ckpt_load_opens2s(&small, out, NULL, NULL, err, sizeof err) != 0 &&
           strstr(err, "model.safetensors: tensor 'audio_adapter.fc1.weight' is not a parameter"), "%s", err);
    EXPECT(s2s_ckpt_load_opens2s(&small, out, &(s2s_ckpt_load_opts){.ignore_unexpected = true}, &r, err, sizeof err) == 0 &&
           r.n_loaded == 1 && r.n_unexpected == p.n - 1, "%s", err);
    s2s_ckpt_report_free(&r);
    // One tensor in two sources.
    s2s_ckpt_source two[2] = {{out, S2S_CKPT_OPENS2S}, {llm, S2S_CKPT_HF_LLM}};
    EXPECT(s2s_ckpt_load(&p, two, 2, NULL, NULL, err, sizeof err) != 0 && strstr(err, "is also in"), "%s", err);
    // A registry dtype s2s cannot load into.
    const char *idir = keep(path_of("ints"));
    mkdir(idir, 0755);
    int32_t iv[4] = {1, 2, 3, 4};
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "llm_ln.weight", S2S_I32, 1, (int64_t[]){4}, iv);
    EXPECT(s2s_st_write_sharded(&w, idir, 0, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    EXPECT(s2s_ckpt_load_opens2s(&small, idir, NULL, NULL, err, sizeof err) != 0 && strstr(err, "is I32"), "%s", err);
    s2s_params_free(&small);

    // Save one part under its Hugging Face names.
    const char *hf = keep(path_of("hf_out"));
    EXPECT(s2s_ckpt_save(&p, hf, &(s2s_ckpt_save_opts){S2S_F32, 0, "llm_model.", NULL}, err, sizeof err) == 0, "%s", err);
    s2s_st_dir d;
    EXPECT(s2s_st_dir_open(&d, hf, err, sizeof err) == 0 && d.n == 3 && s2s_st_dir_find(&d, "lm_head.weight", NULL) &&
           s2s_st_dir_find(&d, "model.norm.weight", NULL), "hf names");
    s2s_st_dir_close(&d);
    EXPECT(s2s_ckpt_save(&p, hf, &(s2s_ckpt_save_opts){S2S_F32, 0, "nothing.", NULL}, err, sizeof err) != 0 &&
           strstr(err, "no parameters under nothing."), "%s", err);

    // Listing.
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    s2s_ckpt_source ls[2] = {{audio, S2S_CKPT_HF_AUDIO}, {llm, S2S_CKPT_HF_LLM}};
    EXPECT(s2s_ckpt_list(ls, 2, mem, err, sizeof err) == 0, "%s", err);
    fclose(mem);
    EXPECT(strstr(buf, "audio_encoder_model.conv1.weight\tF32\t[4, 3, 3]\t") &&
           strstr(buf, "-\tF32\t[3]\t") && strstr(buf, "llm_model.lm_head.weight\tF32\t[6, 4]\t") &&
           strstr(buf, "3 tensors, 192 bytes, 2 files"), "%s", buf);
    free(buf);
    s2s_params_free(&p);
    s2s_params_free(&q);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) { return remove(path); }

int main(void) {
    snprintf(root, sizeof root, "/tmp/s2s_test_checkpoint_XXXXXX");
    if (!mkdtemp(root)) { perror("mkdtemp"); return 1; }
    test_roundtrip();
    test_malformed();
    test_sharded();
    test_index_errors();
    test_config();
    test_checkpoint();
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (failures) { fprintf(stderr, "test_checkpoint: %d failure(s)\n", failures); return 1; }
    printf("test_checkpoint: ok\n");
    return 0;
}
