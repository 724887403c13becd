// schedule.c — transformers' lr lambdas (schedule.h), formula for formula.
#include "schedule.h"
#include <math.h>
#include <string.h>

int s2s_schedule_parse(const char *name, s2s_schedule_kind *k) {
    if (!strcmp(name, "linear")) *k = S2S_SCHED_LINEAR;
    else if (!strcmp(name, "cosine")) *k = S2S_SCHED_COSINE;
    else if (!strcmp(name, "constant")) *k = S2S_SCHED_CONSTANT;
    else return -1;
    return 0;
}

static double max1(int64_t x) { return (double)(x > 1 ? x : 1); }

double s2s_schedule_lambda(s2s_schedule_kind kind, int64_t k, int64_t warmup, int64_t total) {
    if (k < warmup) return (double)k / max1(warmup);
    switch (kind) {
    case S2S_SCHED_LINEAR: {  // get_linear_schedule_with_warmup
        double v = (double)(total - k) / max1(total - warmup);
        return v > 0.0 ? v : 0.0;
    }
    case S2S_SCHED_COSINE: {  // get_cosine_schedule_with_warmup, num_cycles 0.5
        double progress = (double)(k - warmup) / max1(total - warmup);
        double v = 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress));
        return v > 0.0 ? v : 0.0;
    }
    default: return 1.0;  // get_constant_schedule_with_warmup
    }
}
