// grad_sync.h — gradients across data-parallel ranks. The flat gradient buffer (autograd/params.h) is summed over
// the ranks in buckets of dist.bucket_mb, each one collective on the communicator's thread; the losses are
// already divided by the global batch's counts (train.loss_norm), so the sum is the step's gradient.
#pragma once
#include "autograd/params.h"
#include "comm.h"

void s2s_grad_allreduce(s2s_comm *c, s2s_params *P, double bucket_mb);
