// test_eager_loss.c — the fused losses apply their weight gradient during forward. These checks pin
// down the contract around that: (1) backward from the loss gives the same w.grad as the unfused
// linear + cross-entropy; (2) a loss computed with grad on but not on the backward path (backward
// starts elsewhere) is undone, so w.grad holds only the other path's gradient; (3) the same holds
// for the KL loss; (4) dropping the tape without backward is refused (checked in a child).
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "autograd/rng.h"
#include "ops/ops.h"
#include "expect.h"

enum { N = 37, C = 24, V = 301 };

typedef struct {
    s2s_params p;
    s2s_tensor *w, *lin;  // w [V, C] shared by the loss and a side path; lin [C, C]
} model;

static void model_init(model *m) {
    s2s_rng r;
    s2s_rng_seed(&r, 3);
    s2s_params_init(&m->p, S2S_CPU);
    m->w = s2s_params_add(&m->p, "w", "t", 2, (int64_t[]){V, C}, true, true);
    m->lin = s2s_params_add(&m->p, "lin", "t", 2, (int64_t[]){C, C}, true, true);
    s2s_rng_fill_normal(&r, m->w->data, V * C, 0.1f);
    s2s_rng_fill_normal(&r, m->lin->data, C * C, 0.2f);
}

static s2s_tensor *inputs(s2s_ctx *ctx, s2s_tensor **labels) {
    s2s_rng r;
    s2s_rng_seed(&r, 5);
    s2s_tensor *x = s2s_new2(ctx, S2S_F32, N, C);
    s2s_rng_fill_normal(&r, x->data, N * C, 1.0f);
    *labels = s2s_new1(ctx, S2S_I32, N);
    for (int i = 0; i < N; i++) ((int32_t *)(*labels)->data)[i] = i % 5 == 0 ? -100 : (int32_t)(s2s_rng_u64(&r) % V);
    return x;
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

int main(void) {
    model m;
    model_init(&m);
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU});
    s2s_tensor *labels, *x = inputs(ctx, &labels);
    float *ref = malloc(sizeof(float) * V * C), *side = malloc(sizeof(float) * V * C);

    // (1) fused == unfused (h = x @ lin^T so a trainable path also runs through h).
    s2s_tensor *h = s2s_linear(ctx, x, m.lin, NULL);
    s2s_tensor *loss = s2s_cross_entropy(ctx, s2s_linear(ctx, h, m.w, NULL), labels, -100);
    s2s_backward(ctx, loss, NULL);
    memcpy(ref, m.w->grad->data, sizeof(float) * V * C);
    s2s_params_zero_grad(&m.p);
    s2s_ctx_step_reset(ctx);
    x = inputs(ctx, &labels);
    h = s2s_linear(ctx, x, m.lin, NULL);
    loss = s2s_cross_entropy_fused(ctx, h, m.w, labels, -100, 1.0f);
    s2s_backward(ctx, loss, NULL);
    double scale = max_abs(ref, V * C);
    EXPECT(max_diff(m.w->grad->data, ref, V * C) <= 1e-5 * scale, "fused w.grad differs from unfused");
    s2s_params_zero_grad(&m.p);
    s2s_ctx_step_reset(ctx);

    // (2) side path only: y = sum(x @ w^T) reaches w.grad; the loss is computed but not back-propagated.
    x = inputs(ctx, &labels);
    s2s_tensor *y = s2s_linear(ctx, x, m.w, NULL);  // [N, V]
    s2s_backward(ctx, y, NULL);
    memcpy(side, m.w->grad->data, sizeof(float) * V * C);
    s2s_params_zero_grad(&m.p);
    s2s_ctx_step_reset(ctx);
    x = inputs(ctx, &labels);
    h = s2s_linear(ctx, x, m.lin, NULL);
    loss = s2s_cross_entropy_fused(ctx, h, m.w, labels, -100, 1.0f);
    y = s2s_linear(ctx, x, m.w, NULL);
    s2s_backward(ctx, y, NULL);
    EXPECT(max_diff(m.w->grad->data, side, V * C) <= 1e-6 * max_abs(side, V * C),
           "a fused loss off the backward path left its eager share in w.grad (diff %.3g)",
           max_diff(m.w->grad->data, side, V * C));
    EXPECT(ctx->pending_eager == 0, "pending_eager %d after backward", ctx->pending_eager);
    s2s_params_zero_grad(&m.p);
    s2s_ctx_step_reset(ctx);

    // (3) the same for KL: student h, frozen teacher x, shared w.
    x = inputs(ctx, &labels);
    s2s_tensor *mask = s2s_new1(ctx, S2S_I32, N);
    for (int i = 0; i < N; i++) ((int32_t *)mask->data)[i] = i % 3 != 0;
    h = s2s_linear(ctx, x, m.lin, NULL);
    s2s_tensor *kl = s2s_kl_fused(ctx, h, x, m.w, mask, 2.0f);
    y = s2s_linear(ctx, x, m.w, NULL);
    s2s_backward(ctx, y, NULL);
    EXPECT(max_diff(m.w->grad->data, side, V * C) <= 1e-6 * max_abs(side, V * C),
           "a KL loss off the backward path left its eager share in w.grad");
    (void)kl;
    s2s_params_zero_grad(&m.p);
    s2s_ctx_step_reset(ctx);

    // (4) dropping a tape that holds an eager loss is refused. The loss is computed before the fork:
    // a forked child must not enter OpenMP / OpenBLAS parallel regions (their threads are not there).
    x = inputs(ctx, &labels);
    loss = s2s_cross_entropy_fused(ctx, s2s_linear(ctx, x, m.lin, NULL), m.w, labels, -100, 1.0f);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        s2s_ctx_step_reset(ctx);  // must exit(1)
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    EXPECT(WIFEXITED(st) && WEXITSTATUS(st) == 1, "step reset with a pending eager loss was not refused");
    s2s_backward(ctx, loss, NULL);
    s2s_ctx_step_reset(ctx);

    free(ref);
    free(side);
    s2s_params_free(&m.p);
    s2s_ctx_free(ctx);
    printf(failures ? "%d failure(s)\n" : "all eager-loss checks passed\n", failures);
    return failures ? 1 : 0;
}
