// optim.c — AdamW state over the flat gradient layout, keyed by name (optim.h).
#include "optim.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "model/safetensors.h"

static bool name_has(const char *name, const char *pat) {
    char low[512];
    size_t n = strlen(name);
    if (n >= sizeof low) n = sizeof low - 1;
    for (size_t i = 0; i < n; i++) low[i] = (char)tolower((unsigned char)name[i]);
    low[n] = 0;
    return strstr(low, pat) != NULL;
}

bool s2s_decay_applies(const s2s_param *p, s2s_decay_rule rule) {
    const bool biasy = name_has(p->name, "bias");
    if (rule == S2S_DECAY_NORMS) return !(biasy || p->norm != S2S_NORM_NONE);
    return !(p->norm == S2S_NORM_LAYER || biasy || name_has(p->name, "layernorm") || name_has(p->name, "rmsnorm"));
}

void s2s_adam_init_rule(s2s_adam_state *s, s2s_params *P, s2s_decay_rule rule) {
    memset(s, 0, sizeof *s);
    s2s_params_flatten(P);
    s->device = P->device;
    s->cfg = (s2s_adamw_cfg){.lr = 0, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.05};
    s->n = P->flat_grad_n;
    const size_t bytes = (size_t)(s->n ? s->n : 1) * sizeof(float);
    s->m = s2s_dev_alloc(s->device, bytes);
    s->v = s2s_dev_alloc(s->device, bytes);
    s2s_dev_memset0(s->device, s->m, bytes);
    s2s_dev_memset0(s->device, s->v, bytes);
    s->slots = s2s_calloc((size_t)P->n + 1, sizeof *s->slots);
    for (int i = 0; i < P->n; i++) {
        s2s_param *p = &P->items[i];
        if (!p->trainable) continue;
        S2S_CHECK(p->goff >= 0, "optim: trainable %s has no flat gradient", p->name);
        s->slots[s->n_slots++] = (s2s_adam_slot){.name = strdup(p->name), .off = p->goff, .n = s2s_numel(p->t),
                                                 .decay = s2s_decay_applies(p, rule)};
    }
}

void s2s_adam_init(s2s_adam_state *s, s2s_params *P) { s2s_adam_init_rule(s, P, S2S_DECAY_HF); }

void s2s_adam_free(s2s_adam_state *s) {
    for (int i = 0; i < s->n_slots; i++) free(s->slots[i].name);
    free(s->slots);
    s2s_dev_free(s->device, s->m);
    s2s_dev_free(s->device, s->v);
    memset(s, 0, sizeof *s);
}

void s2s_adam_update(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr) {
    S2S_CHECK(P->flat_grad && P->flat_grad_n == s->n,
              "optim: the registry's gradient layout changed after the optimizer was made (%lld vs %lld elements); "
              "freeze / unfreeze before s2s_adam_init", (long long)P->flat_grad_n, (long long)s->n);
    s->step++;
    s->cfg.lr = lr;
    for (int k = 0; k < s->n_slots; k++) {
        const s2s_adam_slot *sl = &s->slots[k];
        s2s_param *p = s2s_params_find(P, sl->name);
        S2S_CHECK(p && p->trainable && p->goff == sl->off, "optim: parameter %s moved or froze after the optimizer "
                  "was made", sl->name);
        s2s_adamw_update(ctx, p->t->data, p->t->grad->data, s->m + sl->off, s->v + sl->off, sl->n, s->cfg, sl->decay,
                         s->step);
    }
}

double s2s_adam_step(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, float lr, double max_norm) {
    double norm = max_norm > 0 ? s2s_grad_clip(ctx, P, max_norm) : s2s_grad_norm(ctx, P);
    s2s_adam_update(ctx, s, P, lr);
    s2s_params_zero_grad(P);
    return norm;
}

// ---- save / load ----------------------------------------------------------------------------------------

int s2s_adam_save(const s2s_adam_state *s, const char *path, char *err, size_t errlen) {
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    char (*names)[600] = s2s_calloc((size_t)2 * s->n_slots + 1, sizeof *names);
    for (int k = 0; k < s->n_slots; k++) {
        const s2s_adam_slot *sl = &s->slots[k];
        int64_t shape[1] = {sl->n};
        snprintf(names[2 * k], sizeof names[0], "exp_avg.%s", sl->name);
        snprintf(names[2 * k + 1], sizeof names[0], "exp_avg_sq.%s", sl->name);
        s2s_st_writer_add_from(&w, names[2 * k], S2S_F32, 1, shape, s->m + sl->off, S2S_F32, s->device);
        s2s_st_writer_add_from(&w, names[2 * k + 1], S2S_F32, 1, shape, s->v + sl->off, S2S_F32, s->device);
    }
    char step[32];
    snprintf(step, sizeof step, "%lld", (long long)s->step);
    s2s_st_writer_meta(&w, "step", step);
    s2s_st_writer_meta(&w, "format", "s2s-adamw-1");
    int rc = s2s_st_writer_write(&w, path, err, errlen);
    s2s_st_writer_free(&w);
    free(names);
    return rc;
}

int s2s_adam_load(s2s_adam_state *s, const char *path, char *err, size_t errlen) {
    s2s_st_file f;
    if (s2s_st_open(&f, path, err, errlen)) return -1;
    int rc = -1;
    const char *step = s2s_st_meta(&f, "step");
    if (!step) {
        s2s_errf(err, errlen, "%s: no 'step' in the metadata (not an s2s optimizer state)", path);
        goto done;
    }
    if (f.n != 2 * s->n_slots) {
        s2s_errf(err, errlen, "%s: %d tensors, the optimizer has %d trainable parameters (x2 moments): the set of "
                 "trainable parameters differs from the checkpoint's", path, f.n, s->n_slots);
        goto done;
    }
    for (int pass = 0; pass < 2; pass++)  // check everything, then copy: a refused file changes nothing
        for (int k = 0; k < s->n_slots; k++)
            for (int which = 0; which < 2; which++) {
                const s2s_adam_slot *sl = &s->slots[k];
                char name[600];
                snprintf(name, sizeof name, "%s.%s", which ? "exp_avg_sq" : "exp_avg", sl->name);
                const s2s_st_entry *e = s2s_st_find(&f, name);
                if (pass == 0) {
                    if (!e) {
                        s2s_errf(err, errlen, "%s: no %s (parameter %s is trainable now but was not when the "
                                 "checkpoint was written?)", path, name, sl->name);
                        goto done;
                    }
                    if (!e->supported || e->dtype != S2S_F32 || s2s_st_numel(e) != sl->n) {
                        s2s_errf(err, errlen, "%s: %s has %lld %s values, parameter %s has %lld", path, name,
                                 (long long)s2s_st_numel(e), e->dtype_name, sl->name, (long long)sl->n);
                        goto done;
                    }
                } else {
                    s2s_dev_copy(s->device, (which ? s->v : s->m) + sl->off, S2S_CPU, e->data, e->nbytes);
                }
            }
    s->step = strtoll(step, NULL, 10);
    rc = 0;
done:
    s2s_st_close(&f);
    return rc;
}
