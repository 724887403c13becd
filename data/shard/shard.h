// shard.h — s2s-shard HDF5 files (docs/shard-format.md): a writer that appends samples and publishes the file
// under its final name only when complete, and a reader that validates the schema at open and reads any sample
// by hyperslab. Plain arrays in and out; HDF5 stays behind this header. A shard handle is not thread-safe (nor
// is serial HDF5): one thread owns it.
#pragma once
#include <stdint.h>
#include "data/errors.h"

#define S2S_SHARD_FORMAT "s2s-shard"
#define S2S_SHARD_VERSION 1
#define S2S_SHARD_SAMPLE_RATE 16000
#define S2S_SHARD_SPK_DIM 512
#define S2S_SHARD_AUDIO_TOKEN (-200)  // in input_ids: splice the next audio here
#define S2S_SHARD_IGNORE (-100)       // in labels: not trained on

// Per-sample flags (the `flags` dataset): which optional fields the sample has.
enum {
    S2S_SHARD_HAS_UNITS = 1 << 0,
    S2S_SHARD_HAS_SPK_EMB = 1 << 1,
    S2S_SHARD_HAS_EMOTION = 1 << 2,
    S2S_SHARD_HAS_TEACHER = 1 << 3,
    S2S_SHARD_FLAGS_KNOWN = 0x0f,
};

typedef enum s2s_shard_kind {
    S2S_SHARD_INSTRUCT,      // stages 2b / 3: dialogues, 0..k audios, optional units and speaker embedding
    S2S_SHARD_ALIGN,         // stage 1: >= 1 audio, continuation, optional teacher prompt and emotion
    S2S_SHARD_TTS_PRETRAIN,  // stage 2a: text ids + units
} s2s_shard_kind;

const char *s2s_shard_kind_name(s2s_shard_kind k);
int s2s_shard_kind_parse(const char *name, s2s_shard_kind *out);  // 0, or -1 for an unknown name

// Root attributes. For the writer, version and num_samples are ignored (the writer fills them in).
typedef struct s2s_shard_meta {
    s2s_shard_kind kind;
    int64_t version;
    int64_t num_samples;
    int64_t sample_rate;
    char llm_tokenizer_sha256[65];  // 64 lower-case hex digits, or "" when the shard holds no LLM ids
    char tts_tokenizer_sha256[65];
    char created_by[256];
} s2s_shard_meta;

// One sample as plain arrays. To write, point the arrays at your data (flags and cap_* are ignored; the writer
// derives flags from the fields). To read, zero-initialise once and pass the same struct to every
// s2s_shard_read: arrays grow with realloc and are reused, so steady-state reads do not allocate.
typedef struct s2s_shard_sample {
    int64_t n_tokens;
    int32_t *input_ids;   // [n_tokens]
    int32_t *labels;      // [n_tokens] -100 or == input_ids (unshifted)
    int8_t *token_types;  // [n_tokens] 1 = speech-response span
    int64_t n_audio;
    int64_t *audio_len;   // [n_audio] PCM samples in each audio
    int16_t *audio;       // [sum(audio_len)] the audios, concatenated in the order of the -200s
    int64_t n_units;      // 0 = no units
    int32_t *units;       // [n_units] TTS-vocabulary ids, EOS last
    int64_t n_teacher;    // 0 = no teacher prompt
    int32_t *teacher_ids;     // [n_teacher]
    int32_t *teacher_labels;  // [n_teacher]
    int has_spk_emb;
    float spk_emb[S2S_SHARD_SPK_DIM];  // zeros when !has_spk_emb
    int emotion;                       // -1 = none
    uint8_t flags;                     // S2S_SHARD_HAS_*, set by the reader
    int64_t cap_tokens, cap_audio_len, cap_audio, cap_units, cap_teacher;  // reader-owned capacities
} s2s_shard_sample;

void s2s_shard_sample_free(s2s_shard_sample *s);  // frees reader-allocated arrays and zeroes the struct
uint8_t s2s_shard_sample_flags(const s2s_shard_sample *s);

// Checks one sample against the content rules of its kind; messages name `path` and sample `index`.
int s2s_shard_sample_check(s2s_shard_kind kind, const s2s_shard_sample *s, const char *path, int64_t index,
                           s2s_derr *e);

// ---- writer ---------------------------------------------------------------------------------------
typedef struct s2s_shard_writer s2s_shard_writer;

// Creates "<path>.tmp". meta->kind, sample_rate (0 = 16000), the hashes and created_by are written at close.
s2s_shard_writer *s2s_shard_writer_open(const char *path, const s2s_shard_meta *meta, s2s_derr *e);
// Checks the sample (s2s_shard_sample_check) and appends it.
int s2s_shard_writer_add(s2s_shard_writer *w, const s2s_shard_sample *s, s2s_derr *e);
int64_t s2s_shard_writer_num_samples(const s2s_shard_writer *w);
int64_t s2s_shard_writer_bytes(const s2s_shard_writer *w);  // payload bytes appended so far (for rolling shards)
// Writes offsets, flags and attributes, fsyncs and renames "<path>.tmp" to path; frees w either way. On failure
// the .tmp is removed and path is untouched.
int s2s_shard_writer_close(s2s_shard_writer *w, s2s_derr *e);
// Gives up: removes the .tmp and frees w.
void s2s_shard_writer_abort(s2s_shard_writer *w);

// ---- reader ---------------------------------------------------------------------------------------
typedef struct s2s_shard s2s_shard;

// Per-sample sizes, answered from the offsets held in memory (no I/O): for shuffling and length bucketing.
typedef struct s2s_shard_len {
    int64_t n_tokens, n_audio, audio_samples, n_units, n_teacher;
    uint8_t flags;
} s2s_shard_len;

// Opens and validates the schema, attributes, dtypes, shapes, offsets and flags (docs: "How a reader validates").
s2s_shard *s2s_shard_open(const char *path, s2s_derr *e);
void s2s_shard_close(s2s_shard *s);
const s2s_shard_meta *s2s_shard_get_meta(const s2s_shard *s);
const char *s2s_shard_path(const s2s_shard *s);
int64_t s2s_shard_num_samples(const s2s_shard *s);
void s2s_shard_lengths(const s2s_shard *s, int64_t i, s2s_shard_len *out);  // 0 <= i < n, unchecked (hot path)
int s2s_shard_emotion(const s2s_shard *s, int64_t i);  // sample i's emotion class, -1 none (0 <= i < n)

// Which optional groups are present (S2S_SHARD_HAS_* bits, plus S2S_SHARD_GROUP_AUDIO).
enum { S2S_SHARD_GROUP_AUDIO = 1 << 8 };
int s2s_shard_groups(const s2s_shard *s);

// Reads sample i (0 <= i < n) into out and checks its content.
int s2s_shard_read(s2s_shard *s, int64_t i, s2s_shard_sample *out, s2s_derr *e);

// Totals gathered by s2s_shard_check.
typedef struct s2s_shard_stats {
    int64_t samples, tokens, labelled, speech_tokens, audios, audio_samples, units, teacher_tokens;
    int64_t with_audio, with_units, with_spk_emb, with_emotion, with_teacher;
    int64_t min_tokens, max_tokens, max_audio_samples, max_units;
} s2s_shard_stats;

// Reads and checks every sample; fills stats (may be NULL). The full validation `s2s inspect` runs.
int s2s_shard_check(s2s_shard *s, s2s_shard_stats *stats, s2s_derr *e);
