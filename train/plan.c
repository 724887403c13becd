// plan.c — s2s_plan_run (plan.h): counts from the model's own registration, bytes per rank, the fit search.
#include "plan.h"
#include <stdio.h>
#include <string.h>
#include "autograd/check.h"
#include "model/lora.h"
#include "model/omnispeech.h"
#include "recipe_model.h"
#include "stage.h"

#define PAD16(n) (((n) + 15) / 16 * 16)  // the flat layouts' 64-byte alignment (params.c)

// The registry `s2s train` builds for r, laid out without memory: the model, LoRA adapters, the emotion head,
// frozen by the trainer's rule.
static int registry(const s2s_recipe *r, const s2s_omnispeech_config *c, s2s_params *P, s2s_omnispeech *m, char *err,
                    size_t errlen) {
    const s2s_stage *st = s2s_stage_find(r->stage);
    s2s_params_init(P, S2S_CPU);
    s2s_params_shapes_only(P);
    s2s_omnispeech_create(m, P, c);
    if (r->lora_r > 0) {
        int targets = 0;
        for (int i = 0; i < r->lora_targets.n; i++) {
            const char *x = r->lora_targets.v[i];
            targets |= !strcmp(x, "q_proj") ? S2S_LORA_Q : !strcmp(x, "k_proj") ? S2S_LORA_K
                     : !strcmp(x, "v_proj") ? S2S_LORA_V : !strcmp(x, "o_proj") ? S2S_LORA_O : 0;
        }
        s2s_lora_config lc = {.r = (int)r->lora_r, .alpha = r->lora_alpha, .dropout = r->lora_dropout,
                              .targets = targets};
        s2s_lora_attach(P, &m->llm, &lc, 0);
    }
    const bool emotion = r->emotion_weight > 0;
    if (emotion) {
        const int64_t C = r->emotion_classes, H = c->llm.hidden_size;
        s2s_params_add(P, "emotion_head.weight", "emotion_head", 2, (int64_t[]){C, H}, true, true);
        s2s_params_add(P, "emotion_head.bias", "emotion_head", 1, (int64_t[]){C}, true, false);
    }
    return s2s_stage_freeze(P, st, r, emotion, err, errlen);
}

static int64_t act_bytes(const s2s_recipe *r, const s2s_plan *pl, const s2s_params *P, const s2s_plan_shape *sh,
                         bool rec, const s2s_plan_opts *o, int64_t *step, int64_t *scratch, char *err, size_t errlen) {
    int64_t a = 0, b = 0;
    if (s2s_plan_activations(r, &pl->cfg, P, sh, rec, o->threads, o->bf16, &a, &b, err, errlen)) return -1;
    if (step) *step = a, *scratch = b;
    return a + b;
}

int s2s_plan_run(const s2s_recipe *r, const s2s_plan_shape *sh, const s2s_plan_opts *o, s2s_plan *out, char *err,
                 size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!s2s_stage_find(r->stage)) return s2s_errf(err, errlen, "stage: unknown stage '%s'", r->stage);
    if (o->model) {
        if (s2s_omnispeech_config_read(&out->cfg, o->model, err, errlen)) return -1;
    } else {
        char init[4400];
        if (s2s_recipe_model_config(r, NULL, &out->cfg, init, sizeof init, err, errlen)) {
            const size_t n = strlen(err);  // a run not made yet: say how to plan it anyway
            snprintf(err + n, errlen - n, "; plan an architecture with --model CONFIG.json (OpenS2S: "
                     "configs/opens2s-8b/model.json)");
            return -1;
        }
    }
    s2s_params P;
    s2s_omnispeech m;
    int rc = registry(r, &out->cfg, &P, &m, err, errlen);
    if (rc) goto done;
    const int64_t N = o->world > 0 ? o->world : 1;
    const int zero = N > 1 ? (int)r->zero : 0;  // one rank has nothing to shard
    int64_t total = 0, trainable = 0, flat_tr = 0;
    for (int i = 0; i < P.n; i++) {
        const int64_t n = s2s_numel(P.items[i].t);
        total += n;
        if (P.items[i].trainable) trainable += n, flat_tr += PAD16(n);
    }
    out->params_total = total, out->params_trainable = trainable;
    // f32 (the CPU trainer today): values 4 B each, gradients 4 B per trainable element (the flat layout), AdamW
    // m and v 8 B. bf16 (the GPU mixed-precision path): values and gradients bf16, the f32 master copy of the
    // trainable parameters kept with the moments (sharded with them under ZeRO >= 1, as DeepSpeed does).
    const int64_t vb = o->bf16 ? 2 : 4;
    const int64_t blk = (flat_tr + N - 1) / N;  // a rank's range of the flat gradient layout (zero.c)
    out->bytes_params = total * vb;
    const int64_t bucket = (int64_t)(r->bucket_mb * 1048576.0);
    out->bytes_grads = zero == 2 ? blk * vb + 2 * bucket : flat_tr * vb;  // ZeRO-2: its range + two buckets in flight
    out->bytes_optim = (zero >= 1 ? blk : flat_tr) * (o->bf16 ? 12 : 8);
    s2s_plan_shape one = *sh;
    for (int k = 0; k < 2 && !rc; k++) {
        const int64_t a = act_bytes(r, out, &P, sh, k == 1, o, &out->act_step[k], &out->act_scratch[k], err, errlen);
        if (a < 0) rc = -1;
        else *(k ? &out->act_recompute : &out->act_plain) = a;
    }
    if (rc) goto done;
    out->recompute = r->recompute;
    const int64_t fixed = out->bytes_params + out->bytes_grads + out->bytes_optim;
    out->bytes_per_rank = fixed + (r->recompute ? out->act_recompute : out->act_plain);
    out->fits = (double)out->bytes_per_rank <= o->gpu_bytes;
    // The largest micro-batch that fits (up to 256): activations grow with the batch, so double, then bisect.
    for (int k = 0; k < 2 && !rc; k++) {
        int64_t lo = 0, hi = 1;
        bool capped = false;
        for (;; lo = hi, hi *= 2) {
            one.batch = hi;
            const int64_t a = act_bytes(r, out, &P, &one, k == 1, o, NULL, NULL, err, errlen);
            if (a < 0) { rc = -1; break; }
            if ((double)(fixed + a) > o->gpu_bytes) break;
            if (hi >= 256) { lo = hi, capped = true; break; }
        }
        while (!rc && !capped && hi - lo > 1) {
            one.batch = (lo + hi) / 2;
            const int64_t a = act_bytes(r, out, &P, &one, k == 1, o, NULL, NULL, err, errlen);
            if (a < 0) rc = -1;
            else if ((double)(fixed + a) > o->gpu_bytes) hi = one.batch;
            else lo = one.batch;
        }
        out->max_batch[k] = lo;
    }
done:
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    return rc;
}
