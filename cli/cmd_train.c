// cmd_train.c — `s2s train`: arguments to a recipe, then the trainer library (train/trainer.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "train/config.h"
#include "train/recipe.h"
#include "train/trainer.h"

static int run(int argc, char **argv) {
    const char *config = NULL, *resume = NULL, *device = NULL;
    static s2s_arg_list sets;
    int64_t stop_after = 0;
    bool quiet = false, keys = false, print_config = false;
    const s2s_arg args[] = {
        {"--config", S2S_ARG_STR, &config, "RECIPE.yaml", "the recipe (configs/*/stage*.yaml; docs/training.md)"},
        {"--set", S2S_ARG_MULTI, &sets, "KEY=VALUE", "override a recipe key (dotted path, YAML value; repeatable)"},
        {"--resume", S2S_ARG_STR, &resume, "auto|DIR", "auto: the run's newest checkpoint (fresh when none); DIR: it"},
        {"--stop-after", S2S_ARG_INT, &stop_after, "N", "stop with a checkpoint after N steps of this invocation"},
        {"--print-config", S2S_ARG_FLAG, &print_config, NULL, "check the recipe, print it with the defaults, exit"},
        {"--keys", S2S_ARG_FLAG, &keys, NULL, "list every recipe key with its default and meaning"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress lines (metrics.jsonl is still written)"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "the recipe's device key (cuda: one GPU per rank)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "train", .synopsis = "--config RECIPE.yaml [--set key=value]... [--resume auto|DIR] [options]",
        .args = args,
        .epilog = "Writes run.dir/config.yaml (the effective recipe), metrics.jsonl, logs/ and checkpoints/. SIGTERM,\n"
                  "SIGINT and SIGUSR1 finish the step, write a checkpoint and exit 0. Under mpirun / srun each process\n"
                  "is a data-parallel rank. Recipes: configs/*/stage*.yaml; README, docs/training.md.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (keys) {
        s2s_recipe_describe(stdout);
        return 0;
    }
    if (!config) {
        fprintf(stderr, "s2s train: --config is required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    char err[2048];
    s2s_cfg cfg;
    s2s_cfg_init(&cfg);
    int rc = s2s_cfg_load_yaml(&cfg, config, err, sizeof err);
    for (int i = 0; !rc && i < sets.n; i++) rc = s2s_cfg_set(&cfg, sets.v[i], err, sizeof err);
    if (!rc && device && strcmp(device, "cpu") && strcmp(device, "cuda")) {
        fprintf(stderr, "s2s train: --device %s: cpu or cuda\n", device);
        s2s_cfg_free(&cfg);
        return 2;
    }
    char dset[64];
    snprintf(dset, sizeof dset, "device=%s", device ? device : "");
    if (!rc && device) rc = s2s_cfg_set(&cfg, dset, err, sizeof err);
    s2s_train_opts o = {.resume = resume, .quiet = quiet, .stop_after = stop_after};
    s2s_train_result res;
    if (!rc && print_config) {
        s2s_recipe r;
        rc = s2s_recipe_from_cfg(&r, &cfg, err, sizeof err);
        if (!rc) s2s_recipe_write(&cfg, stdout);
        s2s_recipe_free(&r);  // what a refused recipe had filled in too
    } else if (!rc) {
        // Under mpirun / srun every process is a rank of one data-parallel job (train/comm.h); alone, one rank.
        o.comm = s2s_comm_init(NULL, err, sizeof err);
        rc = o.comm ? s2s_train(&cfg, &o, &res, err, sizeof err) : -1;
        if (rc && o.comm && s2s_comm_rank(o.comm) != 0) rc = -2;  // rank 0 reports the agreed error
        s2s_comm_free(o.comm);
    }
    if (rc == -1) fprintf(stderr, "s2s train: %s\n", err);
    s2s_cfg_free(&cfg);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_train = {"train", "train a stage (1, 2a, 2b, 3) from a YAML recipe, with checkpoints and resume", run};
