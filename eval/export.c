// export.c — `s2s export`: the source checkpoint, the merged weights, and the all-or-nothing directory (export.h).
#include "export.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "autograd/ctx.h"
#include "base/err.h"
#include "base/fs.h"
#include "data/hash.h"
#include "export_internal.h"
#include "model/checkpoint.h"
#include "model/lora.h"
#include "model/omnispeech.h"
#include "model/safetensors_index.h"

bool s2s_export_has(const char *dir, const char *name) {
    char p[8400];
    struct stat st;
    return dir && *dir && snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && !stat(p, &st);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = b ? fread(b, 1, (size_t)(n > 0 ? n : 0), f) : 0;
    fclose(f);
    if (b) b[got] = 0;
    return b;
}

// ---- --shard-size -----------------------------------------------------------------------------------------

int s2s_export_parse_size(const char *s, size_t *bytes) {
    char *end;
    if (!s || !isdigit((unsigned char)*s)) return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    char u[16] = "";
    const size_t n = strlen(end);
    if (n > 7) return -1;
    for (size_t i = 0; i < n; i++) u[i] = (char)toupper((unsigned char)end[i]);
    // transformers checks the binary units first, then the decimal ones, where a lower-case final 'b' means bits.
    static const struct { const char *unit; unsigned long long mul; } U[] = {
        {"", 1}, {"GIB", 1ull << 30}, {"MIB", 1ull << 20}, {"KIB", 1ull << 10}, {"GB", 1000000000ull},
        {"MB", 1000000ull}, {"KB", 1000ull}};
    for (size_t i = 0; i < sizeof U / sizeof *U; i++) {
        if (strcmp(u, U[i].unit)) continue;
        if (U[i].mul && v > (unsigned long long)SIZE_MAX / U[i].mul) return -1;
        unsigned long long b = v * U[i].mul;
        if (i >= 4 && end[n - 1] == 'b') b /= 8;
        *bytes = (size_t)b;
        return 0;
    }
    return -1;
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
static int source_checkpoint(const char *dir, s2s_export_src *s, char *err, size_t errlen) {
    char p[8400];
    snprintf(p, sizeof p, "%s/trainer.json", dir);
    char *txt = slurp(p);
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
    char *l = slurp(p);
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
    if (!*name) return s2s_errf(err, errlen, "--ckpt %s: the run has no checkpoint", run);
    snprintf(out, n, "%s/%s", ck, name);
    return 0;
}

static int source_resolve(const char *ckpt, s2s_export_src *s, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    if (s2s_export_has(ckpt, "config.json")) {  // an OpenS2S model directory: everything is in it
        snprintf(s->model_dir, sizeof s->model_dir, "%s", ckpt);
        snprintf(s->assets_dir, sizeof s->assets_dir, "%s", ckpt);
        return 0;
    }
    if (s2s_export_has(ckpt, "trainer.json")) return source_checkpoint(ckpt, s, err, errlen);
    if (s2s_export_has(ckpt, "checkpoints")) {
        char dir[8800];
        if (run_latest(ckpt, dir, sizeof dir, err, errlen)) return -1;
        return source_checkpoint(dir, s, err, errlen);
    }
    return s2s_errf(err, errlen, "--ckpt %s is neither an OpenS2S model directory (config.json), a training "
                    "checkpoint (trainer.json) nor a run directory (checkpoints/)", ckpt);
}

// ---- the weights -------------------------------------------------------------------------------------------

static const char *torch_dtype(s2s_dtype dt) {
    return dt == S2S_BF16 ? "bfloat16" : "float32";
}

// The registry as safetensors, plus for a tied LLM / TTS-LM its lm_head.weight (a copy of embed_tokens, next to
// it). OpenS2S's own save_pretrained (transformers 4.51) drops the tied copy, and its from_pretrained then
// initialises tts_lm_model.lm_head at random: the sub-model's tie does not survive loading into the composite
// (docs/export.md). With the copy written, OpenS2S loads the trained matrix; s2s skips it as redundant.
static int save_tensors(const s2s_params *P, const s2s_omnispeech_config *cfg, const s2s_export_opts *o,
                        const char *tmp, s2s_export_report *rep, char *err, size_t errlen) {
    static const char *const EMB[2] = {"llm_model.model.embed_tokens.weight", "tts_lm_model.model.embed_tokens.weight"};
    static const char *const HEAD[2] = {"llm_model.lm_head.weight", "tts_lm_model.lm_head.weight"};
    const bool tied[2] = {cfg->llm.tie_word_embeddings, cfg->tts.tie_word_embeddings};
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    for (int i = 0; i < P->n; i++) {
        const s2s_param *q = &P->items[i];
        s2s_st_writer_add_from(&w, q->name, o->dtype, q->t->ndim, q->t->shape, q->t->data, S2S_F32, P->device);
        for (int k = 0; k < 2; k++)
            if (tied[k] && !strcmp(q->name, EMB[k]))
                s2s_st_writer_add_from(&w, HEAD[k], o->dtype, q->t->ndim, q->t->shape, q->t->data, S2S_F32, P->device);
    }
    rep->n_tensors = w.n;
    rep->bytes = s2s_st_writer_data_bytes(&w);
    int rc = s2s_st_write_sharded(&w, tmp, o->max_shard_bytes, err, errlen);
    s2s_st_writer_free(&w);
    return rc;
}

// Load the checkpoint into an OmniSpeech registry (strict: every name and shape as the config says), merge the
// adapters, write config.json and the safetensors into tmp.
static int write_weights(const s2s_export_opts *o, const s2s_export_src *s, s2s_omnispeech_config *cfg,
                         const char *tmp, s2s_export_report *rep, char *err, size_t errlen) {
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    s2s_omnispeech m;
    s2s_omnispeech_create(&m, &P, cfg);
    if (s->lora_r > 0) {  // the checkpoint holds the adapters next to the base weights: the same registry
        s2s_lora_config lc = {.r = s->lora_r, .alpha = s->lora_alpha, .dropout = 0, .targets = s->lora_targets};
        rep->n_merged = s2s_lora_attach(&P, &m.llm, &lc, 0);
    }
    int rc = s2s_ckpt_load_opens2s(&P, s->model_dir, NULL, NULL, err, errlen);
    if (!rc && s->lora_r > 0) {
        // The merge's temporaries: B @ A, its scaled copy and the sum, each one projection [out, in].
        const int64_t H = cfg->llm.hidden_size, QD = cfg->llm.num_attention_heads * cfg->llm.head_dim;
        const size_t proj = (size_t)(H * QD) * sizeof(float);
        s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = o->threads,
                                                  .arena_bytes = 4 * proj + (1 << 20), .scratch_bytes = 1 << 20});
        s2s_lora_merge(ctx, &P, &m.llm);
        s2s_ctx_step_reset(ctx);
        s2s_ctx_free(ctx);
    }
    if (!rc) {
        snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", torch_dtype(o->dtype));
        snprintf(cfg->audio.torch_dtype, sizeof cfg->audio.torch_dtype, "%s", torch_dtype(o->dtype));
        snprintf(cfg->llm.torch_dtype, sizeof cfg->llm.torch_dtype, "%s", torch_dtype(o->dtype));
        snprintf(cfg->tts.torch_dtype, sizeof cfg->tts.torch_dtype, "%s", torch_dtype(o->dtype));
        char p[8600];
        snprintf(p, sizeof p, "%s/config.json", tmp);
        rc = s2s_omnispeech_config_write(cfg, p, err, errlen);
    }
    if (!rc) rc = save_tensors(&P, cfg, o, tmp, rep, err, errlen);
    if (!rc) {
        rep->n_shards = 1;
        if (s2s_export_has(tmp, "model.safetensors.index.json")) {
            rep->n_shards = 0;
            DIR *d = opendir(tmp);
            struct dirent *e;
            while (d && (e = readdir(d))) rep->n_shards += !strncmp(e->d_name, "model-", 6);
            if (d) closedir(d);
        }
    }
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    return rc;
}

// ---- the directory -----------------------------------------------------------------------------------------

// out's parent and last component.
static void split_path(const char *out, char *parent, size_t pn, char *base, size_t bn) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", out);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    char *slash = strrchr(buf, '/');
    if (!slash) snprintf(parent, pn, "."), snprintf(base, bn, "%s", buf);
    else if (slash == buf) snprintf(parent, pn, "/"), snprintf(base, bn, "%s", buf + 1);
    else *slash = 0, snprintf(parent, pn, "%s", buf), snprintf(base, bn, "%s", slash + 1);
}

// Temporaries of exports that were killed: ".<base>.export-<pid>" whose process is gone.
static void remove_stale(const char *parent, const char *base) {
    char pre[4200];
    snprintf(pre, sizeof pre, ".%s.export-", base);
    DIR *d = opendir(parent);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, pre, strlen(pre))) continue;
        char *end;
        long pid = strtol(e->d_name + strlen(pre), &end, 10);
        if (*end || pid <= 0 || !(kill((pid_t)pid, 0) != 0 && errno == ESRCH)) continue;  // still running
        char p[8400];
        snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
        fprintf(stderr, "s2s export: removing %s, left by an export that did not finish\n", p);
        s2s_rm_rf(p);
    }
    if (d) closedir(d);
}

static int fsync_tree(const char *dir) {
    static const char *const SUB[] = {"", "/audio", "/tts"};
    for (int i = 0; i < 3; i++) {
        char p[8400];
        snprintf(p, sizeof p, "%s%s", dir, SUB[i]);
        struct stat st;
        if (stat(p, &st)) continue;
        if (s2s_fsync_path(p)) return -1;
    }
    return 0;
}

// tmp becomes out: a rename, or with an existing out (force) an exchange of the two, so out is never absent.
static int publish(const char *tmp, const char *out, const char *parent, bool exists, char *err, size_t errlen) {
    if (fsync_tree(tmp)) return s2s_errf(err, errlen, "%s: fsync failed: %s", tmp, strerror(errno));
    if (!exists) {
        if (rename(tmp, out)) return s2s_errf(err, errlen, "%s: cannot rename to %s: %s", tmp, out, strerror(errno));
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
        s2s_rm_rf(tmp);  // now the old export
    } else {
        // A file system without RENAME_EXCHANGE: the old one moves aside first (out is briefly absent).
        char old[8600];
        snprintf(old, sizeof old, "%s.old", tmp);
        if (rename(out, old)) return s2s_errf(err, errlen, "%s: cannot move aside: %s", out, strerror(errno));
        if (rename(tmp, out)) {
            int e = errno;
            rename(old, out);
            return s2s_errf(err, errlen, "%s: cannot rename to %s: %s", tmp, out, strerror(e));
        }
        s2s_rm_rf(old);
    }
    if (s2s_fsync_path(parent)) return s2s_errf(err, errlen, "%s: fsync failed: %s", parent, strerror(errno));
    return 0;
}

int s2s_export(const s2s_export_opts *o, s2s_export_report *rep, char *err, size_t errlen) {
    s2s_export_report scratch;
    if (!rep) rep = &scratch;
    memset(rep, 0, sizeof *rep);
    if (o->dtype != S2S_F32 && o->dtype != S2S_BF16) return s2s_errf(err, errlen, "--dtype must be f32 or bf16");
    char parent[4096], base[4096];
    split_path(o->out, parent, sizeof parent, base, sizeof base);
    if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
        return s2s_errf(err, errlen, "--out %s: not a directory name", o->out);
    struct stat st;
    const bool exists = !stat(o->out, &st);
    if (exists && !S_ISDIR(st.st_mode)) return s2s_errf(err, errlen, "--out %s exists and is not a directory", o->out);
    if (exists && !o->force)
        return s2s_errf(err, errlen, "--out %s exists: refusing to replace it (--force replaces it atomically)", o->out);
    s2s_export_src s;
    if (source_resolve(o->ckpt, &s, err, errlen)) return -1;
    snprintf(rep->model_dir, sizeof rep->model_dir, "%s", s.model_dir);
    s2s_omnispeech_config cfg;
    if (s2s_omnispeech_config_read(&cfg, s.model_dir, err, errlen)) return -1;

    if (s2s_mkdir_p(parent)) return s2s_errf(err, errlen, "%s: cannot create: %s", parent, strerror(errno));
    remove_stale(parent, base);
    char tmp[8400];
    snprintf(tmp, sizeof tmp, "%s/.%s.export-%ld", parent, base, (long)getpid());
    s2s_rm_rf(tmp);
    if (s2s_mkdir_p(tmp)) return s2s_errf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    int rc = write_weights(o, &s, &cfg, tmp, rep, err, errlen);
    if (!rc) rc = s2s_export_files(o, &s, &cfg, tmp, rep, err, errlen);
    if (!rc) rc = publish(tmp, o->out, parent, exists, err, errlen);
    if (rc) s2s_rm_rf(tmp);
    return rc;
}
