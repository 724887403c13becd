// test_shard.c — round-trips random samples through the shard writer and reader: every kind, samples with 0, 1
// and 2 audios, with and without units / speaker embedding / teacher / emotion, enough data to cross chunk
// boundaries; the file exists only under "<path>.tmp" until close; invalid samples are refused without spoiling
// the writer; abort leaves nothing behind.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "data/shard/shard.h"
#include "expect.h"


typedef struct rng {
    uint64_t s;
} rng;
static uint64_t rng_next(rng *r) {  // xorshift64*
    r->s ^= r->s >> 12, r->s ^= r->s << 25, r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}
static int64_t rng_int(rng *r, int64_t lo, int64_t hi) { return lo + (int64_t)(rng_next(r) % (uint64_t)(hi - lo + 1)); }

static int exists(const char *p) { return access(p, F_OK) == 0; }

// A random valid sample of `kind` with n_audio audios; the arrays are malloc'd (freed with s2s_shard_sample_free).
static void make_sample(rng *r, s2s_shard_kind kind, int64_t n_audio, int units, int spk, int teacher, int emotion,
                        int64_t max_audio, s2s_shard_sample *s) {
    memset(s, 0, sizeof *s);
    int64_t n = n_audio + rng_int(r, 0, 40);
    s->n_tokens = n;
    s->input_ids = malloc((n + 1) * 4);
    s->labels = malloc((n + 1) * 4);
    s->token_types = malloc(n + 1);
    for (int64_t j = 0; j < n; j++) {
        s->input_ids[j] = (int32_t)rng_int(r, 0, 151000);
        s->labels[j] = rng_int(r, 0, 2) ? S2S_SHARD_IGNORE : s->input_ids[j];
        s->token_types[j] = (int8_t)rng_int(r, 0, 1);
    }
    // Audio placeholders at random distinct positions.
    for (int64_t placed = 0; placed < n_audio;) {
        int64_t j = rng_int(r, 0, n - 1);
        if (s->input_ids[j] == S2S_SHARD_AUDIO_TOKEN) continue;
        s->input_ids[j] = S2S_SHARD_AUDIO_TOKEN, s->labels[j] = S2S_SHARD_IGNORE, placed++;
    }
    s->n_audio = n_audio;
    s->audio_len = malloc((n_audio + 1) * 8);
    int64_t total = 0;
    for (int64_t a = 0; a < n_audio; a++) total += s->audio_len[a] = rng_int(r, 1, max_audio);
    s->audio = malloc((total + 1) * 2);
    for (int64_t j = 0; j < total; j++) s->audio[j] = (int16_t)rng_int(r, -32768, 32767);
    s->n_units = units ? rng_int(r, 1, 300) : 0;
    s->units = malloc((s->n_units + 1) * 4);
    for (int64_t j = 0; j < s->n_units; j++) s->units[j] = (int32_t)rng_int(r, 151669, 168053);
    if (teacher) {
        int64_t labelled = 0;
        for (int64_t j = 0; j < n; j++) labelled += s->labels[j] != S2S_SHARD_IGNORE;
        s->n_teacher = labelled + rng_int(r, 1, 20);
        s->teacher_ids = malloc(s->n_teacher * 4);
        s->teacher_labels = malloc(s->n_teacher * 4);
        for (int64_t j = 0; j < s->n_teacher; j++) {
            s->teacher_ids[j] = (int32_t)rng_int(r, 0, 151000);
            // The continuation is the tail: label the last `labelled` positions.
            s->teacher_labels[j] = j >= s->n_teacher - labelled ? s->teacher_ids[j] : S2S_SHARD_IGNORE;
        }
    }
    s->has_spk_emb = spk;
    for (int j = 0; spk && j < S2S_SHARD_SPK_DIM; j++)
        s->spk_emb[j] = (float)((double)rng_int(r, -1000000, 1000000) / 7777.0);
    s->emotion = emotion ? (int)rng_int(r, 0, 7) : -1;
    (void)kind;
}

static int same_sample(const s2s_shard_sample *a, const s2s_shard_sample *b, int64_t i) {
    int bad = failures;
    EXPECT(a->n_tokens == b->n_tokens && a->n_audio == b->n_audio && a->n_units == b->n_units &&
              a->n_teacher == b->n_teacher,
          "sample %lld: lengths differ", (long long)i);
    if (failures != bad) return 0;
    EXPECT(!memcmp(a->input_ids, b->input_ids, a->n_tokens * 4), "sample %lld: input_ids", (long long)i);
    EXPECT(!memcmp(a->labels, b->labels, a->n_tokens * 4), "sample %lld: labels", (long long)i);
    EXPECT(!memcmp(a->token_types, b->token_types, a->n_tokens), "sample %lld: token_types", (long long)i);
    int64_t total = 0;
    for (int64_t k = 0; k < a->n_audio; k++) {
        EXPECT(a->audio_len[k] == b->audio_len[k], "sample %lld: audio_len[%lld]", (long long)i, (long long)k);
        total += a->audio_len[k];
    }
    EXPECT(!memcmp(a->audio, b->audio, total * 2), "sample %lld: audio", (long long)i);
    EXPECT(!memcmp(a->units, b->units, a->n_units * 4), "sample %lld: units", (long long)i);
    EXPECT(!a->n_teacher || (!memcmp(a->teacher_ids, b->teacher_ids, a->n_teacher * 4) &&
                            !memcmp(a->teacher_labels, b->teacher_labels, a->n_teacher * 4)),
          "sample %lld: teacher", (long long)i);
    EXPECT(a->has_spk_emb == b->has_spk_emb, "sample %lld: has_spk_emb", (long long)i);
    EXPECT(!memcmp(a->spk_emb, b->spk_emb, sizeof a->spk_emb), "sample %lld: spk_emb", (long long)i);
    EXPECT(a->emotion == b->emotion, "sample %lld: emotion %d vs %d", (long long)i, a->emotion, b->emotion);
    EXPECT(b->flags == s2s_shard_sample_flags(a), "sample %lld: flags 0x%x", (long long)i, b->flags);
    return failures == bad;
}

// Writes n random samples of `kind`, checks the publish-on-close behaviour, reads all back in a shuffled order.
static void roundtrip(s2s_shard_kind kind, int64_t n, int64_t max_audio, uint64_t seed) {
    char path[256], tmp[300];
    snprintf(path, sizeof path, "/tmp/s2s_test_shard_%d_%s.h5", (int)getpid(), s2s_shard_kind_name(kind));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(path);
    rng r = {seed};
    s2s_shard_meta meta = {.kind = kind};
    memset(meta.llm_tokenizer_sha256, 'a', 64);
    snprintf(meta.created_by, sizeof meta.created_by, "test_shard.c");
    s2s_derr e = {{0}};
    s2s_shard_writer *w = s2s_shard_writer_open(path, &meta, &e);
    EXPECT(w, "writer_open: %s", e.msg);
    if (!w) return;
    s2s_shard_sample *in = calloc(n, sizeof *in);
    for (int64_t i = 0; i < n; i++) {
        int64_t n_audio;
        int units, spk = 0, teacher = 0, emotion = 0;
        if (kind == S2S_SHARD_INSTRUCT) {
            n_audio = i % 3;  // 0, 1, 2 audios in turn
            units = i % 4 != 1, spk = i % 5 == 2;
        } else if (kind == S2S_SHARD_ALIGN) {
            n_audio = 1 + (i % 7 == 3), units = 0, teacher = i % 2, emotion = i % 3 != 0;
        } else {
            n_audio = 0, units = 1, spk = i % 2;
        }
        make_sample(&r, kind, n_audio, units, spk, teacher, emotion, max_audio, &in[i]);
        EXPECT(!s2s_shard_writer_add(w, &in[i], &e), "add %lld: %s", (long long)i, e.msg);
        if (i == n / 2) {
            // An invalid sample (one -200 too many) is refused with a message naming the sample, and changes nothing.
            s2s_shard_sample bad = in[i];
            int32_t ids[2] = {S2S_SHARD_AUDIO_TOKEN, S2S_SHARD_AUDIO_TOKEN}, labels[2] = {-100, -100};
            int8_t types[2] = {0, 0};
            bad.input_ids = ids, bad.labels = labels, bad.token_types = types, bad.n_tokens = 2, bad.n_teacher = 0;
            bad.n_audio = 1;
            EXPECT(s2s_shard_writer_add(w, &bad, &e) && strstr(e.msg, "placeholders"), "bad sample accepted: %s",
                  e.msg);
        }
    }
    EXPECT(s2s_shard_writer_num_samples(w) == n, "num_samples");
    EXPECT(exists(tmp) && !exists(path), "before close only the .tmp exists");
    EXPECT(!s2s_shard_writer_close(w, &e), "close: %s", e.msg);
    EXPECT(!exists(tmp) && exists(path), "after close only the final name exists");

    s2s_shard *sh = s2s_shard_open(path, &e);
    EXPECT(sh, "open: %s", e.msg);
    if (sh) {
        EXPECT(s2s_shard_num_samples(sh) == n, "n");
        EXPECT(s2s_shard_get_meta(sh)->kind == kind, "kind");
        EXPECT(!strcmp(s2s_shard_get_meta(sh)->created_by, "test_shard.c"), "created_by");
        s2s_shard_sample out = {0};
        int64_t *order = malloc(n * sizeof *order);
        for (int64_t i = 0; i < n; i++) order[i] = i;
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = rng_int(&r, 0, i), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        for (int64_t k = 0; k < n; k++) {
            int64_t i = order[k];
            s2s_shard_len L;
            s2s_shard_lengths(sh, i, &L);
            int64_t total = 0;
            for (int64_t a = 0; a < in[i].n_audio; a++) total += in[i].audio_len[a];
            EXPECT(L.n_tokens == in[i].n_tokens && L.n_audio == in[i].n_audio && L.audio_samples == total &&
                      L.n_units == in[i].n_units && L.n_teacher == in[i].n_teacher,
                  "lengths of sample %lld", (long long)i);
            if (s2s_shard_read(sh, i, &out, &e)) {
                EXPECT(0, "read %lld: %s", (long long)i, e.msg);
                break;
            }
            if (!same_sample(&in[i], &out, i)) break;
        }
        EXPECT(s2s_shard_read(sh, n, &out, &e) && strstr(e.msg, "out of range"), "index n accepted");
        s2s_shard_stats st;
        EXPECT(!s2s_shard_check(sh, &st, &e) && st.samples == n, "check: %s", e.msg);
        s2s_shard_sample_free(&out);
        free(order);
        s2s_shard_close(sh);
    }
    for (int64_t i = 0; i < n; i++) s2s_shard_sample_free(&in[i]);
    free(in);
    unlink(path);
}

static void abort_and_empty(void) {
    char path[256], tmp[300];
    snprintf(path, sizeof path, "/tmp/s2s_test_shard_%d_empty.h5", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    s2s_shard_meta meta = {.kind = S2S_SHARD_INSTRUCT};
    s2s_derr e = {{0}};
    s2s_shard_writer *w = s2s_shard_writer_open(path, &meta, &e);
    EXPECT(w && exists(tmp), "open: %s", e.msg);
    s2s_shard_writer_abort(w);
    EXPECT(!exists(tmp) && !exists(path), "abort leaves nothing");
    // A shard with no samples is valid.
    w = s2s_shard_writer_open(path, &meta, &e);
    EXPECT(w && !s2s_shard_writer_close(w, &e), "empty close: %s", e.msg);
    s2s_shard *sh = s2s_shard_open(path, &e);
    EXPECT(sh && s2s_shard_num_samples(sh) == 0, "empty open: %s", e.msg);
    s2s_shard_close(sh);
    unlink(path);
    // Bad metadata is refused before any file is made.
    snprintf(meta.tts_tokenizer_sha256, sizeof meta.tts_tokenizer_sha256, "not-a-hash");
    EXPECT(!s2s_shard_writer_open(path, &meta, &e) && !exists(tmp), "bad hash accepted");
    // A missing file is reported as such.
    EXPECT(!s2s_shard_open("/tmp/s2s_test_shard_no_such.h5", &e) && strstr(e.msg, "no such file"), "%s", e.msg);
}

int main(void) {
    roundtrip(S2S_SHARD_INSTRUCT, 200, 12000, 1);  // ~1.2 M PCM samples: crosses audio chunks and flushes
    roundtrip(S2S_SHARD_ALIGN, 60, 4000, 2);
    roundtrip(S2S_SHARD_TTS_PRETRAIN, 40, 1, 3);
    abort_and_empty();
    if (failures) {
        fprintf(stderr, "test_shard: %d failures\n", failures);
        return 1;
    }
    printf("test_shard: OK\n");
    return 0;
}
