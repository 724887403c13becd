// continuations_run.c — `s2s generate-continuations`: the manifest through the frozen LLM in batches, appended to
// OUT record by record so that a killed run continues where it stopped (continuations.h).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "base/err.h"
#include "continuations.h"
#include "data/tokenizer/tokenizer.h"
#include "gen_config.h"
#include "generate.h"
#include "model/checkpoint.h"

typedef struct llm {
    s2s_qwen3_config cfg;
    s2s_params P;
    s2s_qwen3 q;
    s2s_ctx *ctx;
    s2s_tokenizer *tok;
    s2s_tok_encoder *enc;
    int32_t eos[S2S_CFG_MAX_EOS + 1];
    int n_eos;
    bool loaded;
} llm;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void add_eos(llm *m, int32_t id) {
    for (int i = 0; i < m->n_eos; i++)
        if (m->eos[i] == id) return;
    if (id >= 0 && m->n_eos < S2S_CFG_MAX_EOS + 1) m->eos[m->n_eos++] = id;
}

// vLLM stops on the tokenizer's eos_token and on the generation config's eos_token_id (generation_config.json,
// else the model config's, as GenerationConfig.from_model_config falls back).
static int stop_ids(llm *m, const char *dir, char *err, size_t errlen) {
    char p[4200];
    snprintf(p, sizeof p, "%s/generation_config.json", dir);
    s2s_gen_config g = {0};
    if (access(p, F_OK) == 0 && s2s_gen_config_read(&g, p, err, errlen)) return -1;
    for (int i = 0; i < g.n_eos; i++) add_eos(m, g.eos[i]);
    if (!g.n_eos)
        for (int i = 0; i < m->cfg.n_eos; i++) add_eos(m, (int32_t)m->cfg.eos_token_id[i]);
    add_eos(m, s2s_tok_eos_id(m->tok));
    if (!m->n_eos) return s2s_errf(err, errlen, "%s: no eos_token in the tokenizer and no eos_token_id in "
                                   "generation_config.json or config.json: nothing would end a continuation", dir);
    return 0;
}

static void llm_close(llm *m) {
    if (m->enc) s2s_tok_encoder_free(m->enc);
    if (m->tok) s2s_tok_free(m->tok);
    if (m->loaded) s2s_qwen3_free(&m->q), s2s_params_free(&m->P);
    if (m->ctx) s2s_ctx_free(m->ctx);
    memset(m, 0, sizeof *m);
}

// The frozen LLM of stage 1: a plain Hugging Face Qwen3ForCausalLM directory and the tokenizer beside it.
static int llm_open(llm *m, const s2s_cont_opts *o, char *err, size_t errlen) {
    memset(m, 0, sizeof *m);
    s2s_device dev;
    char info[256];
    if (s2s_device_open(o->device, 0, &dev, info, sizeof info, err, errlen)) return -1;
    if (s2s_qwen3_config_read(&m->cfg, o->model, err, errlen)) return -1;
    s2s_params_init(&m->P, dev);
    s2s_qwen3_create(&m->q, &m->P, &m->cfg, "llm_model.", &(s2s_qwen3_opts){.trainable = false});
    m->loaded = true;
    s2s_ckpt_source src = {o->model, S2S_CKPT_HF_LLM};
    int rc = s2s_ckpt_load(&m->P, &src, 1, NULL, NULL, err, errlen);
    s2s_derr de;
    if (!rc && !(m->tok = s2s_tok_load(o->model, &de))) rc = s2s_errf(err, errlen, "%s: %s", o->model, de.msg);
    if (!rc && !(m->enc = s2s_tok_encoder_new(m->tok, &de))) rc = s2s_errf(err, errlen, "%s: %s", o->model, de.msg);
    if (!rc) rc = stop_ids(m, o->model, err, errlen);
    if (!rc) m->ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .n_threads = o->threads});
    if (rc) llm_close(m);
    return rc;
}

// ---- OUT: resuming and appending ----------------------------------------------------------------------------

typedef struct out_file {
    int fd;
    int64_t records;  // complete lines
    char *last;       // the last complete line (no newline), NULL when none
} out_file;

// Opens (or creates) OUT, counts its complete lines and cuts off a partial last line: every record was written
// as one write() of the line and its newline, so text after the last newline is a write a kill interrupted.
static int out_open(out_file *f, const char *path, int64_t *dropped, char *err, size_t errlen) {
    memset(f, 0, sizeof *f);
    f->fd = open(path, O_RDWR | O_CREAT | O_APPEND, 0644);
    if (f->fd < 0) return s2s_errf(err, errlen, "--out %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(f->fd, &sb)) return s2s_errf(err, errlen, "--out %s: %s", path, strerror(errno));
    const size_t n = (size_t)sb.st_size;
    char *s = s2s_malloc(n + 1);
    size_t got = 0;
    while (got < n) {
        const ssize_t k = pread(f->fd, s + got, n - got, (off_t)got);
        if (k <= 0) {
            free(s);
            return s2s_errf(err, errlen, "--out %s: read: %s", path, k ? strerror(errno) : "short");
        }
        got += (size_t)k;
    }
    size_t keep = n;
    while (keep && s[keep - 1] != '\n') keep--;
    *dropped = (int64_t)(n - keep);
    if (keep < n && (ftruncate(f->fd, (off_t)keep) || fsync(f->fd))) {
        free(s);
        return s2s_errf(err, errlen, "--out %s: cutting the partial last line: %s", path, strerror(errno));
    }
    for (size_t i = 0; i < keep; i++) f->records += s[i] == '\n';
    if (f->records) {
        size_t b = keep - 1;  // the last line is [b, keep - 1)
        while (b && s[b - 1] != '\n') b--;
        f->last = s2s_malloc(keep - b);
        memcpy(f->last, s + b, keep - 1 - b);
        f->last[keep - 1 - b] = 0;
    }
    free(s);
    return 0;
}

// One record line appended in one write() and made durable before the next is started.
static int out_append(out_file *f, const char *rec, const char *path, char *err, size_t errlen) {
    const size_t n = strlen(rec);
    char *line = s2s_malloc(n + 2);
    memcpy(line, rec, n);
    line[n] = '\n', line[n + 1] = 0;
    size_t put = 0;
    while (put < n + 1) {
        const ssize_t k = write(f->fd, line + put, n + 1 - put);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            free(line);
            return s2s_errf(err, errlen, "--out %s: write: %s", path, strerror(errno));
        }
        put += (size_t)k;
    }
    free(line);
    if (fsync(f->fd)) return s2s_errf(err, errlen, "--out %s: fsync: %s", path, strerror(errno));
    f->records++;
    return 0;
}

// The record OUT holds for the item it was last written from: the same audio (and id) or OUT is another run's.
static int out_matches(const out_file *f, const s2s_cont_item *it, const s2s_cont_opts *o, char *err,
                       size_t errlen) {
    cJSON *j = cJSON_Parse(f->last);
    const cJSON *a = j ? cJSON_GetObjectItemCaseSensitive(j, "audio") : NULL;
    const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
    char *ids = id ? cJSON_PrintUnformatted(id) : NULL;
    const bool same = a && cJSON_IsString(a) && !strcmp(a->valuestring, it->audio) &&
                      ((!ids && !it->id) || (ids && it->id && !strcmp(ids, it->id)));
    if (ids) cJSON_free(ids);
    cJSON_Delete(j);
    if (same) return 0;
    return s2s_errf(err, errlen, "--out %s: its record %lld is not the one for %s:%lld (another manifest or task?); "
                    "remove it to start over", o->out, (long long)f->records, o->manifest, (long long)it->line);
}

// ---- batches ------------------------------------------------------------------------------------------------

typedef struct batcher {
    llm *m;
    const s2s_cont_opts *o;
    out_file *out;
    s2s_cont_item *items;  // [batch] pending
    int n;
    s2s_kv_cache *kv;      // [batch], grown to the longest prompt seen
    int64_t kv_len;
    s2s_tok_ids ids;
} batcher;

static int run_batch(batcher *b, char *err, size_t errlen) {
    if (!b->n) return 0;
    llm *m = b->m;
    s2s_ctx *ctx = m->ctx;
    const int64_t max_new = b->o->max_new_tokens;
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    s2s_tensor *prompts[S2S_DECODE_MAX_BATCH];
    int64_t longest = 0;
    int rc = 0;
    s2s_no_grad_begin(ctx);
    for (int i = 0; i < b->n && !rc; i++) {
        char *p = s2s_cont_prompt(&b->items[i], b->o->task);
        s2s_derr de;
        b->ids.n = 0;
        if (s2s_tok_encode(m->enc, p, strlen(p), &b->ids, &de))
            rc = s2s_errf(err, errlen, "%s:%lld: the prompt: %s", b->o->manifest, (long long)b->items[i].line,
                          de.msg);
        free(p);
        if (rc) break;
        const int64_t T = (int64_t)b->ids.n;
        s2s_tensor *t = s2s_new1(ctx, S2S_I32, T);  // t [T]
        s2s_dev_copy(ctx->device, t->data, S2S_CPU, b->ids.ids, (size_t)T * sizeof(int32_t));
        prompts[i] = s2s_qwen3_embed(ctx, &m->q, t);  // [T, H]
        if (T > longest) longest = T;
    }
    s2s_no_grad_end(ctx);
    if (!rc) {
        if (longest + max_new - 1 > b->kv_len) {  // caches sized for the longest prompt so far
            b->kv_len = longest + max_new + 63;
            for (int i = 0; i < b->o->batch; i++) {
                if (b->kv[i].k) s2s_kv_cache_free(&b->kv[i]);
                s2s_kv_cache_init_qwen3(&b->kv[i], &m->q, b->kv_len);
            }
        }
        s2s_kv_cache *kvs[S2S_DECODE_MAX_BATCH];
        for (int i = 0; i < b->n; i++) s2s_kv_cache_reset(&b->kv[i]), kvs[i] = &b->kv[i];
        s2s_generate_out go[S2S_DECODE_MAX_BATCH];
        const s2s_generate_cfg gc = {.max_new_tokens = max_new, .eos = m->eos, .n_eos = m->n_eos,
                                     .sample = s2s_sample_defaults()};  // greedy: vLLM's top_k=1
        s2s_generate_qwen3_batch(ctx, &m->q, kvs, prompts, b->n, &gc, go);
        for (int i = 0; i < b->n; i++) {
            // vLLM's text: special tokens skipped, the stop token's own text removed.
            size_t len = 0;
            s2s_derr de;
            const size_t n = (size_t)(go[i].n_ids - (go[i].hit_eos ? 1 : 0));
            char *text = n ? s2s_tok_decode(m->tok, go[i].ids, n, 1, &len, &de) : calloc(1, 1);
            if (!text && !rc) rc = s2s_errf(err, errlen, "decoding the continuation: %s", de.msg);
            if (!rc) {
                char *rec = s2s_cont_record(&b->items[i], b->o->task, text);
                rc = out_append(b->out, rec, b->o->out, err, errlen);
                free(rec);
            }
            free(text);
            s2s_generate_out_free(&go[i]);
        }
    }
    s2s_arena_rewind(ctx->cur, mark);
    for (int i = 0; i < b->n; i++) s2s_cont_item_free(&b->items[i]);
    b->n = 0;
    return rc;
}

static int64_t count_lines(FILE *f) {
    int64_t n = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) >= 0) {
        bool blank = true;
        for (ssize_t i = 0; i < k && blank; i++) blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
                                                          line[i] == '\n';
        n += !blank;
    }
    free(line);
    rewind(f);
    return n;
}

static void progress(const s2s_cont_opts *o, const s2s_cont_stats *st, int64_t total, double t0) {
    if (o->quiet) return;
    const double dt = now() - t0, rate = dt > 0 ? (double)st->written / dt : 0;
    const int64_t left = total - st->lines;
    char eta[32] = "?";
    if (rate > 0) {
        const long s = (long)((double)left / rate + 0.5);
        snprintf(eta, sizeof eta, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    }
    fprintf(stderr, "generate-continuations: %lld/%lld lines, %lld written, %lld resumed, %lld skipped, "
            "%.2f items/s, ETA %s\n", (long long)st->lines, (long long)total, (long long)st->written,
            (long long)st->resumed, (long long)st->skipped, rate, eta);
}

int s2s_cont_run(const s2s_cont_opts *o, s2s_cont_stats *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    if (o->batch < 1 || o->batch > S2S_DECODE_MAX_BATCH)
        return s2s_errf(err, errlen, "--batch %d: must be 1..%d", o->batch, S2S_DECODE_MAX_BATCH);
    if (o->max_new_tokens < 1) return s2s_errf(err, errlen, "--max-new %lld: must be positive",
                                               (long long)o->max_new_tokens);
    FILE *in = fopen(o->manifest, "r");
    if (!in) return s2s_errf(err, errlen, "--manifest %s: %s", o->manifest, strerror(errno));
    llm m;
    if (llm_open(&m, o, err, errlen)) return fclose(in), -1;
    out_file out;
    int rc = out_open(&out, o->out, &st->dropped, err, errlen);
    if (!rc && st->dropped && !o->quiet)
        fprintf(stderr, "generate-continuations: %s: dropped a partial last line (%lld bytes)\n", o->out,
                (long long)st->dropped);
    st->resumed = out.records;
    const int64_t total = rc ? 0 : count_lines(in);
    batcher b = {.m = &m, .o = o, .out = &out};
    b.items = s2s_malloc((size_t)o->batch * sizeof *b.items);
    b.kv = calloc((size_t)o->batch, sizeof *b.kv);
    const double t0 = now();
    int64_t valid = 0, lineno = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    while (!rc && (k = getline(&line, &cap, in)) >= 0) {
        lineno++;
        bool blank = true;
        for (ssize_t i = 0; i < k && blank; i++) blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r' ||
                                                          line[i] == '\n';
        if (blank) continue;
        st->lines++;
        const bool done = valid < out.records;  // before the resume point: its record is in OUT already
        char why[1024];
        s2s_cont_item it;
        if (s2s_cont_item_parse(line, (size_t)k, o->task, lineno, &it, why, sizeof why)) {
            if (!done) {  // reported once, by the run that reached it
                fprintf(stderr, "%s:%lld: %s\n", o->manifest, (long long)lineno, why);
                st->skipped++;
            }
            continue;
        }
        valid++;
        if (done) {
            if (valid == out.records) rc = out_matches(&out, &it, o, err, errlen);
            s2s_cont_item_free(&it);
            continue;
        }
        b.items[b.n++] = it;
        if (b.n == o->batch) {
            const int64_t before = out.records;
            rc = run_batch(&b, err, errlen);
            st->written += out.records - before;
            progress(o, st, total, t0);
        }
    }
    if (!rc && b.n) {
        const int64_t before = out.records;
        rc = run_batch(&b, err, errlen);
        st->written += out.records - before;
        progress(o, st, total, t0);
    }
    for (int i = 0; i < b.n; i++) s2s_cont_item_free(&b.items[i]);
    if (!rc && valid < out.records)
        rc = s2s_errf(err, errlen, "--out %s holds %lld records but %s has only %lld items: written from another "
                      "manifest? remove it to start over", o->out, (long long)out.records, o->manifest,
                      (long long)valid);
    for (int i = 0; i < o->batch; i++)
        if (b.kv[i].k) s2s_kv_cache_free(&b.kv[i]);
    free(b.kv), free(b.items), free(b.ids.ids), free(line), free(out.last);
    if (out.fd >= 0) close(out.fd);
    llm_close(&m);
    fclose(in);
    return rc;
}
