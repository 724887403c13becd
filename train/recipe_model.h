// recipe_model.h — the architecture a recipe describes, read without opening any weights: what `s2s train`
// builds and `s2s plan` counts, from one function so the two cannot disagree.
#pragma once
#include <stddef.h>
#include "model/hf_config.h"
#include "recipe.h"

// The OmniSpeech config of the model the recipe starts from: resume_dir's model/ (a run being resumed; NULL for
// none), else model.config, else model.init's config.json (an OpenS2S directory, a checkpoint step_N's model/,
// or a run directory's newest checkpoint), else the three Hugging Face config.jsons of model.audio / .llm / .tts
// with each vocabulary following its tokenizer (the LLM's resized to len(tokenizer), the TTS-LM's extended to the
// speech vocabulary of model.tts_tokenizer), as OpenS2S's train.py without --omnispeech_model. init gets the
// resolved model.init directory ("" when the recipe has none). 0, or -1 with err naming the key and file.
int s2s_recipe_model_config(const s2s_recipe *r, const char *resume_dir, s2s_omnispeech_config *c, char *init,
                            size_t init_len, char *err, size_t errlen);
