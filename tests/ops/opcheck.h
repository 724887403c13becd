// opcheck.h — the C side of the op conformance tests. The Python driver (harness.py) writes a case
// file (safetensors: inputs, upstream gradients "dy"/"dy1", metadata with the op name, attributes and
// which inputs require grad); opcheck runs the op forward and backward on the s2s CPU path and writes
// the outputs and gradients back. Each op family registers its cases in its own cases_*.c file.
#pragma once
#include "autograd/ctx.h"
#include "model/safetensors.h"
#include "ops/ops.h"

typedef struct oc_case {
    s2s_ctx *ctx;
    s2s_st_file *in;
    s2s_tensor *leaf[16];   // inputs, by order of appearance in the file
    const char *leaf_name[16];
    int n_leaf;
    s2s_tensor *out[4];     // what the op produced (set by the case function): "out", "out1", ...
    int n_out;
} oc_case;

// The input tensor called name (must exist), as a leaf; requires_grad if listed in metadata "grad".
s2s_tensor *oc_in(oc_case *c, const char *name);
s2s_tensor *oc_in_opt(oc_case *c, const char *name);  // NULL if absent
double oc_attr(oc_case *c, const char *key, double dflt);

typedef void (*oc_fn)(oc_case *c);
typedef struct { const char *name; oc_fn fn; } oc_entry;

// Each cases_*.c defines a NULL-terminated table; opcheck.c lists the tables.
extern const oc_entry oc_cases_linear[];
extern const oc_entry oc_cases_elementwise[];
extern const oc_entry oc_cases_norm[];
extern const oc_entry oc_cases_attention[];
extern const oc_entry oc_cases_loss[];
extern const oc_entry oc_cases_conv[];
extern const oc_entry oc_cases_shape[];
extern const oc_entry oc_cases_optim[];
