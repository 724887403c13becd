// comm_check.c — train/comm.h under mpirun (driven by tests/dist/test_comm.py):
//   comm_check ok        every collective against the values it must give, on any number of ranks
//   comm_check agree     rank world-1 fails setup: every rank must report its message and rank
//   comm_check hang T    rank world-1 never joins the second all-reduce: the others must exit within T s
//   comm_check die       rank world-1 is SIGKILLed before a collective: the job must end, not hang
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "train/comm.h"

static int fails;
#define EXPECT(c, ...) do { if (!(c)) { fails++; fprintf(stderr, "rank %d: FAILED %s:%d: ", R, __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "ok";
    char err[1200];
    s2s_comm_opts o = {.timeout_s = argc > 2 ? atof(argv[2]) : 60};
    s2s_comm *c = s2s_comm_init(&o, err, sizeof err);
    if (!c) { fprintf(stderr, "comm_check: %s\n", err); return 2; }
    const int R = s2s_comm_rank(c), W = s2s_comm_world(c);
    if (!strcmp(mode, "ok")) {
        // sums of f32 / f64 / i64, max and min, in place
        float f[5];
        double d[3];
        int64_t i[2];
        for (int k = 0; k < 5; k++) f[k] = (float)(R + 1) * (k + 1);
        for (int k = 0; k < 3; k++) d[k] = R * 0.5 + k;
        i[0] = R, i[1] = 1LL << 40;
        s2s_comm_allreduce(c, f, 5, S2S_COMM_F32, S2S_COMM_SUM);
        s2s_comm_allreduce(c, d, 3, S2S_COMM_F64, S2S_COMM_MAX);
        s2s_comm_allreduce(c, i, 2, S2S_COMM_I64, S2S_COMM_SUM);
        const double tri = W * (W + 1) / 2.0;
        for (int k = 0; k < 5; k++) EXPECT(f[k] == (float)(tri * (k + 1)), "f32 sum [%d] %g", k, f[k]);
        for (int k = 0; k < 3; k++) EXPECT(d[k] == (W - 1) * 0.5 + k, "f64 max [%d] %g", k, d[k]);
        EXPECT(i[0] == (int64_t)W * (W - 1) / 2 && i[1] == (int64_t)W << 40, "i64 sum %lld %lld", (long long)i[0],
               (long long)i[1]);
        int64_t mn = 10 + R;
        s2s_comm_allreduce(c, &mn, 1, S2S_COMM_I64, S2S_COMM_MIN);
        EXPECT(mn == 10, "i64 min %lld", (long long)mn);
        // reduce-scatter and all-gather of blocks of 7
        const int n = 7;
        float *send = malloc(sizeof(float) * n * W), *recv = malloc(sizeof(float) * n), *all = malloc(sizeof(float) * n * W);
        for (int k = 0; k < n * W; k++) send[k] = (float)(k + R);
        s2s_comm_wait(c, s2s_comm_reduce_scatter_async(c, send, recv, n));
        for (int k = 0; k < n; k++) EXPECT(recv[k] == (float)(W * (R * n + k) + tri - W), "reduce-scatter [%d] %g", k, recv[k]);
        for (int k = 0; k < n; k++) recv[k] = (float)(100 * R + k);
        s2s_comm_wait(c, s2s_comm_allgather_async(c, recv, all, n));
        for (int r = 0; r < W; r++)
            for (int k = 0; k < n; k++) EXPECT(all[r * n + k] == (float)(100 * r + k), "all-gather [%d,%d]", r, k);
        // variable blocks (ZeRO-2's buckets): rank r gets r + 2 elements (the last rank none when W > 1)
        {
            int counts[64], total = 0, off = 0;
            for (int r = 0; r < W; r++) counts[r] = (W > 1 && r == W - 1) ? 0 : r + 2, total += counts[r];
            for (int r = 0; r < R; r++) off += counts[r];
            float *vs = malloc(sizeof(float) * (size_t)(total + 1)), *vr = malloc(sizeof(float) * (size_t)(counts[R] + 1));
            for (int k = 0; k < total; k++) vs[k] = (float)(3 * k + R);
            vr[counts[R]] = -1.0f;  // a guard past the rank's block
            s2s_comm_handle vh = s2s_comm_reduce_scatter_v_async(c, vs, vr, counts);
            s2s_comm_wait(c, vh);
            EXPECT(s2s_comm_test(c, vh), "test after wait");
            for (int k = 0; k < counts[R]; k++)
                EXPECT(vr[k] == (float)(W * 3 * (off + k)) + (float)(tri - W), "reduce-scatter-v [%d] %g", k, vr[k]);
            EXPECT(vr[counts[R]] == -1.0f, "reduce-scatter-v wrote past its block");
            free(vs), free(vr);
        }
        // many asynchronous all-reduces in flight, waited for in reverse
        enum { NB = 16, BN = 1000 };
        float *b = malloc(sizeof(float) * NB * BN);
        s2s_comm_handle h[NB];
        for (int k = 0; k < NB * BN; k++) b[k] = (float)(k % 13) + R;
        for (int q = 0; q < NB; q++) h[q] = s2s_comm_allreduce_async(c, b + q * BN, BN, S2S_COMM_F32, S2S_COMM_SUM);
        for (int q = NB - 1; q >= 0; q--) s2s_comm_wait(c, h[q]);
        for (int k = 0; k < NB * BN; k++) EXPECT(b[k] == (float)(W * (k % 13)) + (float)(tri - W), "async [%d]", k);
        // broadcast from the last rank
        char msg[32] = {0};
        if (R == W - 1) snprintf(msg, sizeof msg, "hello from %d", R);
        s2s_comm_bcast(c, msg, sizeof msg, W - 1);
        char want[32];
        snprintf(want, sizeof want, "hello from %d", W - 1);
        EXPECT(!strcmp(msg, want), "bcast '%s'", msg);
        // every rank fine: agree says so
        err[0] = 0;
        EXPECT(s2s_comm_agree(c, 0, err, sizeof err, NULL) == 0, "agree with no failure");
        s2s_comm_barrier(c);
        free(send), free(recv), free(all), free(b);
        printf("rank %d of %d (%s): %s\n", R, W, s2s_comm_backend(c), fails ? "FAILED" : "ok");
    } else if (!strcmp(mode, "agree")) {
        int st = 0;
        if (R == W - 1) st = -1, snprintf(err, sizeof err, "shard x.h5: sample 3: corrupt");
        int who = -2;
        int rc = s2s_comm_agree(c, st, err, sizeof err, &who);
        printf("rank %d: agree %d who %d: %s\n", R, rc, who, err);
        EXPECT(rc == -1 && who == W - 1 && strstr(err, "shard x.h5: sample 3: corrupt"), "agree");
    } else if (!strcmp(mode, "hang") || !strcmp(mode, "die")) {
        float x = 1;
        s2s_comm_allreduce(c, &x, 1, S2S_COMM_F32, S2S_COMM_SUM);
        if (R == W - 1) {
            if (!strcmp(mode, "die")) raise(SIGKILL);
            sleep(600);
        }
        s2s_comm_allreduce(c, &x, 1, S2S_COMM_F32, S2S_COMM_SUM);
        printf("rank %d: the second all-reduce returned\n", R);
        fails++;
    }
    s2s_comm_free(c);
    return fails ? 1 : 0;
}
