// run_checkpoint.c — crash-safe training checkpoints (run_checkpoint.h).
#include "run_checkpoint.h"
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "autograd/check.h"
#include "base/fs.h"
#include "data/hash.h"
#include "data/tokenizer/tok_hf_files.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

// The files a checkpoint holds besides trainer.json, relative to its directory.
static const char *const FILES_SUB[] = {"model", "optimizer", "aux", "hf", "hf/audio", "hf/tts"};

// SHA-256 of every file under dir/sub into obj[sub/name], fsync'ing each.
static int hash_dir(const char *dir, const char *sub, cJSON *obj, char *err, size_t errlen) {
    char path[8600];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    DIR *d = opendir(path);
    if (!d && errno == ENOENT) return 0;  // aux/ only exists for runs with training-only parameters
    if (!d) return s2s_errf(err, errlen, "%s: cannot list", path);
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[8600], rel[512], hex[65];
        if (snprintf(f, sizeof f, "%s/%s", path, e->d_name) >= (int)sizeof f) continue;
        struct stat st;
        if (!stat(f, &st) && S_ISDIR(st.st_mode)) continue;  // hf/audio, hf/tts: listed in FILES_SUB themselves
        snprintf(rel, sizeof rel, "%s/%s", sub, e->d_name);
        s2s_derr de;
        if (s2s_fsync_path(f)) rc = s2s_errf(err, errlen, "%s: fsync failed: %s", f, strerror(errno));
        else if (s2s_sha256_file(f, hex, &de)) rc = s2s_errf(err, errlen, "%s", de.msg);
        else cJSON_AddStringToObject(obj, rel, hex);
    }
    closedir(d);
    if (!rc && s2s_fsync_path(path)) rc = s2s_errf(err, errlen, "%s: fsync failed", path);
    return rc;
}

static int step_of(const char *name, int64_t *step) {
    char *end;
    if (strncmp(name, "step_", 5) || !name[5]) return -1;
    long long v = strtoll(name + 5, &end, 10);
    if (*end) return -1;
    *step = v;
    return 0;
}

// step_* directories of ckdir, newest first.
static int list_steps(const char *ckdir, int64_t **steps) {
    DIR *d = opendir(ckdir);
    *steps = NULL;
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s;
        if (step_of(e->d_name, &s)) continue;
        *steps = s2s_realloc(*steps, (size_t)(n + 1) * sizeof **steps);
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++)  // insertion sort, descending
        for (int j = i; j > 0 && (*steps)[j] > (*steps)[j - 1]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1], (*steps)[j - 1] = t;
        }
    return n;
}

// Training-only parameters, f32 under their registry names (a resume needs them exactly).
static int write_aux(const s2s_runckpt_save *s, const char *tmp, char *err, size_t errlen) {
    char p[8600];
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    const size_t n = strlen(s->aux_prefix);
    for (int i = 0; i < s->P->n; i++) {
        const s2s_param *q = &s->P->items[i];
        if (strncmp(q->name, s->aux_prefix, n)) continue;
        s2s_st_writer_add_from(&w, q->name, S2S_F32, q->t->ndim, q->t->shape, q->t->data, S2S_F32, s->P->device);
    }
    int rc = 0;
    if (w.n) {
        snprintf(p, sizeof p, "%s/aux", tmp);
        if (s2s_mkdir_p(p)) rc = s2s_errf(err, errlen, "%s: cannot create: %s", p, strerror(errno));
        snprintf(p, sizeof p, "%s/aux/params.safetensors", tmp);
        if (!rc) rc = s2s_st_writer_write(&w, p, err, errlen);
    }
    s2s_st_writer_free(&w);
    return rc;
}

// ---- hf/: what an export needs besides the weights ----------------------------------------------------------

static int has(const char *dir, const char *name) {
    char p[8600];
    struct stat st;
    return dir && *dir && snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && !stat(p, &st);
}

// Copies each of names[] that src has into dst (created when something is copied).
static int copy_some(const char *src, const char *const *names, const char *dst, char *err, size_t errlen) {
    for (int i = 0; names[i]; i++) {
        if (!has(src, names[i])) continue;
        char a[8600], b[8600];
        snprintf(a, sizeof a, "%s/%s", src, names[i]);
        snprintf(b, sizeof b, "%s/%s", dst, names[i]);
        if (s2s_mkdir_p(dst)) return s2s_errf(err, errlen, "%s: cannot create: %s", dst, strerror(errno));
        if (s2s_copy_file(a, b, err, errlen)) return -1;
    }
    return 0;
}

// model.init as a directory in the OpenS2S layout: itself, or the hf/ of the checkpoint it names (a run
// directory: its latest).
static void init_layout(const char *init, char *out, size_t n) {
    *out = 0;
    if (!init || !*init) return;
    char p[8400];
    if (has(init, "trainer.json")) {
        snprintf(out, n, "%s/hf", init);
    } else if (has(init, "checkpoints/latest")) {
        snprintf(p, sizeof p, "%s/checkpoints/latest", init);
        char name[64] = "";
        FILE *f = fopen(p, "r");
        if (f && fscanf(f, "%63s", name) == 1) snprintf(out, n, "%s/checkpoints/%s/hf", init, name);
        if (f) fclose(f);
    } else {
        snprintf(out, n, "%s", init);
    }
}

static int write_assets(const s2s_runckpt_assets *a, const char *tmp, char *err, size_t errlen) {
    static const char *const GEN[] = {"generation_config.json", NULL}, *const PRE[] = {"preprocessor_config.json", NULL};
    const char *const *TOK = s2s_tok_hf_files();
    char base[8400], sub[8400], hf[8600], d[8700];
    init_layout(a->init, base, sizeof base);
    snprintf(hf, sizeof hf, "%s/hf", tmp);
    const bool tok = a->tokenizer && *a->tokenizer, ttok = a->tts_tokenizer && *a->tts_tokenizer;
    // One tokenizer's files, never a mix: the recipe's tokenizer (the one the shards were made with) or init's.
    int rc = copy_some(tok ? a->tokenizer : base, TOK, hf, err, errlen);
    if (!rc) rc = copy_some(a->llm && *a->llm ? a->llm : base, GEN, hf, err, errlen);
    snprintf(sub, sizeof sub, "%s/audio", base);
    snprintf(d, sizeof d, "%s/audio", hf);
    if (!rc) rc = copy_some(a->audio && *a->audio ? a->audio : *base ? sub : NULL, PRE, d, err, errlen);
    snprintf(sub, sizeof sub, "%s/tts", base);
    snprintf(d, sizeof d, "%s/tts", hf);
    if (!rc) rc = copy_some(ttok ? a->tts_tokenizer : *base ? sub : NULL, TOK, d, err, errlen);
    if (!rc) rc = copy_some(a->tts && *a->tts ? a->tts : *base ? sub : NULL, GEN, d, err, errlen);
    return rc;
}

static void remove_leftovers(const char *ckdir) {
    DIR *d = opendir(ckdir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".tmp-", 5)) continue;
        char p[8192];
        if (snprintf(p, sizeof p, "%s/%s", ckdir, e->d_name) >= (int)sizeof p) continue;
        fprintf(stderr, "s2s train: removing the incomplete checkpoint %s\n", p);
        s2s_rm_rf(p);
    }
    closedir(d);
}

static void tmp_path(const char *run_dir, int64_t step, char *out, size_t n) {
    snprintf(out, n, "%s/checkpoints/.tmp-step_%08lld", run_dir, (long long)step);
}

int s2s_runckpt_prepare(const char *run_dir, int64_t step, char *err, size_t errlen) {
    char ckdir[8192], tmp[8400], p[8600];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    tmp_path(run_dir, step, tmp, sizeof tmp);
    if (s2s_mkdir_p(ckdir)) return s2s_errf(err, errlen, "%s: cannot create: %s", ckdir, strerror(errno));
    s2s_rm_rf(tmp);
    snprintf(p, sizeof p, "%s/optimizer", tmp);
    if (s2s_mkdir_p(p)) return s2s_errf(err, errlen, "%s: cannot create: %s", p, strerror(errno));
    return 0;
}

int s2s_runckpt_write_optimizer(const char *run_dir, int64_t step, int rank, const s2s_adam_state *opt, char *err,
                                size_t errlen) {
    char tmp[8400], p[8700];
    tmp_path(run_dir, step, tmp, sizeof tmp);
    snprintf(p, sizeof p, "%s/optimizer/rank_%05d.safetensors", tmp, rank);
    return s2s_adam_save(opt, p, err, errlen);
}

int s2s_runckpt_write(const s2s_runckpt_save *s, char *err, size_t errlen) {
    char ckdir[8192], tmp[8400], fin[8400], p[8600];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", s->run_dir);
    tmp_path(s->run_dir, s->step, tmp, sizeof tmp);
    snprintf(fin, sizeof fin, "%s/step_%08lld", ckdir, (long long)s->step);
    if (!s->prepared && s2s_runckpt_prepare(s->run_dir, s->step, err, errlen)) return -1;
    snprintf(p, sizeof p, "%s/model", tmp);
    s2s_ckpt_save_opts so = {.dtype = s->dtype, .exclude = s->aux_prefix};
    if (s2s_ckpt_save(s->P, p, &so, err, errlen)) return -1;
    if (s->aux_prefix && write_aux(s, tmp, err, errlen)) return -1;
    snprintf(p, sizeof p, "%s/model/config.json", tmp);
    if (s2s_omnispeech_config_write(s->cfg, p, err, errlen)) return -1;
    if (!s->prepared && s2s_runckpt_write_optimizer(s->run_dir, s->step, 0, s->opt, err, errlen)) return -1;
    if (s->assets && write_assets(s->assets, tmp, err, errlen)) return -1;

    cJSON *files = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof FILES_SUB / sizeof *FILES_SUB; i++)
        if (hash_dir(tmp, FILES_SUB[i], files, err, errlen)) {
            cJSON_Delete(files);
            return -1;
        }
    cJSON_DeleteItemFromObject(s->trainer, "files");
    cJSON_AddItemToObject(s->trainer, "files", files);
    char *js = cJSON_Print(s->trainer);
    snprintf(p, sizeof p, "%s/trainer.json", tmp);
    int rc = s2s_write_file_atomic(p, js, strlen(js), err, errlen);
    free(js);
    if (rc) return -1;
    if (s2s_fsync_path(tmp)) return s2s_errf(err, errlen, "%s: fsync failed", tmp);
    // A checkpoint of this step already there (a rerun of the same step after a resume): replaced whole.
    struct stat st;
    if (!stat(fin, &st)) {
        char old[8600];
        snprintf(old, sizeof old, "%s/.tmp-old-step_%08lld", ckdir, (long long)s->step);
        if (rename(fin, old)) return s2s_errf(err, errlen, "%s: cannot move aside: %s", fin, strerror(errno));
        s2s_rm_rf(old);
    }
    if (rename(tmp, fin)) return s2s_errf(err, errlen, "%s: cannot rename to %s: %s", tmp, fin, strerror(errno));
    if (s2s_fsync_path(ckdir)) return s2s_errf(err, errlen, "%s: fsync failed", ckdir);
    char name[64];
    int nl = snprintf(name, sizeof name, "step_%08lld\n", (long long)s->step);
    snprintf(p, sizeof p, "%s/latest", ckdir);
    if (s2s_write_file_atomic(p, name, (size_t)nl, err, errlen)) return -1;

    int64_t *steps;
    int n = list_steps(ckdir, &steps);
    for (int i = s->keep; i < n; i++) {
        snprintf(p, sizeof p, "%s/step_%08lld", ckdir, (long long)steps[i]);
        s2s_rm_rf(p);
    }
    free(steps);
    return 0;
}

cJSON *s2s_runckpt_read(const char *dir, char *err, size_t errlen) {
    char p[8400];
    snprintf(p, sizeof p, "%s/trainer.json", dir);
    char *txt = s2s_read_file(p, NULL);
    if (!txt) {
        s2s_errf(err, errlen, "%s: no trainer.json (not a training checkpoint, or an incomplete one)", dir);
        return NULL;
    }
    cJSON *j = cJSON_Parse(txt);
    free(txt);
    if (!j) {
        s2s_errf(err, errlen, "%s: trainer.json is not valid JSON", dir);
        return NULL;
    }
    cJSON *files = cJSON_GetObjectItem(j, "files");
    if (!cJSON_IsObject(files) || !cJSON_GetArraySize(files)) {
        s2s_errf(err, errlen, "%s: trainer.json lists no file checksums", dir);
        cJSON_Delete(j);
        return NULL;
    }
    for (cJSON *f = files->child; f; f = f->next) {
        char path[8800], hex[65];
        snprintf(path, sizeof path, "%s/%s", dir, f->string);
        s2s_derr de;
        if (s2s_sha256_file(path, hex, &de) || !cJSON_IsString(f) || strcmp(hex, f->valuestring)) {
            s2s_errf(err, errlen, "%s: checksum mismatch or unreadable file (the checkpoint is damaged)", path);
            cJSON_Delete(j);
            return NULL;
        }
    }
    return j;
}

int s2s_runckpt_find(const char *run_dir, const char *resume, char *dir, size_t dirlen, char *err, size_t errlen) {
    char ckdir[8192];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    remove_leftovers(ckdir);
    if (strcmp(resume, "auto")) {
        cJSON *j = s2s_runckpt_read(resume, err, errlen);
        if (!j) return -1;
        cJSON_Delete(j);
        snprintf(dir, dirlen, "%s", resume);
        return 1;
    }
    // latest first; if it is missing or damaged, the newest step_* that verifies (a kill between the rename
    // and the move of latest leaves a complete newer one).
    char p[8400], want[64] = "";
    snprintf(p, sizeof p, "%s/latest", ckdir);
    char *l = s2s_read_file(p, NULL);
    if (l) {
        sscanf(l, "%63s", want);
        free(l);
    }
    int64_t *steps;
    int n = list_steps(ckdir, &steps);
    int found = 0;
    for (int pass = 0; pass < 2 && !found; pass++)
        for (int i = 0; i < n && !found; i++) {
            char name[64];
            snprintf(name, sizeof name, "step_%08lld", (long long)steps[i]);
            if (pass == 0 && strcmp(name, want)) continue;
            snprintf(p, sizeof p, "%s/%s", ckdir, name);
            char e2[512];
            cJSON *j = s2s_runckpt_read(p, e2, sizeof e2);
            if (!j) {
                fprintf(stderr, "s2s train: skipping %s: %s\n", p, e2);
                continue;
            }
            cJSON_Delete(j);
            snprintf(dir, dirlen, "%s", p);
            found = 1;
        }
    free(steps);
    return found;
}

int s2s_runckpt_optimizer_files(const char *dir, char ***paths, char *err, size_t errlen) {
    char od[8400];
    snprintf(od, sizeof od, "%s/optimizer", dir);
    *paths = NULL;
    int n = 0;
    for (;; n++) {  // rank_00000, rank_00001, ...: contiguous
        char p[8600];
        struct stat st;
        snprintf(p, sizeof p, "%s/rank_%05d.safetensors", od, n);
        if (stat(p, &st)) break;
        *paths = realloc(*paths, sizeof(char *) * (size_t)(n + 1));
        (*paths)[n] = strdup(p);
    }
    if (n == 0) return s2s_errf(err, errlen, "%s: no rank_00000.safetensors", od);
    return n;
}
