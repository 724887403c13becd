#include "checkpoint.h"
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../base/fs.h"
#include "safetensors_index.h"

#define NAME_MAX_LEN 512

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

static bool put(char *out, size_t n, const char *prefix, const char *rest) {
    return (size_t)snprintf(out, n, "%s%s", prefix, rest) < n;
}

bool s2s_ckpt_map_name(s2s_ckpt_layout layout, const char *name, bool bare_audio, char *out, size_t n) {
    switch (layout) {
    case S2S_CKPT_OPENS2S: return put(out, n, "", name);
    case S2S_CKPT_HF_LLM: return put(out, n, "llm_model.", name);
    case S2S_CKPT_HF_TTS: return put(out, n, "tts_lm_model.", name);
    case S2S_CKPT_HF_AUDIO:
        if (bare_audio) return put(out, n, "audio_encoder_model.", name);
        // Qwen2AudioForConditionalGeneration keeps the encoder under audio_tower (transformers 5 may nest
        // it under model.); its language model and projector are not part of OpenS2S.
        if (starts_with(name, "audio_tower.")) return put(out, n, "audio_encoder_model.", name + 12);
        if (starts_with(name, "model.audio_tower.")) return put(out, n, "audio_encoder_model.", name + 18);
        return false;
    }
    return false;
}

static bool has_audio_tower(const s2s_st_dir *d) {
    for (int i = 0; i < d->n; i++)
        if (strstr(d->refs[i].e->name, "audio_tower.")) return true;
    return false;
}

// ---- report -------------------------------------------------------------------------------------------

static void list_add(char ***list, int *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void list_add(char ***list, int *n, const char *fmt, ...) {
    char buf[2 * NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    *list = s2s_realloc(*list, (size_t)(*n + 1) * sizeof **list);
    (*list)[(*n)++] = strdup(buf);
}

static void list_free(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}

void s2s_ckpt_report_free(s2s_ckpt_report *r) {
    list_free(r->missing, r->n_missing);
    list_free(r->unexpected, r->n_unexpected);
    list_free(r->resized, r->n_resized);
    memset(r, 0, sizeof *r);
}

// ---- loading -------------------------------------------------------------------------------------------

typedef struct plan_item {
    char *name;  // registry name
    const s2s_st_entry *e;
    const s2s_st_file *file;
    s2s_param *param;  // NULL: skipped
    int64_t rows;      // rows to copy (dim 0), fewer than the parameter's when the vocabulary was resized
} plan_item;

static int cmp_plan(const void *a, const void *b) { return strcmp(((const plan_item *)a)->name, ((const plan_item *)b)->name); }

static int cmp_param(const void *a, const void *b) {
    return strcmp((*(s2s_param *const *)a)->name, (*(s2s_param *const *)b)->name);
}

static s2s_param *find_param(s2s_param **sorted, int n, const char *name) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(sorted[mid]->name, name);
        if (c == 0) return sorted[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++) at += (size_t)snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

static bool is_vocab_matrix(const char *name) {
    return ends_with(name, "embed_tokens.weight") || ends_with(name, "lm_head.weight");
}

// A model that ties its output projection to embed_tokens registers no lm_head; a checkpoint's
// lm_head.weight is then the same matrix: redundant when embed_tokens is there too (transformers ignores
// it the same way), and the embedding itself when a saver kept only the lm_head name of the shared pair.
static s2s_param *tied_embedding(s2s_param **sorted, int n, const char *name) {
    if (!ends_with(name, "lm_head.weight")) return NULL;
    char sib[NAME_MAX_LEN];
    size_t base = strlen(name) - strlen("lm_head.weight");
    if (base + strlen("model.embed_tokens.weight") >= sizeof sib) return NULL;
    memcpy(sib, name, base);
    strcpy(sib + base, "model.embed_tokens.weight");
    return find_param(sorted, n, sib);
}

// Checks one mapped tensor against its parameter; fills it->rows.
static int check_item(plan_item *it, const s2s_ckpt_load_opts *o, s2s_ckpt_report *r, char *err, size_t n) {
    const s2s_st_entry *e = it->e;
    const s2s_tensor *t = it->param->t;
    char a[128], b[128];
    if (!e->supported || e->dtype == S2S_I32)
        return s2s_errf(err, n, "%s: tensor '%s' is %s; parameter %s needs F32, BF16 or F16", it->file->path, e->name,
                        e->dtype_name, it->param->name);
    bool same = e->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = e->shape[d] == t->shape[d];
    it->rows = t->ndim ? t->shape[0] : 1;
    if (same) return 0;
    bool resizable = o->resize_vocab && is_vocab_matrix(it->name) && e->ndim == 2 && t->ndim == 2 &&
                     e->shape[1] == t->shape[1];
    if (!resizable)
        return s2s_errf(err, n, "%s: tensor '%s' has shape %s, but the model's %s is %s", it->file->path, e->name,
                        shape_str(e->ndim, e->shape, a, sizeof a), it->param->name,
                        shape_str(t->ndim, t->shape, b, sizeof b));
    it->rows = e->shape[0] < t->shape[0] ? e->shape[0] : t->shape[0];
    if (r)
        list_add(&r->resized, &r->n_resized, "%s: %lld rows in %s, %lld in the model", it->param->name,
                 (long long)e->shape[0], it->file->path, (long long)t->shape[0]);
    return 0;
}

static bool is_optional(const s2s_ckpt_load_opts *o, const char *name) {
    for (const char *const *p = o->optional; p && *p; p++)
        if (starts_with(name, *p)) return true;
    return false;
}

static void sources_str(const s2s_ckpt_source *src, int n_src, char *buf, size_t n) {
    size_t at = 0;
    buf[0] = 0;
    for (int i = 0; i < n_src && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, "%s%s", i ? ", " : "", src[i].path);
}

// Parameters no source provides: the optional ones go to the report, any other is an error.
static int check_missing(s2s_params *p, const bool *provided, const s2s_ckpt_source *src, int n_src,
                         const s2s_ckpt_load_opts *o, s2s_ckpt_report *r, char *err, size_t n) {
    int bad = 0;
    char names[1024] = "";
    size_t at = 0;
    for (int i = 0; i < p->n; i++) {
        if (provided[i]) continue;
        if (is_optional(o, p->items[i].name)) {
            if (r) list_add(&r->missing, &r->n_missing, "%s", p->items[i].name);
            continue;
        }
        if (bad < 4 && at < sizeof names)
            at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", bad ? ", " : "", p->items[i].name);
        bad++;
    }
    if (!bad) return 0;
    char where[1024];
    sources_str(src, n_src, where, sizeof where);
    return s2s_errf(err, n, "%s: %d model parameter%s missing from the checkpoint: %s%s", where, bad,
                    bad > 1 ? "s are" : " is", names, bad > 4 ? ", ..." : "");
}

// Convert rows of a checkpoint tensor into the f32 parameter, through a host staging buffer when the
// registry lives on a GPU.
static void copy_item(const plan_item *it, s2s_device dev, float *stage, int64_t chunk) {
    const s2s_st_entry *e = it->e;
    int64_t cols = 1;
    for (int d = 1; d < e->ndim; d++) cols *= e->shape[d];
    int64_t total = e->ndim ? it->rows * cols : 1;
    size_t esz = s2s_dtype_size(e->dtype);
    float *dst = it->param->t->data;
    if (dev == S2S_CPU) {
        s2s_convert_host(dst, S2S_F32, e->data, e->dtype, total);
        return;
    }
    for (int64_t at = 0; at < total; at += chunk) {
        int64_t k = total - at < chunk ? total - at : chunk;
        s2s_convert_host(stage, S2S_F32, (const char *)e->data + at * esz, e->dtype, k);
        s2s_dev_copy(dev, dst + at, S2S_CPU, stage, (size_t)k * sizeof(float));
    }
}

int s2s_ckpt_load(s2s_params *p, const s2s_ckpt_source *src, int n_src, const s2s_ckpt_load_opts *o,
                  s2s_ckpt_report *r, char *err, size_t n) {
    static const s2s_ckpt_load_opts strict = {0};
    if (!o) o = &strict;
    if (r) memset(r, 0, sizeof *r);
    s2s_st_dir *dirs = s2s_calloc((size_t)n_src + 1, sizeof *dirs);
    s2s_param **sorted = s2s_malloc(((size_t)p->n + 1) * sizeof *sorted);
    bool *provided = s2s_calloc((size_t)p->n + 1, sizeof *provided);
    plan_item *plan = NULL;
    int n_plan = 0, rc = 0, n_open = 0;
    for (int i = 0; i < p->n; i++) sorted[i] = &p->items[i];
    qsort(sorted, (size_t)p->n, sizeof *sorted, cmp_param);

    for (int s = 0; s < n_src && !rc; s++) {
        if ((rc = s2s_st_dir_open(&dirs[s], src[s].path, err, n))) break;
        n_open++;
        bool bare = src[s].layout == S2S_CKPT_HF_AUDIO && !has_audio_tower(&dirs[s]);
        plan = s2s_realloc(plan, (size_t)(n_plan + dirs[s].n + 1) * sizeof *plan);
        for (int i = 0; i < dirs[s].n; i++) {
            char name[NAME_MAX_LEN];
            const s2s_st_entry *e = dirs[s].refs[i].e;
            if (!s2s_ckpt_map_name(src[s].layout, e->name, bare, name, sizeof name)) continue;
            plan[n_plan++] = (plan_item){strdup(name), e, &dirs[s].files[dirs[s].refs[i].file], NULL, 0};
        }
    }
    if (!rc) qsort(plan, (size_t)n_plan, sizeof *plan, cmp_plan);
    for (int i = 0; i < n_plan && !rc; i++) {
        plan_item *it = &plan[i];
        if (i > 0 && strcmp(plan[i - 1].name, it->name) == 0) {
            rc = s2s_errf(err, n, "%s: tensor '%s' (model parameter %s) is also in %s", it->file->path, it->e->name,
                          it->name, plan[i - 1].file->path);
            break;
        }
        it->param = find_param(sorted, p->n, it->name);
        if (!it->param) {
            if (tied_embedding(sorted, p->n, it->name)) continue;  // decided once everything else is placed
            if (!o->ignore_unexpected) {
                rc = s2s_errf(err, n, "%s: tensor '%s' is not a parameter of the model (it would be %s)",
                              it->file->path, it->e->name, it->name);
                break;
            }
            if (r) list_add(&r->unexpected, &r->n_unexpected, "%s (%s)", it->e->name, it->file->path);
            continue;
        }
        if ((rc = check_item(it, o, r, err, n))) break;
        provided[it->param - p->items] = true;
    }
    for (int i = 0; i < n_plan && !rc; i++) {
        plan_item *it = &plan[i];
        s2s_param *emb = it->param ? NULL : tied_embedding(sorted, p->n, it->name);
        if (!emb || provided[emb - p->items]) continue;
        it->param = emb;
        if ((rc = check_item(it, o, r, err, n))) break;
        provided[emb - p->items] = true;
    }
    if (!rc) rc = check_missing(p, provided, src, n_src, o, r, err, n);
    if (!rc) {
        const int64_t chunk = (int64_t)1 << 20;
        float *stage = p->device == S2S_CPU ? NULL : s2s_malloc((size_t)chunk * sizeof(float));
        for (int i = 0; i < n_plan; i++)
            if (plan[i].param) {
                copy_item(&plan[i], p->device, stage, chunk);
                if (r) r->n_loaded++;
            }
        free(stage);
    }
    if (rc && r) s2s_ckpt_report_free(r);
    for (int i = 0; i < n_plan; i++) free(plan[i].name);
    free(plan);
    for (int s = 0; s < n_open; s++) s2s_st_dir_close(&dirs[s]);
    free(dirs);
    free(sorted);
    free(provided);
    return rc;
}

int s2s_ckpt_load_opens2s(s2s_params *p, const char *dir, const s2s_ckpt_load_opts *o, s2s_ckpt_report *r,
                          char *err, size_t n) {
    s2s_ckpt_source s = {dir, S2S_CKPT_OPENS2S};
    return s2s_ckpt_load(p, &s, 1, o, r, err, n);
}

int s2s_ckpt_load_hf(s2s_params *p, const char *audio_dir, const char *llm_dir, const char *tts_dir,
                     const s2s_ckpt_load_opts *o, s2s_ckpt_report *r, char *err, size_t n) {
    // What OpenS2S creates fresh when it starts from the three pretrained models.
    static const char *const fresh[] = {"audio_adapter.", "llm2tts.", "llm_ln.", "tts_lm_model.spk2tts.",
                                        "tts_lm_model.spk_ln.", NULL};
    static const s2s_ckpt_load_opts dflt = {.optional = fresh, .resize_vocab = true};
    s2s_ckpt_source s[3];
    int k = 0;
    if (audio_dir) s[k++] = (s2s_ckpt_source){audio_dir, S2S_CKPT_HF_AUDIO};
    if (llm_dir) s[k++] = (s2s_ckpt_source){llm_dir, S2S_CKPT_HF_LLM};
    if (tts_dir) s[k++] = (s2s_ckpt_source){tts_dir, S2S_CKPT_HF_TTS};
    return s2s_ckpt_load(p, s, k, o ? o : &dflt, r, err, n);
}

int s2s_ckpt_list(const s2s_ckpt_source *src, int n_src, FILE *out, char *err, size_t n) {
    for (int s = 0; s < n_src; s++) {
        s2s_st_dir d;
        if (s2s_st_dir_open(&d, src[s].path, err, n)) return -1;
        bool bare = src[s].layout == S2S_CKPT_HF_AUDIO && !has_audio_tower(&d);
        size_t bytes = 0;
        for (int i = 0; i < d.n; i++) {
            const s2s_st_entry *e = d.refs[i].e;
            char name[NAME_MAX_LEN], sh[128];
            if (!s2s_ckpt_map_name(src[s].layout, e->name, bare, name, sizeof name)) strcpy(name, "-");
            fprintf(out, "%s\t%s\t%s\t%s\t%s\n", name, e->dtype_name, shape_str(e->ndim, e->shape, sh, sizeof sh),
                    d.files[d.refs[i].file].path, e->name);
            bytes += e->nbytes;
        }
        fprintf(out, "# %s: %d tensors, %zu bytes, %d file%s\n", src[s].path, d.n, bytes, d.n_files,
                d.n_files == 1 ? "" : "s");
        s2s_st_dir_close(&d);
    }
    return 0;
}

// ---- saving ---------------------------------------------------------------------------------------------

int s2s_ckpt_save(const s2s_params *p, const char *dir, const s2s_ckpt_save_opts *o, char *err, size_t n) {
    S2S_CHECK(o->dtype == S2S_F32 || o->dtype == S2S_BF16 || o->dtype == S2S_F16, "checkpoints store f32, bf16 or f16");
    if (s2s_mkdir_p(dir)) return s2s_errf(err, n, "%s: cannot create: %s", dir, strerror(errno));
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    size_t plen = o->prefix ? strlen(o->prefix) : 0;
    for (int i = 0; i < p->n; i++) {
        const s2s_param *q = &p->items[i];
        if (plen && strncmp(q->name, o->prefix, plen) != 0) continue;
        if (o->exclude && !strncmp(q->name, o->exclude, strlen(o->exclude))) continue;
        s2s_st_writer_add_from(&w, q->name + plen, o->dtype, q->t->ndim, q->t->shape, q->t->data, S2S_F32, p->device);
    }
    int rc;
    if (w.n == 0)
        rc = s2s_errf(err, n, "%s: no parameters%s%s to save", dir, plen ? " under " : "", plen ? o->prefix : "");
    else rc = s2s_st_write_sharded(&w, dir, o->max_shard_bytes, err, n);
    s2s_st_writer_free(&w);
    return rc;
}
