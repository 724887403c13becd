// comm.h — the data-parallel communicator: rank / world, and the collectives a trainer needs, behind one interface
// with a backend per transport (comm_mpi.c on CPU; NCCL on GPU). Every collective is issued by one worker thread in
// submission order, so a bucket's all-reduce can run while the caller keeps computing (s2s_comm_submit / _wait),
// every rank issues the same sequence, and a collective that does not complete within timeout_s (a rank died or
// hangs) ends this process with a message naming the collective — mpirun / srun then end the others. A run started
// without mpirun / srun is one rank: every collective is the identity, no thread, no MPI.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "autograd/tensor.h"

typedef enum { S2S_COMM_SUM, S2S_COMM_MAX, S2S_COMM_MIN } s2s_comm_op;
typedef enum { S2S_COMM_F32, S2S_COMM_F64, S2S_COMM_I64 } s2s_comm_dtype;

typedef struct s2s_comm s2s_comm;

typedef struct s2s_comm_opts {
    double timeout_s;  // a collective not done within this ends the process (<= 0: 300)
    bool force_self;   // one rank even under mpirun (tests)
} s2s_comm_opts;

// MPI_Init when launched by mpirun / srun (Open MPI, MPICH / PMI, SLURM environment), else a one-rank communicator.
// NULL with err on failure. s2s_comm_free finalises.
s2s_comm *s2s_comm_init(const s2s_comm_opts *o, char *err, size_t errlen);
void s2s_comm_free(s2s_comm *c);
void s2s_comm_set_timeout(s2s_comm *c, double seconds);  // e.g. from the recipe's dist.timeout_s
int s2s_comm_rank(const s2s_comm *c);
int s2s_comm_world(const s2s_comm *c);
int s2s_comm_local_rank(const s2s_comm *c);  // rank within the node (device selection)
const char *s2s_comm_backend(const s2s_comm *c);  // "self", "mpi"
// The device of the run's f32 data. CUDA on several ranks sets up NCCL (through MPI: every rank must call it):
// from then on the f32 collectives (all-reduce of F32, reduce-scatter, all-gather) take GPU buffers and run on
// NCCL's stream after the compute stream's work so far; the F64 / I64 agreements and broadcasts stay on MPI with
// host buffers. 0, or -1 with err (no NCCL in this build, or its set-up failed on some rank).
int s2s_comm_use_device(s2s_comm *c, s2s_device dev, char *err, size_t errlen);
const char *s2s_comm_collectives(const s2s_comm *c);  // what moves the f32 data: "nccl", "mpi", "self"

// ---- asynchronous collectives: the buffers must stay untouched until s2s_comm_wait returns ---------------------
typedef int64_t s2s_comm_handle;
// In place: buf [n] of dt reduced over all ranks.
s2s_comm_handle s2s_comm_allreduce_async(s2s_comm *c, void *buf, int64_t n, s2s_comm_dtype dt, s2s_comm_op op);
// send [n * world] -> recv [n]: rank r gets the sum of every rank's block r.
s2s_comm_handle s2s_comm_reduce_scatter_async(s2s_comm *c, const float *send, float *recv, int64_t n);
// Variable blocks: send [sum of counts] -> recv [counts[rank]]: rank r gets the sum over the ranks of the block
// of counts[r] elements that follows the blocks of ranks 0..r-1. counts [world] must stay valid until done.
s2s_comm_handle s2s_comm_reduce_scatter_v_async(s2s_comm *c, const float *send, float *recv, const int *counts);
// send [n] -> recv [n * world], rank r's block at r * n.
s2s_comm_handle s2s_comm_allgather_async(s2s_comm *c, const float *send, float *recv, int64_t n);
void s2s_comm_wait(s2s_comm *c, s2s_comm_handle h);
bool s2s_comm_test(s2s_comm *c, s2s_comm_handle h);  // done already? (never blocks)

// ---- blocking --------------------------------------------------------------------------------------------------
void s2s_comm_allreduce(s2s_comm *c, void *buf, int64_t n, s2s_comm_dtype dt, s2s_comm_op op);
void s2s_comm_bcast(s2s_comm *c, void *buf, int64_t bytes, int root);
void s2s_comm_barrier(s2s_comm *c);
// Every rank passes its status (0 = fine) and message; all get the first failing rank's (lowest rank) message in
// err and its rank in *who, and the same return: 0 when every rank is fine, else -1. So an error found on one rank
// (a corrupt shard) stops all of them with that message instead of leaving the others waiting.
int s2s_comm_agree(s2s_comm *c, int status, char *err, size_t errlen, int *who);
