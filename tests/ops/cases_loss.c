// cases_loss.c — opcheck cases for softmax and the losses (tests/ops/test_loss.py drives them).
#include "opcheck.h"
#include "autograd/check.h"

static void case_softmax(oc_case *c) {
    c->out[0] = s2s_softmax(c->ctx, oc_in(c, "x"));
    c->n_out = 1;
}

static void case_cross_entropy(oc_case *c) {
    c->out[0] = s2s_cross_entropy(c->ctx, oc_in(c, "logits"), oc_in(c, "labels"), (int)oc_attr(c, "ignore_index", -100));
    c->n_out = 1;
}

static s2s_tensor *ce_fused(oc_case *c) {
    return s2s_cross_entropy_fused(c->ctx, oc_in(c, "h"), oc_in(c, "w"), oc_in(c, "labels"),
                                   (int)oc_attr(c, "ignore_index", -100), (float)oc_attr(c, "weight", 1.0));
}

static s2s_tensor *kl_fused(oc_case *c) {
    return s2s_kl_fused(c->ctx, oc_in(c, "h_s"), oc_in(c, "h_t"), oc_in(c, "w"), oc_in(c, "mask"),
                        (float)oc_attr(c, "T", 1.0));
}

static void case_cross_entropy_fused(oc_case *c) {
    c->out[0] = ce_fused(c);
    c->n_out = 1;
}

// The same loss the unfused way (linear, then cross_entropy on [N, V] logits): the equality
// reference for the fused op, and the memory-test mutant whose peak grows with N * V.
static void case_ce_unfused(oc_case *c) {
    s2s_tensor *logits = s2s_linear(c->ctx, oc_in(c, "h"), oc_in(c, "w"), NULL);  // [N, V]
    c->out[0] = s2s_cross_entropy(c->ctx, logits, oc_in(c, "labels"), (int)oc_attr(c, "ignore_index", -100));
    c->n_out = 1;
}

static void case_kl_fused(oc_case *c) {
    c->out[0] = kl_fused(c);
    c->n_out = 1;
}

// Inputs marked requires-grad, forward under no_grad: the loss-only path, nothing recorded.
static void case_ce_fused_nograd(oc_case *c) {
    oc_in(c, "h")->requires_grad = oc_in(c, "w")->requires_grad = true;
    s2s_no_grad_begin(c->ctx);
    c->out[0] = ce_fused(c);
    s2s_no_grad_end(c->ctx);
    S2S_CHECK(!c->out[0]->requires_grad && c->ctx->tape.n == 0, "no_grad forward recorded a node");
    c->n_out = 1;
}

static void region_ce(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    outs[0] = s2s_cross_entropy_fused(ctx, ins[0], ins[1], ins[2], -100, 1.0f);
}
static void region_kl(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    outs[0] = s2s_kl_fused(ctx, ins[0], ins[1], ins[2], ins[3], 2.0f);
}

// A fused loss inside a recompute region must be refused (its forward has a side effect).
static void case_ce_fused_region(oc_case *c) {
    s2s_tensor *ins[3] = {oc_in(c, "h"), oc_in(c, "w"), oc_in(c, "labels")}, *outs[1];
    ins[0]->requires_grad = true;
    s2s_recompute(c->ctx, region_ce, NULL, ins, 3, outs, 1);
    c->out[0] = outs[0];
    c->n_out = 1;
}
static void case_kl_fused_region(oc_case *c) {
    s2s_tensor *ins[4] = {oc_in(c, "h_s"), oc_in(c, "h_t"), oc_in(c, "w"), oc_in(c, "mask")}, *outs[1];
    ins[0]->requires_grad = true;
    s2s_recompute(c->ctx, region_kl, NULL, ins, 4, outs, 1);
    c->out[0] = outs[0];
    c->n_out = 1;
}

// pending_eager accounting: a forward that wrote w.grad leaves 1 pending; backward clears it and a
// step reset then succeeds. With attribute drop=1 the step is reset without backward: must abort.
static void case_ce_fused_pending(oc_case *c) {
    s2s_ctx *ctx = c->ctx;
    s2s_tensor *h = oc_in(c, "h"), *w = oc_in(c, "w");
    h->requires_grad = w->requires_grad = true;
    s2s_tensor *y = ce_fused(c);
    S2S_CHECK(ctx->pending_eager == 1, "pending_eager %d after a forward that wrote w.grad", ctx->pending_eager);
    float loss = ((float *)y->data)[0];
    if (oc_attr(c, "drop", 0) == 0) {
        s2s_backward(ctx, y, NULL);
        S2S_CHECK(ctx->pending_eager == 0, "pending_eager %d after backward", ctx->pending_eager);
    }
    s2s_ctx_step_reset(ctx);
    c->out[0] = s2s_new(ctx, S2S_F32, 0, NULL);
    ((float *)c->out[0]->data)[0] = loss;
    c->n_out = 1;
}

const oc_entry oc_cases_loss[] = {
    {"softmax", case_softmax},
    {"cross_entropy", case_cross_entropy},
    {"cross_entropy_fused", case_cross_entropy_fused},
    {"ce_unfused", case_ce_unfused},
    {"kl_fused", case_kl_fused},
    {"ce_fused_nograd", case_ce_fused_nograd},
    {"ce_fused_region", case_ce_fused_region},
    {"kl_fused_region", case_kl_fused_region},
    {"ce_fused_pending", case_ce_fused_pending},
    {0},
};
