// lora.h — LoRA adapters (PEFT semantics) on the Qwen3 attention projections q/k/v/o.
// A wrapped projection computes  y = x W^T + scaling * (dropout(x) A^T) B^T  with A [r, in], B [out, r],
// scaling = alpha / r (PEFT's default, not rsLoRA). Dropout is inverted (kept values scaled by 1/(1-p)),
// only in training, from a mask that is a pure function of (seed, layer, projection), so a recompute region
// that re-runs the layer sees the same mask. Initialisation is PEFT's: A ~ U(-1/sqrt(in), 1/sqrt(in))
// (kaiming_uniform with a = sqrt(5)), B = 0, so an attached adapter starts as the identity change.
//
// Registry names keep the base names untouched and add PEFT's saved-adapter suffixes:
//   <prefix>model.layers.L.self_attn.q_proj.lora_A.weight   [r, in]
//   <prefix>model.layers.L.self_attn.q_proj.lora_B.weight   [out, r]
// (a live PEFT LoraModel inside OpenS2S names them llm_model.model.model.layers.L...q_proj.lora_A.default.weight
// with the base weight under ...q_proj.base_layer.weight; OpenS2S merges before saving, as s2s_lora_merge does).
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "../autograd/params.h"
#include "../ops/ops.h"

// One adapter; A == NULL means the projection has none.
typedef struct s2s_lora {
    s2s_tensor *A;  // [r, in]
    s2s_tensor *B;  // [out, r]
    float scaling;  // alpha / r
    float dropout;  // probability of dropping an input element (training only)
} s2s_lora;

// Which projections get adapters (OpenS2S lora_target_modules, default "q_proj,k_proj,v_proj,o_proj").
enum { S2S_LORA_Q = 1, S2S_LORA_K = 2, S2S_LORA_V = 4, S2S_LORA_O = 8, S2S_LORA_QKVO = 15 };

typedef struct s2s_lora_config {
    int r;           // rank (OpenS2S default 16)
    double alpha;    // lora_alpha (OpenS2S default 16)
    double dropout;  // lora_dropout (OpenS2S default 0.05)
    int targets;     // S2S_LORA_* mask; 0 means all four
} s2s_lora_config;

// Dropout of one call: on only in training with p > 0; `stream` is the (layer, projection) the mask belongs to.
typedef struct s2s_lora_drop {
    bool training;
    uint64_t seed;    // per step: a new seed gives new masks
    uint64_t stream;  // distinguishes the call sites within a step
} s2s_lora_drop;

// x [T, in], w [out, in] -> [T, out]: the base projection plus the adapter when l has one.
s2s_tensor *s2s_lora_linear(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, const s2s_lora *l, s2s_lora_drop drop);

typedef struct s2s_qwen3 s2s_qwen3;

// Register and initialise adapters on every layer of q (deterministic from seed), mark them trainable and
// freeze every other parameter of q (PEFT LoraModel trains only the adapters). Returns how many adapters.
int s2s_lora_attach(s2s_params *p, s2s_qwen3 *q, const s2s_lora_config *c, uint64_t seed);
// W += scaling * B @ A for every adapter of q, then detach the adapters and remove them from the registry
// (an exported Hugging Face checkpoint has no LoRA tensors). Registry positions after the first adapter move:
// call it after training (as OpenS2S does), not while an optimizer indexes the registry.
void s2s_lora_merge(s2s_ctx *ctx, s2s_params *p, s2s_qwen3 *q);
