// export.h — a trained model in the layout OpenS2S's train.py saves (docs/export.md), so OpenS2S's
// OmniSpeechModel.from_pretrained, its model_worker.py and `s2s forward --model` load it:
//   DIR/config.json                        OmniSpeechConfig (lora_config null, torch_dtype = the export dtype)
//   DIR/model.safetensors                  or model-0000K-of-0000N.safetensors + model.safetensors.index.json
//   DIR/generation_config.json             the LLM's (copied, else made from llm_config's bos / eos / pad)
//   DIR/tokenizer.json, tokenizer_config.json, ...   the LLM tokenizer
//   DIR/audio/preprocessor_config.json     WhisperFeatureExtractor (copied, else made from num_mel_bins)
//   DIR/tts/tokenizer.json, ..., generation_config.json   the TTS tokenizer and generation config
// LoRA adapters of a training checkpoint are merged first, as OpenS2S merge_lora / PEFT merge_and_unload:
// W + (B @ A) * (alpha / r) in f32. bf16 rounds to nearest even (torch's .to(torch.bfloat16)).
// The directory appears whole or not at all: everything is written into a temporary sibling, fsync'd, and
// renamed; an existing DIR is refused unless force, then swapped with the new one in one rename.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "autograd/tensor.h"

typedef struct s2s_export_opts {
    const char *ckpt;           // a training checkpoint step_N (trainer.json), a run directory (its latest
                                // checkpoint) or an OpenS2S model directory (config.json)
    const char *out;            // the directory to create
    s2s_dtype dtype;            // S2S_F32 or S2S_BF16
    size_t max_shard_bytes;     // save_pretrained's max_shard_size; 0: one file
    bool force;                 // replace an existing out (atomically)
    const char *tokenizer;      // NULL: the checkpoint's (hf/), else the recipe's model.tokenizer
    const char *tts_tokenizer;  // NULL: likewise for tts/
    int threads;                // for the LoRA merge's GEMMs; 0: OpenMP's default
} s2s_export_opts;

typedef struct s2s_export_report {
    char model_dir[4096];  // where the weights came from
    int n_tensors;
    int n_merged;          // LoRA adapters merged
    int n_shards;          // 1: model.safetensors
    size_t bytes;          // tensor bytes written
    char copied[16][64];   // the non-weight files copied from the sources (relative to out) ...
    int n_copied;
    char made[8][64];      // ... and those made from the config because no source had them
    int n_made;
} s2s_export_report;

// 0 on success; -1 with err naming the file or option at fault, and nothing left at out (or out unchanged).
int s2s_export(const s2s_export_opts *o, s2s_export_report *rep, char *err, size_t errlen);

// transformers' convert_file_size_to_int (save_pretrained's max_shard_size): an integer followed by GB / MB / KB
// (powers of 10; "Gb" / "Mb" / "Kb" are bits, an eighth) or GiB / MiB / KiB (powers of 2), case-insensitive
// otherwise; a bare integer is bytes. -1 when s is none of these.
int s2s_export_parse_size(const char *s, size_t *bytes);
