// opcheck CASE.safetensors OUT.safetensors — run one op case (see opcheck.h).
#include "opcheck.h"
#include <stdio.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"

static const oc_entry *tables[] = {oc_cases_linear, oc_cases_elementwise, oc_cases_norm, oc_cases_attention,
                                   oc_cases_loss,   oc_cases_conv,        oc_cases_shape, oc_cases_optim};

static bool listed(const char *list, const char *name) {
    if (!list) return false;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

s2s_tensor *oc_in_opt(oc_case *c, const char *name) {
    for (int i = 0; i < c->n_leaf; i++)
        if (strcmp(c->leaf_name[i], name) == 0) return c->leaf[i];
    const s2s_st_entry *e = s2s_st_find(c->in, name);
    if (!e) return NULL;
    S2S_CHECK(c->n_leaf < 16, "too many inputs");
    s2s_tensor *t = s2s_new(c->ctx, e->dtype, e->ndim, e->shape);
    memcpy(t->data, e->data, e->nbytes);
    t->requires_grad = listed(s2s_st_meta(c->in, "grad"), name);
    t->name = e->name;
    c->leaf[c->n_leaf] = t;
    c->leaf_name[c->n_leaf++] = e->name;
    return t;
}

s2s_tensor *oc_in(oc_case *c, const char *name) {
    s2s_tensor *t = oc_in_opt(c, name);
    S2S_CHECK(t, "case file has no input '%s'", name);
    return t;
}

double oc_attr(oc_case *c, const char *key, double dflt) {
    const char *v = s2s_st_meta(c->in, key);
    return v ? atof(v) : dflt;
}

int main(int argc, char **argv) {
    S2S_CHECK(argc == 3, "usage: opcheck CASE.safetensors OUT.safetensors");
    char err[512];
    s2s_st_file f;
    S2S_CHECK(s2s_st_open(&f, argv[1], err, sizeof err) == 0, "%s", err);
    const char *op = s2s_st_meta(&f, "op");
    S2S_CHECK(op, "%s: no 'op' in metadata", argv[1]);
    oc_fn fn = NULL;
    for (size_t t = 0; t < sizeof tables / sizeof *tables && !fn; t++)
        for (const oc_entry *e = tables[t]; e->name; e++)
            if (strcmp(e->name, op) == 0) fn = e->fn;
    S2S_CHECK(fn, "opcheck has no case '%s'", op);

    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU});
    oc_case c = {.ctx = ctx, .in = &f};
    fn(&c);
    S2S_CHECK(c.n_out >= 1 && c.n_out <= 4, "case %s set %d outputs (1..4)", op, c.n_out);

    // Backward with the given upstream gradients (any output that needs one).
    int want_bwd = s2s_st_meta(&f, "grad") != NULL;
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    const char *outn[4] = {"out", "out1", "out2", "out3"}, *dyn[4] = {"dy", "dy1", "dy2", "dy3"};
    for (int k = 0; k < c.n_out; k++)
        s2s_st_writer_add(&w, outn[k], c.out[k]->dtype, c.out[k]->ndim, c.out[k]->shape, c.out[k]->data);
    if (want_bwd) {
        // Seed every output's grad, then backward from the first (the tape sees all seeds).
        for (int k = 0; k < c.n_out; k++) {
            const s2s_st_entry *e = s2s_st_find(&f, dyn[k]);
            if (!e || !c.out[k]->requires_grad) continue;
            S2S_CHECK(e->nbytes == s2s_nbytes(c.out[k]), "%s size does not match output %d", dyn[k], k);
            if (k == 0) continue;
            memcpy(s2s_grad(ctx, c.out[k]), e->data, e->nbytes);
        }
        const s2s_st_entry *e0 = s2s_st_find(&f, "dy");
        S2S_CHECK(c.out[0]->requires_grad, "op output needs no grad: are the 'grad' inputs right?");
        s2s_backward(ctx, c.out[0], e0 ? (const float *)e0->data : NULL);
        char name[256];
        for (int i = 0; i < c.n_leaf; i++) {
            s2s_tensor *t = c.leaf[i];
            if (!t->requires_grad) continue;
            S2S_CHECK(t->grad, "no gradient reached input %s", c.leaf_name[i]);
            snprintf(name, sizeof name, "grad.%s", c.leaf_name[i]);
            s2s_st_writer_add(&w, name, S2S_F32, t->ndim, t->shape, t->grad->data);
        }
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%zu", s2s_ctx_peak_bytes(ctx));
    s2s_st_writer_meta(&w, "peak_bytes", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)ctx->stats.gemm_calls);
    s2s_st_writer_meta(&w, "gemm_calls", buf);
    S2S_CHECK(s2s_st_writer_write(&w, argv[2], err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    s2s_st_close(&f);
    s2s_ctx_free(ctx);
    return 0;
}
