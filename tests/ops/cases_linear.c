#include "opcheck.h"

static void case_linear(oc_case *c) {
    c->out[0] = s2s_linear(c->ctx, oc_in(c, "x"), oc_in(c, "w"), oc_in_opt(c, "b"));
    c->n_out = 1;
}

static void case_bmm(oc_case *c) {
    c->out[0] = s2s_bmm(c->ctx, oc_in(c, "a"), oc_in(c, "b"), oc_attr(c, "trans_b", 0) != 0);
    c->n_out = 1;
}

static void case_embedding(oc_case *c) {
    c->out[0] = s2s_embedding(c->ctx, oc_in(c, "ids"), oc_in(c, "w"));
    c->n_out = 1;
}

const oc_entry oc_cases_linear[] = {{"linear", case_linear}, {"bmm", case_bmm}, {"embedding", case_embedding}, {0}};
