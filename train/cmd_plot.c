// cmd_plot.c — `s2s plot RUN_DIR [--out FILE.svg] [--keys k1,k2]`: the front-end of train/plot.h.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "plot.h"

static void usage(FILE *f) {
    fprintf(f, "usage: s2s plot RUN_DIR [--out FILE.svg] [--keys KEY,KEY...]\n"
               "  Draws the training and held-out loss curves of an s2s train run (RUN_DIR/metrics.jsonl) as SVG.\n"
               "  --out FILE   where (default RUN_DIR/loss.svg)\n"
               "  --keys LIST  metrics keys to draw instead of every loss* / eval_loss* (e.g. lr,grad_norm)\n");
}

static int run(int argc, char **argv) {
    const char *dir = NULL, *out = NULL;
    char *keys_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--keys") && i + 1 < argc) keys_arg = argv[++i];
        else if (argv[i][0] != '-' && !dir) dir = argv[i];
        else {
            usage(strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }
    char dflt[4200];
    if (!out) snprintf(dflt, sizeof dflt, "%s/loss.svg", dir), out = dflt;
    const char *keys[64];
    s2s_plot_opts o = {.keys = keys};
    char *copy = keys_arg ? strdup(keys_arg) : NULL;
    for (char *save = NULL, *k = copy ? strtok_r(copy, ",", &save) : NULL; k && o.n_keys < 64;
         k = strtok_r(NULL, ",", &save))
        keys[o.n_keys++] = k;
    char err[4400];
    int rc = s2s_plot_run(dir, out, &o, err, sizeof err);
    free(copy);
    if (rc) {
        fprintf(stderr, "s2s plot: %s\n", err);
        return 1;
    }
    fprintf(stderr, "s2s plot: wrote %s\n", out);
    return 0;
}

const s2s_cmd s2s_cmd_plot = {"plot", "draw a training run's loss curves (SVG)", run};
