// continuations.h — stage 1's training targets: OpenS2S's text_generation.py, the frozen text LLM continuing each
// manifest item's transcript, greedy, written as the stage-1 `align` records `s2s prep` reads (docs/prep.md).
//
// text_generation.py, per item {"text", "audio"[, "label"]} of the manifest:
//   generation instruction  asr: "Continue the following sentence in a coherent style: {text}"
//                           ser: "Continue the following sentence that reflects a '{label}' emotion tone in a
//                                coherent style: {text}"   (label required: `assert line["label"]`)
//   messages                [{"role": "system", "content": "You are a helpful assistant."},
//                            {"role": "user", "content": generation instruction}]
//   prompt                  tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
//                           enable_thinking=False), encoded whole (vLLM tokenises the prompt string)
//   decoding                vLLM SamplingParams(top_k=1, max_tokens=1024): greedy, to the model's EOS or 1024
//                           tokens; the text is the output tokens decoded with special tokens skipped, the stop
//                           token's text not included
//   training instruction    asr: "Continue the following sentence in a coherent style: "
//                           ser: "Continue the following sentence based on the conveyed emotion tone in a
//                                coherent style: "
// text_generation.py writes {"messages": [user [{"text": training instruction}, {"audio": audio}], assistant
// [{"text": continuation}]]}; the `align` record here is that same dialogue to `s2s prep` (prep_stage.c renders
// it so), with the transcript kept for the `kl` objective's teacher:
//   {["id",] "audio", ["transcript",] ["emotion",] "instruction", "continuation"}
// (transcript = the item's text when non-empty; emotion = the ser label, numbered by prep's --emotion-labels).
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { S2S_CONT_ASR, S2S_CONT_SER } s2s_cont_task;

// "asr" / "ser" -> the task; -1 for anything else.
int s2s_cont_task_parse(const char *name);
const char *s2s_cont_training_instruction(s2s_cont_task task);

// One manifest item: text_generation.py reads line["text"], line["audio"] and (ser) line["label"].
typedef struct s2s_cont_item {
    char *text, *audio, *label;  // label NULL for asr
    char *id;                    // the line's "id" as JSON text (any type), or NULL: carried into the record
    int64_t line;                // 1-based line number in the manifest
} s2s_cont_item;

// Parses one manifest line. 0, or -1 with err naming the field ("text: missing", "label: required for ser").
int s2s_cont_item_parse(const char *json, size_t len, s2s_cont_task task, int64_t line, s2s_cont_item *it,
                        char *err, size_t errlen);
void s2s_cont_item_free(s2s_cont_item *it);

// The rendered generation prompt (Qwen3's chat template, thinking off), malloc'd.
char *s2s_cont_prompt(const s2s_cont_item *it, s2s_cont_task task);
// The output record as one JSON line (no newline), malloc'd.
char *s2s_cont_record(const s2s_cont_item *it, s2s_cont_task task, const char *continuation);

// ---- the command (continuations_run.c) ----------------------------------------------------------------------

typedef struct s2s_cont_opts {
    const char *model;       // a Qwen3ForCausalLM directory: config.json, safetensors, tokenizer files
    const char *manifest;    // JSONL of {"text", "audio"[, "label", "id"]}
    const char *out;         // the align records, appended; an existing file is continued
    s2s_cont_task task;
    int batch;               // items decoded together (1..S2S_DECODE_MAX_BATCH)
    int64_t max_new_tokens;  // text_generation.py's max_tokens (1024)
    const char *device;      // "cpu" / "cuda"
    int threads;             // 0: OpenMP's default
    bool quiet;              // no progress line
} s2s_cont_opts;

typedef struct s2s_cont_stats {
    int64_t lines;     // manifest lines read (blank ones not counted)
    int64_t resumed;   // records already in OUT when the run started
    int64_t written;   // records this run appended
    int64_t skipped;   // bad lines reported and skipped
    int64_t dropped;   // bytes of a partial last line removed from OUT
} s2s_cont_stats;

// Runs the whole manifest into OUT: the k-th valid item's record is OUT's k-th line. OUT's complete lines are
// kept (a partial last line, from a kill mid-write, is cut off) and generation continues with the next item; each
// record is appended with one write() of the whole line and fsync'd before the next batch. 0, or -1 with err
// (the model, the manifest, OUT unwritable, or an OUT that was not written from this manifest).
int s2s_cont_run(const s2s_cont_opts *o, s2s_cont_stats *st, char *err, size_t errlen);
