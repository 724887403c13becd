#include "opcheck.h"

static void case_conv1d(oc_case *c) {
    c->out[0] = s2s_conv1d(c->ctx, oc_in(c, "x"), oc_in(c, "w"), oc_in_opt(c, "b"), (int)oc_attr(c, "stride", 1),
                           (int)oc_attr(c, "pad", 0));
    c->n_out = 1;
}

static void case_avgpool1d(oc_case *c) {
    c->out[0] = s2s_avgpool1d(c->ctx, oc_in(c, "x"), (int)oc_attr(c, "k", 2), (int)oc_attr(c, "stride", 2));
    c->n_out = 1;
}

const oc_entry oc_cases_conv[] = {{"conv1d", case_conv1d}, {"avgpool1d", case_avgpool1d}, {0}};
