// recipe_model.c — the model config a recipe describes (recipe_model.h).
#include "recipe_model.h"
#include <stdio.h>
#include <sys/stat.h>
#include "autograd/check.h"
#include "data/tokenizer/tokenizer.h"
#include "run_checkpoint.h"

// model.init may name an OpenS2S directory, a training checkpoint (step_N: its model/), or a run directory (its
// newest complete checkpoint): so a stage starts from the previous stage's run without spelling out a step.
static int resolve_init(const char *init, char *out, size_t outlen, char *err, size_t errlen) {
    char p[4300];
    struct stat st;
    snprintf(p, sizeof p, "%s/config.json", init);
    if (!stat(p, &st)) return snprintf(out, outlen, "%s", init), 0;
    snprintf(p, sizeof p, "%s/trainer.json", init);
    if (!stat(p, &st)) return snprintf(out, outlen, "%s/model", init), 0;
    snprintf(p, sizeof p, "%s/checkpoints", init);
    if (!stat(p, &st)) {
        char dir[4200];
        int f = s2s_runckpt_find(init, "auto", dir, sizeof dir, err, errlen);
        if (f < 0) return -1;
        if (f == 0) return s2s_errf(err, errlen, "model.init: the run %s has no complete checkpoint yet", init);
        return snprintf(out, outlen, "%s/model", dir), 0;
    }
    return s2s_errf(err, errlen, "model.init: %s is neither a model directory (config.json), a checkpoint "
                    "(trainer.json) nor a run directory (checkpoints/)", init);
}

static int vocab_of(const char *dir, const char *key, int64_t *rows, char *err, size_t errlen) {
    s2s_derr de;
    s2s_tokenizer *tk = s2s_tok_load(dir, &de);
    if (!tk) return s2s_errf(err, errlen, "%s: %s", key, de.msg);
    *rows = s2s_tok_vocab_size(tk);
    s2s_tok_free(tk);
    return 0;
}

int s2s_recipe_model_config(const s2s_recipe *r, const char *resume_dir, s2s_omnispeech_config *c, char *init,
                            size_t init_len, char *err, size_t errlen) {
    if (init_len) init[0] = 0;
    if (r->model_init && !resume_dir && resolve_init(r->model_init, init, init_len, err, errlen)) return -1;
    if (resume_dir) {
        char p[4200];
        snprintf(p, sizeof p, "%s/model", resume_dir);
        return s2s_omnispeech_config_read(c, p, err, errlen);
    }
    if (r->model_config) return s2s_omnispeech_config_read(c, r->model_config, err, errlen);
    if (r->model_init) return s2s_omnispeech_config_read(c, init, err, errlen);
    if (!r->model_audio || !r->model_llm || !r->model_tts)
        return s2s_errf(err, errlen, "the recipe names Hugging Face directories: model.audio, model.llm and "
                        "model.tts are all needed (OpenS2S train.py without --omnispeech_model)");
    if (s2s_omnispeech_config_from_hf(c, r->model_audio, r->model_llm, r->model_tts, err, errlen)) return -1;
    // Vocabularies follow the tokenizers for a fresh start from Hugging Face models (OpenS2S resizes the LLM to
    // len(tokenizer); stage 2a extends the TTS-LM by the speech tokens).
    if (r->tokenizer && vocab_of(r->tokenizer, "model.tokenizer", &c->llm.vocab_size, err, errlen)) return -1;
    if (r->tts_tokenizer && vocab_of(r->tts_tokenizer, "model.tts_tokenizer", &c->tts.vocab_size, err, errlen))
        return -1;
    return 0;
}
