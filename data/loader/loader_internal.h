// loader_internal.h — the pieces of the loader that its files share: the index of all samples (built once at
// open), the per-epoch plan (pure function of the index, the settings, seed and epoch) and the reader that fills
// a batch. Internal to data/loader/loader*.c.
#pragma once
#include <stdatomic.h>
#include <stdint.h>
#include "data/audio/logmel.h"
#include "data/loader/loader.h"

// Every sample of every shard, in shard order: global id g is sample g - first[s] of shard s.
typedef struct loader_index {
    int n_shards;
    char **paths;         // [n_shards]
    int64_t *first;       // [n_shards+1]
    int64_t n;            // samples
    int32_t *cost;        // [n] s2s_loader_sample_cost
    s2s_shard_kind kind;
    uint64_t hash;        // FNV-1a of the shard sizes and costs (part of the plan hash)
} loader_index;

int loader_index_build(loader_index *ix, const s2s_loader_config *cfg, s2s_derr *e);
void loader_index_free(loader_index *ix);
int loader_index_shard_of(const loader_index *ix, int64_t g);

// The settings that shape the plan, normalised (world >= 1), and their hash with the index's.
typedef struct loader_settings {
    uint64_t seed;
    int rank, world;
    int64_t batch_samples, token_budget, bucket_window;
    int no_shuffle, pad_last;
} loader_settings;
uint64_t loader_plan_hash(const loader_index *ix, const loader_settings *st);

// One epoch's global plan: rank-batch b is ids[batch_off[b] .. batch_off[b+1]); n_batches is a multiple of world
// and rank r's step s is batch s * world + r.
typedef struct loader_plan {
    int64_t epoch;  // -1 = not built
    int64_t n_batches;  // the epoch's batches, for any world size
    int64_t *batch_off, *ids;
    int64_t cap_batches, cap_ids;
} loader_plan;

int loader_plan_build(loader_plan *p, const loader_index *ix, const loader_settings *st, int64_t epoch, s2s_derr *e);
void loader_plan_free(loader_plan *p);
// Steps of the epoch left to world ranks dealing its batches from `base` on (the batches consumed before: a
// resume on another world size starts dealing where the old world stopped); a last partial step is dropped,
// or with pad_last filled from the epoch's first batches.
int64_t loader_plan_steps(const loader_plan *p, const loader_settings *st, int64_t base);
// The plan batch of this rank's step counted from base.
int64_t loader_plan_batch(const loader_plan *p, const loader_settings *st, int64_t base, int64_t step);

// The counter-based generator behind every shuffle (docs/loader.md writes it out for reimplementation).
uint64_t loader_rng_key(uint64_t seed, int64_t epoch, uint64_t stream);
uint64_t loader_rng_draw(uint64_t key, uint64_t k);
void loader_shuffle(int64_t *v, int64_t n, uint64_t key);

// Serial HDF5 is not thread-safe, and two loaders (train + eval) may read at once: every shard open, read and
// close in the loader takes this lock.
void loader_h5_lock(void);
void loader_h5_unlock(void);

// Reads rank-batches into s2s_batch: its own shard handles (opened on first use, LRU beyond max_open), sample
// buffer, log-mel object and scratch. One reader per thread.
typedef struct loader_reader {
    const loader_index *ix;
    int max_open, mel;
    s2s_shard **open;     // [n_shards], NULL when closed
    uint64_t *used;       // [n_shards] last use, for LRU
    uint64_t tick;
    int n_open;
    s2s_shard_sample sample;
    s2s_logmel *logmel;
    float *pcm, *melbuf;  // scratch: one audio as float, and its [128, F] mel when F > one chunk
    int64_t cap_pcm, cap_melbuf;
} loader_reader;

int loader_reader_init(loader_reader *r, const loader_index *ix, int max_open, int mel, s2s_derr *e);
void loader_reader_free(loader_reader *r);
// Fills b with the samples ids[0..n); stops early (returning 1) when *stop becomes set.
int loader_reader_fill(loader_reader *r, const int64_t *ids, int64_t n, s2s_batch *b, atomic_int *stop, s2s_derr *e);
