#include <stdio.h>
#include "opcheck.h"

static void case_reshape(oc_case *c) {
    int64_t shape[S2S_MAX_DIMS];
    int nd = (int)oc_attr(c, "ndim", 0);
    for (int d = 0; d < nd; d++) {
        char key[8];
        snprintf(key, sizeof key, "d%d", d);
        shape[d] = (int64_t)oc_attr(c, key, 1);
    }
    s2s_tensor *x = oc_in(c, "x");
    // twice = 1: y = reshape(x) + reshape(x), so x's gradient must accumulate from two reshape nodes
    // that alias its data.
    s2s_tensor *y = s2s_reshape(c->ctx, x, nd, shape);
    if (oc_attr(c, "twice", 0) != 0) y = s2s_add(c->ctx, y, s2s_reshape(c->ctx, x, nd, shape));
    c->out[0] = y;
    c->n_out = 1;
}

static void case_transpose(oc_case *c) {
    c->out[0] = s2s_transpose(c->ctx, oc_in(c, "x"), (int)oc_attr(c, "axis0", 0), (int)oc_attr(c, "axis1", 1));
    c->n_out = 1;
}

static void case_concat(oc_case *c) {
    int n = (int)oc_attr(c, "n", 1);
    s2s_tensor *xs[16];
    for (int k = 0; k < n && k < 16; k++) {
        char key[8];
        snprintf(key, sizeof key, "x%d", k);
        xs[k] = oc_in(c, key);
    }
    c->out[0] = s2s_concat(c->ctx, xs, n, (int)oc_attr(c, "axis", 0));
    c->n_out = 1;
}

static void case_slice(oc_case *c) {
    c->out[0] = s2s_slice(c->ctx, oc_in(c, "x"), (int)oc_attr(c, "axis", 0), (int64_t)oc_attr(c, "start", 0),
                          (int64_t)oc_attr(c, "len", 1));
    c->n_out = 1;
}

static void case_gather_rows(oc_case *c) {
    c->out[0] = s2s_gather_rows(c->ctx, oc_in(c, "x"), oc_in(c, "idx"));
    c->n_out = 1;
}

static void case_scatter_rows(oc_case *c) {
    c->out[0] = s2s_scatter_rows(c->ctx, oc_in(c, "base"), oc_in(c, "idx"), oc_in(c, "src"));
    c->n_out = 1;
}

const oc_entry oc_cases_shape[] = {{"reshape", case_reshape},         {"transpose", case_transpose},
                                   {"concat", case_concat},           {"slice", case_slice},
                                   {"gather_rows", case_gather_rows}, {"scatter_rows", case_scatter_rows},
                                   {0}};
