// zero.h — ZeRO stage 1 over the communicator: the AdamW state is sharded across the ranks by contiguous ranges of
// the flat gradient layout (1/world of it each); the summed gradient reaches each rank only for its range
// (reduce-scatter), the global norm is the ranks' partial sums of squares summed, each rank updates the parameter
// values of its range, and an all-gather gives every rank the whole updated set.
#pragma once
#include "autograd/params.h"
#include "comm.h"
#include "optim.h"

typedef struct s2s_zero {
    int rank, world;
    int64_t blk;         // elements per rank (the layout padded to world * blk)
    float *send;         // [world * blk] the local gradients, padded for the reduce-scatter (NULL: no padding)
    float *g;            // [blk] the summed gradients of this rank's range
    float *pack, *all;   // [blk] this rank's updated values, [world * blk] everyone's
} s2s_zero;

// Shard opt (s2s_adam_shard) to this rank's range; opt must have been made over P (s2s_adam_init_rule).
void s2s_zero_init(s2s_zero *z, s2s_comm *c, s2s_params *P, s2s_adam_state *opt);
void s2s_zero_free(s2s_zero *z);
// Reduce-scatter the local gradients; returns the global gradient norm (before clipping).
double s2s_zero_reduce(s2s_zero *z, s2s_comm *c, const s2s_params *P);
// Scale this rank's gradients to a global norm of at most max_norm (clip_grad_norm_ semantics).
void s2s_zero_clip(s2s_zero *z, double norm, double max_norm);
// Update this rank's range with lr.
void s2s_zero_update(s2s_zero *z, s2s_ctx *ctx, s2s_adam_state *opt, s2s_params *P, double lr);
// All-gather every rank's updated range into P.
void s2s_zero_gather(s2s_zero *z, s2s_comm *c, const s2s_adam_state *opt, s2s_params *P);
// Bytes this rank holds of each: parameter values, gradients (full in ZeRO 1), optimizer moments.
void s2s_zero_memory(const s2s_params *P, const s2s_adam_state *opt, int64_t *params, int64_t *grads, int64_t *state);
