// lora.c — LoRA on the Qwen3 attention projections: the wrapped linear, attaching adapters, merging them.
// Conformance against PEFT: tests/unit/test_qwen3.c (fixture tests/fixtures/qwen3_lora).
#include "lora.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../autograd/rng.h"
#include "../base/mix.h"
#include "qwen3.h"

// ---- forward -----------------------------------------------------------------------------------------

// Inverted-dropout mask [T, in]: 0 with probability p, else 1/(1-p). A pure function of (seed, stream) so
// the re-run of a recompute region draws the same mask. Drawn on the host (a device-side generator would
// avoid the copy; masks are T x in floats per adapter, small next to the layer's activations).
static s2s_tensor *dropout_mask(s2s_ctx *ctx, const s2s_tensor *x, float p, s2s_lora_drop d) {
    s2s_tensor *m = s2s_new_like(ctx, x);  // m [T, in]
    const int64_t n = s2s_numel(x);
    float *v = ctx->device == S2S_CPU ? m->data : s2s_malloc((size_t)n * sizeof(float));
    s2s_rng r;
    s2s_rng_seed(&r, s2s_mix64(d.seed ^ s2s_mix64(d.stream + S2S_GOLDEN64)));
    // 32 random bits per element: p is resolved to 2^-32.
    const uint64_t cut = (uint64_t)ldexp((double)p, 32);
    const float keep = 1.0f / (1.0f - p);
    for (int64_t i = 0; i < n; i += 2) {
        uint64_t u = s2s_rng_u64(&r);
        v[i] = (u & 0xffffffffull) < cut ? 0.0f : keep;
        if (i + 1 < n) v[i + 1] = (u >> 32) < cut ? 0.0f : keep;
    }
    if (v != m->data) {
        s2s_dev_copy(ctx->device, m->data, S2S_CPU, v, (size_t)n * sizeof(float));
        free(v);
    }
    return m;
}

s2s_tensor *s2s_lora_linear(s2s_ctx *ctx, s2s_tensor *x, s2s_tensor *w, const s2s_lora *l, s2s_lora_drop drop) {
    s2s_tensor *y = s2s_linear(ctx, x, w, NULL);  // y [T, out]
    if (!l || !l->A) return y;
    s2s_tensor *xd = x;  // xd [T, in]
    if (drop.training && l->dropout > 0.0f) {
        S2S_CHECK(l->dropout < 1.0f, "lora: dropout %g must be below 1", l->dropout);
        xd = s2s_mul(ctx, x, dropout_mask(ctx, x, l->dropout, drop));
    }
    s2s_tensor *z = s2s_linear(ctx, s2s_linear(ctx, xd, l->A, NULL), l->B, NULL);  // z [T, out] via [T, r]
    return s2s_add(ctx, y, s2s_scale(ctx, z, l->scaling));  // PEFT: base + lora_B(lora_A(drop(x))) * scaling
}

// ---- attach ------------------------------------------------------------------------------------------

static const char *const proj_names[4] = {"q_proj", "k_proj", "v_proj", "o_proj"};

static s2s_lora *slot(s2s_qwen3_layer *L, int j) {
    s2s_lora *s[4] = {&L->lora_q, &L->lora_k, &L->lora_v, &L->lora_o};
    return s[j];
}

static s2s_tensor *base_weight(s2s_qwen3_layer *L, int j) {
    s2s_tensor *w[4] = {L->wq, L->wk, L->wv, L->wo};
    return w[j];
}

static void adapter_name(char *out, size_t n, const s2s_qwen3 *q, int64_t l, int j, char which) {
    int k = snprintf(out, n, "%smodel.layers.%lld.self_attn.%s.lora_%c.weight", q->prefix, (long long)l,
                     proj_names[j], which);
    S2S_CHECK(k > 0 && k < (int)n, "lora: parameter name too long");
}

int s2s_lora_attach(s2s_params *p, s2s_qwen3 *q, const s2s_lora_config *c, uint64_t seed) {
    S2S_CHECK(c->r > 0, "lora: rank r must be positive (got %d)", c->r);
    S2S_CHECK(c->alpha > 0, "lora: lora_alpha must be positive (got %g)", c->alpha);
    S2S_CHECK(c->dropout >= 0 && c->dropout < 1, "lora: lora_dropout must be in [0, 1) (got %g)", c->dropout);
    const int targets = c->targets ? c->targets : S2S_LORA_QKVO;
    // PEFT trains the adapters only: the whole base model is frozen first, then adapters are added trainable.
    s2s_params_set_trainable(p, q->prefix, false);
    char module[64];
    snprintf(module, sizeof module, "%s", q->prefix);
    size_t ml = strlen(module);
    if (ml && module[ml - 1] == '.') module[ml - 1] = 0;
    int added = 0;
    for (int64_t l = 0; l < q->cfg.num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &q->layers[l];
        for (int j = 0; j < 4; j++) {
            if (!(targets & (1 << j))) continue;
            s2s_lora *a = slot(L, j);
            S2S_CHECK(!a->A, "lora: layer %lld %s already has an adapter", (long long)l, proj_names[j]);
            const s2s_tensor *w = base_weight(L, j);  // w [out, in]
            const int64_t out = w->shape[0], in = w->shape[1];
            char name[256];
            adapter_name(name, sizeof name, q, l, j, 'A');
            a->A = s2s_params_add(p, name, module, 2, (int64_t[]){c->r, in}, true, true);
            adapter_name(name, sizeof name, q, l, j, 'B');
            a->B = s2s_params_add(p, name, module, 2, (int64_t[]){out, c->r}, true, true);  // zero: B = 0
            a->scaling = (float)(c->alpha / c->r);
            a->dropout = (float)c->dropout;
            added++;
            if (!a->A->data) continue;  // a layout-only registry (s2s plan): shapes, no values
            // A ~ U(-1/sqrt(in), 1/sqrt(in)), PEFT's kaiming_uniform_(a=sqrt(5)); one stream per adapter.
            const int64_t n = c->r * in;
            float *v = s2s_malloc((size_t)n * sizeof(float));
            s2s_rng r;
            s2s_rng_seed(&r, s2s_mix64(seed ^ s2s_mix64((uint64_t)l * 4 + (uint64_t)j + 1)));
            const double bound = 1.0 / sqrt((double)in);
            for (int64_t i = 0; i < n; i++) v[i] = (float)((2.0 * s2s_rng_uniform(&r) - 1.0) * bound);
            s2s_dev_copy(a->A->device, a->A->data, S2S_CPU, v, (size_t)n * sizeof(float));
            free(v);
        }
    }
    return added;
}

// ---- merge -------------------------------------------------------------------------------------------

// The registry has no removal of its own; merged adapters must leave it so that an export writes exactly
// the Hugging Face tensors.
static void params_remove(s2s_params *p, const s2s_tensor *t) {
    s2s_params_unflatten(p);  // removal changes the layout; the trainer flattens again if it needs to
    for (int i = 0; i < p->n; i++) {
        s2s_param *q = &p->items[i];
        if (q->t != t) continue;
        if (q->t->grad) {
            s2s_dev_free(p->device, q->t->grad->data);
            free(q->t->grad);
        }
        s2s_dev_free(p->device, q->t->data);
        free(q->t);
        free(q->name);
        free(q->module);
        memmove(&p->items[i], &p->items[i + 1], (size_t)(p->n - i - 1) * sizeof *p->items);
        p->n--;
        return;
    }
    S2S_CHECK(0, "lora: adapter tensor %s is not in the registry", t->name ? t->name : "?");
}

void s2s_lora_merge(s2s_ctx *ctx, s2s_params *p, s2s_qwen3 *q) {
    s2s_no_grad_begin(ctx);
    for (int64_t l = 0; l < q->cfg.num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &q->layers[l];
        for (int j = 0; j < 4; j++) {
            s2s_lora *a = slot(L, j);
            if (!a->A) continue;
            s2s_tensor *w = base_weight(L, j);  // w [out, in]
            s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
            s2s_tensor *at = s2s_transpose(ctx, a->A, 0, 1);      // at [in, r]
            s2s_tensor *d = s2s_linear(ctx, a->B, at, NULL);      // d [out, in] = B @ A
            s2s_tensor *m = s2s_add(ctx, w, s2s_scale(ctx, d, a->scaling));  // PEFT: W + (B @ A) * scaling
            s2s_dev_copy(w->device, w->data, m->device, m->data, s2s_nbytes(w));
            s2s_arena_rewind(ctx->cur, mark);
            params_remove(p, a->A);
            params_remove(p, a->B);
            *a = (s2s_lora){0};
        }
    }
    s2s_no_grad_end(ctx);
}
