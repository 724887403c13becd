// grad_sync.h — gradients across data-parallel ranks. The flat gradient buffer (autograd/params.h) is summed over
// the ranks in buckets of dist.bucket_mb, each one collective on the communicator's thread; the losses are
// already divided by the global batch's counts (train.loss_norm), so the sum is the step's gradient.
#pragma once
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "comm.h"

void s2s_grad_allreduce(s2s_comm *c, s2s_params *P, double bucket_mb);

// The same, overlapped with the backward of the step's last micro-batch: buckets go to the communicator's thread
// as soon as no node left can add to them, in a fixed order (from the end of the flat buffer, where backward
// starts) so every rank issues the same collectives whatever its batch holds. begin before that micro-batch's
// forward (it tracks the trainable parameters' first use on the tape), end after its backward (it submits what
// is left and waits). The result is s2s_grad_allreduce's, bit for bit.
typedef struct s2s_grad_overlap {
    s2s_comm *c;
    s2s_params *P;
    s2s_ctx *ctx;
    int n;                   // trainable parameters
    int *param;              // [n] their registry indices
    int32_t *first_use;      // [n]
    int *order, done;        // [n] sorted by first use, latest first; how many are complete
    int64_t per, nb, next;   // bucket elements, buckets, the next to submit (nb - 1 down to 0)
    int *pending;            // [nb] parameters not yet complete in each bucket
    s2s_comm_handle last;
    bool sorted;
    int64_t early;           // buckets handed out before the backward ended
} s2s_grad_overlap;

void s2s_grad_overlap_begin(s2s_grad_overlap *o, s2s_comm *c, s2s_ctx *ctx, s2s_params *P, double bucket_mb);
// Returns the buckets sent during the backward (the rest went out at the end) and how many there are in *nb.
int64_t s2s_grad_overlap_end(s2s_grad_overlap *o, int64_t *nb);
