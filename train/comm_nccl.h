// comm_nccl.h — the communicator's NCCL backend (comm_nccl.cu): the f32 collectives of a CUDA run (gradient
// buckets, ZeRO's shards) on GPU buffers, on a communication stream of their own, while the small host-side
// agreements (counts, losses, errors, signals) stay on MPI. Set up through MPI: rank 0's unique id is broadcast.
// Every NCCL and CUDA call is checked with file:line; a failure ends the process (the launcher ends the rest).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define S2S_NCCL_ID_BYTES 128  // sizeof(ncclUniqueId)

typedef struct s2s_nccl s2s_nccl;

// Rank 0: a new unique id into id [S2S_NCCL_ID_BYTES]. 0, or -1 with the reason.
int s2s_nccl_unique_id(void *id, char *err, size_t errlen);
// Every rank, collectively, with its GPU current (s2s_device_open): the communicator and its stream.
s2s_nccl *s2s_nccl_init(const void *id, int rank, int world, char *err, size_t errlen);
void s2s_nccl_free(s2s_nccl *n);

// The compute stream's work so far, as an event recorded on it (called by the submitting thread): the collective
// waits for it on the communication stream, so a bucket is read only once backward has written it.
void *s2s_nccl_mark(void);

// Run by the communicator's worker thread: wait for mark, the collective, then wait for its stream (the job is
// done when the data is), and release mark. Buffers are device memory.
void s2s_nccl_allreduce(s2s_nccl *n, void *mark, float *buf, int64_t count);
void s2s_nccl_reduce_scatter(s2s_nccl *n, void *mark, const float *send, float *recv, int64_t count);
// Variable blocks (ZeRO-2's buckets): rank r receives the sum of the counts[r] elements after the blocks of ranks
// 0..r-1 (NCCL has no reduce-scatter-v: one ncclReduce per rank inside a group).
void s2s_nccl_reduce_scatter_v(s2s_nccl *n, void *mark, const float *send, float *recv, const int *counts);
void s2s_nccl_allgather(s2s_nccl *n, void *mark, const float *send, float *recv, int64_t count);
