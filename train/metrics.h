// metrics.h — training metrics as JSON Lines (one object per step, flushed per line so a crash
// loses nothing already logged), and the human progress line (step, loss, tokens/s, ETA).
#pragma once
#include <stdint.h>
#include <stdio.h>

typedef struct s2s_metrics {
    FILE *f;       // NULL: metrics disabled
    double t0;     // wall clock at start (s)
    double t_last; // wall clock at the previous progress line
    int64_t tokens;
} s2s_metrics;

double s2s_now(void);  // monotonic seconds
int s2s_metrics_open(s2s_metrics *m, const char *path);  // path NULL: no file. -1 on error (errno set)
// Append {"step":..., "<key>":value, ...}; keys/values given as parallel arrays.
void s2s_metrics_log(s2s_metrics *m, int64_t step, int n, const char *const *keys, const double *vals);
// One progress line on stderr: "step 12/100 | loss 3.21 | 5.1k tok/s | ETA 0:42".
void s2s_progress(s2s_metrics *m, int64_t step, int64_t total_steps, double loss, int64_t step_tokens);
void s2s_metrics_close(s2s_metrics *m);
