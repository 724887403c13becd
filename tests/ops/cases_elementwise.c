#include "opcheck.h"

static void case_add(oc_case *c) {
    c->out[0] = s2s_add(c->ctx, oc_in(c, "a"), oc_in(c, "b"));
    c->n_out = 1;
}

static void case_mul(oc_case *c) {
    c->out[0] = s2s_mul(c->ctx, oc_in(c, "a"), oc_in(c, "b"));
    c->n_out = 1;
}

static void case_scale(oc_case *c) {
    c->out[0] = s2s_scale(c->ctx, oc_in(c, "a"), (float)oc_attr(c, "s", 1.0));
    c->n_out = 1;
}

static void case_silu_mul(oc_case *c) {
    c->out[0] = s2s_silu_mul(c->ctx, oc_in(c, "gate"), oc_in(c, "up"));
    c->n_out = 1;
}

static void case_gelu(oc_case *c) {
    c->out[0] = s2s_gelu(c->ctx, oc_in(c, "x"));
    c->n_out = 1;
}

static void case_glu(oc_case *c) {
    c->out[0] = s2s_glu(c->ctx, oc_in(c, "x"), (int)oc_attr(c, "axis", -1));
    c->n_out = 1;
}

const oc_entry oc_cases_elementwise[] = {{"add", case_add},           {"mul", case_mul},   {"scale", case_scale},
                                         {"silu_mul", case_silu_mul}, {"gelu", case_gelu}, {"glu", case_glu},
                                         {0}};
