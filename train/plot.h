// plot.h — `s2s plot`: the loss curves of a run (its metrics.jsonl) as an SVG chart: training rows as solid lines,
// held-out (eval_*) rows dashed with markers, one colour per key, a legend.
#pragma once
#include <stdbool.h>
#include <stddef.h>

typedef struct s2s_plot_opts {
    const char *const *keys;  // metrics keys to draw; NULL / 0: every loss* and eval_loss* key
    int n_keys;
    int width, height;        // pixels; 0: 900 x 480
} s2s_plot_opts;

// Read run_dir/metrics.jsonl (malformed lines are reported and skipped) and write the chart to out.
int s2s_plot_run(const char *run_dir, const char *out, const s2s_plot_opts *o, char *err, size_t errlen);
