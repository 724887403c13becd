// stage2b.c — streaming interleave (OpenS2S stage 2b): the LLM is frozen and runs forward-only, keeping no
// activations; its response hidden states, through llm2tts + llm_ln and interleaved M:N with the units after the
// speaker row, train the TTS-LM and the bridges. The LLM's loss is measured, not trained.
#include "stage.h"

static void rows(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *r) {
    r[0] = b->n_tts;
    r[1] = b->n_llm;
}

static void micro(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out) {
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    s2s_omni_out o = s2s_omnispeech_forward_ex(ctx, e->m, &v, &(s2s_omni_fwd){.div_tts = div[0], .llm_no_grad = true});
    out->loss = o.loss->requires_grad ? o.loss : NULL;
    out->term[0] = o.loss_tts, out->term[1] = o.loss_llm;
    out->rows[0] = o.n_tts_targets, out->rows[1] = o.n_llm_targets;
}

static void terms(const s2s_recipe *r, s2s_stage_terms *out) {
    out->n = 2, out->name[0] = "loss_tts", out->weight[0] = r->w_tts;
    out->name[1] = "loss_llm", out->weight[1] = 0;  // measured: the LLM is frozen
}

static const char *const TRAINS[] = {"llm2tts.", "llm_ln.", "tts_lm_model.", NULL};

const s2s_stage s2s_stage2b = {
    .name = "stage2b", .kind = S2S_SHARD_INSTRUCT, .mode = S2S_BATCH_INSTRUCT, .trains = TRAINS,
    .terms = terms, .rows = rows, .micro = micro,
};
