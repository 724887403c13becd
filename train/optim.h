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
    float *m, *v;       // [hi - lo] first and second moments of this rank's range, on the device
    int64_t n;          // the whole flat gradient layout
    int64_t lo, hi;     // the range of it this state holds: [0, n), or a ZeRO shard (s2s_adam_shard)
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
// Keep only [lo, hi) of the flat gradient layout (ZeRO 1: this rank's share); the moments restart at zero.
void s2s_adam_shard(s2s_adam_state *s, int64_t lo, int64_t hi);
// One AdamW update of every trainable parameter with lr (gradients as they are: clip first). Zeroes nothing.
// The state must hold the whole layout.
void s2s_adam_update(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr);
// The update of the state's range only: g [hi - lo] is the gradient of flat elements lo..hi (a reduce-scatter's
// block); the parameters' values in the range change, the rest stay.
void s2s_adam_update_range(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr, const float *g);
// Clip to max_norm (<= 0: no clipping), update with lr, zero the grads. Returns the norm before clipping.
double s2s_adam_step(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, float lr, double max_norm);

// The state as safetensors ("exp_avg.<name>", "exp_avg_sq.<name>" f32, metadata "step"; a parameter only partly
// in the range has metadata "range.<name>" = "a:b", its elements a..b) and back by name and offset, from the files
// of any number of ranks (a checkpoint of N ranks resumes on M): every element of the state's range of every
// trainable parameter must be found exactly once, and nothing else may be there; errors name the file and the
// parameter.
int s2s_adam_save(const s2s_adam_state *s, const char *path, char *err, size_t errlen);
int s2s_adam_load(s2s_adam_state *s, const char *path, char *err, size_t errlen);
int s2s_adam_load_files(s2s_adam_state *s, const char *const *paths, int n_paths, char *err, size_t errlen);
