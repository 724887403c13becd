// cases_attention.c — opcheck cases for s2s_attention, s2s_attention_kv and s2s_rope (driven by
// test_attention.py, test_attention_kv.py and test_rope.py).
#include "opcheck.h"

// q, k, v, optional cu_seqlens; attrs causal (0/1) and scale.
static void case_attention(oc_case *c) {
    c->out[0] = s2s_attention(c->ctx, oc_in(c, "q"), oc_in(c, "k"), oc_in(c, "v"), oc_in_opt(c, "cu"),
                              oc_attr(c, "causal", 0) != 0, (float)oc_attr(c, "scale", 0));
    c->n_out = 1;
}

// q [Tq, Hq, D], k, v [Tk, Hkv, D]; attr scale.
static void case_attention_kv(oc_case *c) {
    c->out[0] = s2s_attention_kv(c->ctx, oc_in(c, "q"), oc_in(c, "k"), oc_in(c, "v"), (float)oc_attr(c, "scale", 0));
    c->n_out = 1;
}

static void case_rope(oc_case *c) {
    c->out[0] = s2s_rope(c->ctx, oc_in(c, "x"), oc_in(c, "pos"), (float)oc_attr(c, "theta", 10000));
    c->n_out = 1;
}

const oc_entry oc_cases_attention[] = {
    {"attention", case_attention}, {"attention_kv", case_attention_kv}, {"rope", case_rope}, {0}};
