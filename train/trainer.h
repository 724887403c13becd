// trainer.h — `s2s train` as a library: a recipe (config.h / recipe.h) in, a trained run directory out
// (checkpoints, metrics.jsonl, config.yaml). The CLI front-end only parses arguments and calls s2s_train.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "comm.h"
#include "config.h"

typedef struct s2s_train_opts {
    const char *resume;  // NULL: fresh; "auto": the run's newest checkpoint if any; else a checkpoint directory
    bool quiet;          // no progress lines (metrics are still written)
    int64_t stop_after;  // > 0: return (with a checkpoint) after this many steps of this invocation; the schedule
                         // still runs to train.max_steps, so a later --resume continues exactly
    s2s_comm *comm;      // the ranks of a data-parallel run (train/comm.h); NULL: this process alone
} s2s_train_opts;

typedef struct s2s_train_result {
    int64_t step;          // optimizer steps done when it returned
    double last_loss;      // the last step's loss
    double first_loss;     // the first step of this invocation
    bool interrupted;      // stopped by SIGTERM / SIGINT after a checkpoint
} s2s_train_result;

// Run (or continue) the training the recipe describes. cfg is completed with the defaults (the effective recipe).
// 0 on success; -1 with err naming the file / key / sample at fault.
int s2s_train(s2s_cfg *cfg, const s2s_train_opts *o, s2s_train_result *res, char *err, size_t errlen);
