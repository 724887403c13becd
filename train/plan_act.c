// plan_act.c — the step arena's high-water mark of one micro-batch, without running it (plan.h): a shape-level
// replay of the stage's forward and backward that allocates nothing. Each op below mirrors what the real op takes
// from the arena (ops/*.c, ops/cpu/*.c): its output and tensor header, what it keeps for backward (attention: out
// + logsumexp; rmsnorm: rstd; layernorm: mean / rstd; the fused cross-entropy: kept rows, lse and h's gradient
// share [M, C]), its workspace given back on return, the tape node when it records; backward allocates every
// activation gradient on first use (nothing is freed before the step's reset), plus the kernels' workspaces.
// Recompute regions replay the region's forward into a scratch arena that is rewound, keeping inputs and outputs,
// and in backward the region's forward + backward in scratch: the two marks add up as s2s_ctx_peak_bytes does.
// The sizes follow the CPU kernels (what `s2s train` runs and arena_peak_mb measures); tests/train/test_plan.py
// holds the replay to within 10% of real runs.
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "ops/cpu/conv1d.h"
#include "ops/cpu/cross_entropy_fused.h"
#include "plan_internal.h"

#define ALIGN64(n) (((n) + 63) & ~(int64_t)63)
#define MAXT 8  // inputs of one node (S2S_NODE_MAX_IN)

typedef struct pt {  // a tensor of the replay
    int64_t bytes;
    bool rg, grad, param;
} pt;

typedef struct region region;
typedef struct pnode {
    int in[MAXT], n_in, out[2], n_out;
    int64_t bwd_keep;   // bytes the backward leaves in the arena besides input gradients (norm partials)
    int64_t bwd_temp;   // workspace it gives back on return
    region *reg;        // a recompute region: replayed in backward
} pnode;

typedef struct tape {
    pnode *v;
    int n, cap;
} tape;

typedef struct arena {
    int64_t used, peak;
} arena;

struct region {
    region_fn fn;
    const void *user;
    int x;
};

struct sim {
    pt *t;
    int nt, cap;
    tape top, reg;
    tape *cur_tape;
    arena step, scratch;
    arena *cur;
    int no_grad;
    int threads;
    int64_t elt;  // bytes of an activation element (4: f32, the CPU path; 2: bf16)
    region *regions;
    int n_regions, cap_regions;
};

// ---- memory ----------------------------------------------------------------------------------------------

static void take(sim *s, int64_t bytes) {
    s->cur->used += ALIGN64(bytes > 0 ? bytes : 1);
    if (s->cur->used > s->cur->peak) s->cur->peak = s->cur->used;
}

static void temp(sim *s, int64_t bytes) {  // a workspace: taken and given back
    const int64_t u = s->cur->used;
    take(s, bytes);
    s->cur->used = u;
}

static int tensor(sim *s, int64_t bytes, bool data) {
    if (s->nt == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->t = s2s_realloc(s->t, (size_t)s->cap * sizeof *s->t);
    }
    take(s, sizeof(s2s_tensor));
    if (data) take(s, bytes);
    s->t[s->nt] = (pt){.bytes = bytes};
    return s->nt++;
}

int plan_new(sim *s, int64_t floats) { return tensor(s, floats * s->elt, true); }
int plan_idx(sim *s, int64_t n) { return tensor(s, n * 4, true); }

int plan_param(sim *s, const s2s_params *P, const char *name) {
    const s2s_param *q = s2s_params_find((s2s_params *)P, name);
    S2S_CHECK(q, "plan: the model registers no parameter %s", name);
    if (s->nt == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->t = s2s_realloc(s->t, (size_t)s->cap * sizeof *s->t);
    }
    s->t[s->nt] = (pt){.bytes = s2s_numel(q->t) * s->elt, .rg = q->trainable, .param = true};
    return s->nt++;
}

bool plan_rg(const sim *s, int x) { return x >= 0 && s->t[x].rg; }
int64_t plan_floats(const sim *s, int x) { return s->t[x].bytes / s->elt; }  // elements of an activation

static void push(tape *t, pnode n) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->v = s2s_realloc(t->v, (size_t)t->cap * sizeof *t->v);
    }
    t->v[t->n++] = n;
}

// s2s_record: a node when grad mode is on and an input wants a gradient; the outputs then want one too.
static bool record(sim *s, const int *in, int n_in, const int *out, int n_out, int64_t keep, int64_t tmp) {
    if (s->no_grad) return false;
    bool any = false;
    for (int k = 0; k < n_in; k++) any |= plan_rg(s, in[k]);
    if (!any) return false;
    S2S_CHECK(n_in <= MAXT, "plan: a node of %d inputs (at most %d)", n_in, MAXT);
    take(s, sizeof(s2s_node));
    pnode n = {.n_in = n_in, .n_out = n_out, .bwd_keep = keep, .bwd_temp = tmp};
    for (int k = 0; k < n_in; k++) n.in[k] = in[k];
    for (int k = 0; k < n_out; k++) n.out[k] = out[k], s->t[out[k]].rg = true;
    push(s->cur_tape, n);
    return true;
}

static void grad_of(sim *s, int x) {
    if (x < 0) return;  // an absent operand (no bias)
    pt *t = &s->t[x];
    if (!t->rg || t->grad) return;
    t->grad = true;
    if (!t->param) tensor(s, t->bytes, true);  // a parameter's gradient is persistent (or a ZeRO-2 bucket)
}

// ---- ops (ops/*.c): output, kept state, workspace, node ------------------------------------------------------

static int op(sim *s, int64_t out_floats, const int *in, int n_in, int64_t keep_fwd, int64_t tmp_fwd, int64_t keep_bwd,
              int64_t tmp_bwd) {
    const int y = plan_new(s, out_floats);
    if (keep_fwd) take(s, keep_fwd);
    if (tmp_fwd) temp(s, tmp_fwd);
    record(s, in, n_in, &y, 1, keep_bwd, tmp_bwd);
    return y;
}

int plan_linear(sim *s, int x, int w, int b, int64_t N, int64_t M) {
    return op(s, N * M, (int[]){x, w, b}, 3, 0, 0, 0, 0);
}
int plan_unary(sim *s, int x) { return op(s, plan_floats(s, x), &x, 1, 0, 0, 0, 0); }
int plan_binary(sim *s, int a, int b) { return op(s, plan_floats(s, a), (int[]){a, b}, 2, 0, 0, 0, 0); }
int plan_rows_op(sim *s, int x, int idx, int64_t out_floats) { return op(s, out_floats, (int[]){x, idx}, 2, 0, 0, 0, 0); }
int plan_concat(sim *s, const int *xs, int n) {
    if (n > MAXT) {  // s2s_concat: longer lists in groups, then the groups
        int groups[MAXT], per = (n + MAXT - 1) / MAXT, ng = 0;
        for (int k = 0; k < n; k += per) groups[ng++] = plan_concat(s, xs + k, n - k < per ? n - k : per);
        return plan_concat(s, groups, ng);
    }
    int64_t f = 0;
    for (int i = 0; i < n; i++) f += plan_floats(s, xs[i]);
    return op(s, f, xs, n, 0, 0, 0, 0);
}

// A header sharing x's data (s2s_reshape); its gradient is a tensor of its own.
int plan_reshape(sim *s, int x) {
    const int y = tensor(s, s->t[x].bytes, false);
    record(s, &x, 1, &y, 1, 0, 0);
    return y;
}

int plan_rmsnorm(sim *s, int x, int w, int64_t N, int64_t C) {
    const int64_t part = plan_rg(s, w) ? (int64_t)(N * C > 32768 ? s->threads : 1) * C * 4 : 0;
    return op(s, N * C, (int[]){x, w}, 2, N * 4, 0, part, 0);
}

int plan_layernorm(sim *s, int x, int w, int b, int64_t N, int64_t C) {
    const bool red = plan_rg(s, w) || plan_rg(s, b);
    const int64_t part = red ? (int64_t)(N * C > 32768 ? s->threads : 1) * 2 * C * 4 : 0;
    return op(s, N * C, (int[]){x, w, b}, 3, N * 2 * 4, 0, part, 0);
}

int plan_rope(sim *s, int x, int pos, int64_t T, int64_t H, int64_t D) {
    const int64_t tables = (D / 2 + 2 * T * (D / 2)) * 4 + 64;
    return op(s, T * H * D, (int[]){x, pos}, 2, 0, tables, 0, tables);
}

int plan_embedding(sim *s, int ids, int w, int64_t T, int64_t C) { return op(s, T * C, (int[]){ids, w}, 2, 0, 0, 0, 0); }

int plan_conv1d(sim *s, int x, int w, int b, int64_t B, int64_t Cin, int64_t Cout, int64_t K, int64_t Lout, int stride,
                int pad) {
    const int64_t col = conv1d_col_floats(Cin, K, Lout, stride, pad) * 4;
    return op(s, B * Cout * Lout, (int[]){x, w, b}, 3, 0, col, 0, col);
}

// Packed attention on the CPU kernels (ops/cpu/attention.c): out [T, Hq, D] and lse [T * Hq] stay; the packed
// copies of q / k / v (and dO, dQ in backward) are workspaces. seq: per-sample rows.
int plan_attention(sim *s, int q, int k, int v, int cu, int64_t T, int64_t Hq, int64_t Hkv, int64_t D, int64_t n_seq,
                   int64_t seq) {
    const int64_t Dp = (D + 15) / 16 * 16, BK = 192, g = Hq / Hkv, BQ = 96 / g > 1 ? 96 / g : 1, MQ = BQ * g;
    const int64_t NB = n_seq * ((seq + BK - 1) / BK);
    const int64_t units = n_seq * Hkv * ((seq + BQ - 1) / BQ);
    const int64_t fwd = (n_seq * 8 + T * Hq * Dp * 4 + Hkv * NB * D * BK * 4 + T * Hkv * Dp * 4 + units * 16 +
                         s->threads * (MQ * BK + MQ * Dp + 2 * ((MQ + 15) / 16 * 16)) * 4 + s->threads * 64);
    const int64_t bwd = (n_seq * 8 + 3 * T * Hq * Dp * 4 + 2 * Hkv * NB * D * BK * 4 + T * Hkv * Dp * 4 + T * Hq * 4 +
                         s->threads * (2 * MQ * BK + 2 * BK * Dp) * 4 + s->threads * 64);
    const int y = plan_new(s, T * Hq * D);
    const bool wants = !s->no_grad && (plan_rg(s, q) || plan_rg(s, k) || plan_rg(s, v));
    if (wants) take(s, 128), take(s, T * Hq * 4);  // attn_saved, lse
    else temp(s, 128 + 64 + T * Hq * 4);
    temp(s, fwd);
    record(s, (int[]){q, k, v, cu}, 4, &y, 1, 0, bwd);
    return y;
}

// s2s_cross_entropy_fused over N rows, M supervised, an output projection [V, C]: kept rows, labels and lse; with
// a gradient, h's share [M, C] (formed in the forward); the logits are chunked in a workspace.
int plan_ce_fused(sim *s, int h, int w, int labels, int64_t M, int64_t C, int64_t V) {
    const bool eager = !s->no_grad && (plan_rg(s, h) || plan_rg(s, w));
    const int y = plan_new(s, 0);
    take(s, 128);                                  // the saved struct
    take(s, (M + 1) * 4), take(s, (M + 1) * 4);    // rows, labels
    take(s, (M + 1) * 4);                          // lse
    if (eager && plan_rg(s, h)) take(s, (M * C + 1) * 4);
    ce_fused_args a = {.M = M, .C = C, .V = V};
    temp(s, (M + 1) * 4 + 64 + (int64_t)ce_fused_workspace_floats(&a, eager) * 4);
    record(s, (int[]){h, w, labels}, 3, &y, 1, 0, 0);
    return y;
}

// ---- regions, grad mode, backward --------------------------------------------------------------------------

void plan_no_grad(sim *s, bool begin) { s->no_grad += begin ? 1 : -1; }

arena_mark plan_mark(const sim *s) { return s->cur->used; }
void plan_rewind(sim *s, arena_mark m) { s->cur->used = m; }

// s2s_recompute: fn's intermediates go to scratch (rewound); the output is copied into the step arena.
int plan_region(sim *s, region_fn fn, const void *user, int x) {
    arena *prev = s->cur;
    tape *prev_tape = s->cur_tape;
    const int64_t mark = s->scratch.used;
    s->cur = &s->scratch;
    s->reg.n = 0;
    s->cur_tape = &s->reg;
    int tmp = -1;
    fn(s, user, x, &tmp);
    const bool needs = s->reg.n > 0;
    s->reg.n = 0;
    s->cur = prev;
    s->cur_tape = prev_tape;
    const int y = tensor(s, s->t[tmp].bytes, true);
    s->scratch.used = mark;
    if (!needs || s->no_grad) return y;
    take(s, sizeof(s2s_node)), take(s, 64);  // the node and its region_saved
    S2S_CHECK(s->n_regions < s->cap_regions, "plan: more recompute regions (%d) than layers", s->n_regions);
    region *r = &s->regions[s->n_regions++];
    *r = (region){fn, user, x};
    pnode n = {.n_in = 1, .in = {x}, .n_out = 1, .out = {y}, .reg = r};
    s->t[y].rg = true;
    push(s->cur_tape, n);
    return y;
}

static void run_tape(sim *s, tape *t, int from) {
    for (int i = t->n - 1; i >= from; i--) {
        pnode n = t->v[i];
        bool flowed = false;
        for (int k = 0; k < n.n_out; k++) flowed |= s->t[n.out[k]].grad;
        if (!flowed) continue;
        if (n.reg) {  // region_backward: input gradients in the step arena, then the replay in scratch
            for (int k = 0; k < n.n_in; k++) grad_of(s, n.in[k]);
            arena *prev = s->cur;
            const int64_t mark = s->scratch.used;
            s->cur = &s->scratch;
            const int base = s->reg.n;
            tape *prev_tape = s->cur_tape;
            s->cur_tape = &s->reg;
            int out = -1;
            n.reg->fn(s, n.reg->user, n.reg->x, &out);
            s->t[out].grad = true;  // the upstream gradient enters here (shared, not allocated)
            s->cur_tape = prev_tape;
            // the replay's inputs are the region's own: their gradients were allocated above, in the step arena
            run_tape(s, &s->reg, base);
            s->reg.n = base;
            s->cur = prev;
            s->scratch.used = mark;
            continue;
        }
        for (int k = 0; k < n.n_in; k++) grad_of(s, n.in[k]);
        if (n.bwd_keep) take(s, n.bwd_keep);
        if (n.bwd_temp) temp(s, n.bwd_temp);
    }
}

void plan_backward(sim *s, int loss) {
    grad_of(s, loss);
    run_tape(s, &s->top, 0);
}

sim *plan_sim_new(int threads, int max_regions, int elt) {
    sim *s = s2s_calloc(1, sizeof *s);
    s->elt = elt;
    s->threads = threads > 0 ? threads : 1;
    s->cur = &s->step;
    s->cur_tape = &s->top;
    s->cap_regions = max_regions > 0 ? max_regions : 1;
    s->regions = s2s_calloc((size_t)s->cap_regions, sizeof *s->regions);
    return s;
}

void plan_sim_peak(const sim *s, int64_t *step, int64_t *scratch) {
    *step = s->step.peak;
    *scratch = s->scratch.peak;
}

void plan_sim_free(sim *s) {
    free(s->t), free(s->top.v), free(s->reg.v), free(s->regions);
    free(s);
}
