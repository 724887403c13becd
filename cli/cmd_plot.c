// cmd_plot.c — `s2s plot RUN_DIR [--out FILE.svg] [--keys k1,k2]`: the front-end of train/plot.h.
#include <stdio.h>
#include "args.h"
#include "cli.h"
#include "train/plot.h"

static int run(int argc, char **argv) {
    const char *out = NULL, *pos[1];
    static s2s_arg_list keys;
    const s2s_arg args[] = {
        {"--out", S2S_ARG_STR, &out, "FILE", "where (default RUN_DIR/loss.svg)"},
        {"--keys", S2S_ARG_LIST, &keys, "KEY,KEY", "metrics keys to draw instead of every loss* / eval_loss*"},
        {NULL},
    };
    const s2s_cli cli = {.cmd = "plot", .synopsis = "RUN_DIR [--out FILE.svg] [--keys KEY,KEY...]", .args = args,
                         .epilog = "Draws the training and held-out loss curves of an s2s train run "
                                   "(RUN_DIR/metrics.jsonl) as SVG.\n",
                         .min_pos = 1, .max_pos = 1};
    int prc = s2s_args_parse(&cli, argc, argv, pos, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    char dflt[4200];
    if (!out) snprintf(dflt, sizeof dflt, "%s/loss.svg", pos[0]), out = dflt;
    s2s_plot_opts o = {.keys = keys.v, .n_keys = keys.n};
    char err[4400];
    if (s2s_plot_run(pos[0], out, &o, err, sizeof err)) {
        fprintf(stderr, "s2s plot: %s\n", err);
        return 1;
    }
    fprintf(stderr, "s2s plot: wrote %s\n", out);
    return 0;
}

const s2s_cmd s2s_cmd_plot = {"plot", "draw a training run's loss curves (SVG)", run};
