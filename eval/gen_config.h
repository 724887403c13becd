// gen_config.h — a checkpoint's generation_config.json (transformers GenerationConfig) as generation settings.
// In HF a field the file sets replaces the global default (GenerationConfig._get_default_generation_params),
// and generate()'s arguments replace both; here the file's values land on s2s_sample_defaults() and the caller
// overrides what it wants afterwards. Fields that do not change the computation of one greedy or sampled sequence
// (pad_token_id, bos_token_id, transformers_version, ...) are ignored.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "../model/hf_config.h"
#include "sample.h"

typedef struct s2s_gen_config {
    s2s_sample_cfg sample;           // do_sample, temperature, top_k, top_p (HF defaults where absent)
    int32_t eos[S2S_CFG_MAX_EOS];    // eos_token_id (an id or a list); none when absent (HF then uses config.json's)
    int n_eos;
    int64_t max_new_tokens;          // 0 when absent
} s2s_gen_config;

// path: a generation_config.json or a directory holding one. 0 on success, else -1 with err naming the file and
// the field (a value of the wrong type or out of HF's range: temperature <= 0, top_k < 0, top_p outside [0, 1]).
int s2s_gen_config_read(s2s_gen_config *c, const char *path, char *err, size_t errlen);
