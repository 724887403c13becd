// eval_manifest.c — answering a benchmark manifest, resumably (eval_manifest.h).
#include "eval_manifest.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "autograd/check.h"
#include "base/err.h"
#include "base/fs.h"
#include <time.h>

// How many complete lines out already has; a torn last line (no newline: a crash mid-write) is cut off.
static int64_t done_lines(const char *out, char *err, size_t errlen, int *rc) {
    size_t len = 0;
    char *t = s2s_read_file(out, &len);
    *rc = 0;
    if (!t) return 0;  // no output yet
    int64_t n = 0;
    size_t keep = 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] == '\n') n++, keep = i + 1;
    free(t);
    if (keep < len && truncate(out, (off_t)keep)) *rc = s2s_errf(err, errlen, "%s: cannot cut its torn last line: %s",
                                                                 out, strerror(errno));
    return n;
}

static const char *str_field(cJSON *j, const char *const *names) {
    for (; *names; names++) {
        cJSON *v = cJSON_GetObjectItem(j, *names);
        if (cJSON_IsString(v) && *v->valuestring) return v->valuestring;
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// "item 12/100 | 0.8 items/s | ETA 1:50" on stderr.
static void progress(int64_t i, int64_t total, int64_t this_run, double t0) {
    const double dt = now() - t0, rate = dt > 0 ? (double)this_run / dt : 0;
    const long eta = rate > 0 ? (long)((double)(total - i) / rate + 0.5) : 0;
    fprintf(stderr, "item %lld/%lld | %.2f items/s | ETA %ld:%02ld\n", (long long)i, (long long)total, rate, eta / 60,
            eta % 60);
}

static cJSON *ints(const int32_t *v, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int append_line(int fd, cJSON *j, const char *out, char *err, size_t errlen) {
    char *s = cJSON_PrintUnformatted(j);
    const size_t n = strlen(s);
    s = s2s_realloc(s, n + 2);
    s[n] = '\n', s[n + 1] = 0;
    int rc = 0;
    if (write(fd, s, n + 1) != (ssize_t)(n + 1) || fsync(fd))
        rc = s2s_errf(err, errlen, "%s: write failed: %s", out, strerror(errno));
    free(s);
    return rc;
}

int s2s_eval_manifest(s2s_session *s, const s2s_eval_manifest_opts *o, s2s_eval_manifest_result *r, char *err,
                      size_t errlen) {
    memset(r, 0, sizeof *r);
    FILE *in = fopen(o->manifest, "r");
    if (!in) return s2s_errf(err, errlen, "--manifest %s: cannot open: %s", o->manifest, strerror(errno));
    // Count the items first: the progress line's total.
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) r->items++;
    rewind(in);
    int rc;
    const int64_t done = done_lines(o->out, err, errlen, &rc);
    if (rc) {
        fclose(in), free(line);
        return -1;
    }
    if (done > r->items) {
        fclose(in), free(line);
        return s2s_errf(err, errlen, "--out %s has %lld lines, more than the manifest's %lld items: another "
                        "manifest's output?", o->out, (long long)done, (long long)r->items);
    }
    r->resumed = done;
    const int fd = open(o->out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) {
        fclose(in), free(line);
        return s2s_errf(err, errlen, "--out %s: cannot open: %s", o->out, strerror(errno));
    }
    static const char *const audio_keys[] = {"audio", "wav", "source_wav", "audio_path", NULL};
    static const char *const text_keys[] = {"text", NULL}, *const prompt_keys[] = {"prompt", NULL};
    static const char *const system_keys[] = {"system", NULL};
    const double t0 = now();
    rc = 0;
    // Chunks of up to o->batch items: parsed, answered together (s2s_session_reply_batch), written in input order.
    const int B = o->batch > 0 ? o->batch : 1;
    cJSON **js = s2s_calloc((size_t)B, sizeof *js);
    s2s_turn *turns = s2s_calloc((size_t)B, sizeof *turns);
    s2s_reply *reps = s2s_calloc((size_t)B, sizeof *reps);
    uint64_t *seeds = s2s_calloc((size_t)B, sizeof *seeds);
    int *failed = s2s_calloc((size_t)B, sizeof *failed), *item_of = s2s_calloc((size_t)B, sizeof *item_of);
    char (*why)[1024] = s2s_calloc((size_t)B, sizeof *why);
    int64_t i = 0;
    bool eof = false;
    while (!rc && !eof) {
        int n = 0, k = 0;  // lines in this chunk (at most B), answerable items among them
        while (n < B && !(eof = getline(&line, &cap, in) <= 0)) {
            if (i < done) {
                i++;
                continue;
            }
            cJSON *j = cJSON_Parse(line);
            const char *audio = j ? str_field(j, audio_keys) : NULL;
            const char *text = j ? str_field(j, text_keys) : NULL;
            if (j && !audio && !text) text = str_field(j, prompt_keys);
            why[n][0] = 0;
            if (!j || !cJSON_IsObject(j)) snprintf(why[n], sizeof why[n], "not a JSON object");
            else if (!audio && !text)
                snprintf(why[n], sizeof why[n], "no audio (audio / wav / source_wav / audio_path) and no text");
            js[n] = j, item_of[n] = -1;
            if (!why[n][0]) {
                // a resumed run, or another batch size, draws what an uninterrupted run would
                turns[k] = (s2s_turn){.system = str_field(j, system_keys), .audio = audio, .text = text};
                seeds[k] = o->reply.seed + (uint64_t)i;
                item_of[n] = k++;
            }
            n++, i++;
        }
        char (*errs)[1024] = s2s_calloc((size_t)(k + 1), sizeof *errs);
        if (k) s2s_session_reply_batch(s, turns, k, &o->reply, seeds, reps, failed, errs);
        for (int l = 0; l < n && !rc; l++) {
            const int64_t idx = i - n + l;
            cJSON *outj = js[l] && cJSON_IsObject(js[l]) ? js[l] : cJSON_CreateObject();
            if (outj != js[l]) cJSON_Delete(js[l]);
            cJSON_DeleteItemFromObject(outj, "index");
            cJSON_AddNumberToObject(outj, "index", (double)idx);
            const int q = item_of[l];
            if (q >= 0 && failed[q]) snprintf(why[l], sizeof why[l], "%s", errs[q][0] ? errs[q] : "failed");
            if (why[l][0]) {
                fprintf(stderr, "s2s eval: %s:%lld: %s (skipped)\n", o->manifest, (long long)idx + 1, why[l]);
                cJSON_AddStringToObject(outj, "error", why[l]);
                r->failed++;
            } else {
                const s2s_chat_out *co = &reps[q].out;
                size_t len = 0;
                s2s_derr de;
                char *t = s2s_tok_decode(s->tok, co->text_ids, (size_t)co->n_text, 1, &len, &de);
                int32_t *u = s2s_malloc((size_t)(co->n_units + 1) * sizeof *u);
                const int64_t nu = s2s_session_units(s, co->units, co->n_units, u);
                cJSON_AddStringToObject(outj, "response", t ? t : "");
                cJSON_AddItemToObject(outj, "units", ints(u, nu));
                cJSON_AddItemToObject(outj, "text_ids", ints(co->text_ids, co->n_text));
                free(t), free(u);
                r->answered++;
            }
            rc = append_line(fd, outj, o->out, err, errlen);
            cJSON_Delete(outj);
        }
        for (int q = 0; q < k; q++) s2s_reply_free(&reps[q]);
        free(errs);
        if (!o->quiet && n) progress(i, r->items, i - done, t0);
    }
    free(js), free(turns), free(reps), free(seeds), free(failed), free(item_of), free(why);
    close(fd);
    fclose(in);
    free(line);
    return rc;
}
