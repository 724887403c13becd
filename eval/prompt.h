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
#include <stdbool.h>
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

// One chat message as apply_chat_template takes it: a role and a string content.
typedef struct s2s_chat_msg {
    const char *role;     // "system", "user" or "assistant"
    const char *content;
} s2s_chat_msg;

// Qwen3's chat_template (no tools) rendered as transformers' apply_chat_template(messages, tokenize=False,
// add_generation_prompt, enable_thinking) renders it: a first system message as
// <|im_start|>system\n{content}<|im_end|>\n; user (and later system) messages as <|im_start|>{role}\n{content}
// <|im_end|>\n; an assistant message with its "<think>..</think>" split off the content as the template does,
// the think block shown only after the last user query (for the last message or one with reasoning); then
// <|im_start|>assistant\n, with <think>\n\n</think>\n\n when thinking is off. Returns a malloc'd string.
// A "tool" message is refused (tools are not rendered here).
char *s2s_prompt_render_qwen3(const s2s_chat_msg *m, int n, bool add_generation_prompt, bool enable_thinking);

// system NULL: S2S_PROMPT_SYSTEM; "" : no system message (model_worker skips a falsy one). 0, or -1 with err
// (text that is not UTF-8).
int s2s_prompt_build(s2s_tok_encoder *enc, const char *system, const s2s_prompt_item *items, int n_items,
                     s2s_prompt *out, char *err, size_t errlen);
void s2s_prompt_free(s2s_prompt *p);
