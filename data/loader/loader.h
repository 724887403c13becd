// loader.h — the training data loader over s2s shards (docs/loader.md). At open it expands the shard list,
// opens and validates every shard once (schema, version, offsets, kind, tokenizer hashes) and keeps only each
// sample's size, so a bad file stops the job before the first step with its name in the message. Per epoch it
// derives one global plan from (seed, epoch) alone — permutation, optional length bucketing, batches by sample
// count or token budget — and deals rank-batches round-robin, so rank r of w gets a disjoint slice and every
// rank the same number of steps. A background thread reads the rank's samples (opening shards lazily, its own
// handles), converts PCM and computes log-mel, and hands finished batches over in order through a bounded queue.
// The cursor (epoch, step) is saved in trainer.json; seeking to it continues the stream exactly.
#pragma once
#include <stdint.h>
#include "data/errors.h"
#include "data/shard/shard.h"

// Zero-initialise and set what you need: zero means the default noted on each field.
typedef struct s2s_loader_config {
    const char *const *paths;  // shard files, directories (their *.h5, by name) or glob patterns, in this order
    int n_paths;
    uint64_t seed;
    int rank, world;           // this process is `rank` of `world` (0 = 1)
    int64_t batch_samples;     // > 0: each rank-batch holds this many samples
    int64_t token_budget;      // > 0 (instead): a rank-batch holds samples while count * max cost <= budget
    int64_t bucket_window;     // > 0: sort each window of this many shuffled samples by cost before batching
    int no_shuffle;            // 1: shard order, no permutation (evaluation)
    int pad_last;              // 0: drop what does not fill a step; 1: fill it by repeating the epoch's start
    int prefetch;              // batches prepared ahead on the background thread; 0 = synchronously in next()
    int mel;                   // 1: compute the log-mel of every audio
    int mel_threads;           // OpenMP threads of the background thread's log-mel (0 = 1)
    int max_open;              // shard handles the reader keeps open (0 = 256); more shards are reopened LRU
    int check_samples;         // 1: also read and check every sample at open (as `s2s inspect`; slow)
    int emotion_classes;       // > 0: every sample's emotion class must be below it (stage 1's emotion head)
    const char *llm_tokenizer_sha256;  // non-NULL: a shard's non-empty hash must equal it
    const char *tts_tokenizer_sha256;
} s2s_loader_config;

// One rank-batch as plain arrays, owned by the loader and valid until the next s2s_loader_next / seek / close.
// Ragged fields are concatenated with [n+1] offsets: sample i's tokens are [tok_off[i], tok_off[i+1]).
typedef struct s2s_batch {
    int64_t epoch, step;     // position in the stream: the step-th batch of the epoch
    int64_t steps_in_epoch;  // steps this epoch has (the same on every rank)
    int64_t n;               // samples
    int32_t *shard;          // [n] index into the loader's shard list (s2s_loader_shard_path)
    int64_t *index;          // [n] sample index inside that shard
    int64_t *cost;           // [n] s2s_loader_sample_cost of each sample
    int64_t *tok_off;        // [n+1]
    int32_t *input_ids, *labels;
    int8_t *token_types;
    // Audios in sample order, and within a sample in the order of its -200s: sample i owns audios
    // [audio_off[i], audio_off[i+1]); audio a is pcm[pcm_off[a] : pcm_off[a+1]] (16 kHz, i16 as stored).
    int64_t n_audio;
    int64_t *audio_off;  // [n+1]
    int64_t *pcm_off;    // [n_audio+1]
    int16_t *pcm;
    // Log-mel (config.mel): every audio zero-padded to whole 30 s chunks, chunk-major so each chunk is one
    // encoder input: mel[c] is [128, 3000]; audio a owns chunks [chunk_off[a], chunk_off[a+1]).
    int64_t n_chunks;
    int64_t *chunk_off;     // [n_audio+1]
    int64_t *valid_frames;  // [n_audio] ceil(samples / 160): frames that carry audio
    int64_t *chunk_valid;   // [n_chunks] of those, the ones inside each chunk (1..3000)
    float *mel;             // [n_chunks, 128, 3000]
    int64_t *unit_off;  // [n+1] speech units (TTS ids, EOS last); empty for samples without
    int32_t *units;
    int64_t *teacher_off;  // [n+1] stage-1 `kl` teacher prompt
    int32_t *teacher_ids, *teacher_labels;
    float *spk_emb;   // [n, 512], zeros where the sample has none
    uint8_t *flags;   // [n] S2S_SHARD_HAS_*
    int32_t *emotion; // [n] -1 = none
    int64_t cap_n, cap_tok, cap_audio, cap_pcm, cap_chunks, cap_units, cap_teacher;  // loader-owned capacities
} s2s_batch;

// Where the stream stands: the next batch s2s_loader_next returns. The same on every rank, so one cursor per
// job suffices. seed, world and plan_hash (shard sizes, per-sample costs and the batching settings) make a
// resume over other data or settings an error rather than a silently different stream.
typedef struct s2s_loader_cursor {
    int64_t epoch, step;
    int64_t base;   // batches of the epoch dealt before step 0 (by another world size); 0 normally
    uint64_t seed;
    int world;
    uint64_t plan_hash;
} s2s_loader_cursor;

typedef struct s2s_loader s2s_loader;

// Validates every shard and the settings and starts the background thread at (epoch 0, step 0). Errors name the
// file (and sample) at fault.
s2s_loader *s2s_loader_open(const s2s_loader_config *cfg, s2s_derr *e);
void s2s_loader_close(s2s_loader *l);

// The next batch of this rank, in order; epochs follow one another without end (see batch->epoch). A read
// error (naming file and sample) is returned here and stays: every later call fails with it.
int s2s_loader_next(s2s_loader *l, const s2s_batch **out, s2s_derr *e);

s2s_loader_cursor s2s_loader_tell(const s2s_loader *l);
// Continues the stream at c (as from s2s_loader_tell); refuses a cursor of another seed or plan. A cursor of
// another world size continues the same epoch: the batches its ranks had consumed (base + step x its world)
// stay consumed and the rest are dealt to this world, so no sample of the epoch is seen twice or skipped.
int s2s_loader_seek(s2s_loader *l, const s2s_loader_cursor *c, s2s_derr *e);

// Steps per epoch of this loader (the same on every rank). With a token budget it can vary by epoch.
int64_t s2s_loader_steps_in_epoch(s2s_loader *l, int64_t epoch, s2s_derr *e);
int64_t s2s_loader_num_samples(const s2s_loader *l);  // over all shards
int s2s_loader_num_shards(const s2s_loader *l);
const char *s2s_loader_shard_path(const s2s_loader *l, int shard);
s2s_shard_kind s2s_loader_kind(const s2s_loader *l);

// The batching cost of a sample: the positions it puts through the language models, i.e. its LLM sequence
// with every -200 replaced by the adapter frames of its audio, plus its speech units.
int64_t s2s_loader_sample_cost(const s2s_shard_len *len);
// Adapter output frames for an audio of `samples` PCM samples (encoder per 30 s chunk, then the subsampler).
int64_t s2s_loader_audio_frames(int64_t samples);

// The cursor as a small JSON object (malloc'd string) for trainer.json, and back.
char *s2s_loader_cursor_json(const s2s_loader_cursor *c);
int s2s_loader_cursor_parse(const char *json, s2s_loader_cursor *c, s2s_derr *e);

void s2s_batch_free(s2s_batch *b);  // frees the arrays and zeroes the struct
