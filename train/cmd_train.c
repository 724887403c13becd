// cmd_train.c — `s2s train`: arguments to a recipe, then the trainer library (train/trainer.h).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "cli.h"
#include "config.h"
#include "recipe.h"
#include "trainer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: s2s train --config RECIPE.yaml [--set key=value]... [--resume auto|CKPT_DIR] [--stop-after N]\n"
            "                 [--quiet]\n"
            "       s2s train --keys        list every recipe key with its default\n"
            "       s2s train --config RECIPE.yaml [--set ...] --print-config   check the recipe, print it effective\n"
            "  --set key=value   override a recipe key (dotted path, YAML value: --set optim.betas=[0.9,0.95])\n"
            "  --resume auto     continue from the run's newest checkpoint (start fresh if there is none)\n"
            "  --resume DIR      continue from that checkpoint (run.dir/checkpoints/step_N)\n"
            "  --stop-after N    stop (with a checkpoint) after N steps of this invocation; the schedule is the\n"
            "                    recipe's, so --resume continues exactly as an uninterrupted run\n"
            "Writes run.dir/config.yaml (the effective recipe), metrics.jsonl and checkpoints/. SIGTERM / SIGINT\n"
            "finish the step, write a checkpoint and exit 0. Recipes: configs/*/stage*.yaml; README, docs/training.md.\n");
}

static int run(int argc, char **argv) {
    const char *config = NULL, *resume = NULL;
    const char *sets[64];
    int n_sets = 0;
    s2s_train_opts o = {0};
    bool print_config = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--resume") && i + 1 < argc) resume = argv[++i];
        else if (!strcmp(argv[i], "--set") && i + 1 < argc && n_sets < 64) sets[n_sets++] = argv[++i];
        else if (!strcmp(argv[i], "--quiet")) o.quiet = true;
        else if (!strcmp(argv[i], "--stop-after") && i + 1 < argc) o.stop_after = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--keys")) { s2s_recipe_describe(stdout); return 0; }
        else if (!strcmp(argv[i], "--print-config")) print_config = true;
        else {
            usage(strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    char err[2048];
    s2s_cfg cfg;
    s2s_cfg_init(&cfg);
    int rc = s2s_cfg_load_yaml(&cfg, config, err, sizeof err);
    for (int i = 0; !rc && i < n_sets; i++) rc = s2s_cfg_set(&cfg, sets[i], err, sizeof err);
    o.resume = resume;
    s2s_train_result res;
    if (!rc && print_config) {
        s2s_recipe r;
        rc = s2s_recipe_from_cfg(&r, &cfg, err, sizeof err);
        if (!rc) s2s_recipe_write(&cfg, stdout), s2s_recipe_free(&r);
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
