// recipe.c — the known recipe keys (recipe.h).
#include "recipe.h"
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"

typedef enum { T_STR, T_INT, T_FLOAT, T_BOOL, T_LIST, T_PAIR } key_type;

typedef struct key_def {
    const char *key;
    key_type type;
    const char *def;   // default (NULL: none / empty); T_LIST / T_PAIR: comma-separated
    size_t off, off2;  // where in s2s_recipe (T_PAIR: two doubles)
    const char *help;
} key_def;

#define O(f) offsetof(s2s_recipe, f)
// Grouped by section: s2s_cfg_write_yaml opens each mapping once.
static const key_def KEYS[] = {
    {"stage", T_STR, NULL, O(stage), 0, "stage1 | stage2a | stage2b | stage3"},
    {"objective", T_STR, "ce", O(objective), 0, "stage 1: ce (LLM-written continuations) | kl (teacher = transcript)"},
    {"seed", T_INT, "42", O(seed), 0, "initialisation (model.config), data order, LoRA dropout"},
    {"device", T_STR, "cpu", O(device), 0, "cpu | cuda (one rank per GPU: the node-local rank picks it)"},
    {"model.init", T_STR, NULL, O(model_init), 0, "OpenS2S model dir, checkpoint step_N, or run dir (newest checkpoint)"},
    {"model.config", T_STR, NULL, O(model_config), 0, "instead of init: an OmniSpeech config.json, random weights"},
    {"model.audio", T_STR, NULL, O(model_audio), 0, "instead of init: a Qwen2-Audio directory"},
    {"model.llm", T_STR, NULL, O(model_llm), 0, "instead of init: a Qwen3 LLM directory"},
    {"model.tts", T_STR, NULL, O(model_tts), 0, "instead of init: a Qwen3 TTS-LM directory"},
    {"model.tokenizer", T_STR, NULL, O(tokenizer), 0, "LLM tokenizer dir: its tokenizer.json hash must match the shards'"},
    {"model.tts_tokenizer", T_STR, NULL, O(tts_tokenizer), 0, "TTS tokenizer dir, likewise"},
    {"data.train", T_LIST, NULL, O(data_train), 0, "shard files, directories or globs"},
    {"data.valid", T_LIST, NULL, O(data_valid), 0, "held-out shards: eval losses every eval.every steps"},
    {"data.bucket_window", T_INT, "0", O(bucket_window), 0, "sort windows of this many shuffled samples by length"},
    {"data.mel_threads", T_INT, "1", O(mel_threads), 0, "threads of the loader's log-mel"},
    {"data.prefetch", T_INT, "2", O(prefetch), 0, "batches prepared ahead"},
    {"train.batch_size", T_INT, "4", O(batch_size), 0, "samples per rank per micro-batch"},
    {"train.token_budget", T_INT, "0", O(token_budget), 0, "> 0: micro-batches by token budget instead"},
    {"train.grad_accum", T_INT, "1", O(grad_accum), 0, "micro-batches per optimizer step"},
    {"train.max_steps", T_INT, NULL, O(max_steps), 0, "optimizer steps of the whole run"},
    {"train.max_bad_steps", T_INT, "5", O(max_bad_steps), 0, "NaN / inf steps in a row before the run stops"},
    {"train.threads", T_INT, "0", O(threads), 0, "CPU threads (0: OpenMP's default)"},
    {"train.loss_norm", T_STR, "tokens", O(loss_norm), 0, "tokens (global-batch token means) | micro_mean (HF 4.51)"},
    {"train.trainable", T_LIST, NULL, O(trainable), 0, "parameter-name prefixes trained on top of the stage's"},
    {"train.frozen", T_LIST, NULL, O(frozen), 0, "parameter-name prefixes frozen on top of the stage's"},
    {"train.recompute", T_BOOL, "false", O(recompute), 0, "recompute each layer in backward (less memory)"},
    {"train.w_llm", T_FLOAT, "1", O(w_llm), 0, "weight of the LLM cross-entropy"},
    {"train.w_tts", T_FLOAT, "1", O(w_tts), 0, "weight of the TTS cross-entropy"},
    {"optim.lr", T_FLOAT, "1e-4", O(lr), 0, "peak learning rate"},
    {"optim.weight_decay", T_FLOAT, "0.05", O(weight_decay), 0, "AdamW decoupled weight decay"},
    {"optim.betas", T_PAIR, "0.9,0.999", O(beta1), O(beta2), "AdamW betas"},
    {"optim.eps", T_FLOAT, "1e-8", O(eps), 0, "AdamW epsilon"},
    {"optim.clip", T_FLOAT, "1.0", O(clip), 0, "global gradient-norm clip (0: off)"},
    {"optim.schedule", T_STR, "linear", O(schedule), 0, "linear | cosine | constant (after warm-up)"},
    {"optim.warmup_steps", T_INT, "0", O(warmup_steps), 0, "linear warm-up from 0 (HF: step 0 runs at lr 0)"},
    {"optim.no_decay", T_STR, "hf", O(no_decay), 0, "hf (transformers 4.51 groups) | norms (no decay on any norm)"},
    {"lora.r", T_INT, "0", O(lora_r), 0, "stage 3: LoRA rank on the LLM (0: full fine-tuning)"},
    {"lora.alpha", T_FLOAT, "16", O(lora_alpha), 0, "LoRA alpha"},
    {"lora.dropout", T_FLOAT, "0.05", O(lora_dropout), 0, "LoRA dropout"},
    {"lora.targets", T_LIST, "q_proj,k_proj,v_proj,o_proj", O(lora_targets), 0, "projections with adapters"},
    {"kl.temperature", T_FLOAT, "2", O(kl_temperature), 0, "stage 1 kl: softmax temperature"},
    {"emotion.weight", T_FLOAT, "0", O(emotion_weight), 0, "stage 1: weight of the emotion-classification loss"},
    {"emotion.classes", T_INT, "0", O(emotion_classes), 0, "stage 1: emotion classes (with emotion.weight > 0)"},
    {"run.dir", T_STR, NULL, O(run_dir), 0, "where checkpoints/, metrics.jsonl and config.yaml go"},
    {"log.every", T_INT, "1", O(log_every), 0, "steps between metrics rows / progress lines"},
    {"eval.every", T_INT, "0", O(eval_every), 0, "steps between held-out evaluations (0: only at the end)"},
    {"eval.batches", T_INT, "0", O(eval_batches), 0, "batches per evaluation (0: all of data.valid)"},
    {"checkpoint.every", T_INT, "200", O(ckpt_every), 0, "steps between checkpoints (and one at the end)"},
    {"checkpoint.keep", T_INT, "3", O(ckpt_keep), 0, "checkpoints kept (oldest removed)"},
    {"checkpoint.dtype", T_STR, "f32", O(ckpt_dtype), 0, "model tensors in checkpoints: f32 | bf16"},
    {"dist.zero", T_INT, "0", O(zero), 0, "0: replicated optimizer | 1: sharded state | 2: also sharded gradients"},
    {"dist.bucket_mb", T_FLOAT, "25", O(bucket_mb), 0, "gradient all-reduce bucket size (MiB)"},
    {"dist.timeout_s", T_FLOAT, "300", O(timeout_s), 0, "a collective taking longer ends the job (a rank died)"},
};
#undef O
#define N_KEYS ((int)(sizeof KEYS / sizeof *KEYS))

static const key_def *find_key(const char *k) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(KEYS[i].key, k)) return &KEYS[i];
    return NULL;
}

static int parse_int(const char *s, int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || end == s || *end) return -1;
    *v = x;
    return 0;
}

static int parse_float(const char *s, double *v) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(x)) return -1;
    *v = x;
    return 0;
}

static int parse_bool(const char *s, bool *v) {
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1"))
        return *v = true, 0;
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "no") || !strcmp(s, "off") || !strcmp(s, "0"))
        return *v = false, 0;
    return -1;
}

// A default "a,b,c" as list items.
static int split(const char *s, char **out, int max) {
    int n = 0;
    char *d = strdup(s), *save = NULL;
    for (char *p = strtok_r(d, ",", &save); p && n < max; p = strtok_r(NULL, ",", &save)) out[n++] = strdup(p);
    free(d);
    return n;
}

static int set_field(s2s_recipe *r, const key_def *k, const s2s_cfg_entry *e, char *err, size_t errlen) {
    char *base = (char *)r;
    const char *bad = NULL;
    if (k->type == T_LIST || k->type == T_PAIR) {
        char *items[S2S_RECIPE_MAX_LIST];
        int n = 0;
        if (e->is_list) {
            if (e->n_items > S2S_RECIPE_MAX_LIST)
                return s2s_errf(err, errlen, "%s: '%s' has %d items (at most %d)", e->origin, k->key, e->n_items,
                                S2S_RECIPE_MAX_LIST);
            for (int i = 0; i < e->n_items; i++) items[n++] = strdup(e->items[i]);
        } else if (*e->val) {
            items[n++] = strdup(e->val);  // a single value is a list of one
        }
        if (k->type == T_PAIR) {
            double a, b;
            int rc = n == 2 && !parse_float(items[0], &a) && !parse_float(items[1], &b) ? 0 : -1;
            for (int i = 0; i < n; i++) free(items[i]);
            if (rc) return s2s_errf(err, errlen, "%s: '%s' must be a list of two numbers, e.g. [0.9, 0.999]",
                                    e->origin, k->key);
            *(double *)(base + k->off) = a, *(double *)(base + k->off2) = b;
            return 0;
        }
        s2s_str_list *l = (s2s_str_list *)(base + k->off);
        for (int i = 0; i < l->n; i++) free(l->v[i]);
        l->n = n;
        for (int i = 0; i < n; i++) l->v[i] = items[i];
        return 0;
    }
    if (e->is_list) return s2s_errf(err, errlen, "%s: '%s' takes one value, not a list", e->origin, k->key);
    switch (k->type) {
    case T_STR: {
        char **p = (char **)(base + k->off);
        free(*p);
        *p = *e->val ? strdup(e->val) : NULL;
        return 0;
    }
    case T_INT: if (parse_int(e->val, (int64_t *)(base + k->off))) bad = "an integer"; break;
    case T_FLOAT: if (parse_float(e->val, (double *)(base + k->off))) bad = "a number"; break;
    case T_BOOL: if (parse_bool(e->val, (bool *)(base + k->off))) bad = "true or false"; break;
    default: break;
    }
    if (bad) return s2s_errf(err, errlen, "%s: '%s' must be %s, got '%s'", e->origin, k->key, bad, e->val);
    return 0;
}

static bool one_of(const char *v, const char *const *opts) {
    for (; *opts; opts++)
        if (v && !strcmp(v, *opts)) return true;
    return false;
}

// Range and choice checks, naming the key and where its value came from.
static int validate(const s2s_recipe *r, const s2s_cfg *c, char *err, size_t errlen) {
#define WHERE(k) (s2s_cfg_find(c, k) ? s2s_cfg_find(c, k)->origin : "the recipe")
#define NEED(cond, k, ...) do { if (!(cond)) { char m_[512]; snprintf(m_, sizeof m_, __VA_ARGS__); \
        return s2s_errf(err, errlen, "%s: '%s' %s", WHERE(k), k, m_); } } while (0)
    NEED(one_of(r->stage, (const char *[]){"stage1", "stage2a", "stage2b", "stage3", NULL}), "stage",
         "must be stage1, stage2a, stage2b or stage3%s", r->stage ? "" : " (it is required)");
    NEED(one_of(r->objective, (const char *[]){"ce", "kl", NULL}), "objective", "must be ce or kl");
    NEED(r->model_init || r->model_config || r->model_llm || r->model_tts, "model.init",
         "is required (or model.config for random weights, or model.audio / model.llm / model.tts)");
    NEED(!(r->model_init && r->model_config), "model.config", "and model.init exclude each other");
    NEED(r->data_train.n > 0, "data.train", "is required: shard files, directories or globs");
    NEED(r->run_dir, "run.dir", "is required");
    NEED(r->max_steps > 0, "train.max_steps", "is required and must be > 0");
    NEED(r->batch_size > 0 || r->token_budget > 0, "train.batch_size", "must be > 0 (or train.token_budget)");
    NEED(r->grad_accum >= 1, "train.grad_accum", "must be >= 1");
    NEED(r->max_bad_steps >= 1, "train.max_bad_steps", "must be >= 1");
    NEED(one_of(r->loss_norm, (const char *[]){"tokens", "micro_mean", NULL}), "train.loss_norm",
         "must be tokens or micro_mean");
    NEED(r->lr >= 0, "optim.lr", "must be >= 0");
    NEED(r->beta1 >= 0 && r->beta1 < 1 && r->beta2 >= 0 && r->beta2 < 1, "optim.betas", "must lie in [0, 1)");
    NEED(r->eps > 0, "optim.eps", "must be > 0");
    NEED(r->clip >= 0, "optim.clip", "must be >= 0 (0: no clipping)");
    NEED(one_of(r->schedule, (const char *[]){"linear", "cosine", "constant", NULL}), "optim.schedule",
         "must be linear, cosine or constant");
    NEED(r->warmup_steps >= 0, "optim.warmup_steps", "must be >= 0");
    NEED(one_of(r->no_decay, (const char *[]){"hf", "norms", NULL}), "optim.no_decay", "must be hf or norms");
    NEED(r->lora_r >= 0, "lora.r", "must be >= 0");
    NEED(r->kl_temperature > 0, "kl.temperature", "must be > 0");
    NEED(r->emotion_weight == 0 || r->emotion_classes >= 2, "emotion.classes", "must be >= 2 with emotion.weight > 0");
    NEED(r->log_every >= 1, "log.every", "must be >= 1");
    NEED(r->ckpt_every >= 1, "checkpoint.every", "must be >= 1");
    NEED(r->ckpt_keep >= 1, "checkpoint.keep", "must be >= 1");
    NEED(one_of(r->ckpt_dtype, (const char *[]){"f32", "bf16", NULL}), "checkpoint.dtype", "must be f32 or bf16");
    NEED(r->zero >= 0 && r->zero <= 2, "dist.zero", "must be 0, 1 or 2");
    NEED(one_of(r->device, (const char *[]){"cpu", "cuda", NULL}), "device", "must be cpu or cuda");
    NEED(r->bucket_mb > 0, "dist.bucket_mb", "must be > 0");
    NEED(r->timeout_s > 0, "dist.timeout_s", "must be > 0");
#undef NEED
#undef WHERE
    return 0;
}

int s2s_recipe_from_cfg(s2s_recipe *r, s2s_cfg *c, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    for (int i = 0; i < c->n; i++)
        if (!find_key(c->e[i].key))
            return s2s_errf(err, errlen, "%s: unknown key '%s' (`s2s train --keys` lists the recipe keys)",
                            c->e[i].origin, c->e[i].key);
    for (int i = 0; i < N_KEYS; i++) {
        const key_def *k = &KEYS[i];
        if (!s2s_cfg_find(c, k->key)) {  // the default, recorded so the effective recipe shows it
            if (k->type == T_LIST || k->type == T_PAIR) {
                char *items[S2S_RECIPE_MAX_LIST];
                int n = k->def ? split(k->def, items, S2S_RECIPE_MAX_LIST) : 0;
                s2s_cfg_put_list(c, k->key, items, n, "default");
                for (int j = 0; j < n; j++) free(items[j]);
            } else {
                s2s_cfg_put(c, k->key, k->def ? k->def : "", "default");
            }
        }
        const s2s_cfg_entry *e = s2s_cfg_find(c, k->key);
        if (e->val && !*e->val && k->type != T_STR) {
            if (k->type == T_INT && !strcmp(k->key, "train.max_steps")) continue;  // required: validate says so
            return s2s_errf(err, errlen, "%s: '%s' is empty", e->origin, k->key);
        }
        if (set_field(r, k, e, err, errlen)) return -1;
    }
    return validate(r, c, err, errlen);
}

void s2s_recipe_free(s2s_recipe *r) {
    for (int i = 0; i < N_KEYS; i++) {
        char *base = (char *)r;
        if (KEYS[i].type == T_STR) free(*(char **)(base + KEYS[i].off));
        if (KEYS[i].type == T_LIST) {
            s2s_str_list *l = (s2s_str_list *)(base + KEYS[i].off);
            for (int j = 0; j < l->n; j++) free(l->v[j]);
        }
    }
    memset(r, 0, sizeof *r);
}

void s2s_recipe_write(const s2s_cfg *c, FILE *f) {
    const char *order[N_KEYS];
    for (int i = 0; i < N_KEYS; i++) order[i] = KEYS[i].key;
    s2s_cfg_write_yaml(c, f, order, N_KEYS);
}

bool s2s_recipe_key_resumable(const char *k) {
    // train.grad_accum: a resume on another number of ranks may keep the global batch by changing it.
    static const char *const ok[] = {"train.max_steps", "train.grad_accum", "log.", "checkpoint.", "eval.", "data.valid", "data.prefetch",
                                     "data.mel_threads", "train.threads", "train.max_bad_steps", "run.dir", "model.",
                                     "dist.", "device"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strncmp(k, ok[i], strlen(ok[i]))) return true;
    return false;
}

void s2s_recipe_describe(FILE *f) {
    fprintf(f, "| key | default | meaning |\n|---|---|---|\n");
    for (int i = 0; i < N_KEYS; i++)
        fprintf(f, "| `%s` | %s | %s |\n", KEYS[i].key, KEYS[i].def ? KEYS[i].def : "", KEYS[i].help);
}
