// source.c — where a model comes from, and loading it for inference (source.h).
#include "source.h"
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include "autograd/ctx.h"
#include "base/err.h"
#include "base/fs.h"
#include "data/hash.h"
#include "model/checkpoint.h"
#include "model/lora.h"

static bool has(const char *dir, const char *name) {
    char p[8400];
    struct stat st;
    return dir && *dir && snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && !stat(p, &st);
}

// ---- the source ----------------------------------------------------------------------------------------------

// trainer.json's "files" checksums: a damaged checkpoint is not exported.
static int verify_checkpoint(const char *dir, cJSON *j, char *err, size_t errlen) {
    cJSON *files = cJSON_GetObjectItem(j, "files");
    if (!cJSON_IsObject(files) || !files->child)
        return s2s_errf(err, errlen, "%s/trainer.json: lists no file checksums", dir);
    for (cJSON *f = files->child; f; f = f->next) {
        char path[8800], hex[65];
        snprintf(path, sizeof path, "%s/%s", dir, f->string);
        s2s_derr de;
        if (!cJSON_IsString(f) || s2s_sha256_file(path, hex, &de) || strcmp(hex, f->valuestring))
            return s2s_errf(err, errlen, "%s: checksum mismatch or unreadable file (the checkpoint is damaged)", path);
    }
    return 0;
}

static const char *recipe_str(cJSON *recipe, const char *key) {
    cJSON *v = cJSON_GetObjectItem(recipe, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

// A training checkpoint: model/, hf/, and from trainer.json's recipe the LoRA adapters it holds.
static int source_checkpoint(const char *dir, s2s_model_src *s, char *err, size_t errlen) {
    char p[8400];
    snprintf(p, sizeof p, "%s/trainer.json", dir);
    char *txt = s2s_read_file(p, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!j) return s2s_errf(err, errlen, "%s: unreadable or not JSON", p);
    int rc = verify_checkpoint(dir, j, err, errlen);
    cJSON *recipe = cJSON_GetObjectItem(j, "recipe");
    if (!rc && !cJSON_IsObject(recipe)) rc = s2s_errf(err, errlen, "%s: no 'recipe'", p);
    if (!rc) {
        snprintf(s->model_dir, sizeof s->model_dir, "%s/model", dir);
        snprintf(s->assets_dir, sizeof s->assets_dir, "%s/hf", dir);
        snprintf(s->recipe_tokenizer, sizeof s->recipe_tokenizer, "%s", recipe_str(recipe, "model.tokenizer"));
        snprintf(s->recipe_tts_tokenizer, sizeof s->recipe_tts_tokenizer, "%s",
                 recipe_str(recipe, "model.tts_tokenizer"));
        s->lora_r = atoi(recipe_str(recipe, "lora.r"));
        s->lora_alpha = atof(recipe_str(recipe, "lora.alpha"));
        cJSON *t = cJSON_GetObjectItem(recipe, "lora.targets"), *e;
        cJSON_ArrayForEach(e, t) {
            const char *x = cJSON_IsString(e) ? e->valuestring : "";
            int bit = !strcmp(x, "q_proj") ? S2S_LORA_Q : !strcmp(x, "k_proj") ? S2S_LORA_K
                    : !strcmp(x, "v_proj") ? S2S_LORA_V : !strcmp(x, "o_proj") ? S2S_LORA_O : 0;
            if (!bit) {
                rc = s2s_errf(err, errlen, "%s: recipe lora.targets '%s' is not q_proj, k_proj, v_proj or o_proj", p, x);
                break;
            }
            s->lora_targets |= bit;
        }
        if (!rc && s->lora_r > 0 && !(s->lora_alpha > 0))
            rc = s2s_errf(err, errlen, "%s: recipe lora.alpha must be > 0 with lora.r %d", p, s->lora_r);
    }
    cJSON_Delete(j);
    return rc;
}

// The newest step_* of a run: checkpoints/latest, else the highest-numbered step_* directory.
static int run_latest(const char *run, char *out, size_t n, char *err, size_t errlen) {
    char ck[8400], p[8600], name[256] = "";
    snprintf(ck, sizeof ck, "%s/checkpoints", run);
    snprintf(p, sizeof p, "%s/latest", ck);
    char *l = s2s_read_file(p, NULL);
    if (l) sscanf(l, "%255s", name);
    free(l);
    if (!*name) {
        long long best = -1;
        DIR *d = opendir(ck);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char *end;
            long long v = strncmp(e->d_name, "step_", 5) ? -1 : strtoll(e->d_name + 5, &end, 10);
            if (v > best && !*end) best = v, snprintf(name, sizeof name, "%s", e->d_name);
        }
        if (d) closedir(d);
    }
    if (!*name) return s2s_errf(err, errlen, "%s: the run has no checkpoint", run);
    snprintf(out, n, "%s/%s", ck, name);
    return 0;
}

int s2s_model_src_resolve(const char *ckpt, s2s_model_src *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (has(ckpt, "config.json")) {  // an OpenS2S model directory: everything is in it
        snprintf(s->model_dir, sizeof s->model_dir, "%s", ckpt);
        snprintf(s->assets_dir, sizeof s->assets_dir, "%s", ckpt);
        return 0;
    }
    if (has(ckpt, "trainer.json")) return source_checkpoint(ckpt, s, err, errlen);
    if (has(ckpt, "checkpoints")) {
        char dir[8800];
        if (run_latest(ckpt, dir, sizeof dir, err, errlen)) return -1;
        return source_checkpoint(dir, s, err, errlen);
    }
    return s2s_errf(err, errlen, "%s is neither an OpenS2S model directory (config.json), a training "
                    "checkpoint (trainer.json) nor a run directory (checkpoints/)", ckpt);
}


// ---- loading ------------------------------------------------------------------------------------------------

int s2s_model_src_load(const s2s_model_src *s, s2s_device dev, int threads, s2s_omnispeech_config *cfg,
                       s2s_params *P, s2s_omnispeech *m, int *n_merged, char *err, size_t errlen) {
    if (n_merged) *n_merged = 0;
    if (s2s_omnispeech_config_read(cfg, s->model_dir, err, errlen)) return -1;
    s2s_params_init(P, dev);
    s2s_omnispeech_create(m, P, cfg);
    int merged = 0;
    if (s->lora_r > 0) {  // the checkpoint holds the adapters next to the base weights: the same registry
        s2s_lora_config lc = {.r = s->lora_r, .alpha = s->lora_alpha, .dropout = 0, .targets = s->lora_targets};
        merged = s2s_lora_attach(P, &m->llm, &lc, 0);
    }
    int rc = s2s_ckpt_load_opens2s(P, s->model_dir, NULL, NULL, err, errlen);
    if (!rc && s->lora_r > 0) {
        // The merge's temporaries: B @ A, its scaled copy and the sum, each one projection [out, in].
        const int64_t H = cfg->llm.hidden_size, QD = cfg->llm.num_attention_heads * cfg->llm.head_dim;
        const size_t proj = (size_t)(H * QD) * sizeof(float);
        s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .n_threads = threads,
                                                  .arena_bytes = 4 * proj + (1 << 20), .scratch_bytes = 1 << 20});
        s2s_lora_merge(ctx, P, &m->llm);
        s2s_ctx_step_reset(ctx);
        s2s_ctx_free(ctx);
    }
    if (rc) {
        s2s_omnispeech_free(m);
        s2s_params_free(P);
        return -1;
    }
    if (n_merged) *n_merged = merged;
    return 0;
}
