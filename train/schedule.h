// schedule.h — learning-rate schedules as transformers' get_*_schedule_with_warmup: the lr of optimizer step k
// (k = 0 for the first) is lr * lambda(k), so with warm-up the first step runs at lr 0, as in Hugging Face.
#pragma once
#include <stdint.h>

typedef enum { S2S_SCHED_LINEAR = 0, S2S_SCHED_COSINE, S2S_SCHED_CONSTANT } s2s_schedule_kind;

int s2s_schedule_parse(const char *name, s2s_schedule_kind *k);  // 0, or -1 for an unknown name
// lambda(k) for `total` training steps (num_training_steps) and `warmup` warm-up steps, in f64 like Python.
double s2s_schedule_lambda(s2s_schedule_kind kind, int64_t k, int64_t warmup, int64_t total);
