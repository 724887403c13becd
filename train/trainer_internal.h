// trainer_internal.h — what trainer.c (the loop) and trainer_setup.c (model, data, resume) share.
#pragma once
#include <cjson/cJSON.h>
#include "autograd/ctx.h"
#include "data/loader/loader.h"
#include "metrics.h"
#include "model/omnispeech.h"
#include "optim.h"
#include "recipe.h"
#include "schedule.h"
#include "stage.h"
#include "trainer.h"
#include "zero.h"

typedef struct trainer {
    s2s_comm *comm;
    bool own_comm;       // made here (no communicator given): freed here
    int rank, world;
    FILE *rank_log;      // <run.dir>/logs/rank_R.log
    s2s_recipe r;
    s2s_cfg *cfg;
    const s2s_stage *stage;
    s2s_stage_terms terms;  // what the stage logs under this recipe
    s2s_stage_env env;
    s2s_omnispeech_config mcfg;
    s2s_omnispeech m;
    s2s_device dev;      // the recipe's device (cpu | cuda: this rank's GPU)
    s2s_params P;
    s2s_ctx *ctx;
    s2s_adam_state opt;
    s2s_zero zero;       // dist.zero 1 or 2 on several ranks: the optimizer state (and with 2 the gradients) sharded
    bool zero_on;
    bool agreed;         // setup's error is already every rank's (s2s_comm_agree ran on it)
    s2s_schedule_kind sched;
    s2s_loader *train, *valid;
    int32_t tts_eos;
    char llm_sha[65], tts_sha[65];
    // progress
    int64_t step;        // optimizer steps done
    int64_t first_step;  // the step this invocation started at
    int64_t bad;         // non-finite steps in a row
    int64_t samples;     // samples consumed
    s2s_metrics met;
    char *resume_dir;    // the checkpoint this run continues, or NULL
} trainer;

int trainer_setup(trainer *t, const s2s_train_opts *o, char *err, size_t errlen);
// A line for the user: into this rank's log, and on stderr from rank 0.
void trainer_log(trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void trainer_teardown(trainer *t);
// Restore optimizer, loader cursor and counters from t->resume_dir (model weights are loaded by setup).
int trainer_restore(trainer *t, cJSON *state, char *err, size_t errlen);
// The effective recipe as a JSON object of key -> string / list (stored in trainer.json, compared on resume).
cJSON *trainer_recipe_json(const s2s_cfg *c);
