// prep_run.c — a whole `s2s prep` conversion. The main thread reads lines into a ring of slots and writes
// finished slots strictly in input order; worker threads take the next unclaimed slot and build its record.
// Building is a pure function of the line, and only the writer decides shard boundaries (in input order, from
// the bytes written), so the shards are identical for any --jobs. Shards are published by the shard writer's
// .tmp + rename; prep.json, the summary, is written last the same way, so a complete output is one that has it.
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/fs.h"
#include "prep_internal.h"

#define NKINDS 3

enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

typedef struct slot {
    int state;
    char *line;
    size_t cap;
    ssize_t len;
    int file;
    int64_t lineno;
    s2s_prep_record rec;
    int ok;
    s2s_derr err;
} slot;

typedef struct shard_info {
    char name[64];
    int kind;
    int64_t samples, bytes;
} shard_info;

typedef struct run {
    const s2s_prep_opts *o;
    s2s_prep_ctx *ctx;
    slot *ring;
    int nring;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    int64_t nread, nclaimed;  // slots filled / taken by a worker, counting from the start of the run
    int stop;
    s2s_prep_worker **workers;
    pthread_t *threads;
    int nthreads;
    // writer side (main thread only)
    s2s_shard_writer *w[NKINDS];
    int64_t next_index[NKINDS];
    shard_info *shards;
    int nshards, cap_shards;
    s2s_prep_counts counts;
} run;

// ---- the output directory ---------------------------------------------------------------------------------

// Our files: <kind>-NNNNN.h5 (and .tmp), prep.json (and .tmp).
static int is_output_name(const char *n) {
    if (!strcmp(n, "prep.json") || !strcmp(n, "prep.json.tmp")) return 1;
    for (int k = 0; k < NKINDS; k++) {
        const char *kn = s2s_shard_kind_name((s2s_shard_kind)k);
        size_t l = strlen(kn);
        if (strncmp(n, kn, l) || n[l] != '-') continue;
        const char *p = n + l + 1;
        int digits = 0;
        while (*p >= '0' && *p <= '9') p++, digits++;
        if (digits >= 5 && (!strcmp(p, ".h5") || !strcmp(p, ".h5.tmp"))) return 1;
    }
    return 0;
}

// A previous run's output would mix with this one's (a shorter run leaves stale higher-numbered shards), so it
// is refused, or removed with overwrite. Leftover .tmp files of a crashed run are always removed.
static int prepare_dir(const s2s_prep_opts *o, s2s_derr *e) {
    if (!*o->out_dir) return s2s_derr_set(e, "the output directory is an empty string");
    if (strlen(o->out_dir) >= 4096) return s2s_derr_set(e, "%s: path too long", o->out_dir);
    if (s2s_mkdir_p(o->out_dir)) return s2s_derr_set(e, "%s: %s", o->out_dir, strerror(errno));
    DIR *d = opendir(o->out_dir);
    if (!d) return s2s_derr_set(e, "%s: %s", o->out_dir, strerror(errno));
    int rc = 0;
    for (int pass = 0; pass < 2 && !rc; pass++) {
        rewinddir(d);
        struct dirent *de;
        while ((de = readdir(d)) && !rc) {
            if (!is_output_name(de->d_name)) continue;
            size_t l = strlen(de->d_name);
            int tmp = l > 4 && !strcmp(de->d_name + l - 4, ".tmp");
            if (pass == 0 && !tmp && !o->overwrite)
                rc = s2s_derr_set(e, "%s already holds a prep output (%s); choose an empty directory or pass "
                                  "--overwrite", o->out_dir, de->d_name);
            if (pass == 1) {
                char path[4400];
                snprintf(path, sizeof path, "%s/%s", o->out_dir, de->d_name);
                if (unlink(path) && errno != ENOENT) rc = s2s_derr_set(e, "%s: %s", path, strerror(errno));
            }
        }
    }
    closedir(d);
    return rc;
}

// ---- workers ------------------------------------------------------------------------------------------

typedef struct worker_arg {
    run *r;
    s2s_prep_worker *w;
} worker_arg;

static void *worker_main(void *p) {
    worker_arg *a = p;
    run *r = a->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->nclaimed == r->nread) pthread_cond_wait(&r->work, &r->mu);
        if (r->stop) break;
        slot *s = &r->ring[r->nclaimed++ % r->nring];
        s->state = SLOT_BUSY;
        pthread_mutex_unlock(&r->mu);
        s->ok = !s2s_prep_record_build(a->w, s->line, (size_t)s->len, &s->rec, &s->err);
        pthread_mutex_lock(&r->mu);
        s->state = SLOT_DONE;
        pthread_cond_broadcast(&r->done);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

// ---- the writer -----------------------------------------------------------------------------------------

static int close_shard(run *r, int k, s2s_derr *e) {
    s2s_shard_writer *w = r->w[k];
    r->w[k] = NULL;
    shard_info *si = &r->shards[r->nshards - 1];
    while (si->kind != k) si--;  // the newest shard of kind k is the open one
    si->samples = s2s_shard_writer_num_samples(w);
    si->bytes = s2s_shard_writer_bytes(w);
    return s2s_shard_writer_close(w, e);
}

static int open_shard(run *r, int k, s2s_derr *e) {
    if (r->nshards == r->cap_shards) {
        int cap = r->cap_shards ? 2 * r->cap_shards : 16;
        shard_info *p = realloc(r->shards, (size_t)cap * sizeof *p);
        if (!p) return s2s_derr_set(e, "out of memory");
        r->shards = p;
        r->cap_shards = cap;
    }
    shard_info *si = &r->shards[r->nshards];
    memset(si, 0, sizeof *si);
    si->kind = k;
    snprintf(si->name, sizeof si->name, "%s-%05lld.h5", s2s_shard_kind_name((s2s_shard_kind)k),
             (long long)r->next_index[k]++);
    char path[4400];
    snprintf(path, sizeof path, "%s/%s", r->o->out_dir, si->name);
    s2s_shard_meta meta = {.kind = (s2s_shard_kind)k, .sample_rate = S2S_SHARD_SAMPLE_RATE};
    // tts_pretrain shards hold TTS-vocabulary ids only.
    if (k != S2S_SHARD_TTS_PRETRAIN) snprintf(meta.llm_tokenizer_sha256, 65, "%s", r->ctx->llm_sha);
    snprintf(meta.tts_tokenizer_sha256, 65, "%s", r->ctx->tts_sha);
    snprintf(meta.created_by, sizeof meta.created_by, "%s", r->o->created_by ? r->o->created_by : "s2s prep");
    if (!(r->w[k] = s2s_shard_writer_open(path, &meta, e))) return -1;
    r->nshards++;
    return 0;
}

static int write_record(run *r, slot *s, s2s_derr *e) {
    FILE *log = r->o->log ? r->o->log : stderr;
    if (!s->ok) {
        fprintf(log, "%s:%lld: %s\n", r->o->manifests[s->file], (long long)s->lineno, s->err.msg);
        r->counts.skipped++;
        return 0;
    }
    int k = (int)s->rec.kind;
    const s2s_shard_sample *sm = &s->rec.sample;
    if (!r->w[k] && open_shard(r, k, e)) return -1;
    if (s2s_shard_writer_add(r->w[k], sm, e)) return -1;
    r->counts.kept++;
    r->counts.kept_by_kind[k]++;
    r->counts.tokens += sm->n_tokens;
    r->counts.audios += sm->n_audio;
    for (int64_t a = 0; a < sm->n_audio; a++) r->counts.audio_samples += sm->audio_len[a];
    r->counts.units += sm->n_units;
    if (s2s_shard_writer_bytes(r->w[k]) >= r->o->shard_bytes) return close_shard(r, k, e);
    return 0;
}

// ---- the summary ------------------------------------------------------------------------------------------

static int write_summary(run *r, s2s_derr *e) {
    const s2s_prep_opts *o = r->o;
    cJSON *j = cJSON_CreateObject(), *a;
    cJSON_AddStringToObject(j, "format", "s2s-prep");
    cJSON_AddStringToObject(j, "created_by", o->created_by ? o->created_by : "s2s prep");
    cJSON_AddItemToObject(j, "manifests", a = cJSON_CreateArray());
    for (int i = 0; i < o->n_manifests; i++) cJSON_AddItemToArray(a, cJSON_CreateString(o->manifests[i]));
    cJSON_AddStringToObject(j, "llm_tokenizer_sha256", r->ctx->llm_sha);
    cJSON_AddStringToObject(j, "tts_tokenizer_sha256", r->ctx->tts_sha);
    cJSON_AddBoolToObject(j, "enable_thinking", o->enable_thinking);
    cJSON_AddNumberToObject(j, "shard_bytes", (double)o->shard_bytes);
    cJSON_AddItemToObject(j, "emotion_labels", a = cJSON_CreateArray());
    for (int i = 0; i < o->n_emotion_labels; i++) cJSON_AddItemToArray(a, cJSON_CreateString(o->emotion_labels[i]));
    const s2s_prep_counts *c = &r->counts;
    cJSON_AddNumberToObject(j, "records", (double)c->records);
    cJSON_AddNumberToObject(j, "kept", (double)c->kept);
    cJSON_AddNumberToObject(j, "skipped", (double)c->skipped);
    cJSON_AddNumberToObject(j, "tokens", (double)c->tokens);
    cJSON_AddNumberToObject(j, "audios", (double)c->audios);
    cJSON_AddNumberToObject(j, "audio_seconds", (double)c->audio_samples / S2S_SHARD_SAMPLE_RATE);
    cJSON_AddNumberToObject(j, "units", (double)c->units);
    cJSON *kinds = cJSON_AddObjectToObject(j, "kinds");
    for (int k = 0; k < NKINDS; k++) {
        cJSON *ko = cJSON_AddObjectToObject(kinds, s2s_shard_kind_name((s2s_shard_kind)k));
        cJSON_AddNumberToObject(ko, "samples", (double)c->kept_by_kind[k]);
        cJSON_AddItemToObject(ko, "shards", a = cJSON_CreateArray());
        for (int i = 0; i < r->nshards; i++) {
            if (r->shards[i].kind != k) continue;
            cJSON *so = cJSON_CreateObject();
            cJSON_AddStringToObject(so, "file", r->shards[i].name);
            cJSON_AddNumberToObject(so, "samples", (double)r->shards[i].samples);
            cJSON_AddNumberToObject(so, "bytes", (double)r->shards[i].bytes);
            cJSON_AddItemToArray(a, so);
        }
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text) return s2s_derr_set(e, "out of memory");
    char path[4400], tmp[4400];
    snprintf(path, sizeof path, "%s/prep.json", o->out_dir);
    snprintf(tmp, sizeof tmp, "%s/prep.json.tmp", o->out_dir);  // the name prepare_dir cleans up after a crash
    size_t n = strlen(text);
    text[n] = '\n';  // cJSON_Print's terminator becomes the final newline
    s2s_atomic_file out;
    int rc = s2s_atomic_open_tmp(&out, path, tmp, S2S_DERR_BUF(e));
    if (!rc && fwrite(text, 1, n + 1, out.fp) != n + 1) {
        rc = s2s_derr_set(e, "%s: %s", tmp, strerror(errno));
        s2s_atomic_abort(&out);
    } else if (!rc) {
        rc = s2s_atomic_commit(&out, S2S_DERR_BUF(e));
    }
    free(text);
    return rc;
}

// ---- the run ------------------------------------------------------------------------------------------------

static int blank(const char *s, ssize_t n) {
    for (ssize_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Reads and writes until the manifests are exhausted. Returns -1 on an I/O failure.
static int pump(run *r, s2s_derr *e) {
    const s2s_prep_opts *o = r->o;
    FILE *log = o->log ? o->log : stderr;
    int file = 0;
    FILE *f = NULL;
    int64_t lineno = 0, nwritten = 0;
    double t0 = now_s(), last = t0;
    for (;;) {
        // Fill free slots. Only this thread touches a FREE slot, so the line is read outside the lock.
        while (file < o->n_manifests && r->nread - nwritten < r->nring) {
            if (!f) {
                if (!(f = fopen(o->manifests[file], "rb")))
                    return s2s_derr_set(e, "%s: %s", o->manifests[file], strerror(errno));
                lineno = 0;
            }
            slot *s = &r->ring[r->nread % r->nring];
            errno = 0;
            s->len = getline(&s->line, &s->cap, f);
            if (s->len < 0) {
                int err = ferror(f) ? errno : 0;
                fclose(f);
                f = NULL;
                if (err) return s2s_derr_set(e, "%s: read error: %s", o->manifests[file], strerror(err));
                file++;
                continue;
            }
            lineno++;
            if (blank(s->line, s->len)) continue;
            s->file = file;
            s->lineno = lineno;
            r->counts.records++;
            pthread_mutex_lock(&r->mu);
            s->state = SLOT_READY;
            r->nread++;
            pthread_cond_signal(&r->work);
            pthread_mutex_unlock(&r->mu);
        }
        if (nwritten == r->nread) break;  // everything read has been written
        slot *s = &r->ring[nwritten % r->nring];
        pthread_mutex_lock(&r->mu);
        while (s->state != SLOT_DONE) pthread_cond_wait(&r->done, &r->mu);
        pthread_mutex_unlock(&r->mu);
        if (write_record(r, s, e)) {
            if (f) fclose(f);
            return -1;
        }
        s->state = SLOT_FREE;  // the worker is done with it; only this thread reuses it
        nwritten++;
        double t = now_s();
        if (!o->quiet && t - last >= 10.0) {
            last = t;
            fprintf(log, "prep: %lld records, %lld kept, %lld skipped, %.0f records/s\n", (long long)nwritten,
                    (long long)r->counts.kept, (long long)r->counts.skipped, (double)nwritten / (t - t0));
        }
    }
    return 0;
}

static void stop_workers(run *r) {
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_cond_broadcast(&r->work);
    pthread_mutex_unlock(&r->mu);
    for (int i = 0; i < r->nthreads; i++) pthread_join(r->threads[i], NULL);
    r->nthreads = 0;
}

int s2s_prep_run(const s2s_prep_opts *o, s2s_prep_counts *counts, s2s_derr *e) {
    if (o->jobs < 1) return s2s_derr_set(e, "--jobs must be >= 1");
    if (o->shard_bytes <= 0) return s2s_derr_set(e, "--shard-mb must be > 0");
    if (o->n_manifests < 1) return s2s_derr_set(e, "no manifest given");
    for (int i = 0; i < o->n_manifests; i++)
        if (access(o->manifests[i], R_OK)) return s2s_derr_set(e, "%s: %s", o->manifests[i], strerror(errno));
    run r = {.o = o};
    int rc = -1;
    worker_arg *args = NULL;
    if (!(r.ctx = s2s_prep_ctx_new(o, e)) || prepare_dir(o, e)) goto done;
    // A few slots per worker keep them busy while the writer waits for the oldest one.
    r.nring = 4 * o->jobs + 4;
    r.ring = calloc((size_t)r.nring, sizeof *r.ring);
    r.workers = calloc((size_t)o->jobs, sizeof *r.workers);
    r.threads = calloc((size_t)o->jobs, sizeof *r.threads);
    args = calloc((size_t)o->jobs, sizeof *args);
    if (!r.ring || !r.workers || !r.threads || !args) {
        s2s_derr_set(e, "out of memory");
        goto done;
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.work, NULL);
    pthread_cond_init(&r.done, NULL);
    for (int i = 0; i < o->jobs; i++) {
        if (!(r.workers[i] = s2s_prep_worker_new(r.ctx, e))) goto stop;
        args[i] = (worker_arg){&r, r.workers[i]};
        if (pthread_create(&r.threads[i], NULL, worker_main, &args[i])) {
            s2s_derr_set(e, "cannot start worker thread %d", i);
            goto stop;
        }
        r.nthreads++;
    }
    if (pump(&r, e)) goto stop;
    for (int k = 0; k < NKINDS; k++)
        if (r.w[k] && close_shard(&r, k, e)) goto stop;
    if (write_summary(&r, e)) goto stop;
    rc = 0;
stop:
    stop_workers(&r);
    for (int k = 0; k < NKINDS; k++)
        if (r.w[k]) s2s_shard_writer_abort(r.w[k]);
    for (int i = 0; i < o->jobs; i++) s2s_prep_worker_free(r.workers[i]);
    for (int i = 0; i < r.nring; i++) {
        free(r.ring[i].line);
        s2s_prep_record_free(&r.ring[i].rec);
    }
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.work);
    pthread_cond_destroy(&r.done);
done:
    for (int k = 0; k < NKINDS; k++) r.counts.shards_by_kind[k] = r.next_index[k];
    if (counts) *counts = r.counts;
    free(args);
    free(r.ring);
    free(r.workers);
    free(r.threads);
    free(r.shards);
    s2s_prep_ctx_free(r.ctx);
    return rc;
}
