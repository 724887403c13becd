// test_gpu_ops.c — every CUDA op against the CPU path. Each case draws random inputs of odd shapes,
// runs forward and backward (with a random upstream gradient) on a CPU context and on a CUDA context
// fed the same bytes (s2s_dev_copy), and compares outputs and every input gradient.
//
// Error measure: max over elements of |gpu - cpu| / (rms(cpu) + |cpu|): relative where values are
// large, relative to the tensor's scale where they cross zero. Tolerances:
//   TOL_F32  1e-5   f32 kernels (norms, activations, shape, optimizer) and GEMMs in S2S_GEMM_F32
//                   mode: only summation order and libm-vs-CUDA-math ulps differ.
//   TOL_BF16 2e-2   GEMM ops in the default bf16 mode: operands rounded to bf16 (2^-9 relative each),
//                   f32 accumulation; the error of a K-term dot product is ~1.6e-3 of its rms, so
//                   2e-2 leaves a 10x margin and still catches a wrong transpose or stride (O(1)).
//   TOL_BLOCK 3e-2  the tiny block in bf16 mode (four GEMMs in a chain, rmsnorm in between).
// GEMM-based cases run in both modes. Integer moves (i32 concat / gather) must match exactly.
// Also: bit-identical repeats of GPU backward (determinism: no float atomics), and the device-side
// id / index checks failing with a clear message (run in a child process: the check exits).
//
// No GPU visible (s2s_cuda_available() == 0): prints "no GPU: skipped" and returns 77 (ctest SKIP).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/device.h"
#include "autograd/params.h"
#include "ops/ops.h"
#ifdef S2S_HAVE_CUDA
#include "ops/cuda/kernels.h"
#endif
#include "gpu_check.h"

#define TOL_F32 1e-5
#define TOL_BF16 2e-2
#define TOL_BLOCK 3e-2

// f32 leaf with values scale * U[-1, 1).
static tp leaf_f32(pair *P, leaves *L, const char *name, int ndim, const int64_t *shape, bool grad, float scale) {
    s2s_tensor *c = s2s_new(P->cpu, S2S_F32, ndim, shape);
    float *p = c->data;
    for (int64_t i = 0; i < s2s_numel(c); i++) p[i] = scale * frand();
    c->requires_grad = grad;
    tp t = mirror(P, c);
    if (L && L->n < MAX_LEAVES) {
        L->leaf[L->n] = t;
        L->name[L->n++] = name;
    }
    return t;
}

static tp leaf_i32(pair *P, int ndim, const int64_t *shape, const int32_t *vals) {
    s2s_tensor *c = s2s_new(P->cpu, S2S_I32, ndim, shape);
    memcpy(c->data, vals, s2s_nbytes(c));
    return mirror(P, c);
}

// Compare the outputs, run backward on both with one random dy, compare every leaf's gradient.
static void finish(pair *P, const char *cas, tp y, leaves *L, double tol) {
    double worst = compare(cas, "out", y.c, y.g, tol);
    if (y.c->requires_grad && y.c->dtype == S2S_F32) {
        int64_t n = s2s_numel(y.c);
        float *dy = malloc((size_t)(n ? n : 1) * sizeof(float));
        for (int64_t i = 0; i < n; i++) dy[i] = frand();
        s2s_backward(P->cpu, y.c, dy);
        s2s_backward(P->gpu, y.g, dy);
        free(dy);
        double e = compare_leaf_grads(cas, L, tol);
        if (e > worst) worst = e;
    }
    printf("%-34s max error %.2e (tol %.0e)\n", cas, worst, tol);
    reset(P);
}

#define SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

// ---- GEMM ops (run per mode) -----------------------------------------------------------------------

static void case_linear(pair *P, const char *mode, double tol) {
    for (int bias = 0; bias < 2; bias++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(3, 7, 37), true, 1.0f);
        tp w = leaf_f32(P, &L, "w", SHAPE(29, 37), true, 0.3f);
        tp b = bias ? leaf_f32(P, &L, "b", SHAPE(29), true, 0.5f) : (tp){0};
        tp y = {s2s_linear(P->cpu, x.c, w.c, b.c), s2s_linear(P->gpu, x.g, w.g, b.g)};
        char cas[64];
        snprintf(cas, sizeof cas, "linear%s [%s]", bias ? "+bias" : "", mode);
        finish(P, cas, y, &L, tol);
    }
    // Frozen weight, trainable input: dw must stay absent, dx present.
    leaves L = {0};
    tp x = leaf_f32(P, &L, "x", SHAPE(13, 64), true, 1.0f);
    tp w = leaf_f32(P, &L, "w", SHAPE(48, 64), false, 0.2f);
    tp y = {s2s_linear(P->cpu, x.c, w.c, NULL), s2s_linear(P->gpu, x.g, w.g, NULL)};
    char cas[64];
    snprintf(cas, sizeof cas, "linear frozen w [%s]", mode);
    finish(P, cas, y, &L, tol);
}

static void case_bmm(pair *P, const char *mode, double tol) {
    for (int tb = 0; tb < 2; tb++) {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(3, 13, 19), true, 1.0f);
        tp b = tb ? leaf_f32(P, &L, "b", SHAPE(3, 11, 19), true, 1.0f) : leaf_f32(P, &L, "b", SHAPE(3, 19, 11), true, 1.0f);
        tp y = {s2s_bmm(P->cpu, a.c, b.c, tb), s2s_bmm(P->gpu, a.g, b.g, tb)};
        char cas[64];
        snprintf(cas, sizeof cas, "bmm%s [%s]", tb ? " trans_b" : "", mode);
        finish(P, cas, y, &L, tol);
    }
}

static void case_conv1d(pair *P, const char *mode, double tol) {
    struct { int64_t B, Cin, L, Cout, K; int stride, pad; bool bias; } cs[] = {
        {2, 5, 23, 7, 3, 2, 1, true},   // the encoder's conv2 shape in miniature
        {3, 4, 17, 6, 1, 1, 0, true},   // 1-wide: x is its own column matrix
        {1, 6, 21, 8, 5, 2, 2, false},  // the adapter's k5 s2 p2, no bias
        {2, 3, 9, 5, 3, 1, 1, true},    // encoder conv1 (k3 p1)
    };
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(cs[i].B, cs[i].Cin, cs[i].L), true, 1.0f);
        tp w = leaf_f32(P, &L, "w", SHAPE(cs[i].Cout, cs[i].Cin, cs[i].K), true, 0.4f);
        tp b = cs[i].bias ? leaf_f32(P, &L, "b", SHAPE(cs[i].Cout), true, 0.5f) : (tp){0};
        tp y = {s2s_conv1d(P->cpu, x.c, w.c, b.c, cs[i].stride, cs[i].pad),
                s2s_conv1d(P->gpu, x.g, w.g, b.g, cs[i].stride, cs[i].pad)};
        char cas[64];
        snprintf(cas, sizeof cas, "conv1d k%lld s%d p%d [%s]", (long long)cs[i].K, cs[i].stride, cs[i].pad, mode);
        finish(P, cas, y, &L, tol);
    }
}

// linear -> rmsnorm -> (gate, up) linears -> silu_mul -> linear, gradients from a random dy on the output.
static void tiny_block(pair *P, tp x, tp w1, tp b1, tp g, tp wg, tp wu, tp w2, tp *y) {
    s2s_ctx *cx[2] = {P->cpu, P->gpu};
    for (int d = 0; d < 2; d++) {
        s2s_tensor *xs = d ? x.g : x.c;
        s2s_tensor *h = s2s_linear(cx[d], xs, d ? w1.g : w1.c, d ? b1.g : b1.c);
        h = s2s_rmsnorm(cx[d], h, d ? g.g : g.c, 1e-6f);
        s2s_tensor *gate = s2s_linear(cx[d], h, d ? wg.g : wg.c, NULL);
        s2s_tensor *up = s2s_linear(cx[d], h, d ? wu.g : wu.c, NULL);
        s2s_tensor *a = s2s_silu_mul(cx[d], gate, up);
        s2s_tensor *o = s2s_linear(cx[d], a, d ? w2.g : w2.c, NULL);
        if (d) y->g = o;
        else y->c = o;
    }
}

static void case_block(pair *P, const char *mode, double tol) {
    leaves L = {0};
    tp x = leaf_f32(P, &L, "x", SHAPE(5, 9, 48), true, 1.0f);
    tp w1 = leaf_f32(P, &L, "w1", SHAPE(40, 48), true, 0.15f);
    tp b1 = leaf_f32(P, &L, "b1", SHAPE(40), true, 0.1f);
    tp g = leaf_f32(P, &L, "norm_w", SHAPE(40), true, 1.0f);
    tp wg = leaf_f32(P, &L, "w_gate", SHAPE(72, 40), true, 0.15f);
    tp wu = leaf_f32(P, &L, "w_up", SHAPE(72, 40), true, 0.15f);
    tp w2 = leaf_f32(P, &L, "w_down", SHAPE(40, 72), true, 0.12f);
    tp y;
    tiny_block(P, x, w1, b1, g, wg, wu, w2, &y);
    char cas[64];
    snprintf(cas, sizeof cas, "tiny block [%s]", mode);
    finish(P, cas, y, &L, tol);
}

// ---- f32 ops -----------------------------------------------------------------------------------------

static void case_embedding(pair *P) {
    int64_t V = 53, C = 33;
    int32_t ids[35];
    for (int i = 0; i < 35; i++) ids[i] = i < 6 ? 7 : irand((int)V);  // repeats: the reduction path
    ids[20] = 0;
    ids[21] = (int32_t)V - 1;
    leaves L = {0};
    tp id = leaf_i32(P, SHAPE(5, 7), ids);
    tp w = leaf_f32(P, &L, "w", SHAPE(V, C), true, 1.0f);
    tp y = {s2s_embedding(P->cpu, id.c, w.c), s2s_embedding(P->gpu, id.g, w.g)};
    finish(P, "embedding", y, &L, TOL_F32);
}

static void case_norms(pair *P) {
    struct { int64_t N, C; } rs[] = {{15, 67}, {300, 131}, {3, 1031}, {4, 1}};
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(rs[i].N, rs[i].C), true, 2.0f);
        tp w = leaf_f32(P, &L, "w", SHAPE(rs[i].C), true, 1.0f);
        tp y = {s2s_rmsnorm(P->cpu, x.c, w.c, 1e-6f), s2s_rmsnorm(P->gpu, x.g, w.g, 1e-6f)};
        char cas[64];
        snprintf(cas, sizeof cas, "rmsnorm [%lld, %lld]", (long long)rs[i].N, (long long)rs[i].C);
        finish(P, cas, y, &L, TOL_F32);
    }
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
        for (int bias = 0; bias < 2; bias++) {
            leaves L = {0};
            tp x = leaf_f32(P, &L, "x", SHAPE(rs[i].N, rs[i].C), true, 2.0f);
            for (int64_t k = 0; k < s2s_numel(x.c); k++) ((float *)x.c->data)[k] += 3.0f;  // a mean to remove
            s2s_dev_copy(S2S_CUDA, x.g->data, S2S_CPU, x.c->data, s2s_nbytes(x.c));
            tp w = leaf_f32(P, &L, "w", SHAPE(rs[i].C), true, 1.0f);
            tp b = bias ? leaf_f32(P, &L, "b", SHAPE(rs[i].C), true, 1.0f) : (tp){0};
            tp y = {s2s_layernorm(P->cpu, x.c, w.c, b.c, 1e-5f), s2s_layernorm(P->gpu, x.g, w.g, b.g, 1e-5f)};
            char cas[64];
            snprintf(cas, sizeof cas, "layernorm%s [%lld, %lld]", bias ? "+bias" : "", (long long)rs[i].N,
                     (long long)rs[i].C);
            finish(P, cas, y, &L, TOL_F32);
        }
}

static void case_rope(pair *P) {
    int64_t T = 11, H = 3, D = 18;
    int32_t pos[11];
    for (int t = 0; t < T; t++) pos[t] = t < 5 ? t : 8000 + 37 * t;  // far positions: angle rounding matters
    leaves L = {0};
    tp x = leaf_f32(P, &L, "x", SHAPE(T, H, D), true, 1.0f);
    tp p = leaf_i32(P, SHAPE(T), pos);
    tp y = {s2s_rope(P->cpu, x.c, p.c, 1e6f), s2s_rope(P->gpu, x.g, p.g, 1e6f)};
    finish(P, "rope", y, &L, TOL_F32);
}

static void case_activations(pair *P) {
    {
        leaves L = {0};
        tp g = leaf_f32(P, &L, "gate", SHAPE(9, 131), true, 6.0f);
        tp u = leaf_f32(P, &L, "up", SHAPE(9, 131), true, 2.0f);
        tp y = {s2s_silu_mul(P->cpu, g.c, u.c), s2s_silu_mul(P->gpu, g.g, u.g)};
        finish(P, "silu_mul", y, &L, TOL_F32);
    }
    {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(1001), true, 8.0f);
        tp y = {s2s_gelu(P->cpu, x.c), s2s_gelu(P->gpu, x.g)};
        finish(P, "gelu", y, &L, TOL_F32);
    }
    struct { int nd; int64_t s[3]; int axis; } gs[] = {{3, {2, 10, 7}, 1}, {2, {5, 6}, -1}, {3, {4, 3, 2}, 2}, {2, {8, 3}, 0}};
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", gs[i].nd, gs[i].s, true, 4.0f);
        tp y = {s2s_glu(P->cpu, x.c, gs[i].axis), s2s_glu(P->gpu, x.g, gs[i].axis)};
        char cas[64];
        snprintf(cas, sizeof cas, "glu axis %d", gs[i].axis);
        finish(P, cas, y, &L, TOL_F32);
    }
}

static void case_elementwise(pair *P) {
    {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(4, 5, 13), true, 1.0f);
        tp b = leaf_f32(P, &L, "b", SHAPE(4, 5, 13), true, 1.0f);
        tp y = {s2s_add(P->cpu, a.c, b.c), s2s_add(P->gpu, a.g, b.g)};
        finish(P, "add", y, &L, TOL_F32);
    }
    {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(40, 5, 13), true, 1.0f);
        tp b = leaf_f32(P, &L, "b", SHAPE(1, 5, 13), true, 1.0f);
        tp y = {s2s_add(P->cpu, a.c, b.c), s2s_add(P->gpu, a.g, b.g)};
        finish(P, "add broadcast", y, &L, TOL_F32);
    }
    {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(7, 19), true, 1.0f);
        tp b = leaf_f32(P, &L, "b", SHAPE(7, 19), true, 1.0f);
        tp y = {s2s_mul(P->cpu, a.c, b.c), s2s_mul(P->gpu, a.g, b.g)};
        finish(P, "mul", y, &L, TOL_F32);
    }
    {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(7, 19), true, 1.0f);
        tp y = {s2s_mul(P->cpu, a.c, a.c), s2s_mul(P->gpu, a.g, a.g)};  // da == db
        finish(P, "mul self", y, &L, TOL_F32);
    }
    {
        leaves L = {0};
        tp a = leaf_f32(P, &L, "a", SHAPE(3, 37), true, 1.0f);
        tp y = {s2s_scale(P->cpu, a.c, -0.37f), s2s_scale(P->gpu, a.g, -0.37f)};
        finish(P, "scale", y, &L, TOL_F32);
    }
}

static void case_shape(pair *P) {
    {  // reshape then a consumer, so the reshape's backward runs
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(6, 35), true, 1.0f);
        int64_t s[3] = {2, 3, 35};
        tp r = {s2s_reshape(P->cpu, x.c, 3, s), s2s_reshape(P->gpu, x.g, 3, s)};
        tp y = {s2s_scale(P->cpu, r.c, 2.0f), s2s_scale(P->gpu, r.g, 2.0f)};
        finish(P, "reshape", y, &L, TOL_F32);
    }
    struct { int nd; int64_t s[4]; int a0, a1; } ts[] = {{4, {3, 5, 7, 2}, 1, 3}, {2, {4, 9}, 0, 1}, {3, {5, 3, 4}, 0, 2}, {3, {2, 6, 5}, -1, 1}};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", ts[i].nd, ts[i].s, true, 1.0f);
        tp y = {s2s_transpose(P->cpu, x.c, ts[i].a0, ts[i].a1), s2s_transpose(P->gpu, x.g, ts[i].a0, ts[i].a1)};
        char cas[64];
        snprintf(cas, sizeof cas, "transpose %d,%d", ts[i].a0, ts[i].a1);
        finish(P, cas, y, &L, TOL_F32);
    }
    for (int axis = 0; axis < 3; axis++) {
        leaves L = {0};
        int64_t s0[3] = {3, 4, 5}, s1[3] = {3, 4, 5}, s2[3] = {3, 4, 5};
        s0[axis] = 2;
        s1[axis] = 5;
        s2[axis] = 1;
        tp a = leaf_f32(P, &L, "a", 3, s0, true, 1.0f);
        tp b = leaf_f32(P, &L, "b", 3, s1, false, 1.0f);  // no grad: skipped in backward
        tp c = leaf_f32(P, &L, "c", 3, s2, true, 1.0f);
        tp y = {s2s_concat(P->cpu, (s2s_tensor *[]){a.c, b.c, c.c}, 3, axis),
                s2s_concat(P->gpu, (s2s_tensor *[]){a.g, b.g, c.g}, 3, axis)};
        char cas[64];
        snprintf(cas, sizeof cas, "concat axis %d", axis);
        finish(P, cas, y, &L, TOL_F32);
    }
    for (int axis = 0; axis < 3; axis++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(6, 7, 9), true, 1.0f);
        tp y = {s2s_slice(P->cpu, x.c, axis, 1, 4), s2s_slice(P->gpu, x.g, axis, 1, 4)};
        char cas[64];
        snprintf(cas, sizeof cas, "slice axis %d", axis);
        finish(P, cas, y, &L, TOL_F32);
    }
    {  // i32 moves: exact
        int32_t v[24];
        for (int i = 0; i < 24; i++) v[i] = irand(1000) - 500;
        tp a = leaf_i32(P, SHAPE(2, 12), v), b = leaf_i32(P, SHAPE(2, 12), v);
        tp y = {s2s_concat(P->cpu, (s2s_tensor *[]){a.c, b.c}, 2, 1), s2s_concat(P->gpu, (s2s_tensor *[]){a.g, b.g}, 2, 1)};
        compare("concat i32", "out", y.c, y.g, 0.0);
        tp z = {s2s_slice(P->cpu, y.c, 1, 5, 13), s2s_slice(P->gpu, y.g, 1, 5, 13)};
        compare("slice i32", "out", z.c, z.g, 0.0);
        printf("%-34s exact\n", "concat / slice i32");
        reset(P);
    }
}

static void case_rows(pair *P) {
    {
        int32_t idx[30];
        for (int i = 0; i < 30; i++) idx[i] = i < 4 ? 3 : irand(17);  // repeats add up
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(17, 23), true, 1.0f);
        tp id = leaf_i32(P, SHAPE(30), idx);
        tp y = {s2s_gather_rows(P->cpu, x.c, id.c), s2s_gather_rows(P->gpu, x.g, id.g)};
        finish(P, "gather_rows", y, &L, TOL_F32);
    }
    {
        int32_t idx[7] = {18, 0, 5, 11, 2, 9, 14};
        leaves L = {0};
        tp base = leaf_f32(P, &L, "base", SHAPE(19, 23), true, 1.0f);
        tp src = leaf_f32(P, &L, "src", SHAPE(7, 23), true, 1.0f);
        tp id = leaf_i32(P, SHAPE(7), idx);
        tp y = {s2s_scatter_rows(P->cpu, base.c, id.c, src.c), s2s_scatter_rows(P->gpu, base.g, id.g, src.g)};
        finish(P, "scatter_rows", y, &L, TOL_F32);
    }
    {
        int32_t v[5 * 3], idx[4] = {4, 0, 4, 2};
        for (int i = 0; i < 15; i++) v[i] = irand(100);
        tp x = leaf_i32(P, SHAPE(5, 3), v), id = leaf_i32(P, SHAPE(4), idx);
        tp y = {s2s_gather_rows(P->cpu, x.c, id.c), s2s_gather_rows(P->gpu, x.g, id.g)};
        compare("gather_rows i32", "out", y.c, y.g, 0.0);
        printf("%-34s exact\n", "gather_rows i32");
        reset(P);
    }
}

static void case_pool(pair *P) {
    struct { int k, s; int64_t L; } ps[] = {{2, 2, 17}, {3, 2, 18}, {4, 1, 9}};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        leaves L = {0};
        tp x = leaf_f32(P, &L, "x", SHAPE(2, 3, ps[i].L), true, 1.0f);
        tp y = {s2s_avgpool1d(P->cpu, x.c, ps[i].k, ps[i].s), s2s_avgpool1d(P->gpu, x.g, ps[i].k, ps[i].s)};
        char cas[64];
        snprintf(cas, sizeof cas, "avgpool1d k%d s%d", ps[i].k, ps[i].s);
        finish(P, cas, y, &L, TOL_F32);
    }
}

// ---- optimizer -----------------------------------------------------------------------------------

static void case_adamw(pair *P) {
    int64_t n = 1001;
    tp p = leaf_f32(P, NULL, "p", SHAPE(n), false, 1.0f), m = leaf_f32(P, NULL, "m", SHAPE(n), false, 0.01f);
    tp v = leaf_f32(P, NULL, "v", SHAPE(n), false, 0.001f);
    for (int64_t i = 0; i < n; i++) ((float *)v.c->data)[i] = fabsf(((float *)v.c->data)[i]);
    s2s_dev_copy(S2S_CUDA, v.g->data, S2S_CPU, v.c->data, (size_t)n * sizeof(float));
    s2s_adamw_cfg cfg = {.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    for (int step = 1; step <= 3; step++) {
        tp g = leaf_f32(P, NULL, "g", SHAPE(n), false, 0.1f);
        s2s_adamw_update(P->cpu, p.c->data, g.c->data, m.c->data, v.c->data, n, cfg, step != 2, step);
        s2s_adamw_update(P->gpu, p.g->data, g.g->data, m.g->data, v.g->data, n, cfg, step != 2, step);
    }
    double e = compare("adamw", "p", p.c, p.g, TOL_F32);
    double em = compare("adamw", "m", m.c, m.g, TOL_F32), ev = compare("adamw", "v", v.c, v.g, TOL_F32);
    printf("%-34s max error %.2e (tol %.0e)\n", "adamw (3 steps)", fmax(e, fmax(em, ev)), TOL_F32);
    reset(P);
}

static void case_grad_norm(pair *P) {
    s2s_params pc, pg;
    s2s_params_init(&pc, S2S_CPU);
    s2s_params_init(&pg, S2S_CUDA);
    int64_t shapes[4][2] = {{37, 41}, {1, 5}, {300, 301}, {7, 3}};
    for (int i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        bool tr = i != 3;  // a frozen one is left out of the norm
        s2s_tensor *c = s2s_params_add(&pc, name, "t", 2, shapes[i], tr, true);
        s2s_tensor *g = s2s_params_add(&pg, name, "t", 2, shapes[i], tr, true);
        if (!tr) continue;
        float *h = c->grad->data;
        for (int64_t k = 0; k < s2s_numel(c); k++) h[k] = frand() * (i + 1);
        s2s_dev_copy(S2S_CUDA, g->grad->data, S2S_CPU, h, s2s_nbytes(c));
    }
    double nc = s2s_grad_norm(P->cpu, &pc), ng = s2s_grad_norm(P->gpu, &pg);
    double ng2 = s2s_grad_norm(P->gpu, &pg);
    if (!(fabs(nc - ng) <= 1e-12 * nc) || ng != ng2) {
        fprintf(stderr, "FAIL grad_norm: cpu %.17g gpu %.17g (repeat %.17g)\n", nc, ng, ng2);
        g_fails++;
    }
    double bc = s2s_grad_clip(P->cpu, &pc, 1.0), bg = s2s_grad_clip(P->gpu, &pg, 1.0);
    if (!(fabs(bc - bg) <= 1e-12 * bc)) {
        fprintf(stderr, "FAIL grad_clip: norm before cpu %.17g gpu %.17g\n", bc, bg);
        g_fails++;
    }
    double worst = 0.0;
    for (int i = 0; i < 3; i++) {
        double e = compare("grad_clip", pc.items[i].name, pc.items[i].t->grad, pg.items[i].t->grad, TOL_F32);
        if (e > worst) worst = e;
    }
    printf("%-34s norm %.6g, clipped grads max error %.2e\n", "grad_norm / grad_clip", nc, worst);
    s2s_params_free(&pc);
    s2s_params_free(&pg);
}

// ---- determinism -----------------------------------------------------------------------------------

// The same backward twice on the GPU must give the same bits (sorted scatter-adds, two-pass column
// sums, fixed-tree block reductions, deterministic cuBLASLt).
static void case_determinism(pair *P) {
    int fails_before = g_fails;
    float *first[8] = {0};
    for (int rep = 0; rep < 2; rep++) {
        leaves L = {0};
        g_rng = 12345;  // same inputs both times
        tp x = leaf_f32(P, &L, "x", SHAPE(64, 48), true, 1.0f);
        tp w1 = leaf_f32(P, &L, "w1", SHAPE(40, 48), true, 0.15f);
        tp b1 = leaf_f32(P, &L, "b1", SHAPE(40), true, 0.1f);
        tp g = leaf_f32(P, &L, "norm_w", SHAPE(40), true, 1.0f);
        tp wg = leaf_f32(P, &L, "w_gate", SHAPE(72, 40), true, 0.15f);
        tp wu = leaf_f32(P, &L, "w_up", SHAPE(72, 40), true, 0.15f);
        tp w2 = leaf_f32(P, &L, "w_down", SHAPE(40, 72), true, 0.12f);
        int32_t ids[64];
        for (int i = 0; i < 64; i++) ids[i] = irand(9);  // many repeats
        tp id = leaf_i32(P, SHAPE(64), ids);
        tp emb = leaf_f32(P, &L, "emb", SHAPE(9, 48), true, 1.0f);
        s2s_tensor *e = s2s_embedding(P->gpu, id.g, emb.g);
        s2s_tensor *xin = s2s_add(P->gpu, e, x.g);
        tp xx = {x.c, xin};
        tp y;
        // GPU only: the CPU half is built too (tiny_block runs both) but only the GPU's is compared.
        tiny_block(P, xx, w1, b1, g, wg, wu, w2, &y);
        int64_t n = s2s_numel(y.g);
        float *dy = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) dy[i] = frand();
        s2s_backward(P->gpu, y.g, dy);
        free(dy);
        for (int k = 0; k < L.n; k++) {
            float *h = to_host(L.leaf[k].g->grad);
            if (rep == 0) first[k] = h;
            else {
                if (memcmp(first[k], h, s2s_nbytes(L.leaf[k].g->grad)) != 0) {
                    fprintf(stderr, "FAIL determinism: d%s differs between two identical GPU runs\n", L.name[k]);
                    g_fails++;
                }
                free(first[k]);
                free(h);
            }
        }
        reset(P);
    }
    printf("%-34s %s\n", "determinism (block + embedding)", g_fails == fails_before ? "bit-identical" : "DIFFERS");
}

// ---- device-side index checks (child processes: a failed check exits) ------------------------------

static int child_bad_index(int which) {
    s2s_ctx *g = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CUDA});
    s2s_ctx *c = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU});
    pair P = {c, g};
    if (which == 0) {
        int32_t ids[6] = {1, 2, 3, 57, 4, -1};  // 57 is the first bad id (vocabulary 10)
        tp id = leaf_i32(&P, SHAPE(6), ids);
        tp w = leaf_f32(&P, NULL, "w", SHAPE(10, 4), false, 1.0f);
        s2s_embedding(g, id.g, w.g);
    } else if (which == 1) {
        int32_t idx[3] = {0, 9, 1};
        tp id = leaf_i32(&P, SHAPE(3), idx);
        tp x = leaf_f32(&P, NULL, "x", SHAPE(5, 4), false, 1.0f);
        s2s_gather_rows(g, x.g, id.g);
    } else {
        int32_t idx[3] = {2, 0, 2};
        tp id = leaf_i32(&P, SHAPE(3), idx);
        tp b = leaf_f32(&P, NULL, "b", SHAPE(5, 4), false, 1.0f), s = leaf_f32(&P, NULL, "s", SHAPE(3, 4), false, 1.0f);
        s2s_scatter_rows(g, b.g, id.g, s.g);
    }
    return 0;  // reaching here means the check did not fire
}

static void case_bad_index(const char *self) {
    const char *expect[3] = {"token id 57 at position 3", "idx[1] = 9", "row 2 appears twice"};
    for (int which = 0; which < 3; which++) {
        int pfd[2];
        S2S_CHECK(pipe(pfd) == 0, "pipe");
        pid_t pid = fork();
        if (pid == 0) {  // exec a fresh process: a CUDA context does not survive fork
            dup2(pfd[1], 2);
            close(pfd[0]);
            char arg[16];
            snprintf(arg, sizeof arg, "%d", which);
            execl(self, self, "--bad-index", arg, (char *)NULL);
            _exit(127);
        }
        close(pfd[1]);
        char buf[4096] = {0};
        size_t got = 0;
        ssize_t r;
        while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0) got += (size_t)r;
        close(pfd[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 1 && strstr(buf, expect[which]);
        if (!ok) {
            fprintf(stderr, "FAIL device index check %d: status %d, stderr:\n%s\n", which, st, buf);
            g_fails++;
        }
        printf("%-34s %s\n", which == 0 ? "embedding bad id (device check)" : which == 1 ? "gather_rows bad index" : "scatter_rows duplicate",
               ok ? "fails clearly" : "WRONG");
    }
}

int main(int argc, char **argv) {
    if (s2s_cuda_available() == 0) {
        printf("no GPU: skipped\n");
        return 77;
    }
#ifndef S2S_HAVE_CUDA
    return 77;
#else
    if (argc == 3 && strcmp(argv[1], "--bad-index") == 0) return child_bad_index(atoi(argv[2]));
    pair P = {s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2}),
              s2s_ctx_new((s2s_ctx_opts){.device = S2S_CUDA})};
    struct { s2s_gemm_mode m; const char *name; double tol, block_tol; } modes[2] = {
        {S2S_GEMM_F32, "f32", TOL_F32, TOL_F32 * 3}, {S2S_GEMM_BF16, "bf16", TOL_BF16, TOL_BLOCK}};
    for (int i = 0; i < 2; i++) {
        s2s_cuda_set_gemm_mode(P.gpu, modes[i].m);
        case_linear(&P, modes[i].name, modes[i].tol);
        case_bmm(&P, modes[i].name, modes[i].tol);
        case_conv1d(&P, modes[i].name, modes[i].tol);
        case_block(&P, modes[i].name, modes[i].block_tol);
    }
    s2s_cuda_set_gemm_mode(P.gpu, S2S_GEMM_BF16);
    case_embedding(&P);
    case_norms(&P);
    case_rope(&P);
    case_activations(&P);
    case_elementwise(&P);
    case_shape(&P);
    case_rows(&P);
    case_pool(&P);
    case_adamw(&P);
    case_grad_norm(&P);
    case_determinism(&P);
    case_bad_index("/proc/self/exe");
    s2s_ctx_free(P.cpu);
    s2s_ctx_free(P.gpu);
    if (g_fails) {
        fprintf(stderr, "%d check(s) failed\n", g_fails);
        return 1;
    }
    printf("all GPU op checks passed\n");
    return 0;
#endif
}
