#include "metrics.h"
#include <math.h>
#include <time.h>

double s2s_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int s2s_metrics_open(s2s_metrics *m, const char *path) {
    m->f = NULL;
    m->t0 = m->t_last = s2s_now();
    m->tokens = 0;
    if (!path) return 0;
    m->f = fopen(path, "a");
    return m->f ? 0 : -1;
}

void s2s_metrics_log(s2s_metrics *m, int64_t step, int n, const char *const *keys, const double *vals) {
    if (!m->f) return;
    fprintf(m->f, "{\"step\": %lld, \"time\": %.3f", (long long)step, s2s_now() - m->t0);
    for (int i = 0; i < n; i++) {
        if (isfinite(vals[i])) fprintf(m->f, ", \"%s\": %.17g", keys[i], vals[i]);  // round-trips a double
        else fprintf(m->f, ", \"%s\": null", keys[i]);  // JSON has no NaN/Inf
    }
    fprintf(m->f, "}\n");
    fflush(m->f);
}

void s2s_progress(s2s_metrics *m, int64_t step, int64_t total, double loss, int64_t step_tokens) {
    double now = s2s_now(), dt = now - m->t_last;
    m->t_last = now;
    m->tokens += step_tokens;
    double tps = dt > 0 ? (double)step_tokens / dt : 0.0;
    double per_step = (now - m->t0) / (double)(step > 0 ? step : 1);
    long eta = (long)(per_step * (double)(total - step) + 0.5);
    fprintf(stderr, "step %lld/%lld | loss %.4f | %.1fk tok/s | ETA %ld:%02ld\n", (long long)step,
            (long long)total, loss, tps / 1e3, eta / 60, eta % 60);
}

void s2s_metrics_close(s2s_metrics *m) {
    if (m->f) fclose(m->f);
    m->f = NULL;
}
