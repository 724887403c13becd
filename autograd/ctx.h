// ctx.h — the per-run context every op takes: the device, the step arena, the tape, grad mode and
// counters. There is no global mutable state in s2s: two contexts never share anything.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "arena.h"
#include "tensor.h"

#define S2S_NODE_MAX_IN 8
#define S2S_NODE_MAX_OUT 2

typedef struct s2s_ctx s2s_ctx;
typedef struct s2s_node s2s_node;
typedef void (*s2s_backward_fn)(s2s_ctx *ctx, s2s_node *n);

// One recorded op. `in`/`out` point at tensors; `saved` is op-private state in the arena;
// `i`/`f` hold small scalar attributes so most ops need no `saved` at all.
struct s2s_node {
    const char *op;
    s2s_backward_fn backward;
    s2s_tensor *in[S2S_NODE_MAX_IN];
    s2s_tensor *out[S2S_NODE_MAX_OUT];
    int n_in, n_out;
    void *saved;
    int64_t i[8];
    double f[4];
    // The node changed state in forward (a fused loss applied a weight gradient eagerly): backward runs
    // it even when no gradient reached it, with a zero upstream gradient, so it can undo that.
    bool run_always;
};

typedef struct s2s_tape {
    s2s_node **nodes;
    int n, cap;
} s2s_tape;

// Counters the tests and benchmarks read: work done and work skipped.
typedef struct s2s_stats {
    int64_t gemm_calls;      // GEMM invocations (cblas or cuBLASLt)
    double gemm_flops;       // 2*M*N*K summed
    int64_t nodes_recorded;  // ops appended to the tape
    int64_t nodes_run;       // backward functions executed
    int64_t nodes_skipped;   // recorded nodes whose outputs received no gradient
} s2s_stats;

struct s2s_ctx {
    s2s_device device;
    int n_threads;
    s2s_arena arena;    // activations and activation gradients of the current step
    s2s_arena scratch;  // the inside of a recompute region; rewound after each region
    s2s_arena *cur;     // where s2s_new allocates now (arena or scratch)
    s2s_tape tape;
    s2s_tape *cur_tape;  // tape ops record onto (a region records onto its own)
    s2s_tape region_tape;  // reused by every region's recompute (no malloc in the steady state)
    int no_grad_depth;
    int in_region;
    int pending_eager;     // recorded nodes that applied weight gradients in forward, awaiting backward
    s2s_stats stats;
    // Backward progress, for overlapping communication with backward (train/grad_sync.h). While first_use is
    // set, recording an op notes in first_use[t->track - 1] the lowest top-level tape position that reads a
    // tracked tensor t (an op inside a recompute region counts at its region's position); during s2s_backward
    // on_node(user, i) runs after top-level node i's backward (or skip): from then on no node left can add to the
    // gradient of a tracked tensor whose first use is >= i.
    int32_t *first_use;
    void (*on_node)(void *user, int position);
    void *on_node_user;
    // Gradients on demand (ZeRO-2, train/grad_sync.h): a trainable parameter of a registry without gradient
    // memory (s2s_params_grad_on_demand) gets its t->grad from param_grad the first time an op writes to it.
    void (*param_grad)(void *user, s2s_tensor *param);
    void *param_grad_user;
    // Per-context CUDA state (cuBLASLt handle, workspace, error flags: ops/cuda/ctx_cuda.cu), created
    // on the first CUDA op. Autograd knows no op: whoever creates the state sets cuda_free, which
    // s2s_ctx_free calls.
    void *cuda;
    void (*cuda_free)(void *cuda);
};

typedef struct s2s_ctx_opts {
    s2s_device device;
    int n_threads;        // 0: leave OpenMP / OpenBLAS defaults
    size_t arena_bytes;   // initial arena size (it grows on demand, then stays)
    size_t scratch_bytes;
} s2s_ctx_opts;

s2s_ctx *s2s_ctx_new(s2s_ctx_opts o);
void s2s_ctx_free(s2s_ctx *ctx);
// End of step: drop the tape, reset the arenas. Fails if a tape holding nodes with side effects
// (fused losses that apply weight gradients eagerly) is dropped without backward.
void s2s_ctx_step_reset(s2s_ctx *ctx);
void s2s_ctx_set_threads(s2s_ctx *ctx, int n);

// ---- tensors -----------------------------------------------------------------------------------
// A new tensor on ctx->device in the current arena (uninitialised).
s2s_tensor *s2s_new(s2s_ctx *ctx, s2s_dtype dt, int ndim, const int64_t *shape);
s2s_tensor *s2s_new1(s2s_ctx *ctx, s2s_dtype dt, int64_t d0);
s2s_tensor *s2s_new2(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1);
s2s_tensor *s2s_new3(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1, int64_t d2);
s2s_tensor *s2s_new4(s2s_ctx *ctx, s2s_dtype dt, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
s2s_tensor *s2s_new_like(s2s_ctx *ctx, const s2s_tensor *t);
s2s_tensor *s2s_zeros_like(s2s_ctx *ctx, const s2s_tensor *t);
// The tensor's gradient buffer (f32, zero-filled on first use) in the current arena, or the
// parameter's persistent gradient.
float *s2s_grad(s2s_ctx *ctx, s2s_tensor *t);
// Gradient buffer only if t wants one, else NULL: what backward functions call for each input.
float *s2s_grad_if(s2s_ctx *ctx, s2s_tensor *t);
void *s2s_scratch_alloc(s2s_ctx *ctx, size_t bytes);  // op workspace in the current arena (on ctx->device)
// Host memory in the current arena (released with it), for what the host reads and writes: structs
// an op saves for its backward, tensor headers. On a CPU context it is the same as s2s_scratch_alloc.
void *s2s_host_alloc(s2s_ctx *ctx, size_t bytes);
size_t s2s_ctx_peak_bytes(const s2s_ctx *ctx);       // arena + scratch high-water marks

// ---- tape ----------------------------------------------------------------------------------------
bool s2s_grad_enabled(const s2s_ctx *ctx);
void s2s_no_grad_begin(s2s_ctx *ctx);
void s2s_no_grad_end(s2s_ctx *ctx);
// Record an op if grad mode is on and any input requires grad; marks outputs requires_grad.
// Returns the node (for attributes) or NULL when nothing was recorded.
s2s_node *s2s_record(s2s_ctx *ctx, const char *op, s2s_backward_fn bw, s2s_tensor **in, int n_in,
                     s2s_tensor **out, int n_out);
// Backward from a scalar (or any tensor given its upstream gradient dy; NULL dy means ones).
void s2s_backward(s2s_ctx *ctx, s2s_tensor *y, const float *dy);

// ---- recompute regions ---------------------------------------------------------------------------
// fn computes outs from ins (and any parameters it closes over through `user`). In forward it runs
// with its intermediates in the scratch arena, which is rewound afterwards: only ins and outs stay.
// In backward it runs again, records, back-propagates, and is rewound again. fn must be
// deterministic (same result both times); n_out <= S2S_NODE_MAX_OUT. `user` is kept and used again
// in backward: it must stay valid until then (not a loop-local variable).
typedef void (*s2s_region_fn)(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs,
                              int n_out);
void s2s_recompute(s2s_ctx *ctx, s2s_region_fn fn, void *user, s2s_tensor **ins, int n_in,
                   s2s_tensor **outs, int n_out);
