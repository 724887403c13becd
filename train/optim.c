#include "optim.h"
#include "autograd/check.h"

void s2s_adam_init(s2s_adam_state *s, const s2s_params *P) {
    s->n = P->n;
    s->step = 0;
    s->cfg = (s2s_adamw_cfg){.lr = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    s->m = s2s_calloc((size_t)P->n, sizeof(float *));
    s->v = s2s_calloc((size_t)P->n, sizeof(float *));
    for (int i = 0; i < P->n; i++) {
        if (!P->items[i].trainable) continue;
        s->m[i] = s2s_calloc((size_t)s2s_numel(P->items[i].t), sizeof(float));
        s->v[i] = s2s_calloc((size_t)s2s_numel(P->items[i].t), sizeof(float));
    }
}

void s2s_adam_free(s2s_adam_state *s) {
    for (int i = 0; i < s->n; i++) {
        free(s->m[i]);
        free(s->v[i]);
    }
    free(s->m);
    free(s->v);
}

double s2s_adam_step(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, float lr, double max_norm) {
    S2S_CHECK(P->n == s->n, "optimizer state made for %d parameters, registry has %d", s->n, P->n);
    double norm = max_norm > 0 ? s2s_grad_clip(ctx, P, max_norm) : s2s_grad_norm(ctx, P);
    s->step++;
    s->cfg.lr = lr;
    for (int i = 0; i < P->n; i++) {
        s2s_param *p = &P->items[i];
        if (!p->trainable) continue;
        S2S_CHECK(s->m[i], "parameter %s became trainable after the optimizer was made", p->name);
        s2s_adamw_update(ctx, p->t->data, p->t->grad->data, s->m[i], s->v[i], s2s_numel(p->t), s->cfg,
                         p->weight_decay, s->step);
    }
    s2s_params_zero_grad(P);
    return norm;
}
