// eval_data.h — held-out evaluation over shards (`s2s eval --data`): the training losses as token means over the
// whole set, and greedy next-token accuracy, for any model a session can load (eval/source.h). The definitions are
// the trainer's (train/batch.h turns a loader batch into the model's; model/omnispeech.h computes the terms):
//   instruct shards (stages 2b / 3): loss_llm over the supervised text tokens, loss_tts over the unit targets of
//     the interleave, loss = loss_llm + loss_tts (OpenS2S's weights 1, 1);
//   align shards (stage 1): loss = loss_llm over the continuation;
//   tts_pretrain shards (stage 2a): loss = loss_tts over the units.
// text_accuracy / unit_accuracy: the share of those targets the model's argmax gets right.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct s2s_eval_data_opts {
    const char *model;            // OpenS2S / exported dir, training checkpoint, or run directory
    const char *const *shards;    // shard files, directories or globs
    int n_shards;
    const char *device;           // "cpu" (default) or "cuda"
    int threads;
    int64_t max_samples;          // > 0: stop after this many
    bool quiet;                   // no progress line
} s2s_eval_data_opts;

typedef struct s2s_eval_data_result {
    double loss, loss_llm, loss_tts, text_accuracy, unit_accuracy;
    int64_t samples, llm_targets, tts_targets;
    double seconds;
    char kind[32];                // the shards' kind
} s2s_eval_data_result;

int s2s_eval_data(const s2s_eval_data_opts *o, s2s_eval_data_result *r, char *err, size_t errlen);
