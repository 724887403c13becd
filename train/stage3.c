// stage3.c — full fine-tuning (OpenS2S stage 3): encoder frozen; adapter, LLM (or its LoRA adapters), bridges
// and TTS-LM trained on speech-to-speech and text-to-speech dialogues; loss = w_llm CE_llm + w_tts CE_tts.
#include "stage.h"

static void rows(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *r) {
    r[0] = b->n_llm;
    r[1] = b->n_tts;
}

static void micro(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out) {
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    s2s_omni_out o = s2s_omnispeech_forward_ex(ctx, e->m, &v, &(s2s_omni_fwd){.div_llm = div[0], .div_tts = div[1]});
    out->loss = o.loss->requires_grad ? o.loss : NULL;
    out->term[0] = o.loss_llm, out->term[1] = o.loss_tts;
    out->rows[0] = o.n_llm_targets, out->rows[1] = o.n_tts_targets;
}

static void terms(const s2s_recipe *r, s2s_stage_terms *out) {
    out->n = 2, out->name[0] = "loss_llm", out->weight[0] = r->w_llm;
    out->name[1] = "loss_tts", out->weight[1] = r->w_tts;
}

static const char *const TRAINS[] = {"audio_adapter.", "llm_model.", "llm2tts.", "llm_ln.", "tts_lm_model.", NULL};

const s2s_stage s2s_stage3 = {
    .name = "stage3", .kind = S2S_SHARD_INSTRUCT, .mode = S2S_BATCH_INSTRUCT, .trains = TRAINS,
    .terms = terms, .rows = rows, .micro = micro,
};
