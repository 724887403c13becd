// tokenizer.h — Hugging Face tokenizer.json byte-level BPE (Qwen2 / Qwen3), ids identical to HF `tokenizers`.
//
// Supported pipeline (what Qwen, Llama-3 and GPT-2 style tokenizers use): normalizer null / NFC;
// pre_tokenizer Split(Regex, Isolated) and ByteLevel, alone or in a Sequence; model BPE with merges in the
// "a b" or ["a","b"] form; decoder ByteLevel (or null); added tokens with special / normalized / lstrip /
// rstrip / single_word. Anything else is refused at load with an error naming the file and field, so a
// tokenizer that loads is one whose ids match HF.
//
// An s2s_tokenizer is immutable after loading and may be shared by threads. Encoding needs scratch state
// (the regex match data and a cache of BPE results), which lives in an s2s_tok_encoder: one per thread.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/errors.h"

typedef struct s2s_tokenizer s2s_tokenizer;
typedef struct s2s_tok_encoder s2s_tok_encoder;

// A growable id list. Start from {0}; free ids with free().
typedef struct s2s_tok_ids {
    int32_t *ids;
    size_t n, cap;
} s2s_tok_ids;

// path: a Hugging Face tokenizer directory (tokenizer.json, optional tokenizer_config.json) or a
// tokenizer.json file. Returns NULL with the reason in err.
s2s_tokenizer *s2s_tok_load(const char *path, s2s_derr *err);
void s2s_tok_free(s2s_tokenizer *t);

// Size of an embedding table that can hold every id: max id (model vocab and added tokens) + 1.
int32_t s2s_tok_vocab_size(const s2s_tokenizer *t);
// Number of entries in model.vocab (without added tokens).
int32_t s2s_tok_model_vocab_size(const s2s_tokenizer *t);
// Added tokens win over the model vocabulary, as in HF. -1 when absent.
int32_t s2s_tok_token_to_id(const s2s_tokenizer *t, const char *token);
// The token string (byte-level form for model tokens, content for added tokens), NUL-terminated;
// NULL for an id that no token has.
const char *s2s_tok_id_to_token(const s2s_tokenizer *t, int32_t id);
int s2s_tok_is_special(const s2s_tokenizer *t, int32_t id);
// eos_token / pad_token of tokenizer_config.json mapped to ids; -1 when not configured.
int32_t s2s_tok_eos_id(const s2s_tokenizer *t);
int32_t s2s_tok_pad_id(const s2s_tokenizer *t);

s2s_tok_encoder *s2s_tok_encoder_new(const s2s_tokenizer *t, s2s_derr *err);
void s2s_tok_encoder_free(s2s_tok_encoder *e);
// Encodes len bytes of UTF-8 text and appends the ids to out (HF `encode(text).ids`; Qwen adds no
// BOS/EOS). Fails on invalid UTF-8, naming the byte offset.
int s2s_tok_encode(s2s_tok_encoder *e, const char *text, size_t len, s2s_tok_ids *out, s2s_derr *err);

// HF `decode(ids, skip_special_tokens)`: bytes of each token, invalid UTF-8 replaced by U+FFFD as Rust's
// from_utf8_lossy does. Returns a malloc'd NUL-terminated string (length in *len if len is non-NULL), or
// NULL naming the first id that is out of range.
char *s2s_tok_decode(const s2s_tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *len,
                     s2s_derr *err);

// Appends one id, growing the list. Returns -1 on allocation failure.
int s2s_tok_ids_push(s2s_tok_ids *v, int32_t id);
