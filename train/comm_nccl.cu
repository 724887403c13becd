// comm_nccl.cu — the NCCL backend of the communicator (comm_nccl.h). Built when CMake finds NCCL (S2S_HAVE_NCCL).
#ifdef S2S_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
extern "C" {
#include "comm_nccl.h"
}

#define NCCL_CHECK(call)                                                                                   \
    do {                                                                                                   \
        ncclResult_t r_ = (call);                                                                          \
        if (r_ != ncclSuccess) {                                                                           \
            fprintf(stderr, "s2s: NCCL error at %s:%d: %s\n  hint: NCCL_DEBUG=INFO shows why; check every " \
                            "rank sees its GPU and the network (NCCL_SOCKET_IFNAME)\n",                      \
                    __FILE__, __LINE__, ncclGetErrorString(r_));                                           \
            fflush(stderr);                                                                                \
            _exit(1);                                                                                      \
        }                                                                                                  \
    } while (0)

#define CUDA_CHECK(call)                                                                                   \
    do {                                                                                                   \
        cudaError_t e_ = (call);                                                                           \
        if (e_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "s2s: CUDA error at %s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));  \
            fflush(stderr);                                                                                \
            _exit(1);                                                                                      \
        }                                                                                                  \
    } while (0)

struct s2s_nccl {
    ncclComm_t comm;
    cudaStream_t stream;  // the communication stream
    int device;           // the GPU: the worker thread makes it current before each call
    int rank, world;
};

static_assert(sizeof(ncclUniqueId) == S2S_NCCL_ID_BYTES, "S2S_NCCL_ID_BYTES must be sizeof(ncclUniqueId)");

extern "C" int s2s_nccl_unique_id(void *id, char *err, size_t errlen) {
    ncclUniqueId u;
    const ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        snprintf(err, errlen, "ncclGetUniqueId: %s", ncclGetErrorString(r));
        return -1;
    }
    memcpy(id, &u, sizeof u);
    return 0;
}

extern "C" s2s_nccl *s2s_nccl_init(const void *id, int rank, int world, char *err, size_t errlen) {
    s2s_nccl *n = (s2s_nccl *)calloc(1, sizeof *n);
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    cudaError_t ce = cudaGetDevice(&n->device);
    if (ce == cudaSuccess) ce = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (ce != cudaSuccess) {
        snprintf(err, errlen, "NCCL set-up: %s", cudaGetErrorString(ce));
        free(n);
        return NULL;
    }
    const ncclResult_t r = ncclCommInitRank(&n->comm, world, u, rank);
    if (r != ncclSuccess) {
        snprintf(err, errlen, "ncclCommInitRank (rank %d of %d): %s", rank, world, ncclGetErrorString(r));
        cudaStreamDestroy(n->stream);
        free(n);
        return NULL;
    }
    n->rank = rank, n->world = world;
    return n;
}

extern "C" void s2s_nccl_free(s2s_nccl *n) {
    if (!n) return;
    CUDA_CHECK(cudaSetDevice(n->device));
    CUDA_CHECK(cudaStreamSynchronize(n->stream));
    NCCL_CHECK(ncclCommDestroy(n->comm));
    CUDA_CHECK(cudaStreamDestroy(n->stream));
    free(n);
}

extern "C" void *s2s_nccl_mark(void) {
    cudaEvent_t ev;
    CUDA_CHECK(cudaEventCreateWithFlags(&ev, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventRecord(ev, cudaStreamLegacy));  // every op runs on the legacy default stream
    return (void *)ev;
}

// Before a collective: the GPU current on this thread, the compute stream's work up to the mark done first.
static void begin(s2s_nccl *n, void *mark) {
    CUDA_CHECK(cudaSetDevice(n->device));
    CUDA_CHECK(cudaStreamWaitEvent(n->stream, (cudaEvent_t)mark, 0));
}

// After it: the data is ready when the job completes (the trainer reads it right after s2s_comm_wait).
static void end(s2s_nccl *n, void *mark) {
    CUDA_CHECK(cudaStreamSynchronize(n->stream));
    CUDA_CHECK(cudaEventDestroy((cudaEvent_t)mark));
}

extern "C" void s2s_nccl_allreduce(s2s_nccl *n, void *mark, float *buf, int64_t count) {
    begin(n, mark);
    NCCL_CHECK(ncclAllReduce(buf, buf, (size_t)count, ncclFloat32, ncclSum, n->comm, n->stream));
    end(n, mark);
}

extern "C" void s2s_nccl_reduce_scatter(s2s_nccl *n, void *mark, const float *send, float *recv, int64_t count) {
    begin(n, mark);
    NCCL_CHECK(ncclReduceScatter(send, recv, (size_t)count, ncclFloat32, ncclSum, n->comm, n->stream));
    end(n, mark);
}

extern "C" void s2s_nccl_reduce_scatter_v(s2s_nccl *n, void *mark, const float *send, float *recv,
                                          const int *counts) {
    begin(n, mark);
    NCCL_CHECK(ncclGroupStart());
    int64_t off = 0;
    for (int r = 0; r < n->world; r++) {
        if (counts[r] > 0)  // rank r's block, summed onto r (recv is only read on r)
            NCCL_CHECK(ncclReduce(send + off, recv, (size_t)counts[r], ncclFloat32, ncclSum, r, n->comm, n->stream));
        off += counts[r];
    }
    NCCL_CHECK(ncclGroupEnd());
    end(n, mark);
}

extern "C" void s2s_nccl_allgather(s2s_nccl *n, void *mark, const float *send, float *recv, int64_t count) {
    begin(n, mark);
    NCCL_CHECK(ncclAllGather(send, recv, (size_t)count, ncclFloat32, n->comm, n->stream));
    end(n, mark);
}
#endif  // S2S_HAVE_NCCL
