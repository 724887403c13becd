// bench_comm.c — the gradient all-reduce of s2s (train/comm.h: buckets of dist.bucket_mb on the communicator's
// thread) against one plain MPI_Allreduce of the same bytes, under mpirun:
//   mpirun -np N build/bench/bench_comm [MB] [BUCKET_MB] [REPS]
// Prints, on rank 0, the best time of each and its bus bandwidth (2 (N-1)/N x bytes / time, the figure NCCL's
// tests print), and the ratio. Speed only: never an exit status.
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "train/comm.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const double mb = argc > 1 ? atof(argv[1]) : 64, bucket_mb = argc > 2 ? atof(argv[2]) : 25;
    const int reps = argc > 3 ? atoi(argv[3]) : 5;
    char err[512];
    s2s_comm *c = s2s_comm_init(NULL, err, sizeof err);
    if (!c) return fprintf(stderr, "bench_comm: %s\n", err), 1;
    const int R = s2s_comm_rank(c), W = s2s_comm_world(c);
    const int64_t n = (int64_t)(mb * (1 << 20) / 4), per = (int64_t)(bucket_mb * (1 << 20) / 4);
    float *buf = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) buf[i] = (float)(i % 7);
    double best_s2s = 1e30, best_mpi = 1e30;
    for (int r = 0; r < reps; r++) {
        s2s_comm_barrier(c);
        double t0 = now_s();
        s2s_comm_handle h = 0;
        for (int64_t o = 0; o < n; o += per)
            h = s2s_comm_allreduce_async(c, buf + o, o + per <= n ? per : n - o, S2S_COMM_F32, S2S_COMM_SUM);
        s2s_comm_wait(c, h);
        double t = now_s() - t0;
        s2s_comm_allreduce(c, &t, 1, S2S_COMM_F64, S2S_COMM_MAX);
        if (t < best_s2s) best_s2s = t;
    }
    // The plain MPI call needs the communicator's thread idle: every job above has completed (waited for).
    for (int r = 0; r < reps; r++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = now_s();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)(n < ((int64_t)1 << 30) ? n : ((int64_t)1 << 30)), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
        double t = now_s() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (t < best_mpi) best_mpi = t;
    }
    if (R == 0) {
        const double bus = 2.0 * (W - 1) / W * (double)n * 4;
        printf("all-reduce of %.0f MiB over %d ranks: s2s buckets of %.0f MiB %.2f ms (bus %.2f GB/s), one "
               "MPI_Allreduce %.2f ms (bus %.2f GB/s), s2s / MPI %.2f\n", mb, W, bucket_mb, best_s2s * 1e3,
               bus / best_s2s / 1e9, best_mpi * 1e3, bus / best_mpi / 1e9, best_s2s / best_mpi);
    }
    free(buf);
    s2s_comm_free(c);
    return 0;
}
