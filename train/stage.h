// stage.h — a training stage: the shard kind it reads, what it trains by default, and the loss of one
// micro-batch. One file per stage (stage1.c, stage2a.c, stage2b.c, stage3.c); adding a stage is adding a file
// and a line in stage.c's table.
#pragma once
#include <stdbool.h>
#include "batch.h"
#include "data/shard/shard.h"
#include "model/omnispeech.h"
#include "recipe.h"

#define S2S_STAGE_MAX_TERMS 3

// The loss of one micro-batch. Each term is weight * (sum over its supervised rows) / div[term]: the trainer
// passes the global batch's row counts (train.loss_norm: tokens) or this micro-batch's count x grad_accum
// (micro_mean), so that summing the micro-batches' losses gives the step's loss.
typedef struct s2s_stage_out {
    s2s_tensor *loss;                     // scalar to back-propagate (NULL: nothing trains in this micro-batch)
    double term[S2S_STAGE_MAX_TERMS];     // each term's plain mean over this micro-batch
    int64_t rows[S2S_STAGE_MAX_TERMS];    // its supervised rows
} s2s_stage_out;

// The loss terms a stage logs under a recipe (stage 1's depend on its objective and emotion head), with the
// weight each carries in eval_loss (0: measured, not trained).
typedef struct s2s_stage_terms {
    int n;
    const char *name[S2S_STAGE_MAX_TERMS];  // metrics keys ("loss_llm", ...)
    double weight[S2S_STAGE_MAX_TERMS];
} s2s_stage_terms;

typedef struct s2s_stage_env {
    const s2s_recipe *r;
    const s2s_omnispeech *m;
    s2s_tensor *emotion_w, *emotion_b;  // stage 1 emotion head, or NULL
} s2s_stage_env;

typedef struct s2s_stage {
    const char *name;
    s2s_shard_kind kind;
    s2s_batch_mode mode;
    const char *const *trains;  // parameter-name prefixes trained by default (everything else frozen)
    void (*terms)(const s2s_recipe *r, s2s_stage_terms *out);
    // Supervised rows of each term in a batch (summed over the step's micro-batches and ranks into div).
    void (*rows)(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *rows);
    void (*micro)(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out);
} s2s_stage;

const s2s_stage *s2s_stage_find(const char *name);

// What trains: everything frozen, then the stage's prefixes (+ "emotion_head." when emotion), then the recipe's
// train.trainable / train.frozen (a prefix matching no parameter is an error), the encoder's fixed positional
// table frozen, and under lora.r > 0 only the LLM's adapters of the LLM. The trainer and s2s plan both call it.
int s2s_stage_freeze(s2s_params *P, const s2s_stage *st, const s2s_recipe *r, bool emotion, char *err,
                     size_t errlen);

extern const s2s_stage s2s_stage1, s2s_stage2a, s2s_stage2b, s2s_stage3;
