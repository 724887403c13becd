// grad_sync.h — gradients across data-parallel ranks. The flat gradient buffer (autograd/params.h) is summed over
// the ranks in buckets of dist.bucket_mb, each one collective on the communicator's thread; the losses are
// already divided by the global batch's counts (train.loss_norm), so the sum is the step's gradient.
#pragma once
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "comm.h"

void s2s_grad_allreduce(s2s_comm *c, s2s_params *P, double bucket_mb);

// ZeRO-2's destination: this rank's range [lo, hi) of the flat gradient layout (zero.h), where each bucket's
// summed slice lands, at recv + (slice start - lo). recv [hi - lo].
typedef struct s2s_grad_shard {
    int64_t lo, hi;
    const int64_t *rank_lo;  // [world + 1] every rank's range start (rank_lo[world] = the layout's end)
    float *recv;
} s2s_grad_shard;

// Overlapped with a backward: buckets go to the communicator's thread as soon as no node left can add to them,
// in a fixed order (from the end of the flat buffer, where backward starts) so every rank issues the same
// collectives whatever its batch holds. begin before the micro-batch's forward (it tracks the trainable
// parameters' first use on the tape), end after its backward (it submits what is left and waits).
// - Replicated (shard NULL): buckets of bucket_mb of the flat buffer are all-reduced in place; the result is
//   s2s_grad_allreduce's, bit for bit.
// - ZeRO-2 (shard given, the registry's gradients on demand: s2s_params_grad_on_demand): buckets are whole
//   parameters, at least bucket_mb each; a bucket's memory is allocated when an op first writes a gradient
//   into it, reduce-scattered onto the ranks' ranges (shard->recv) when complete and freed when sent, so no rank
//   ever holds the full gradient.
typedef struct s2s_grad_overlap {
    s2s_comm *c;
    s2s_params *P;
    s2s_ctx *ctx;
    int n;                   // trainable parameters
    int *param;              // [n] their registry indices
    int32_t *first_use;      // [n]
    int *order, done;        // [n] sorted by first use, latest first; how many are complete
    int64_t nb, next;        // buckets, the next to submit (nb - 1 down to 0)
    int64_t *start;          // [nb + 1] bucket b is [start[b], start[b + 1]) of the flat layout
    int *pending;            // [nb] parameters not yet complete in each bucket
    s2s_comm_handle last;
    bool sorted;
    int64_t early;           // buckets handed out before the backward ended
    // ZeRO-2
    const s2s_grad_shard *shard;
    int world, rank;
    int *bucket_of;          // [n] each parameter's bucket
    s2s_tensor *heads;       // [n] the gradient tensors handed to the parameters
    float **buf;             // [nb] bucket memory (NULL before the first write and once sent)
    s2s_comm_handle *h;      // [nb] its reduce-scatter
    int *counts;             // [nb * world] each bucket's slice per rank
    int64_t oldest;          // the highest bucket whose memory may still be in flight
    int64_t live, peak;      // bytes of bucket memory now, and the most at once
} s2s_grad_overlap;

void s2s_grad_overlap_begin(s2s_grad_overlap *o, s2s_comm *c, s2s_ctx *ctx, s2s_params *P, double bucket_mb,
                            const s2s_grad_shard *shard);
// Returns the buckets sent during the backward (the rest went out at the end) and how many there are in *nb;
// *peak_bytes (may be NULL): the most bucket memory held at once (ZeRO-2; 0 otherwise).
int64_t s2s_grad_overlap_end(s2s_grad_overlap *o, int64_t *nb, int64_t *peak_bytes);
// A rank with no micro-batch to run (its data failed) still issues a micro-batch's ZeRO-2 collectives, with zero
// gradients, so that every rank reaches the same ones.
void s2s_grad_shard_idle(s2s_comm *c, s2s_params *P, double bucket_mb, const s2s_grad_shard *shard);
