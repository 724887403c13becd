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
#include "autograd/ctx.h"
#include "base/err.h"
#include "base/fs.h"
#include "export_internal.h"
#include "model/omnispeech.h"
#include "model/safetensors_index.h"

bool s2s_export_has(const char *dir, const char *name) {
    char p[8400];
    struct stat st;
    return dir && *dir && snprintf(p, sizeof p, "%s/%s", dir, name) < (int)sizeof p && !stat(p, &st);
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
static int write_weights(const s2s_export_opts *o, const s2s_model_src *s, s2s_omnispeech_config *cfg,
                         const char *tmp, s2s_export_report *rep, char *err, size_t errlen) {
    s2s_params P;
    s2s_omnispeech m;
    int rc = s2s_model_src_load(s, S2S_CPU, o->threads, cfg, &P, &m, &rep->n_merged, err, errlen);
    if (rc) return -1;
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
    s2s_model_src s;
    if (s2s_model_src_resolve(o->ckpt, &s, err, errlen)) return -1;
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
