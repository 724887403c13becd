// source.h — where a model for export, chat or evaluation comes from, and loading it for inference. A path is
// an OpenS2S model directory (config.json + safetensors, the tokenizer files beside them, tts/, audio/: what
// OpenS2S's train.py and `s2s export` write), a training checkpoint step_N (trainer.json: its model/, and hf/ with
// the tokenizer and config files; its files' checksums are verified) or a run directory (its newest checkpoint).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include "autograd/params.h"
#include "model/omnispeech.h"

typedef struct s2s_model_src {
    char model_dir[4096];   // config.json + safetensors
    char assets_dir[4096];  // the OpenS2S layout of the non-weight files: the checkpoint's hf/, or the model dir
    char recipe_tokenizer[4096], recipe_tts_tokenizer[4096];  // a training checkpoint's model.tokenizer / ..., or ""
    int lora_r;             // > 0: the checkpoint holds unmerged adapters (stage 3 lora.r)
    double lora_alpha;
    int lora_targets;       // S2S_LORA_* mask
} s2s_model_src;

// 0, or -1 with err naming the path and what it lacks (a damaged checkpoint: the file whose checksum differs).
int s2s_model_src_resolve(const char *path, s2s_model_src *s, char *err, size_t errlen);
// The model's config, a registry on dev and its weights (strict: every name and shape as the config says), the
// LoRA adapters merged (PEFT's merge_and_unload: inference needs no separate adapters); *n_merged (may be NULL)
// gets how many. On failure nothing is left allocated.
int s2s_model_src_load(const s2s_model_src *s, s2s_device dev, int threads, s2s_omnispeech_config *cfg,
                       s2s_params *P, s2s_omnispeech *m, int *n_merged, char *err, size_t errlen);
