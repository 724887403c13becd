// plan_internal.h — the shape-level replay of a micro-batch behind s2s_plan (plan_act.c: the ops; plan_model.c:
// the stages' forwards built from them). A tensor of the replay is an int handle; nothing is allocated.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/params.h"

typedef struct sim sim;
typedef int64_t arena_mark;
typedef void (*region_fn)(sim *s, const void *user, int x, int *out);

sim *plan_sim_new(int threads, int max_regions, int elt);  // elt: bytes per activation element
void plan_sim_free(sim *s);
void plan_sim_peak(const sim *s, int64_t *step, int64_t *scratch);  // the two high-water marks

int plan_new(sim *s, int64_t floats);        // an activation of `floats` elements (a batch input, a constant)
int plan_idx(sim *s, int64_t n);             // an i32 index tensor [n]
int plan_param(sim *s, const s2s_params *P, const char *name);  // wants a gradient iff trainable
bool plan_rg(const sim *s, int x);
int64_t plan_floats(const sim *s, int x);

int plan_linear(sim *s, int x, int w, int b, int64_t N, int64_t M);  // b -1: none
int plan_unary(sim *s, int x);               // gelu, scale, transpose, slice-to-same-size ...
int plan_binary(sim *s, int a, int b);       // add, mul, silu_mul
int plan_rows_op(sim *s, int x, int idx, int64_t out_floats);  // gather / scatter rows
int plan_concat(sim *s, const int *xs, int n);
int plan_reshape(sim *s, int x);
int plan_rmsnorm(sim *s, int x, int w, int64_t N, int64_t C);
int plan_layernorm(sim *s, int x, int w, int b, int64_t N, int64_t C);
int plan_rope(sim *s, int x, int pos, int64_t T, int64_t H, int64_t D);
int plan_embedding(sim *s, int ids, int w, int64_t T, int64_t C);
int plan_conv1d(sim *s, int x, int w, int b, int64_t B, int64_t Cin, int64_t Cout, int64_t K, int64_t Lout, int stride,
                int pad);
int plan_attention(sim *s, int q, int k, int v, int cu, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, int64_t n_seq,
                   int64_t seq);
int plan_ce_fused(sim *s, int h, int w, int labels, int64_t M, int64_t C, int64_t V);

void plan_no_grad(sim *s, bool begin);
arena_mark plan_mark(const sim *s);
void plan_rewind(sim *s, arena_mark m);
int plan_region(sim *s, region_fn fn, const void *user, int x);
void plan_backward(sim *s, int loss);
