// prompt.h — the token ids OpenS2S's model_worker.py builds for one user turn (get_input_params): the system
// prompt ("You are a helpful assistant." unless given), Qwen3's chat template rendered with add_generation_prompt
// and enable_thinking=False, then <|im_tts_start|>; the user's content is its items in order, an audio as
// <|im_audio_start|><|im_audio|><|im_audio_end|>, a text as itself. The text is split at each <|im_audio|> and
// the segments encoded one by one with S2S_AUDIO_PLACEHOLDER (-200) between them, as model_worker.py does.
//
// Qwen3's template for these messages (no tools, a system message first, one user message) renders
//   <|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n
//   <think>\n\n</think>\n\n
// (tests/eval/test_prompt.py checks it against transformers' apply_chat_template with Qwen3's template).
#pragma once
#include <stdint.h>
#include "data/tokenizer/tokenizer.h"

#define S2S_PROMPT_SYSTEM "You are a helpful assistant."
#define S2S_AUDIO_PLACEHOLDER (-200)  // OpenS2S AUDIO_TOKEN_INDEX

typedef struct s2s_prompt_item {
    const char *text;  // a text item, or NULL for an audio
} s2s_prompt_item;

typedef struct s2s_prompt {
    int32_t *ids;  // [n]: token ids with S2S_AUDIO_PLACEHOLDER where each audio's rows go
    int64_t n;
    int n_audio;
    char *text;    // the rendered prompt (what apply_chat_template returned, plus <|im_tts_start|>)
} s2s_prompt;

// system NULL: S2S_PROMPT_SYSTEM; "" : no system message (model_worker skips a falsy one). 0, or -1 with err
// (text that is not UTF-8).
int s2s_prompt_build(s2s_tok_encoder *enc, const char *system, const s2s_prompt_item *items, int n_items,
                     s2s_prompt *out, char *err, size_t errlen);
void s2s_prompt_free(s2s_prompt *p);
