// hf_config.h — Hugging Face config.json for the three models s2s builds on, and OpenS2S's OmniSpeechConfig
// that nests them. Reading applies the defaults transformers applies (Qwen3Config, Qwen2AudioEncoderConfig,
// OmniSpeechConfig) and refuses what s2s does not implement (attention biases, sliding windows, RoPE scaling,
// an activation other than the one the model uses, un-merged LoRA) with an error naming the file and the
// field. Keys that do not change the computation (dropout, use_cache, architectures, ...) are ignored.
// Writing produces a config.json transformers (4.51+ and 5.x) and OpenS2S load back to the same values.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>

#define S2S_CFG_MAX_EOS 8
#define S2S_CFG_MAX_CONV 8

// Qwen3ForCausalLM (the LLM and the TTS-LM).
typedef struct s2s_qwen3_config {
    int64_t vocab_size, hidden_size, intermediate_size, num_hidden_layers;  // required
    int64_t num_attention_heads;                                             // required
    int64_t num_key_value_heads;      // default num_attention_heads
    int64_t head_dim;                 // default 128, as transformers' Qwen3Config (not hidden / heads)
    int64_t max_position_embeddings;  // default 32768
    double rope_theta;                // "rope_theta" or "rope_parameters.rope_theta"; default 10000
    double rms_norm_eps;              // default 1e-6
    bool tie_word_embeddings;         // default false
    char torch_dtype[16];             // "torch_dtype" or "dtype", e.g. "bfloat16"; "" when absent
    int64_t bos_token_id, pad_token_id;  // -1 when null or absent
    int64_t eos_token_id[S2S_CFG_MAX_EOS];
    int n_eos;
} s2s_qwen3_config;

// Qwen2AudioEncoder: every field defaults to transformers' Qwen2AudioEncoderConfig (the Qwen2-Audio values).
typedef struct s2s_audio_encoder_config {
    int64_t num_mel_bins;          // 128
    int64_t d_model;               // 1280
    int64_t encoder_layers;        // 32
    int64_t encoder_attention_heads;  // 20
    int64_t encoder_ffn_dim;       // 5120
    int64_t max_source_positions;  // 1500
    char torch_dtype[16];
} s2s_audio_encoder_config;

// OpenS2S OmniSpeechConfig (src/configuration_omnispeech.py).
typedef struct s2s_omnispeech_config {
    s2s_audio_encoder_config audio;  // "audio_encoder_config"
    s2s_qwen3_config llm;            // "llm_config"
    s2s_qwen3_config tts;            // "tts_lm_config"
    int64_t conv_kernel_sizes[S2S_CFG_MAX_CONV];  // "5,5" (a string, as OpenS2S splits it; a list also reads)
    int n_conv;
    int64_t adapter_inner_dim;       // 512
    int64_t interleave_text, interleave_speech;  // interleave_strategy "M:N", default "1:2"
    char torch_dtype[16];
} s2s_omnispeech_config;

// path: a config.json, or a directory holding one. 0 on success, else -1 with err naming file and field.
int s2s_qwen3_config_read(s2s_qwen3_config *c, const char *path, char *err, size_t errlen);
// Accepts a qwen2_audio config (its audio_config is used) or a qwen2_audio_encoder config.
int s2s_audio_encoder_config_read(s2s_audio_encoder_config *c, const char *path, char *err, size_t errlen);
int s2s_omnispeech_config_read(s2s_omnispeech_config *c, const char *path, char *err, size_t errlen);
// OpenS2S train.py without --omnispeech_model: the three component configs, OpenS2S's adapter and
// interleave defaults.
int s2s_omnispeech_config_from_hf(s2s_omnispeech_config *c, const char *audio_dir, const char *llm_dir,
                                  const char *tts_dir, char *err, size_t errlen);

// Written atomically.
int s2s_qwen3_config_write(const s2s_qwen3_config *c, const char *path, char *err, size_t errlen);
int s2s_audio_encoder_config_write(const s2s_audio_encoder_config *c, const char *path, char *err, size_t errlen);
int s2s_omnispeech_config_write(const s2s_omnispeech_config *c, const char *path, char *err, size_t errlen);

// The JSON forms, for configs embedded in other files. Errors read "<file>: field '<prefix><key>' ...";
// prefix may be NULL (e.g. "llm_config." for a nested config).
int s2s_qwen3_config_from_json(s2s_qwen3_config *c, const cJSON *j, const char *file, const char *prefix,
                               char *err, size_t errlen);
int s2s_audio_encoder_config_from_json(s2s_audio_encoder_config *c, const cJSON *j, const char *file,
                                       const char *prefix, char *err, size_t errlen);
int s2s_omnispeech_config_from_json(s2s_omnispeech_config *c, const cJSON *j, const char *file, const char *prefix,
                                    char *err, size_t errlen);
cJSON *s2s_qwen3_config_to_json(const s2s_qwen3_config *c);
cJSON *s2s_audio_encoder_config_to_json(const s2s_audio_encoder_config *c);
cJSON *s2s_omnispeech_config_to_json(const s2s_omnispeech_config *c);
