// checkpoint.h — model weights between safetensors checkpoints and a parameter registry.
// The registry (autograd/params.h) is created by the model code with every name and shape; loading fills
// it, converting bf16 / f16 to the f32 master copy. Names are OpenS2S module paths (audio_encoder_model.*,
// audio_adapter.*, llm_model.*, tts_lm_model.*, llm2tts.*, llm_ln.*). A checkpoint is either one OpenS2S
// directory holding all of them, or the Hugging Face directories it starts from (OpenS2S train.py without
// --omnispeech_model): a Qwen2-Audio model, a Qwen3 LLM and a Qwen3 TTS-LM, whose names are mapped.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "../autograd/params.h"

typedef enum {
    S2S_CKPT_OPENS2S,   // names used as they are
    S2S_CKPT_HF_AUDIO,  // Qwen2-Audio: audio_tower.X -> audio_encoder_model.X, other modules skipped;
                        // a bare Qwen2AudioEncoder checkpoint (no audio_tower.*): X -> audio_encoder_model.X
    S2S_CKPT_HF_LLM,    // Qwen3ForCausalLM: X -> llm_model.X (model.*, lm_head.weight)
    S2S_CKPT_HF_TTS,    // Qwen3ForCausalLM (+ OpenS2S spk2tts / spk_ln): X -> tts_lm_model.X
} s2s_ckpt_layout;

typedef struct s2s_ckpt_source {
    const char *path;  // directory, .safetensors file or index .json (see safetensors_index.h)
    s2s_ckpt_layout layout;
} s2s_ckpt_source;

// The registry name of checkpoint tensor `name`; false when the tensor is not part of an s2s model
// (Qwen2-Audio's language_model.* and multi_modal_projector.*). bare_audio: an HF_AUDIO checkpoint
// without audio_tower.* names.
bool s2s_ckpt_map_name(s2s_ckpt_layout layout, const char *name, bool bare_audio, char *out, size_t outlen);

typedef struct s2s_ckpt_load_opts {
    // Registry-name prefixes that may be absent from the checkpoint; those parameters keep the values the
    // model code initialised them with. NULL-terminated; NULL for none.
    const char *const *optional;
    // "embed_tokens.weight" / "lm_head.weight" may differ in rows (vocabulary resized to the tokenizer, or
    // extended by speech tokens): the common rows are copied, the rest keep their initial values.
    bool resize_vocab;
    // Checkpoint tensors with no registry slot are listed in the report instead of being an error.
    bool ignore_unexpected;
} s2s_ckpt_load_opts;

typedef struct s2s_ckpt_report {
    int n_loaded;
    char **missing;     // optional parameters the checkpoint lacks
    int n_missing;
    char **unexpected;  // "name (file)" tensors ignored (ignore_unexpected)
    int n_unexpected;
    char **resized;     // "name: R rows in file, S in the model"
    int n_resized;
} s2s_ckpt_report;

void s2s_ckpt_report_free(s2s_ckpt_report *r);

// Fill every registry parameter from the sources. Everything is checked before any value is written:
// a missing (non-optional) parameter, an unexpected tensor, a shape or dtype mismatch or one tensor in two
// sources fails with a message naming the file, and leaves the registry untouched. An HF lm_head.weight
// whose model has no lm_head parameter (tied embeddings) is skipped. report may be NULL.
int s2s_ckpt_load(s2s_params *p, const s2s_ckpt_source *src, int n_src, const s2s_ckpt_load_opts *o,
                  s2s_ckpt_report *report, char *err, size_t errlen);
// One OpenS2S directory; o NULL = strict (nothing optional, no resizing, nothing unexpected).
int s2s_ckpt_load_opens2s(s2s_params *p, const char *dir, const s2s_ckpt_load_opts *o, s2s_ckpt_report *report,
                          char *err, size_t errlen);
// The three Hugging Face directories (any may be NULL when the registry has no such part). o NULL = OpenS2S's
// fresh start: the adapter, llm2tts, llm_ln and tts_lm_model.spk2tts / spk_ln are optional, vocabularies
// may be resized, nothing unexpected.
int s2s_ckpt_load_hf(s2s_params *p, const char *audio_dir, const char *llm_dir, const char *tts_dir,
                     const s2s_ckpt_load_opts *o, s2s_ckpt_report *report, char *err, size_t errlen);

// One line per tensor: "<registry name or -> <dtype> <shape> <file> <checkpoint name>", tab-separated,
// then a "# N tensors, B bytes, K files" line per source.
int s2s_ckpt_list(const s2s_ckpt_source *src, int n_src, FILE *out, char *err, size_t errlen);

typedef struct s2s_ckpt_save_opts {
    s2s_dtype dtype;         // in the files: S2S_F32, S2S_BF16 or S2S_F16
    size_t max_shard_bytes;  // 0: one model.safetensors
    // Save only parameters under this prefix, named without it ("llm_model." gives a Hugging Face Qwen3
    // directory, "audio_encoder_model." a bare encoder). NULL: everything, OpenS2S names.
    const char *prefix;
    // Parameters under this prefix are left out (training-only heads that are not part of the model). NULL: none.
    const char *exclude;
} s2s_ckpt_save_opts;

// Write the registry into dir (created if missing) as safetensors, sharded with an index when it exceeds
// max_shard_bytes (safetensors_index.h). Values are converted and copied off the device while writing.
int s2s_ckpt_save(const s2s_params *p, const char *dir, const s2s_ckpt_save_opts *o, char *err, size_t errlen);
