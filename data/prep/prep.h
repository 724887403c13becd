// prep.h — JSONL manifests to s2s shards (docs/prep.md). Three record forms become three shard kinds:
//   {"messages": [...]}                                   OpenS2S dialogue      -> instruct
//   {"audio", "continuation"[, "transcript", "emotion"]}   stage-1 pair          -> align
//   {"text", "units"}                                       stage-2a pair         -> tts_pretrain
// Token ids, labels and token_types equal OpenS2S `process_dataset` (src/instruction_dataset.py) token for token.
//
// Two layers: s2s_prep_record_build turns one JSONL line into one sample (pure: the same line always gives the
// same sample, whatever thread builds it), and s2s_prep_run drives a whole conversion: worker threads build
// records while one thread writes them in input order, so the shards are the same for any number of jobs.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "data/errors.h"
#include "data/shard/shard.h"

// OpenS2S drops a sample when any of its audios has fewer samples than this at 16 kHz (check_audio, 0.5 s).
#define S2S_PREP_MIN_AUDIO_SAMPLES 8000
#define S2S_PREP_SYSTEM_PROMPT "You are a helpful assistant."
// OpenS2S text_generation.py "training" instructions that precede the speech of a stage-1 record.
#define S2S_PREP_ALIGN_INSTRUCTION "Continue the following sentence in a coherent style: "
#define S2S_PREP_ALIGN_EMOTION_INSTRUCTION \
    "Continue the following sentence based on the conveyed emotion tone in a coherent style: "

typedef struct s2s_prep_opts {
    const char *const *manifests;  // JSONL files, converted in this order
    int n_manifests;
    const char *llm_tokenizer;  // Hugging Face tokenizer directory (or tokenizer.json) of the LLM
    const char *tts_tokenizer;  // the TTS-LM's, with <|audio_N|> and an eos_token; NULL = no speech units
    const char *out_dir;        // created if missing; must not hold a previous output unless overwrite
    int64_t shard_bytes;        // a shard is closed once its payload reaches this many bytes (> 0)
    int jobs;                   // worker threads (>= 1); the output does not depend on it
    int enable_thinking;        // OpenS2S enable_thinking: 1 = no "<think></think>" on assistant turns
    const char *audio_root;     // relative audio / spk_emb paths are taken from here; NULL = as given (cwd)
    int64_t max_tokens;         // longest input_ids (and teacher prompt) kept; 0 = no limit
    int64_t max_units;          // most units (with EOS) kept; 0 = no limit
    double max_audio_s;         // longest single audio kept, in seconds; 0 = no limit
    const char *const *emotion_labels;  // emotion strings of stage-1 records, class = index; may be NULL
    int n_emotion_labels;
    int overwrite;           // remove a previous output in out_dir (its shards and prep.json) first
    const char *created_by;  // the shards' created_by attribute, e.g. "s2s prep 0.1.0"
    FILE *log;               // skipped lines and progress go here (NULL = stderr)
    int quiet;               // 1 = no progress lines
} s2s_prep_opts;

// ---- one record -----------------------------------------------------------------------------------
// Tokenizers and the ids prep needs, resolved once; immutable and shared by all workers.
typedef struct s2s_prep_ctx s2s_prep_ctx;
// Per-thread scratch: tokenizer encoders and buffers.
typedef struct s2s_prep_worker s2s_prep_worker;

// Loads the tokenizers and checks they have what the prompt format needs (<|im_start|>, <|im_audio_start|>, ...).
s2s_prep_ctx *s2s_prep_ctx_new(const s2s_prep_opts *o, s2s_derr *e);
void s2s_prep_ctx_free(s2s_prep_ctx *c);
const char *s2s_prep_ctx_llm_sha256(const s2s_prep_ctx *c);  // of tokenizer.json, 64 hex digits
const char *s2s_prep_ctx_tts_sha256(const s2s_prep_ctx *c);  // "" without a TTS tokenizer

s2s_prep_worker *s2s_prep_worker_new(const s2s_prep_ctx *c, s2s_derr *e);
void s2s_prep_worker_free(s2s_prep_worker *w);

// A built record: its kind and the sample, whose arrays are owned here and reused by the next build.
typedef struct s2s_prep_record {
    s2s_shard_kind kind;
    s2s_shard_sample sample;
    int64_t cap_tokens, cap_audio_len, cap_audio, cap_units, cap_teacher;
} s2s_prep_record;

// Builds one JSONL line (len bytes, no newline needed) into r. On failure returns -1 with the reason in e, which
// names the field ("messages[1].content[0].audio: ..."); the caller adds file:line.
int s2s_prep_record_build(s2s_prep_worker *w, const char *line, size_t len, s2s_prep_record *r, s2s_derr *e);
void s2s_prep_record_free(s2s_prep_record *r);
// Payload bytes the sample adds to a shard (what --shard-mb counts).
int64_t s2s_prep_sample_bytes(const s2s_shard_sample *s);

// ---- a whole conversion -----------------------------------------------------------------------------
typedef struct s2s_prep_counts {
    int64_t records, kept, skipped;  // non-blank lines seen, samples written, lines skipped
    int64_t kept_by_kind[3], shards_by_kind[3];
    int64_t tokens, audios, audio_samples, units;
} s2s_prep_counts;

// Converts every manifest into out_dir/<kind>-NNNNN.h5 shards and out_dir/prep.json (the summary). A bad line is
// reported to o->log as "file:line: reason" and skipped. Returns 0, or -1 on an I/O failure (a manifest that
// cannot be read, a shard that cannot be written); open shards are then removed, and completed ones stay.
int s2s_prep_run(const s2s_prep_opts *o, s2s_prep_counts *counts, s2s_derr *e);
