// recipe.h — the typed training recipe: every key `s2s train` knows, its type, default and meaning (the table in
// recipe.c is the one list; docs/recipes.md is written from it). Unknown keys are an error naming the key and the
// file they came from; the effective recipe (defaults filled in) is what a run prints and saves.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "config.h"

#define S2S_RECIPE_MAX_LIST 16

typedef struct s2s_str_list {
    char *v[S2S_RECIPE_MAX_LIST];
    int n;
} s2s_str_list;

typedef struct s2s_recipe {
    char *stage;              // stage1 | stage2a | stage2b | stage3
    char *objective;          // stage 1: ce | kl
    int64_t seed;
    char *device;             // cpu | cuda
    // model
    char *model_init, *model_config, *model_llm, *model_tts, *model_audio;
    char *tokenizer, *tts_tokenizer;  // tokenizer directories: their hashes must match the shards'
    // data
    s2s_str_list data_train, data_valid;
    int64_t bucket_window, mel_threads, prefetch;
    // train
    int64_t batch_size, token_budget, grad_accum, max_steps, max_bad_steps, threads;
    char *loss_norm;          // tokens | micro_mean
    s2s_str_list trainable, frozen;
    bool recompute;
    double w_llm, w_tts;
    // optim
    double lr, weight_decay, beta1, beta2, eps, clip;
    char *schedule;           // linear | cosine | constant
    int64_t warmup_steps;
    char *no_decay;           // hf | norms
    // lora (stage 3)
    int64_t lora_r;
    double lora_alpha, lora_dropout;
    s2s_str_list lora_targets;
    // stage 1
    double kl_temperature, emotion_weight;
    int64_t emotion_classes;
    // run
    char *run_dir;
    int64_t log_every, eval_every, eval_batches, ckpt_every, ckpt_keep;
    char *ckpt_dtype;         // f32 | bf16
    // data parallelism (train/comm.h)
    int64_t zero;             // 0 | 1 | 2
    double bucket_mb, timeout_s;
} s2s_recipe;

// Fill r from c: every key of c must be known, every value of its type and range; defaults for the rest.
// Also writes the effective values back into c (so s2s_recipe_write prints the whole recipe).
int s2s_recipe_from_cfg(s2s_recipe *r, s2s_cfg *c, char *err, size_t errlen);
void s2s_recipe_free(s2s_recipe *r);
// The effective recipe as YAML (every key, schema order).
void s2s_recipe_write(const s2s_cfg *c, FILE *f);
// The keys a resumed run may change (train.max_steps, log.*, checkpoint.*, eval.*, data.valid, ...).
bool s2s_recipe_key_resumable(const char *key);
// Markdown table of every key (s2s train --keys).
void s2s_recipe_describe(FILE *f);
