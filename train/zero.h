// zero.h — ZeRO stages 1 and 2 over the communicator: the AdamW state is sharded across the ranks by contiguous
// ranges of the flat gradient layout (1/world of it each); the summed gradient reaches each rank only for its range
// (reduce-scatter), the global norm is the ranks' partial sums of squares summed, each rank updates the parameter
// values of its range, and an all-gather gives every rank the whole updated set. Stage 1 reduce-scatters a full
// local gradient buffer after the backward; stage 2 never has one: each micro-batch's backward reduce-scatters
// its gradient buckets as they complete (grad_sync.h) straight into the rank's range.
#pragma once
#include "autograd/params.h"
#include "comm.h"
#include "grad_sync.h"
#include "optim.h"

typedef struct s2s_zero {
    int rank, world, level;  // level: 1 or 2
    s2s_device device;       // where the buffers live: the registry's
    int64_t blk;         // elements per rank (the layout padded to world * blk)
    float *send;         // [world * blk] the local gradients, padded for the reduce-scatter (NULL: no padding)
    float *g;            // [blk] the summed gradients of this rank's range
    float *pack, *all;   // [blk] this rank's updated values, [world * blk] everyone's
    int64_t *rank_lo;    // [world + 1] every rank's range start, clipped to the layout (stage 2)
    float *stage;        // [blk] stage 2: the buckets of micro-batches after the first, added into g
    s2s_grad_shard shard;
} s2s_zero;

// Shard opt (s2s_adam_shard) to this rank's range; opt must have been made over P (s2s_adam_init_rule).
// level 2: P's gradients must be on demand (s2s_params_grad_on_demand) before the model registers them.
void s2s_zero_init(s2s_zero *z, s2s_comm *c, s2s_params *P, s2s_adam_state *opt, int level);
void s2s_zero_free(s2s_zero *z);
// Stage 1: reduce-scatter the local gradients. Both: returns the global gradient norm (before clipping).
double s2s_zero_reduce(s2s_zero *z, s2s_comm *c, s2s_ctx *ctx, const s2s_params *P);
// Stage 2: where micro-batch `micro` (0-based within the step) lands its buckets (s2s_grad_overlap_begin), and
// folding it into the rank's gradient once its backward has ended.
const s2s_grad_shard *s2s_zero_shard(s2s_zero *z, int64_t micro);
void s2s_zero_accumulate(s2s_zero *z, s2s_ctx *ctx, int64_t micro);
// Scale this rank's gradients to a global norm of at most max_norm (clip_grad_norm_ semantics).
void s2s_zero_clip(s2s_zero *z, s2s_ctx *ctx, double norm, double max_norm);
// Update this rank's range with lr.
void s2s_zero_update(s2s_zero *z, s2s_ctx *ctx, s2s_adam_state *opt, s2s_params *P, double lr);
// All-gather every rank's updated range into P.
void s2s_zero_gather(s2s_zero *z, s2s_comm *c, const s2s_adam_state *opt, s2s_params *P);
// Bytes this rank holds of each: parameter values, gradients (full in ZeRO 0 and 1; stage 2: its range, plus the
// buckets in flight during a backward, measured per step), optimizer moments.
void s2s_zero_memory(const s2s_params *P, const s2s_adam_state *opt, const s2s_zero *z, int64_t *params,
                     int64_t *grads, int64_t *state);
