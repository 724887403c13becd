// tape.c — recording, reverse-mode backward, no-grad scopes and recompute regions.
#include <string.h>
#include "check.h"
#include "ctx.h"
#include "device.h"

bool s2s_grad_enabled(const s2s_ctx *ctx) { return ctx->no_grad_depth == 0; }
void s2s_no_grad_begin(s2s_ctx *ctx) { ctx->no_grad_depth++; }
void s2s_no_grad_end(s2s_ctx *ctx) {
    S2S_CHECK(ctx->no_grad_depth > 0, "s2s_no_grad_end without a matching begin");
    ctx->no_grad_depth--;
}

static void tape_push(s2s_tape *t, s2s_node *n) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->nodes = s2s_realloc(t->nodes, (size_t)t->cap * sizeof *t->nodes);
    }
    t->nodes[t->n++] = n;
}

s2s_node *s2s_record(s2s_ctx *ctx, const char *op, s2s_backward_fn bw, s2s_tensor **in, int n_in,
                     s2s_tensor **out, int n_out) {
    S2S_CHECK(n_in <= S2S_NODE_MAX_IN && n_out <= S2S_NODE_MAX_OUT, "op %s: too many operands", op);
    if (!s2s_grad_enabled(ctx)) return NULL;
    bool any = false;
    for (int k = 0; k < n_in; k++) any |= in[k] && in[k]->requires_grad;
    if (!any) return NULL;  // nothing trainable upstream: this op never needs a backward
    s2s_node *n = s2s_arena_alloc_host(ctx->cur, sizeof *n);  // host: the tape walks it
    memset(n, 0, sizeof *n);
    n->op = op;
    n->backward = bw;
    n->n_in = n_in;
    n->n_out = n_out;
    for (int k = 0; k < n_in; k++) n->in[k] = in[k];
    if (ctx->first_use)  // the node goes to ctx->tape at this position (a region's node once the region ends)
        for (int k = 0; k < n_in; k++)
            if (in[k] && in[k]->track > 0 && ctx->first_use[in[k]->track - 1] > ctx->tape.n)
                ctx->first_use[in[k]->track - 1] = ctx->tape.n;
    for (int k = 0; k < n_out; k++) {
        n->out[k] = out[k];
        out[k]->requires_grad = true;
    }
    tape_push(ctx->cur_tape, n);
    ctx->stats.nodes_recorded++;
    return n;
}

static void tape_run_backward(s2s_ctx *ctx, s2s_tape *tape, bool top) {
    for (int i = tape->n - 1; i >= 0; i--) {
        s2s_node *n = tape->nodes[i];
        bool flowed = false;
        for (int k = 0; k < n->n_out; k++) flowed |= n->out[k]->grad != NULL;
        if (!flowed && n->run_always) {
            for (int k = 0; k < n->n_out; k++) s2s_grad(ctx, n->out[k]);  // zero upstream gradient
        } else if (!flowed) {
            ctx->stats.nodes_skipped++;
            if (top && ctx->on_node) ctx->on_node(ctx->on_node_user, i);
            continue;
        }
        n->backward(ctx, n);
        ctx->stats.nodes_run++;
        if (top && ctx->on_node) ctx->on_node(ctx->on_node_user, i);
    }
}

void s2s_backward(s2s_ctx *ctx, s2s_tensor *y, const float *dy) {
    S2S_CHECK(y->requires_grad, "backward from a tensor that needs no gradient: nothing in its "
              "history is trainable (are all parameters frozen, or was it computed under no_grad?)");
    S2S_CHECK(!ctx->in_region, "backward inside a recompute region");
    float *g = s2s_grad(ctx, y);
    int64_t n = s2s_numel(y);
    if (dy) s2s_dev_copy(y->device, g, S2S_CPU, dy, (size_t)n * sizeof(float));
    else if (y->device == S2S_CPU) {
        for (int64_t i = 0; i < n; i++) g[i] = 1.0f;
    } else {
        float *ones = s2s_malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
        s2s_dev_copy(y->device, g, S2S_CPU, ones, (size_t)n * sizeof(float));
        free(ones);
    }
    tape_run_backward(ctx, &ctx->tape, true);
    ctx->tape.n = 0;  // consumed: a second backward would double-count
}

// ---- recompute regions ---------------------------------------------------------------------------

typedef struct {
    s2s_region_fn fn;
    void *user;
} region_saved;

static void region_backward(s2s_ctx *ctx, s2s_node *n) {
    region_saved *rs = n->saved;
    // Input gradients must outlive the region: allocate them in the step arena before switching.
    for (int k = 0; k < n->n_in; k++) s2s_grad_if(ctx, n->in[k]);
    s2s_arena_mark mark = s2s_arena_get_mark(&ctx->scratch);
    s2s_arena *prev_arena = ctx->cur;
    s2s_tape *prev_tape = ctx->cur_tape;
    ctx->cur = &ctx->scratch;
    ctx->region_tape.n = 0;
    ctx->cur_tape = &ctx->region_tape;
    ctx->in_region++;

    s2s_tensor *outs[S2S_NODE_MAX_OUT] = {0};
    rs->fn(ctx, rs->user, n->in, n->n_in, outs, n->n_out);
    for (int k = 0; k < n->n_out; k++) {
        S2S_CHECK(outs[k] && s2s_same_shape(outs[k], n->out[k]),
                  "recompute region (%s) produced a different output shape on re-run: its function "
                  "must be deterministic", n->op);
        outs[k]->grad = n->out[k]->grad;  // upstream gradient enters the recomputed graph here
    }
    tape_run_backward(ctx, &ctx->region_tape, false);
    ctx->region_tape.n = 0;

    ctx->in_region--;
    ctx->cur_tape = prev_tape;
    ctx->cur = prev_arena;
    s2s_arena_rewind(&ctx->scratch, mark);
}

void s2s_recompute(s2s_ctx *ctx, s2s_region_fn fn, void *user, s2s_tensor **ins, int n_in,
                   s2s_tensor **outs, int n_out) {
    S2S_CHECK(!ctx->in_region, "recompute regions do not nest");
    S2S_CHECK(n_out >= 1 && n_out <= S2S_NODE_MAX_OUT, "a region has 1..%d outputs", S2S_NODE_MAX_OUT);
    // Forward: intermediates go to scratch and are dropped; a throwaway tape tells us whether
    // anything inside needs a gradient.
    s2s_arena_mark mark = s2s_arena_get_mark(&ctx->scratch);
    s2s_arena *prev_arena = ctx->cur;
    s2s_tape *prev_tape = ctx->cur_tape;
    ctx->cur = &ctx->scratch;
    ctx->region_tape.n = 0;
    ctx->cur_tape = &ctx->region_tape;
    ctx->in_region++;
    int64_t recorded_before = ctx->stats.nodes_recorded;
    s2s_tensor *tmp[S2S_NODE_MAX_OUT] = {0};
    fn(ctx, user, ins, n_in, tmp, n_out);
    bool needs_grad = ctx->region_tape.n > 0;
    ctx->stats.nodes_recorded = recorded_before;
    ctx->region_tape.n = 0;
    ctx->in_region--;
    ctx->cur_tape = prev_tape;
    ctx->cur = prev_arena;
    // Outputs are copied out of scratch into the step arena before the scratch is rewound.
    for (int k = 0; k < n_out; k++) {
        S2S_CHECK(tmp[k], "recompute region function left output %d unset", k);
        outs[k] = s2s_new(ctx, tmp[k]->dtype, tmp[k]->ndim, tmp[k]->shape);
        s2s_dev_copy(ctx->device, outs[k]->data, ctx->device, tmp[k]->data, s2s_nbytes(tmp[k]));
    }
    s2s_arena_rewind(&ctx->scratch, mark);
    if (!needs_grad || !s2s_grad_enabled(ctx)) return;
    // Record the region as one node. Inputs that need no grad are still kept (the re-run reads them).
    s2s_node *n = s2s_arena_alloc_host(ctx->cur, sizeof *n);  // host: the tape walks it
    memset(n, 0, sizeof *n);
    n->op = "recompute_region";
    n->backward = region_backward;
    n->n_in = n_in;
    n->n_out = n_out;
    for (int k = 0; k < n_in; k++) n->in[k] = ins[k];
    for (int k = 0; k < n_out; k++) {
        n->out[k] = outs[k];
        outs[k]->requires_grad = true;
    }
    region_saved *rs = s2s_arena_alloc_host(ctx->cur, sizeof *rs);
    rs->fn = fn;
    rs->user = user;
    n->saved = rs;
    tape_push(ctx->cur_tape, n);
    ctx->stats.nodes_recorded++;
}
