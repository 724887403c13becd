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
    s->lo = 0, s->hi = s->n;
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

void s2s_adam_shard(s2s_adam_state *s, int64_t lo, int64_t hi) {
    S2S_CHECK(0 <= lo && lo <= hi && hi <= s->n, "optim: shard [%lld, %lld) outside the layout of %lld",
              (long long)lo, (long long)hi, (long long)s->n);
    s2s_dev_free(s->device, s->m);
    s2s_dev_free(s->device, s->v);
    s->lo = lo, s->hi = hi;
    const size_t bytes = (size_t)(hi - lo > 0 ? hi - lo : 1) * sizeof(float);
    s->m = s2s_dev_alloc(s->device, bytes);
    s->v = s2s_dev_alloc(s->device, bytes);
    s2s_dev_memset0(s->device, s->m, bytes);
    s2s_dev_memset0(s->device, s->v, bytes);
}

// The part [a, b) of slot sl inside [lo, hi); false when none.
static bool overlap(const s2s_adam_slot *sl, int64_t lo, int64_t hi, int64_t *a, int64_t *b) {
    *a = sl->off > lo ? sl->off : lo;
    *b = sl->off + sl->n < hi ? sl->off + sl->n : hi;
    return *a < *b;
}

void s2s_adam_update_range(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr, const float *g) {
    S2S_CHECK(P->flat_grad_n == s->n, "optim: the registry's gradient layout changed after the optimizer was made");
    s->step++;
    s->cfg.lr = lr;
    for (int k = 0; k < s->n_slots; k++) {
        const s2s_adam_slot *sl = &s->slots[k];
        int64_t a, b;
        if (!overlap(sl, s->lo, s->hi, &a, &b)) continue;
        s2s_param *p = s2s_params_find(P, sl->name);
        S2S_CHECK(p && p->trainable && p->goff == sl->off, "optim: parameter %s moved or froze after the optimizer "
                  "was made", sl->name);
        s2s_adamw_update(ctx, (float *)p->t->data + (a - sl->off), g + (a - s->lo), s->m + (a - s->lo),
                         s->v + (a - s->lo), b - a, s->cfg, sl->decay, s->step);
    }
}

void s2s_adam_update(s2s_ctx *ctx, s2s_adam_state *s, s2s_params *P, double lr) {
    S2S_CHECK(s->lo == 0 && s->hi == s->n, "optim: a sharded state updates its range (s2s_adam_update_range)");
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
        int64_t a, b;
        if (!overlap(sl, s->lo, s->hi, &a, &b)) continue;
        int64_t shape[1] = {b - a};
        snprintf(names[2 * k], sizeof names[0], "exp_avg.%s", sl->name);
        snprintf(names[2 * k + 1], sizeof names[0], "exp_avg_sq.%s", sl->name);
        s2s_st_writer_add_from(&w, names[2 * k], S2S_F32, 1, shape, s->m + (a - s->lo), S2S_F32, s->device);
        s2s_st_writer_add_from(&w, names[2 * k + 1], S2S_F32, 1, shape, s->v + (a - s->lo), S2S_F32, s->device);
        if (b - a != sl->n) {
            char key[640], val[64];
            snprintf(key, sizeof key, "range.%s", sl->name);
            snprintf(val, sizeof val, "%lld:%lld", (long long)(a - sl->off), (long long)(b - sl->off));
            s2s_st_writer_meta(&w, key, val);
        }
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

static const s2s_adam_slot *slot_named(const s2s_adam_state *s, const char *name) {
    for (int k = 0; k < s->n_slots; k++)
        if (!strcmp(s->slots[k].name, name)) return &s->slots[k];
    return NULL;
}

// One file's pieces into the state: every piece must name a trainable parameter and fit inside it; the part of
// it inside the state's range is copied, and counted in *covered.
static int load_pieces(s2s_adam_state *s, const char *path, int64_t *step, int64_t *covered, char *err,
                       size_t errlen) {
    s2s_st_file f;
    if (s2s_st_open(&f, path, err, errlen)) return -1;
    int rc = -1;
    const char *st = s2s_st_meta(&f, "step");
    if (!st) {
        s2s_errf(err, errlen, "%s: no 'step' in the metadata (not an s2s optimizer state)", path);
        goto done;
    }
    const int64_t fstep = strtoll(st, NULL, 10);
    if (*step >= 0 && fstep != *step) {
        s2s_errf(err, errlen, "%s: step %lld, another rank's file says %lld (files of two checkpoints mixed?)", path,
                 (long long)fstep, (long long)*step);
        goto done;
    }
    *step = fstep;
    for (int i = 0; i < f.n; i++) {
        const s2s_st_entry *e = &f.entries[i];
        const bool sq = !strncmp(e->name, "exp_avg_sq.", 11);
        if (!sq && strncmp(e->name, "exp_avg.", 8)) {
            s2s_errf(err, errlen, "%s: %s is not an AdamW moment", path, e->name);
            goto done;
        }
        const char *pname = e->name + (sq ? 11 : 8);
        const s2s_adam_slot *sl = slot_named(s, pname);
        if (!sl) {
            s2s_errf(err, errlen, "%s: %s: parameter %s is not trainable now (the set of trainable parameters "
                     "differs from the checkpoint's)", path, e->name, pname);
            goto done;
        }
        char key[640];
        snprintf(key, sizeof key, "range.%s", pname);
        const char *rg = s2s_st_meta(&f, key);
        long long a = 0, b = sl->n;
        if (rg && sscanf(rg, "%lld:%lld", &a, &b) != 2) a = -1;
        if (!e->supported || e->dtype != S2S_F32 || a < 0 || b > sl->n || s2s_st_numel(e) != b - a) {
            s2s_errf(err, errlen, "%s: %s holds %lld %s values for elements %s of parameter %s (%lld elements)", path,
                     e->name, (long long)s2s_st_numel(e), e->dtype_name, rg ? rg : "all", pname, (long long)sl->n);
            goto done;
        }
        int64_t lo, hi;  // the piece's flat range inside the state's
        const s2s_adam_slot piece = {.off = sl->off + a, .n = b - a};
        if (!overlap(&piece, s->lo, s->hi, &lo, &hi)) continue;
        s2s_dev_copy(s->device, (sq ? s->v : s->m) + (lo - s->lo), S2S_CPU,
                     (const float *)e->data + (lo - piece.off), (size_t)(hi - lo) * sizeof(float));
        *covered += hi - lo;
    }
    rc = 0;
done:
    s2s_st_close(&f);
    return rc;
}

int s2s_adam_load_files(s2s_adam_state *s, const char *const *paths, int n_paths, char *err, size_t errlen) {
    int64_t step = -1, covered = 0, want = 0;
    for (int k = 0; k < s->n_slots; k++) {
        int64_t a, b;
        if (overlap(&s->slots[k], s->lo, s->hi, &a, &b)) want += 2 * (b - a);
    }
    for (int i = 0; i < n_paths; i++)
        if (load_pieces(s, paths[i], &step, &covered, err, errlen)) return -1;
    if (covered != want)
        return s2s_errf(err, errlen, "%s%s: the optimizer files hold %lld of the %lld moment values of this rank's "
                        "range (a rank's file missing, or the trainable parameters changed)", paths[0],
                        n_paths > 1 ? " and the other ranks' files" : "", (long long)covered, (long long)want);
    s->step = step;
    return 0;
}

int s2s_adam_load(s2s_adam_state *s, const char *path, char *err, size_t errlen) {
    return s2s_adam_load_files(s, &path, 1, err, errlen);
}
