// stage.c — the stage table (stage.h).
#include "stage.h"
#include <string.h>
#include "autograd/check.h"

static const s2s_stage *const STAGES[] = {&s2s_stage1, &s2s_stage2a, &s2s_stage2b, &s2s_stage3};

const s2s_stage *s2s_stage_find(const char *name) {
    for (size_t i = 0; i < sizeof STAGES / sizeof *STAGES; i++)
        if (name && !strcmp(STAGES[i]->name, name)) return STAGES[i];
    return NULL;
}

int s2s_stage_freeze(s2s_params *P, const s2s_stage *st, const s2s_recipe *r, bool emotion, char *err,
                     size_t errlen) {
    s2s_params_set_trainable(P, "", false);
    for (const char *const *p = st->trains; *p; p++) s2s_params_set_trainable(P, *p, true);
    if (emotion) s2s_params_set_trainable(P, "emotion_head.", true);
    for (int i = 0; i < r->trainable.n; i++)
        if (!s2s_params_set_trainable(P, r->trainable.v[i], true))
            return s2s_errf(err, errlen, "train.trainable: '%s' matches no parameter", r->trainable.v[i]);
    for (int i = 0; i < r->frozen.n; i++)
        if (!s2s_params_set_trainable(P, r->frozen.v[i], false))
            return s2s_errf(err, errlen, "train.frozen: '%s' matches no parameter", r->frozen.v[i]);
    s2s_params_set_trainable(P, "audio_encoder_model.embed_positions", false);  // a fixed table in HF
    if (r->lora_r > 0) {  // PEFT: only the adapters of the LLM train
        s2s_params_set_trainable(P, "llm_model.", false);
        for (int i = 0; i < P->n; i++)
            if (strstr(P->items[i].name, ".lora_")) s2s_params_set_trainable(P, P->items[i].name, true);
    }
    if (!s2s_params_count(P, true))
        return s2s_errf(err, errlen, "stage %s: no parameter is trainable after train.trainable / train.frozen",
                        st->name);
    return 0;
}
