// comm.c — the communicator (comm.h): a one-rank identity, or MPI with every collective issued by one worker thread
// in submission order (MPI_THREAD_SERIALIZED: only that thread calls MPI between init and finalise).
#include "comm.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "autograd/check.h"
#include "base/err.h"
#include "autograd/device.h"
#include "comm_nccl.h"
#ifdef S2S_HAVE_MPI
#include <mpi.h>
#endif

typedef enum { OP_ALLREDUCE, OP_REDUCE_SCATTER, OP_REDUCE_SCATTER_V, OP_ALLGATHER, OP_BCAST, OP_BARRIER } op_kind;

typedef struct job {
    op_kind kind;
    void *buf, *recv;
    const void *send;
    const int *counts;  // OP_REDUCE_SCATTER_V
    void *mark;         // NCCL: the compute stream's work the collective waits for (NULL: an MPI job)
    int64_t n;
    s2s_comm_dtype dt;
    s2s_comm_op op;
    int root;
} job;

#define QCAP 1024

struct s2s_comm {
    int rank, world, local_rank;
    bool mpi;
    s2s_device device;   // where the f32 collectives' buffers live (s2s_comm_use_device)
    s2s_nccl *nccl;      // the CUDA backend: f32 collectives on GPU buffers; NULL: MPI moves everything
    double timeout_s;
    pthread_t worker;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    job q[QCAP];
    int64_t submitted, done;  // job ids: submitted counts issued ones, done the completed prefix
    bool stop;
};

static int env_int(const char *const *names, int dflt) {
    for (const char *const *n = names; *n; n++) {
        const char *v = getenv(*n);
        if (v && *v) return atoi(v);
    }
    return dflt;
}

// Launched by a parallel launcher with more than one task?
static bool launched_parallel(void) {
    static const char *const sizes[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS", NULL};
    return env_int(sizes, 1) > 1 || getenv("OMPI_COMM_WORLD_RANK") || getenv("PMI_RANK") || getenv("PMIX_RANK");
}

#ifdef S2S_HAVE_MPI
static MPI_Datatype mpi_type(s2s_comm_dtype d) {
    return d == S2S_COMM_F32 ? MPI_FLOAT : d == S2S_COMM_F64 ? MPI_DOUBLE : MPI_INT64_T;
}
static MPI_Op mpi_op(s2s_comm_op o) { return o == S2S_COMM_SUM ? MPI_SUM : o == S2S_COMM_MAX ? MPI_MAX : MPI_MIN; }
static size_t dt_size(s2s_comm_dtype d) { return d == S2S_COMM_F32 ? 4 : 8; }

#define CHUNK ((int64_t)1 << 28)  // MPI counts are int: large buffers go in pieces

static void run_job(s2s_comm *c, job *j) {
#ifdef S2S_HAVE_NCCL
    if (j->mark) {
        switch (j->kind) {
        case OP_ALLREDUCE: s2s_nccl_allreduce(c->nccl, j->mark, j->buf, j->n); return;
        case OP_REDUCE_SCATTER: s2s_nccl_reduce_scatter(c->nccl, j->mark, j->send, j->recv, j->n); return;
        case OP_REDUCE_SCATTER_V: s2s_nccl_reduce_scatter_v(c->nccl, j->mark, j->send, j->recv, j->counts); return;
        case OP_ALLGATHER: s2s_nccl_allgather(c->nccl, j->mark, j->send, j->recv, j->n); return;
        default: break;
        }
    }
#endif
    int rc = MPI_SUCCESS;
    switch (j->kind) {
    case OP_ALLREDUCE:
        for (int64_t o = 0; o < j->n && rc == MPI_SUCCESS; o += CHUNK) {
            const int cnt = (int)(j->n - o < CHUNK ? j->n - o : CHUNK);
            rc = MPI_Allreduce(MPI_IN_PLACE, (char *)j->buf + o * dt_size(j->dt), cnt, mpi_type(j->dt),
                               mpi_op(j->op), MPI_COMM_WORLD);
        }
        break;
    case OP_REDUCE_SCATTER:  // one call: the blocks must stay whole
        S2S_CHECK(j->n < CHUNK * 4, "comm: reduce-scatter blocks of %lld floats exceed MPI's int counts",
                  (long long)j->n);
        rc = MPI_Reduce_scatter_block(j->send, j->recv, (int)j->n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case OP_REDUCE_SCATTER_V:
        rc = MPI_Reduce_scatter(j->send, j->recv, j->counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        break;
    case OP_ALLGATHER:
        S2S_CHECK(j->n < CHUNK * 4, "comm: all-gather blocks of %lld floats exceed MPI's int counts", (long long)j->n);
        rc = MPI_Allgather(j->send, (int)j->n, MPI_FLOAT, j->recv, (int)j->n, MPI_FLOAT, MPI_COMM_WORLD);
        break;
    case OP_BCAST:
        for (int64_t o = 0; o < j->n && rc == MPI_SUCCESS; o += CHUNK) {
            const int cnt = (int)(j->n - o < CHUNK ? j->n - o : CHUNK);
            rc = MPI_Bcast((char *)j->buf + o, cnt, MPI_BYTE, j->root, MPI_COMM_WORLD);
        }
        break;
    case OP_BARRIER:
        rc = MPI_Barrier(MPI_COMM_WORLD);
        break;
    }
    S2S_CHECK(rc == MPI_SUCCESS, "comm: rank %d: MPI collective failed (code %d)", c->rank, rc);
}

static void *worker_main(void *arg) {
    s2s_comm *c = arg;
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->stop && c->done == c->submitted) pthread_cond_wait(&c->cv_work, &c->mu);
        if (c->done == c->submitted && c->stop) break;
        job j = c->q[c->done % QCAP];
        pthread_mutex_unlock(&c->mu);
        run_job(c, &j);
        pthread_mutex_lock(&c->mu);
        c->done++;
        pthread_cond_broadcast(&c->cv_done);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}
#endif

s2s_comm *s2s_comm_init(const s2s_comm_opts *o, char *err, size_t errlen) {
    s2s_comm *c = s2s_calloc(1, sizeof *c);
    c->timeout_s = o && o->timeout_s > 0 ? o->timeout_s : 300;
    c->world = 1;
    if ((o && o->force_self) || !launched_parallel()) return c;
#ifdef S2S_HAVE_MPI
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        s2s_errf(err, errlen, "MPI_Init_thread failed");
        free(c);
        return NULL;
    }
    if (provided < MPI_THREAD_SERIALIZED) {
        s2s_errf(err, errlen, "this MPI offers thread level %d; s2s needs MPI_THREAD_SERIALIZED (its collectives run on "
                 "a communication thread)", provided);
        MPI_Finalize();
        free(c);
        return NULL;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    MPI_Comm local;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &local);
    MPI_Comm_rank(local, &c->local_rank);
    MPI_Comm_free(&local);
    c->mpi = true;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv_work, NULL);
    pthread_cond_init(&c->cv_done, NULL);
    pthread_create(&c->worker, NULL, worker_main, c);
    return c;
#else
    s2s_errf(err, errlen, "launched by mpirun / srun with several tasks, but this s2s was built without MPI "
             "(install libopenmpi-dev and rebuild: launch/deps.sh)");
    free(c);
    return NULL;
#endif
}

void s2s_comm_free(s2s_comm *c) {
    if (!c) return;
#ifdef S2S_HAVE_MPI
    if (c->mpi) {
        pthread_mutex_lock(&c->mu);
        c->stop = true;
        pthread_cond_broadcast(&c->cv_work);
        pthread_mutex_unlock(&c->mu);
        pthread_join(c->worker, NULL);
#ifdef S2S_HAVE_NCCL
        s2s_nccl_free(c->nccl);
#endif
        MPI_Finalize();
    }
#endif
    free(c);
}

void s2s_comm_set_timeout(s2s_comm *c, double seconds) {
    if (seconds > 0) c->timeout_s = seconds;
}

int s2s_comm_use_device(s2s_comm *c, s2s_device dev, char *err, size_t errlen) {
    c->device = dev;
    if (dev != S2S_CUDA || c->world == 1) return 0;
#ifdef S2S_HAVE_NCCL
    // Rank 0's unique id to every rank over MPI, then the NCCL communicator, collectively.
    char id[S2S_NCCL_ID_BYTES] = {0};
    int rc = c->rank == 0 ? s2s_nccl_unique_id(id, err, errlen) : 0;
    if (s2s_comm_agree(c, rc, err, errlen, NULL)) return -1;
    s2s_comm_bcast(c, id, sizeof id, 0);
    c->nccl = s2s_nccl_init(id, c->rank, c->world, err, errlen);
    return s2s_comm_agree(c, c->nccl ? 0 : -1, err, errlen, NULL);
#else
    (void)dev;
    return s2s_errf(err, errlen, "device cuda on %d ranks: the gradient collectives on GPU memory need NCCL, which "
                    "this s2s was built without (CMake found no nccl.h / libnccl); run one rank, or device: cpu",
                    c->world);
#endif
}

const char *s2s_comm_collectives(const s2s_comm *c) { return c->nccl ? "nccl" : c->mpi ? "mpi" : "self"; }

int s2s_comm_rank(const s2s_comm *c) { return c->rank; }
int s2s_comm_world(const s2s_comm *c) { return c->world; }
int s2s_comm_local_rank(const s2s_comm *c) { return c->local_rank; }
const char *s2s_comm_backend(const s2s_comm *c) { return c->mpi ? "mpi" : "self"; }

// ---- one rank: the identity ------------------------------------------------------------------------------------

static void self_job(const s2s_comm *c, const job *j) {
    if (j->kind == OP_REDUCE_SCATTER_V && j->recv != j->send)
        s2s_dev_copy(c->device, j->recv, c->device, j->send, (size_t)j->counts[0] * sizeof(float));
    if (j->kind == OP_REDUCE_SCATTER || j->kind == OP_ALLGATHER)
        if (j->recv != j->send) s2s_dev_copy(c->device, j->recv, c->device, j->send, (size_t)j->n * sizeof(float));
}

// The collectives whose buffers are the f32 data of the run (on its device); the rest are host-side agreements.
static bool device_job(const job *j) {
    return j->kind == OP_REDUCE_SCATTER || j->kind == OP_REDUCE_SCATTER_V || j->kind == OP_ALLGATHER ||
           (j->kind == OP_ALLREDUCE && j->dt == S2S_COMM_F32);
}

static s2s_comm_handle submit(s2s_comm *c, job j) {
    if (!c->mpi) {
        self_job(c, &j);
        c->done = ++c->submitted;
        return c->done;
    }
#ifdef S2S_HAVE_MPI
#ifdef S2S_HAVE_NCCL
    if (c->nccl && device_job(&j)) j.mark = s2s_nccl_mark();  // on the submitting thread: its compute stream
#endif
    pthread_mutex_lock(&c->mu);
    while (c->submitted - c->done >= QCAP) pthread_cond_wait(&c->cv_done, &c->mu);
    c->q[c->submitted % QCAP] = j;
    const s2s_comm_handle h = ++c->submitted;
    pthread_cond_signal(&c->cv_work);
    pthread_mutex_unlock(&c->mu);
    return h;
#else
    return 0;
#endif
}

static const char *kind_name(op_kind k) {
    static const char *const n[] = {"all-reduce", "reduce-scatter", "reduce-scatter", "all-gather", "broadcast",
                                    "barrier"};
    return n[k];
}

void s2s_comm_wait(s2s_comm *c, s2s_comm_handle h) {
    if (!c->mpi) return;
#ifdef S2S_HAVE_MPI
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += (time_t)c->timeout_s;
    pthread_mutex_lock(&c->mu);
    while (c->done < h) {
        if (pthread_cond_timedwait(&c->cv_done, &c->mu, &dl) == ETIMEDOUT && c->done < h) {
            const job *j = &c->q[c->done % QCAP];
            fprintf(stderr, "s2s: rank %d of %d: a %s (collective #%lld) did not complete within dist.timeout_s = "
                    "%g s: another rank died or hangs; exiting\n", c->rank, c->world, kind_name(j->kind),
                    (long long)c->done + 1, c->timeout_s);
            fflush(stderr);
            _exit(124);  // the launcher then ends the other ranks
        }
    }
    pthread_mutex_unlock(&c->mu);
#endif
}

bool s2s_comm_test(s2s_comm *c, s2s_comm_handle h) {
    if (!c->mpi) return true;
#ifdef S2S_HAVE_MPI
    pthread_mutex_lock(&c->mu);
    const bool done = c->done >= h;
    pthread_mutex_unlock(&c->mu);
    return done;
#else
    return true;
#endif
}

s2s_comm_handle s2s_comm_allreduce_async(s2s_comm *c, void *buf, int64_t n, s2s_comm_dtype dt, s2s_comm_op op) {
    return submit(c, (job){.kind = OP_ALLREDUCE, .buf = buf, .n = n, .dt = dt, .op = op});
}
s2s_comm_handle s2s_comm_reduce_scatter_async(s2s_comm *c, const float *send, float *recv, int64_t n) {
    return submit(c, (job){.kind = OP_REDUCE_SCATTER, .send = send, .recv = recv, .n = n});
}
s2s_comm_handle s2s_comm_reduce_scatter_v_async(s2s_comm *c, const float *send, float *recv, const int *counts) {
    return submit(c, (job){.kind = OP_REDUCE_SCATTER_V, .send = send, .recv = recv, .counts = counts});
}
s2s_comm_handle s2s_comm_allgather_async(s2s_comm *c, const float *send, float *recv, int64_t n) {
    return submit(c, (job){.kind = OP_ALLGATHER, .send = send, .recv = recv, .n = n});
}

void s2s_comm_allreduce(s2s_comm *c, void *buf, int64_t n, s2s_comm_dtype dt, s2s_comm_op op) {
    s2s_comm_wait(c, s2s_comm_allreduce_async(c, buf, n, dt, op));
}
void s2s_comm_bcast(s2s_comm *c, void *buf, int64_t bytes, int root) {
    s2s_comm_wait(c, submit(c, (job){.kind = OP_BCAST, .buf = buf, .n = bytes, .root = root}));
}
void s2s_comm_barrier(s2s_comm *c) { s2s_comm_wait(c, submit(c, (job){.kind = OP_BARRIER})); }

int s2s_comm_agree(s2s_comm *c, int status, char *err, size_t errlen, int *who) {
    if (who) *who = status ? c->rank : -1;
    if (c->world == 1) return status ? -1 : 0;
    // The lowest failing rank: min over (failed ? rank : world).
    int64_t first = status ? c->rank : c->world;
    s2s_comm_allreduce(c, &first, 1, S2S_COMM_I64, S2S_COMM_MIN);
    if (first == c->world) return 0;
    char msg[1024] = {0};
    if (c->rank == first) snprintf(msg, sizeof msg, "%s", err ? err : "");
    s2s_comm_bcast(c, msg, sizeof msg, (int)first);
    if (err && errlen) snprintf(err, errlen, "rank %lld: %s", (long long)first, msg);
    if (who) *who = (int)first;
    return -1;
}
