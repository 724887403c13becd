// plan.h — `s2s plan`: what a recipe needs per rank, computed without weights and without allocating: parameter
// counts from the model's own registration (a layout-only registry, s2s_params_shapes_only) frozen by the
// trainer's own rule (s2s_stage_freeze), the bytes of parameters, gradients and optimizer state for the ZeRO
// level and world size, and the step arena's high-water mark for a micro-batch (a shape-level replay of the
// stage's forward and backward, plan_act.c), with and without recompute; then whether it fits a GPU and the
// largest micro-batch that does. docs/training.md, "Planning memory".
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "model/hf_config.h"
#include "recipe.h"

// One sample of the micro-batch (every sample the same).
typedef struct s2s_plan_shape {
    int64_t batch;         // samples per micro-batch
    int64_t tokens;        // LLM rows per sample, the audio's adapter rows included
    int64_t audio_frames;  // log-mel frames of the sample's one audio (100 per second; 0: none)
    int64_t response;      // rows of the speech response span (token_type 1); stage 2a: text ids per sample
    int64_t units;         // speech units per sample, EOS included (0: no speech output)
    int64_t targets;       // supervised LLM rows per sample
    bool spk;              // a speaker embedding per span (else zeros, made in the arena too)
} s2s_plan_shape;

typedef struct s2s_plan_opts {
    int world;            // data-parallel ranks (the ZeRO split)
    int threads;          // CPU threads (the kernels' per-thread partials; 1 for a GPU)
    bool bf16;            // GPU mixed precision: bf16 values, gradients and activations, f32 master + moments
    double gpu_bytes;     // memory of one GPU
    const char *model;    // an OmniSpeech config.json instead of the recipe's (NULL: the recipe's)
} s2s_plan_opts;

typedef struct s2s_plan {
    s2s_omnispeech_config cfg;
    int64_t params_total, params_trainable;
    int64_t bytes_params, bytes_grads, bytes_optim;  // per rank
    int64_t act_plain, act_recompute;                // arena + scratch high-water marks of one micro-batch
    int64_t act_step[2], act_scratch[2];             // [recompute] the two arenas apart
    bool recompute;                                  // the recipe's train.recompute
    int64_t bytes_per_rank;                          // params + grads + optim + activations (the recipe's setting)
    bool fits;
    int64_t max_batch[2];                            // [recompute] largest micro-batch that fits (0: none)
} s2s_plan;

// Activation bytes of one micro-batch of shape sh with the model P / m describes (plan_model.c).
typedef struct s2s_params s2s_params;
int s2s_plan_activations(const s2s_recipe *r, const s2s_omnispeech_config *c, const s2s_params *P,
                         const s2s_plan_shape *sh, bool recompute, int threads, bool bf16, int64_t *step,
                         int64_t *scratch, char *err, size_t errlen);
// The whole plan. 0, or -1 with err naming the key / file.
int s2s_plan_run(const s2s_recipe *r, const s2s_plan_shape *sh, const s2s_plan_opts *o, s2s_plan *out, char *err,
                 size_t errlen);
