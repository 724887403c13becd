// trainer_setup.c — everything before step 1 (trainer_internal.h): the recipe checked against the checkpoint it
// resumes, the model built and loaded, frozen as the stage says, the shards opened and checked (kind, tokenizer
// hashes) — so that a bad input stops the job before training, with the file and field named.
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "autograd/rng.h"
#include "base/fs.h"
#include "data/hash.h"
#include "data/tokenizer/tokenizer.h"
#include "model/checkpoint.h"
#include "model/lora.h"
#include "model/vocab_resize.h"
#include "recipe_model.h"
#include "run_checkpoint.h"
#include "trainer_internal.h"

void trainer_log(trainer *t, const char *fmt, ...) {
    va_list ap;
    if (t->rank == 0) {
        va_start(ap, fmt);
        fputs("s2s train: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    if (t->rank_log) {
        va_start(ap, fmt);
        vfprintf(t->rank_log, fmt, ap);
        fputc('\n', t->rank_log);
        fflush(t->rank_log);
        va_end(ap);
    }
}

cJSON *trainer_recipe_json(const s2s_cfg *c) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < c->n; i++) {
        const s2s_cfg_entry *e = &c->e[i];
        if (e->is_list) {
            cJSON *a = cJSON_CreateArray();
            for (int k = 0; k < e->n_items; k++) cJSON_AddItemToArray(a, cJSON_CreateString(e->items[k]));
            cJSON_AddItemToObject(o, e->key, a);
        } else {
            cJSON_AddStringToObject(o, e->key, e->val ? e->val : "");
        }
    }
    return o;
}

// A resumed run may change only what does not change the computation (recipe.h).
static int compare_recipe(const s2s_cfg *now, cJSON *then, const char *dir, char *err, size_t errlen) {
    cJSON *cur = trainer_recipe_json(now);
    int rc = 0;
    for (cJSON *a = cur->child; a && !rc; a = a->next) {
        if (s2s_recipe_key_resumable(a->string)) continue;
        cJSON *b = cJSON_GetObjectItem(then, a->string);
        if (!b || !cJSON_Compare(a, b, true)) {
            char *va = cJSON_PrintUnformatted(a), *vb = b ? cJSON_PrintUnformatted(b) : strdup("(absent)");
            rc = s2s_errf(err, errlen, "--resume %s: '%s' is %s in the recipe but %s in the checkpoint; only "
                          "train.max_steps, train.grad_accum, log.*, checkpoint.*, eval.*, dist.* and data.valid "
                          "may change on resume", dir, a->string, va, vb);
            free(va), free(vb);
        }
    }
    cJSON_Delete(cur);
    return rc;
}

static int tokenizer_hash(const char *dir, char hex[65], char *err, size_t errlen) {
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    s2s_derr de;
    if (s2s_sha256_file(p, hex, &de)) return s2s_errf(err, errlen, "model.tokenizer: %s", de.msg);
    return 0;
}

// PEFT LoRA on the LLM's attention projections (stage 3).
static int attach_lora(trainer *t, char *err, size_t errlen) {
    const s2s_recipe *r = &t->r;
    int targets = 0;
    for (int i = 0; i < r->lora_targets.n; i++) {
        const char *x = r->lora_targets.v[i];
        int bit = !strcmp(x, "q_proj") ? S2S_LORA_Q : !strcmp(x, "k_proj") ? S2S_LORA_K
                : !strcmp(x, "v_proj") ? S2S_LORA_V : !strcmp(x, "o_proj") ? S2S_LORA_O : 0;
        if (!bit) return s2s_errf(err, errlen, "lora.targets: '%s' is not q_proj, k_proj, v_proj or o_proj", x);
        targets |= bit;
    }
    s2s_lora_config lc = {.r = (int)r->lora_r, .alpha = r->lora_alpha, .dropout = r->lora_dropout, .targets = targets};
    s2s_lora_attach(&t->P, &t->m.llm, &lc, (uint64_t)r->seed);
    return 0;
}

// The model: its config (recipe_model.h), its parameters, then its weights (random, an OpenS2S directory, three
// Hugging Face directories, or the checkpoint being resumed).
static int build_model(trainer *t, char *err, size_t errlen) {
    const s2s_recipe *r = &t->r;
    char init[4400];
    if (s2s_recipe_model_config(r, t->resume_dir, &t->mcfg, init, sizeof init, err, errlen)) return -1;
    s2s_params_init(&t->P, t->dev);
    // ZeRO-2: no rank ever allocates a full set of gradients, not even while the model registers its weights.
    if (r->zero == 2 && t->world > 1) s2s_params_grad_on_demand(&t->P);
    s2s_omnispeech_create(&t->m, &t->P, &t->mcfg);
    t->m.w_llm = (float)r->w_llm, t->m.w_tts = (float)r->w_tts;
    if (r->lora_r > 0 && strcmp(r->stage, "stage3"))
        return s2s_errf(err, errlen, "lora.r: LoRA is a stage-3 option (the recipe's stage is %s)", r->stage);
    // A checkpoint holds the adapters (unmerged): attach them before loading it; a fresh run attaches them to
    // the loaded weights.
    if (r->lora_r > 0 && t->resume_dir && attach_lora(t, err, errlen)) return -1;
    char p[4200];
    if (t->resume_dir) {
        snprintf(p, sizeof p, "%s/model", t->resume_dir);
        if (s2s_ckpt_load_opens2s(&t->P, p, NULL, NULL, err, errlen)) return -1;
    } else if (r->model_config) {
        s2s_omnispeech_init_weights(&t->m, (uint64_t)r->seed);
    } else if (r->model_init) {
        if (s2s_ckpt_load_opens2s(&t->P, init, NULL, NULL, err, errlen)) return -1;
        trainer_log(t, "model.init %s", init);
    } else {
        s2s_omnispeech_init_weights(&t->m, (uint64_t)r->seed);  // what OpenS2S's fresh adapter and bridges get
        s2s_ckpt_report rep = {0};
        if (s2s_ckpt_load_hf(&t->P, r->model_audio, r->model_llm, r->model_tts, NULL, &rep, err, errlen)) return -1;
        s2s_ckpt_report_free(&rep);
        // New vocabulary rows: transformers' mean resizing from the rows the files had.
        s2s_qwen3_config fc;
        if (!s2s_qwen3_config_read(&fc, r->model_llm, err, errlen) && fc.vocab_size < t->mcfg.llm.vocab_size) {
            s2s_vocab_init_rows(t->ctx, t->m.llm.embed, fc.vocab_size, (uint64_t)r->seed);
            if (t->m.llm.lm_head) s2s_vocab_init_rows(t->ctx, t->m.llm.lm_head, fc.vocab_size, (uint64_t)r->seed + 1);
        }
        if (!s2s_qwen3_config_read(&fc, r->model_tts, err, errlen) && fc.vocab_size < t->mcfg.tts.vocab_size) {
            trainer_log(t, "TTS-LM vocabulary %lld -> %lld rows (mean resizing)", (long long)fc.vocab_size,
                        (long long)t->mcfg.tts.vocab_size);
            s2s_vocab_init_rows(t->ctx, t->m.tts.embed, fc.vocab_size, (uint64_t)r->seed + 2);
            if (t->m.tts.lm_head) s2s_vocab_init_rows(t->ctx, t->m.tts.lm_head, fc.vocab_size, (uint64_t)r->seed + 3);
        }
    }
    if (r->lora_r > 0 && !t->resume_dir && attach_lora(t, err, errlen)) return -1;
    t->tts_eos = t->mcfg.tts.n_eos > 0 ? (int32_t)t->mcfg.tts.eos_token_id[0] : -1;
    return 0;
}

// Stage 1's emotion classifier, emotion_head.{weight [C, H_llm], bias [C]}: nn.Linear's default init (uniform
// +-1/sqrt(H)); a resumed run reads it back from the checkpoint's aux/ (it is not part of the OpenS2S model).
static int add_emotion_head(trainer *t, char *err, size_t errlen) {
    const int64_t C = t->r.emotion_classes, H = t->mcfg.llm.hidden_size;
    s2s_tensor *w = s2s_params_add(&t->P, "emotion_head.weight", "emotion_head", 2, (int64_t[]){C, H}, true, true);
    s2s_tensor *b = s2s_params_add(&t->P, "emotion_head.bias", "emotion_head", 1, (int64_t[]){C}, true, false);
    t->env.emotion_w = w, t->env.emotion_b = b;
    if (t->resume_dir) {
        char p[4300];
        snprintf(p, sizeof p, "%s/aux/params.safetensors", t->resume_dir);
        s2s_ckpt_source src = {p, S2S_CKPT_OPENS2S};
        s2s_ckpt_load_opts lo = {.optional = (const char *const[]){"", NULL}};
        s2s_ckpt_report rep = {0};
        int rc = s2s_ckpt_load(&t->P, &src, 1, &lo, &rep, err, errlen);
        const int got = rep.n_loaded;
        s2s_ckpt_report_free(&rep);
        if (rc) return -1;
        if (got != 2) return s2s_errf(err, errlen, "--resume %s: %s lacks emotion_head.weight / .bias", t->resume_dir, p);
        return 0;
    }
    s2s_rng g;
    s2s_rng_seed(&g, (uint64_t)t->r.seed ^ 0x656d6f74696f6e00ULL);  // "emotion": its own stream
    const float bound = 1.0f / sqrtf((float)H);
    float *pw = w->data, *pb = b->data;
    for (int64_t i = 0; i < C * H; i++) pw[i] = (float)(2.0 * s2s_rng_uniform(&g) - 1.0) * bound;
    for (int64_t i = 0; i < C; i++) pb[i] = (float)(2.0 * s2s_rng_uniform(&g) - 1.0) * bound;
    return 0;
}

static int freeze(trainer *t, char *err, size_t errlen) {
    return s2s_stage_freeze(&t->P, t->stage, &t->r, t->env.emotion_w != NULL, err, errlen);
}

static s2s_loader *open_loader(trainer *t, const s2s_str_list *paths, bool eval, const char *key, char *err,
                               size_t errlen) {
    const s2s_recipe *r = &t->r;
    s2s_loader_config lc = {.paths = (const char *const *)paths->v, .n_paths = paths->n, .seed = (uint64_t)r->seed,
                            .rank = eval ? 0 : t->rank, .world = eval ? 1 : t->world, .batch_samples = eval ? 1 : r->batch_size,
                            .token_budget = eval ? 0 : r->token_budget, .bucket_window = eval ? 0 : r->bucket_window,
                            .no_shuffle = eval, .prefetch = (int)r->prefetch, .mel = t->stage->mode != S2S_BATCH_TTS,
                            .mel_threads = (int)r->mel_threads,
                            .emotion_classes = r->emotion_weight > 0 ? (int)r->emotion_classes : 0,
                            .llm_tokenizer_sha256 = *t->llm_sha ? t->llm_sha : NULL,
                            .tts_tokenizer_sha256 = *t->tts_sha ? t->tts_sha : NULL};
    if (r->token_budget > 0 && !eval) lc.batch_samples = 0;
    s2s_derr de;
    s2s_loader *l = s2s_loader_open(&lc, &de);
    if (!l) {
        s2s_errf(err, errlen, "%s: %s", key, de.msg);
        return NULL;
    }
    if (s2s_loader_kind(l) != t->stage->kind) {
        s2s_errf(err, errlen, "%s: %s holds %s shards; %s trains on %s shards (s2s prep makes them)", key,
                 s2s_loader_shard_path(l, 0), s2s_shard_kind_name(s2s_loader_kind(l)), t->stage->name,
                 s2s_shard_kind_name(t->stage->kind));
        s2s_loader_close(l);
        return NULL;
    }
    return l;
}

// What the stage needs of the model: a TTS vocabulary holding the speech units and an EOS to split them.
static int check_model(trainer *t, char *err, size_t errlen) {
    const bool tts = t->stage->mode == S2S_BATCH_TTS || t->stage->mode == S2S_BATCH_INSTRUCT;
    if (tts && t->tts_eos < 0)
        return s2s_errf(err, errlen, "stage %s: the TTS-LM config has no eos_token_id (needed to end and split the "
                        "unit runs)", t->stage->name);
    if (t->r.tts_tokenizer && tts) {
        s2s_derr de;
        s2s_tokenizer *tk = s2s_tok_load(t->r.tts_tokenizer, &de);
        if (!tk) return s2s_errf(err, errlen, "model.tts_tokenizer: %s", de.msg);
        const int32_t u0 = s2s_tok_token_to_id(tk, "<|audio_0|>"), n = s2s_tok_vocab_size(tk);
        s2s_tok_free(tk);
        if (u0 < 0) return s2s_errf(err, errlen, "model.tts_tokenizer: %s has no <|audio_0|>: not a TTS tokenizer "
                                    "with the speech vocabulary", t->r.tts_tokenizer);
        if (n > t->mcfg.tts.vocab_size)
            return s2s_errf(err, errlen, "stage %s: the TTS-LM has %lld vocabulary rows, its tokenizer %d: extend it "
                            "first (stage 2a from a Qwen3 text model does)", t->stage->name,
                            (long long)t->mcfg.tts.vocab_size, (int)n);
    }
    return 0;
}

int trainer_setup(trainer *t, const s2s_train_opts *o, char *err, size_t errlen) {
    if (s2s_recipe_from_cfg(&t->r, t->cfg, err, errlen)) return -1;
    s2s_comm_set_timeout(t->comm, t->r.timeout_s);
    t->stage = s2s_stage_find(t->r.stage);
    s2s_schedule_parse(t->r.schedule, &t->sched);
    t->env = (s2s_stage_env){.r = &t->r, .m = &t->m};
    t->stage->terms(&t->r, &t->terms);
    if (t->r.emotion_weight > 0 && strcmp(t->r.stage, "stage1"))
        return s2s_errf(err, errlen, "emotion.weight: the emotion head is a stage-1 objective (the recipe's stage "
                        "is %s)", t->r.stage);
    char ck[4200];
    snprintf(ck, sizeof ck, "%s/checkpoints", t->r.run_dir);
    if (s2s_mkdir_p(t->r.run_dir))
        return s2s_errf(err, errlen, "run.dir: cannot create %s: %s", t->r.run_dir, strerror(errno));
    cJSON *state = NULL;
    char lp[4300];
    snprintf(lp, sizeof lp, "%s/logs", t->r.run_dir);
    s2s_mkdir_p(lp);
    snprintf(lp, sizeof lp, "%s/logs/rank_%d.log", t->r.run_dir, t->rank);
    t->rank_log = fopen(lp, o && o->resume ? "a" : "w");
    // A failure on one rank only (its log file, its GPU) must not leave the others in the collectives below.
    int rc = t->rank_log ? 0 : s2s_errf(err, errlen, "%s: cannot open: %s", lp, strerror(errno));
    char dev_info[256] = "";
    if (!rc) rc = s2s_device_open(t->r.device, s2s_comm_local_rank(t->comm), &t->dev, dev_info, sizeof dev_info, err,
                                  errlen);
    if (t->world > 1) rc = s2s_comm_agree(t->comm, rc, err, errlen, NULL);
    // GPU buffers move through NCCL (set up over MPI, collectively): only once every rank has its device.
    if (!rc && t->world > 1) rc = s2s_comm_use_device(t->comm, t->dev, err, errlen);
    if (rc) {
        t->agreed = true;
        return -1;
    }
    if (t->dev == S2S_CUDA) trainer_log(t, "device %s, collectives %s", dev_info, s2s_comm_collectives(t->comm));
    if (o && o->resume) {
        // Rank 0 looks (and removes an incomplete .tmp-* checkpoint); every rank continues from what it found.
        char dir[4200] = {0};
        int64_t f = 0;
        if (t->rank == 0) f = s2s_runckpt_find(t->r.run_dir, o->resume, dir, sizeof dir, err, errlen);
        if (t->world > 1) {
            s2s_comm_bcast(t->comm, &f, sizeof f, 0);
            s2s_comm_bcast(t->comm, dir, sizeof dir, 0);
        }
        if (f < 0) return -1;
        if (f == 0) {
            trainer_log(t, "--resume auto: no checkpoint in %s, starting fresh", ck);
        } else {
            t->resume_dir = strdup(dir);
            state = s2s_runckpt_read(dir, err, errlen);
            if (!state) return -1;
            if (compare_recipe(t->cfg, cJSON_GetObjectItem(state, "recipe"), dir, err, errlen)) {
                cJSON_Delete(state);
                return -1;
            }
        }
    }
    t->ctx = s2s_ctx_new((s2s_ctx_opts){.device = t->dev, .n_threads = (int)t->r.threads});
    rc = build_model(t, err, errlen);
    if (!rc && t->r.emotion_weight > 0) rc = add_emotion_head(t, err, errlen);
    if (!rc) rc = freeze(t, err, errlen);
    if (!rc) rc = check_model(t, err, errlen);
    if (!rc && t->r.tokenizer) rc = tokenizer_hash(t->r.tokenizer, t->llm_sha, err, errlen);
    if (!rc && t->r.tts_tokenizer) rc = tokenizer_hash(t->r.tts_tokenizer, t->tts_sha, err, errlen);
    if (!rc) {
        s2s_omnispeech_set_recompute(&t->m, t->r.recompute);
        s2s_adam_init_rule(&t->opt, &t->P, !strcmp(t->r.no_decay, "norms") ? S2S_DECAY_NORMS : S2S_DECAY_HF);
        t->opt.cfg = (s2s_adamw_cfg){.beta1 = t->r.beta1, .beta2 = t->r.beta2, .eps = t->r.eps,
                                     .weight_decay = t->r.weight_decay};
        // One rank has nothing to shard: ZeRO 1 and 2 are then ZeRO 0.
        if (t->r.zero >= 1 && t->world > 1) {
            s2s_zero_init(&t->zero, t->comm, &t->P, &t->opt, (int)t->r.zero);
            t->zero_on = true;
        }
        int64_t pb, gb, ob;
        s2s_zero_memory(&t->P, &t->opt, t->zero_on ? &t->zero : NULL, &pb, &gb, &ob);
        trainer_log(t, "memory per rank: parameters %.1f MiB, gradients %.1f MiB%s, optimizer state %.1f MiB "
                    "(dist.zero %lld, %d ranks)", pb / 1048576.0, gb / 1048576.0,
                    t->zero_on && t->zero.level == 2 ? " (this rank's range; buckets in flight: see step 1)" : "",
                    ob / 1048576.0, (long long)t->r.zero, t->world);
        if (!rc) t->train = open_loader(t, &t->r.data_train, false, "data.train", err, errlen);
        if (!t->train) rc = -1;
    }
    if (!rc && t->r.data_valid.n) {
        t->valid = open_loader(t, &t->r.data_valid, true, "data.valid", err, errlen);
        if (!t->valid) rc = -1;
    }
    if (!rc && state) rc = trainer_restore(t, state, err, errlen);
    cJSON_Delete(state);
    return rc;
}

void trainer_teardown(trainer *t) {
    if (t->train) s2s_loader_close(t->train);
    if (t->valid) s2s_loader_close(t->valid);
    if (t->opt.slots) s2s_adam_free(&t->opt);
    if (t->zero_on) s2s_zero_free(&t->zero);
    s2s_omnispeech_free(&t->m);
    s2s_params_free(&t->P);
    if (t->ctx) s2s_ctx_free(t->ctx);
    s2s_metrics_close(&t->met);
    s2s_recipe_free(&t->r);
    free(t->resume_dir);
    if (t->rank_log) fclose(t->rank_log);
}
