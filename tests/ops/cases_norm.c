#include "opcheck.h"

static void case_rmsnorm(oc_case *c) {
    c->out[0] = s2s_rmsnorm(c->ctx, oc_in(c, "x"), oc_in(c, "w"), (float)oc_attr(c, "eps", 1e-6));
    c->n_out = 1;
}

static void case_layernorm(oc_case *c) {
    c->out[0] = s2s_layernorm(c->ctx, oc_in(c, "x"), oc_in(c, "w"), oc_in_opt(c, "b"), (float)oc_attr(c, "eps", 1e-5));
    c->n_out = 1;
}

const oc_entry oc_cases_norm[] = {{"rmsnorm", case_rmsnorm}, {"layernorm", case_layernorm}, {0}};
