// params.h — the parameter registry: every weight of a model, under its Hugging Face name, with its
// shape, whether it trains, whether weight decay applies, and the module that owns it. Parameters
// and their gradients live outside the step arena (they persist); gradients accumulate across
// micro-batches until s2s_params_zero_grad.
#pragma once
#include <stdbool.h>
#include "tensor.h"

typedef struct s2s_param {
    char *name;    // Hugging Face / OpenS2S name, e.g. "llm_model.model.layers.0.self_attn.q_proj.weight"
    char *module;  // owning module prefix, e.g. "llm_model"
    s2s_tensor *t; // value (f32 master copy); t->grad allocated iff trainable
    bool trainable;
    bool weight_decay;
} s2s_param;

typedef struct s2s_params {
    s2s_device device;
    s2s_param *items;
    int n, cap;
} s2s_params;

void s2s_params_init(s2s_params *p, s2s_device dev);
void s2s_params_free(s2s_params *p);
// Register a new zero-initialised f32 parameter. Names must be unique.
s2s_tensor *s2s_params_add(s2s_params *p, const char *name, const char *module, int ndim,
                           const int64_t *shape, bool trainable, bool weight_decay);
s2s_param *s2s_params_find(s2s_params *p, const char *name);
// Trainable flag for every parameter whose name starts with prefix; returns how many matched.
int s2s_params_set_trainable(s2s_params *p, const char *prefix, bool trainable);
void s2s_params_zero_grad(s2s_params *p);
int64_t s2s_params_count(const s2s_params *p, bool trainable_only);
