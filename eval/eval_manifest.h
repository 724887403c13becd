// eval_manifest.h — benchmark answering (`s2s eval --manifest IN.jsonl --out OUT.jsonl`): every item answered with
// `s2s chat`'s generation (eval/session.h), one output line per item holding the item's own fields (so a scorer
// finds its references: VoiceBench's `prompt` / `reference`, URO-Bench's ids) plus the reply:
//   {..., "index": <input line, 0-based>, "response": "<text>", "units": [0..16383, ...], "text_ids": [...]}
// An item is {"audio": PATH} and/or a text ("text", else "prompt" when there is no audio: with an audio a
// "prompt" is the spoken question's transcript, which scorers read, not an input), optional "system" and "id".
// "wav", "source_wav" and "audio_path" are read as "audio". A malformed line is reported with file:line and
// written as {"index": i, "error": "..."} so the output stays line-for-line.
// Items are answered --batch at a time in lockstep (eval/chat.h's batch: each model's steps batched).
// Resumable: complete output lines are kept, a torn last line is dropped, and the run continues with the first
// input line not yet answered. Each line is appended and fsync'd on its own.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "session.h"

typedef struct s2s_eval_manifest_opts {
    const char *manifest, *out;
    s2s_reply_opts reply;  // budgets, sampling, seed (the per-item seed is seed + index)
    int batch;             // items answered together (<= 1: one at a time); the output does not depend on it
    bool quiet;
} s2s_eval_manifest_opts;

typedef struct s2s_eval_manifest_result {
    int64_t items, answered, resumed, failed;  // input lines, answered now, kept from before, malformed
} s2s_eval_manifest_result;

int s2s_eval_manifest(s2s_session *s, const s2s_eval_manifest_opts *o, s2s_eval_manifest_result *r, char *err,
                      size_t errlen);
