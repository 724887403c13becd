// optim.h — AdamW over a parameter registry, as torch.optim.AdamW with Hugging Face Trainer's parameter groups.
// The moments live in two buffers on the parameters' device, laid out like the registry's flat gradient buffer
// (params.h), so one range of the flat buffer is one range of the state (what ZeRO shards). The state is keyed
// by parameter name, not registry position: a checkpoint restores it by name and refuses a size mismatch.
#pragma once
#include <stdbool.h>
#include "autograd/params.h"
#include "ops/ops.h"

// Which trainable parameters take weight decay.
typedef enum {
    // transformers 4.51 Trainer.get_decay_parameter_names: none for parameters of nn.LayerNorm modules or whose
    // lower-cased name contains "bias", "layernorm" or "rmsnorm"; everything else decays, Qwen3's model.norm,
    // q_norm and k_norm (RMSNorm is not an nn.LayerNorm and matches no pattern) and the embeddings included.
    S2S_DECAY_HF = 0,
    // No decay on any normalisation weight or bias.
    S2S_DECAY_NORMS,
} s2s_decay_rule;

bool s2s_decay_applies(const s2s_param *p, s2s_decay_rule rule);

typedef struct s2s_adam_slot {
    char *name;
    int64_t off, n;  // the parameter's range in m / v (= its range in the flat gradient buffer)
    bool decay;
} s2s_adam_slot;

typedef struct s2s_adam_state {
    s2s_device device;
    float *m, *v;       // [n] first and second moments, on the device
    int64_t n;
    s2s_adam_slot *slots;  // one per trainable parameter, registry order
    int n_slots;
    int64_t step;       // optimizer steps taken (bias correction uses step + 1 for the next one)
    s2s_adamw_cfg cfg;  // lr is set per step
} s2s_adam_state;

// OpenS2S's recipe by default: betas 0.9 / 0.999, eps 1e-8, weight decay 0.05, HF decay groups. Flattens P.
void s2s_adam_init(s2s_adam_state *s, s2s_params *P);
// The same with a decay rule; set s->cfg afterwards to change the hyper-parameters.
void s2s_adam_init_rule(s2s_adam_state *s, s2s_params *P, s2s_decay_rule rule);
void s2s_adam_free(s2s_adam_state *s);
// One AdamW update of every trainable parameter with lr (gradients as they are: clip first). Zeroes nothing.
void s2s_adam_update(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr);
// Clip to max_norm (<= 0: no clipping), update with lr, zero the grads. Returns the norm before clipping.
double s2s_adam_step(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, float lr, double max_norm);

// The state as safetensors ("exp_avg.<name>", "exp_avg_sq.<name>" f32, metadata "step") and back by name.
// Loading checks that every trainable parameter has both moments of its size and nothing else is there;
// errors name the file and the parameter.
int s2s_adam_save(const s2s_adam_state *s, const char *path, char *err, size_t errlen);
int s2s_adam_load(s2s_adam_state *s, const char *path, char *err, size_t errlen);
