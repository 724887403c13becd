// export_internal.h — what export.c (source, weights, the directory swap) and export_files.c (tokenizers,
// generation and feature-extractor configs) share.
#pragma once
#include <stdbool.h>
#include "export.h"
#include "model/hf_config.h"

// Where an export's pieces come from, resolved from --ckpt.
typedef struct s2s_export_src {
    char model_dir[4096];   // config.json + safetensors
    char assets_dir[4096];  // the OpenS2S layout of the non-weight files: the checkpoint's hf/, or the model dir
    char recipe_tokenizer[4096], recipe_tts_tokenizer[4096];  // a training checkpoint's model.tokenizer / ..., or ""
    int lora_r;             // > 0: the checkpoint holds unmerged adapters (stage 3 lora.r)
    double lora_alpha;
    int lora_targets;       // S2S_LORA_* mask
} s2s_export_src;

// true when dir/name exists.
bool s2s_export_has(const char *dir, const char *name);
// Everything but the weights and config.json into tmp (see export.h), recorded in rep.
int s2s_export_files(const s2s_export_opts *o, const s2s_export_src *s, const s2s_omnispeech_config *cfg,
                     const char *tmp, s2s_export_report *rep, char *err, size_t errlen);
