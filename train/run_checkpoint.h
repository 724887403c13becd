// run_checkpoint.h — training checkpoints (docs/training.md, "Checkpoints"):
//   <run.dir>/checkpoints/step_NNNNNNNN/
//     model/config.json + model/model.safetensors   OpenS2S names: `s2s forward --model` and transformers read it
//     optimizer/rank_RRRRR.safetensors              AdamW moments by parameter name (train/optim.h)
//     aux/params.safetensors                        training-only parameters (stage 1's emotion head), f32;
//                                                   only when the run has some
//     hf/                                           what an export (eval/export.h) needs besides the weights,
//                                                   copied from the recipe's directories: the tokenizer files,
//                                                   generation_config.json, audio/preprocessor_config.json,
//                                                   tts/ (tokenizer files + generation_config.json); whatever
//                                                   the sources have (a model from `s2s init` has none of them)
//     trainer.json                                  step, loader cursor, schedule, counters, effective recipe,
//                                                   world size, and the SHA-256 of every other file
//   <run.dir>/checkpoints/latest                    "step_NNNNNNNN": moved last
// A checkpoint is written into checkpoints/.tmp-step_NNNNNNNN, every file fsync'd, the directory fsync'd and
// renamed to its final name, the parent fsync'd, and only then is `latest` replaced (atomically) and the
// oldest beyond `keep` removed. A kill at any moment leaves the previous checkpoint whole; a leftover .tmp-*
// directory is an incomplete one and is removed by the next run.
#pragma once
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "autograd/params.h"
#include "model/hf_config.h"
#include "optim.h"

// The sources of a checkpoint's hf/ (any may be NULL or ""; a file a source lacks is skipped). The recipe's
// paths, relative to where `s2s train` runs: the checkpoint keeps copies so that an export made later, from
// anywhere, needs nothing else.
typedef struct s2s_runckpt_assets {
    const char *init;       // model.init: an OpenS2S directory (its tokenizer files, generation_config.json, audio/,
                            // tts/), or a checkpoint / run directory (its checkpoint's hf/)
    const char *audio;      // model.audio: preprocessor_config.json -> hf/audio/
    const char *llm;        // model.llm: generation_config.json -> hf/
    const char *tts;        // model.tts: generation_config.json -> hf/tts/
    const char *tokenizer;  // model.tokenizer: the tokenizer files -> hf/ (instead of init's: the shards' tokenizer)
    const char *tts_tokenizer;  // model.tts_tokenizer -> hf/tts/
} s2s_runckpt_assets;

typedef struct s2s_runckpt_save {
    const char *run_dir;
    int64_t step;
    const s2s_params *P;
    const s2s_omnispeech_config *cfg;
    const s2s_adam_state *opt;
    cJSON *trainer;       // the trainer's state; "files" (checksums) is added here
    s2s_dtype dtype;      // model tensors in the file
    int keep;
    const char *aux_prefix;  // parameters under it go to aux/ instead of model/; NULL: none
    bool prepared;           // the temporary directory exists and every rank wrote its optimizer shard there
    const s2s_runckpt_assets *assets;  // NULL: no hf/
} s2s_runckpt_save;

// The whole checkpoint, from one process: model, aux, optimizer/rank_00000 (unless s->prepared, when
// s->opt is unused), trainer.json with the checksums of everything, then the rename.
int s2s_runckpt_write(const s2s_runckpt_save *s, char *err, size_t errlen);
// A sharded optimizer (ZeRO): rank 0 prepares the temporary directory, every rank writes its shard into it, then
// rank 0 calls s2s_runckpt_write with prepared set.
int s2s_runckpt_prepare(const char *run_dir, int64_t step, char *err, size_t errlen);
int s2s_runckpt_write_optimizer(const char *run_dir, int64_t step, int rank, const s2s_adam_state *opt, char *err,
                                size_t errlen);
// The optimizer files of a checkpoint, rank order (free each and the array); -1 with err when there is none.
int s2s_runckpt_optimizer_files(const char *dir, char ***paths, char *err, size_t errlen);

// The checkpoint to resume from: resume "auto" = the newest complete checkpoint of run_dir (latest, or the
// newest step_* whose checksums verify), else a checkpoint directory. Returns 1 with dir set, 0 when "auto"
// finds none, -1 on error (a named checkpoint that is missing or fails its checksums). Removes .tmp-* leftovers.
int s2s_runckpt_find(const char *run_dir, const char *resume, char *dir, size_t dirlen, char *err, size_t errlen);
// trainer.json of dir, its checksums verified against the files. NULL on error.
cJSON *s2s_runckpt_read(const char *dir, char *err, size_t errlen);
