// params.h — the parameter registry: every weight of a model, under its Hugging Face name, with its
// shape, whether it trains, whether weight decay applies, and the module that owns it. Parameters
// and their gradients live outside the step arena (they persist); gradients accumulate across
// micro-batches until s2s_params_zero_grad.
#pragma once
#include <stdbool.h>
#include "tensor.h"

// What kind of normalisation module owns a parameter. Optimisers need it: Hugging Face's Trainer exempts
// parameters of nn.LayerNorm modules from weight decay by module type, not by name (the encoder's
// "self_attn_layer_norm" and OpenS2S's "llm_ln" match no name pattern).
typedef enum { S2S_NORM_NONE = 0, S2S_NORM_LAYER, S2S_NORM_RMS } s2s_norm_kind;

typedef struct s2s_param {
    char *name;    // Hugging Face / OpenS2S name, e.g. "llm_model.model.layers.0.self_attn.q_proj.weight"
    char *module;  // owning module prefix, e.g. "llm_model"
    s2s_tensor *t; // value (f32 master copy); t->grad allocated iff trainable
    bool trainable;
    bool weight_decay;  // the model's suggestion (matrices yes, norms and biases no); trainers apply their rule
    s2s_norm_kind norm;
    int64_t off;   // first element in the flat value buffer (s2s_params_flatten), else -1
    int64_t goff;  // first element in the flat gradient buffer (trainable, flattened), else -1
    int32_t layout; // the gradient layout's order key (s2s_params_set_layout; ties: registration order)
} s2s_param;

// Flat storage: after s2s_params_flatten, every value is a view into one buffer and every trainable
// parameter's gradient a view into another, each tensor starting on a 64-byte boundary (padding is zero and
// stays zero). Collectives then move a whole bucket in one call, and an optimiser keeps its state in one
// buffer laid out like the gradients. Until flattened (and after a registration that changes the layout:
// s2s_params_add, a change of shape) each tensor owns its memory.
typedef struct s2s_params {
    s2s_device device;
    s2s_param *items;
    int n, cap;
    float *flat;          // [flat_n] values, NULL when not flattened
    int64_t flat_n;
    float *flat_grad;     // [flat_grad_n] gradients of the trainable parameters, registry order
    int64_t flat_grad_n;
    bool grad_on_demand;  // no gradient memory: the layout (goff, flat_grad_n) only; see s2s_params_grad_on_demand
    bool shapes_only;     // no memory at all: names, shapes and flags only; see s2s_params_shapes_only
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
// Mark t (a parameter of p) as belonging to a normalisation module of the given kind.
void s2s_params_set_norm(s2s_params *p, const s2s_tensor *t, s2s_norm_kind kind);
// Move every value into one buffer and every trainable gradient into another (values and gradients are
// kept). Idempotent; s2s_params_set_trainable on a flattened registry re-lays the gradient buffer out.
void s2s_params_flatten(s2s_params *p);
// The same layout again after a parameter changed its shape in place (vocabulary resize): values kept.
void s2s_params_unflatten(s2s_params *p);
// The gradients are laid out by ascending layout key, then registration order (values always in registration
// order). A model sets keys so that the layout follows its forward: backward then completes the gradients from the
// layout's end to its start, and buckets taken from the end (train/grad_sync.h) can go out, and under ZeRO-2 be
// freed, while the backward runs. Returns how many parameters matched prefix.
int s2s_params_set_layout(s2s_params *p, const char *prefix, int32_t key);
// ZeRO-2: from now on the registry holds no gradient memory. Flattening lays the gradients out (goff,
// flat_grad_n) without allocating them; a trainable parameter's t->grad stays NULL until a provider
// (ctx->param_grad) points it into memory of its own for the length of a backward. Call it before registering
// parameters so that a full set of gradients is never allocated, not even once.
void s2s_params_grad_on_demand(s2s_params *p);
// Layout only (s2s plan): from now on parameters are registered with their names, shapes and flags but no memory
// for values or gradients (t->data stays NULL), so running a model's own registration counts an 8B model without
// allocating it, and the count cannot drift from the model. Implies s2s_params_grad_on_demand. Call it before
// registering; nothing may compute with, load into or flatten such a registry.
void s2s_params_shapes_only(s2s_params *p);
int64_t s2s_params_count(const s2s_params *p, bool trainable_only);
