// sample.h — choosing the next token from a row of logits as Hugging Face `generate` does (one sequence).
//
// Greedy (do_sample false): argmax of the logits, the first index on ties (torch.argmax).
// Sampling (do_sample true): HF's logits warpers in HF's order, each only when HF would add it
// (GenerationMixin._get_logits_processor), min_tokens_to_keep = 1, removed entries set to -inf:
//   TemperatureLogitsWarper  temperature != 1: scores / temperature, in f32 (a positive temperature is required);
//   TopKLogitsWarper         top_k != 0: k = min(top_k, V); remove scores < the k-th largest score (ties with it
//                            all stay, so more than k may remain);
//   TopPLogitsWarper         top_p < 1: sort ascending, softmax (f32), cumulative sum (accumulated in f64, each
//                            entry rounded to f32, as torch's CPU cumsum); remove the sorted entries
//                            whose cumulative probability is <= 1 - top_p (computed in f64, compared in f32, as
//                            torch compares a float tensor with a Python float), always keeping the largest.
//                            Equal scores are ordered by token id (a stable sort), so among tied scores straddling
//                            the boundary the lower ids go first; torch.sort is unstable there, HF's choice among
//                            equal scores is arbitrary (the number removed is the same).
// then a draw from softmax(warped scores) with the sampler's seeded generator (autograd/rng.h; not torch's
// multinomial stream: same seed, same ids in s2s, but not HF's ids).
// Defaults are GenerationConfig's (transformers _get_default_generation_params): do_sample false, temperature 1.0,
// top_k 50, top_p 1.0. A checkpoint's generation_config.json (Qwen3: temperature 0.6, top_k 20, top_p 0.95)
// overrides them in HF; pass its values here to sample as HF would from that checkpoint.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/rng.h"

typedef struct s2s_sample_cfg {
    bool do_sample;      // false: greedy
    double temperature;  // > 0; 1: not applied
    int64_t top_k;       // 0: not applied
    double top_p;        // in [0, 1]; 1: not applied
} s2s_sample_cfg;

// GenerationConfig's defaults: {false, 1.0, 50, 1.0}.
s2s_sample_cfg s2s_sample_defaults(void);

typedef struct s2s_sample_entry {
    float score;
    int32_t id;
} s2s_sample_entry;

// Work buffers for a vocabulary of V, the configuration and the generator: one per generated sequence.
typedef struct s2s_sampler {
    s2s_sample_cfg cfg;
    s2s_rng rng;
    int64_t V;
    s2s_sample_entry *sorted;  // [V] (score, id) pairs: the top-p sort
    float *val;    // [V] scores (the top-k selection), then probabilities
} s2s_sampler;

// Fails with a message naming the field when cfg is out of HF's ranges (temperature <= 0, top_k < 0, top_p
// outside [0, 1]).
void s2s_sampler_init(s2s_sampler *s, const s2s_sample_cfg *cfg, int64_t V, uint64_t seed);
void s2s_sampler_free(s2s_sampler *s);

// First index of the largest score (NaN never wins).
int32_t s2s_sample_argmax(const float *scores, int64_t V);
// HF's warpers for do_sample (temperature, top-k, top-p as configured), in place on scores [V]; returns the
// number of entries left finite. Applied whatever cfg.do_sample says (it is the processing, not the decision).
int64_t s2s_sampler_warp(s2s_sampler *s, float *scores);
// The next token: greedy, or warp (scores are overwritten) then draw.
int32_t s2s_sampler_next(s2s_sampler *s, float *scores);
