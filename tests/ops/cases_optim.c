// Optimizer cases: not taped ops, so each case runs the whole multi-step procedure and outputs the
// final state (see test_optim.py for the inputs).
#include <string.h>
#include "autograd/check.h"
#include "opcheck.h"

// A copy of input `name` the case may modify (the leaf keeps the original).
static s2s_tensor *copy_in(oc_case *c, const char *name) {
    s2s_tensor *t = oc_in(c, name);
    s2s_tensor *u = s2s_new_like(c->ctx, t);
    memcpy(u->data, t->data, s2s_nbytes(t));
    return u;
}

// p [n], g [S, n], lr [S], optional m0 / v0 [n] with attr step0 (a resumed run), optional second
// parameter q [nq] with gradients gq [S, nq] that never takes weight decay.
// out = p, out1 = m, out2 = v (of p), out3 = q.
static void case_adamw(oc_case *c) {
    s2s_tensor *p = copy_in(c, "p"), *g = oc_in(c, "g"), *lr = oc_in(c, "lr");
    int64_t n = s2s_numel(p), S = lr->shape[0];
    S2S_CHECK(g->ndim == 2 && g->shape[0] == S && g->shape[1] == n, "adamw case: g must be [S, n]");
    s2s_tensor *m = oc_in_opt(c, "m0") ? copy_in(c, "m0") : s2s_zeros_like(c->ctx, p);
    s2s_tensor *v = oc_in_opt(c, "v0") ? copy_in(c, "v0") : s2s_zeros_like(c->ctx, p);
    s2s_tensor *q = oc_in_opt(c, "q") ? copy_in(c, "q") : NULL, *gq = q ? oc_in(c, "gq") : NULL;
    s2s_tensor *mq = q ? s2s_zeros_like(c->ctx, q) : NULL, *vq = q ? s2s_zeros_like(c->ctx, q) : NULL;
    int64_t step0 = (int64_t)oc_attr(c, "step0", 0);
    bool decay = oc_attr(c, "decay", 1) != 0;
    for (int64_t s = 0; s < S; s++) {
        s2s_adamw_cfg cfg = {.lr = ((float *)lr->data)[s], .beta1 = oc_attr(c, "beta1", 0.9),
                             .beta2 = oc_attr(c, "beta2", 0.999), .eps = oc_attr(c, "eps", 1e-8),
                             .weight_decay = oc_attr(c, "wd", 0.0)};
        s2s_adamw_update(c->ctx, p->data, (float *)g->data + s * n, m->data, v->data, n, cfg, decay, step0 + s + 1);
        if (q) {
            int64_t nq = s2s_numel(q);
            s2s_adamw_update(c->ctx, q->data, (float *)gq->data + s * nq, mq->data, vq->data, nq, cfg, false, s + 1);
        }
    }
    c->out[0] = p;
    c->out[1] = m;
    c->out[2] = v;
    c->n_out = 3;
    if (q) {
        c->out[3] = q;
        c->n_out = 4;
    }
}

// Gradients g0, g1, ... of trainable parameters (any shapes) plus gf, the would-be gradient of a
// frozen parameter, which the registry must ignore. attr max_norm.
// out = all clipped gradients flattened and concatenated, out1 = norm before, out2 = norm after.
static void case_grad_clip(oc_case *c) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    int64_t total = 0;
    char name[16];
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof name, "g%d", i);
        s2s_tensor *g = oc_in_opt(c, name);
        if (!g) break;
        s2s_tensor *t = s2s_params_add(&P, name, "m", g->ndim, g->shape, true, true);
        memcpy(t->grad->data, g->data, s2s_nbytes(g));
        total += s2s_numel(g);
        if (i == 0) {  // a frozen parameter sits between trainable ones in registry order
            s2s_tensor *gf = oc_in(c, "gf");
            s2s_params_add(&P, "frozen", "m", gf->ndim, gf->shape, false, true);
        }
    }
    S2S_CHECK(s2s_params_find(&P, "frozen")->t->grad == NULL, "a frozen parameter must hold no gradient");
    // The norm must not depend on the thread count (resume on another machine size clips the same).
    int nt = c->ctx->n_threads;
    s2s_ctx_set_threads(c->ctx, 1);
    double n1 = s2s_grad_norm(c->ctx, &P);
    s2s_ctx_set_threads(c->ctx, 3);
    double n3 = s2s_grad_norm(c->ctx, &P);
    s2s_ctx_set_threads(c->ctx, nt);
    S2S_CHECK(n1 == n3, "grad_norm differs between 1 and 3 threads: %.17g vs %.17g", n1, n3);

    double before = s2s_grad_clip(c->ctx, &P, oc_attr(c, "max_norm", 1.0));
    double after = s2s_grad_norm(c->ctx, &P);
    s2s_tensor *flat = s2s_new1(c->ctx, S2S_F32, total);  // [sum of numels]
    int64_t off = 0;
    for (int i = 0; i < P.n; i++) {
        if (!P.items[i].trainable) continue;
        int64_t k = s2s_numel(P.items[i].t);
        memcpy((float *)flat->data + off, P.items[i].t->grad->data, (size_t)k * sizeof(float));
        off += k;
    }
    s2s_tensor *nb = s2s_new1(c->ctx, S2S_F32, 1), *na = s2s_new1(c->ctx, S2S_F32, 1);  // [1] each
    ((float *)nb->data)[0] = (float)before;
    ((float *)na->data)[0] = (float)after;
    s2s_params_free(&P);
    c->out[0] = flat;
    c->out[1] = nb;
    c->out[2] = na;
    c->n_out = 3;
}

const oc_entry oc_cases_optim[] = {{"adamw", case_adamw}, {"grad_clip", case_grad_clip}, {0}};
