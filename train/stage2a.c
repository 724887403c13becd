// stage2a.c — TTS-LM vocabulary-extension pretraining (OpenS2S stage 2a): the TTS-LM alone on its text prefix
// (embedded by its own embeddings) followed by the speech units, labels on the units only.
#include "stage.h"

static void rows(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *r) { r[0] = b->n_tts; }

static void micro(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out) {
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    out->loss = s2s_omni_tts_pretrain_loss(ctx, e->m, &v, e->m->w_tts, div[0], &out->term[0], &out->rows[0]);
}

static void terms(const s2s_recipe *r, s2s_stage_terms *out) {
    out->n = 1, out->name[0] = "loss_tts", out->weight[0] = r->w_tts;
}

static const char *const TRAINS[] = {"tts_lm_model.", NULL};

const s2s_stage s2s_stage2a = {
    .name = "stage2a", .kind = S2S_SHARD_TTS_PRETRAIN, .mode = S2S_BATCH_TTS, .trains = TRAINS,
    .terms = terms, .rows = rows, .micro = micro,
};
