// bench_loader — the loader's throughput and a driver for tests/data/test_loader.py.
//
//   bench_loader [--seconds S] [--samples N] [--audio-seconds A] [--batch B] [--prefetch P] [--threads 1,2]
//       Writes a temporary instruct shard of N samples (A s of audio, 200 tokens, 250 units each), then for each
//       mel thread count consumes batches for S seconds with log-mel on and prints one JSON line: samples/s as
//       the trainer sees them (the consumer does nothing else), and once more with the mel off (read only).
//   bench_loader --dump [--batch B | --budget T] [--world W --rank R] [--seed X] [--steps K] [--mel]
//                [--bucket N] [--pad-last] [--resume-at K] [--check-samples] SHARD...
//       Prints one JSON line per batch of this rank's stream (sample ids, tokens, audio, units, mel statistics);
//       --resume-at K saves the cursor after K batches, reopens and seeks, as a restarted job. Errors go to
//       stderr with exit status 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "data/loader/loader.h"
#include "data/audio/logmel.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// ---- throughput -------------------------------------------------------------------------------------------

static int write_bench_shard(const char *path, int n, double audio_s, s2s_derr *e) {
    s2s_shard_meta meta = {.kind = S2S_SHARD_INSTRUCT};
    snprintf(meta.created_by, sizeof meta.created_by, "bench_loader");
    s2s_shard_writer *w = s2s_shard_writer_open(path, &meta, e);
    if (!w) return -1;
    int64_t T = 200, U = 250, A = (int64_t)(audio_s * 16000);
    int32_t *ids = malloc(4 * T), *labels = malloc(4 * T), *units = malloc(4 * U);
    int8_t *types = calloc(T, 1);
    int16_t *pcm = malloc(2 * A);
    uint64_t r = 88172645463325252ULL;
    for (int64_t j = 0; j < A; j++) {
        r ^= r << 13, r ^= r >> 7, r ^= r << 17;
        pcm[j] = (int16_t)(3000.0 * sin(j * 0.031) + (int64_t)(r % 4001) - 2000);
    }
    for (int64_t j = 0; j < U; j++) units[j] = 151669 + (int32_t)(j * 37 % 16384);
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        for (int64_t j = 0; j < T; j++) ids[j] = (int32_t)((i * 131 + j * 7) % 150000), labels[j] = j > 100 ? ids[j] : -100;
        ids[20] = S2S_SHARD_AUDIO_TOKEN, labels[20] = -100;
        s2s_shard_sample s = {.n_tokens = T, .input_ids = ids, .labels = labels, .token_types = types, .n_audio = 1,
                              .audio_len = &A, .audio = pcm, .n_units = U, .units = units, .emotion = -1};
        rc = s2s_shard_writer_add(w, &s, e);
    }
    free(ids), free(labels), free(units), free(types), free(pcm);
    if (rc) return s2s_shard_writer_abort(w), -1;
    return s2s_shard_writer_close(w, e);
}

static int measure(const char *path, int mel, int threads, int64_t batch, int prefetch, double seconds,
                   double audio_s) {
    const char *paths[1] = {path};
    s2s_loader_config c = {.paths = paths, .n_paths = 1, .seed = 1, .batch_samples = batch, .prefetch = prefetch,
                           .mel = mel, .mel_threads = threads};
    s2s_derr e;
    s2s_loader *l = s2s_loader_open(&c, &e);
    if (!l) return fprintf(stderr, "bench_loader: %s\n", e.msg), -1;
    const s2s_batch *b;
    if (s2s_loader_next(l, &b, &e)) return fprintf(stderr, "bench_loader: %s\n", e.msg), s2s_loader_close(l), -1;
    // Timed from the first batch: the queue was filled meanwhile, which inflates the rate by at most `prefetch`
    // batches over the whole run.
    double t0 = now_s(), t = t0;
    int64_t samples = 0;
    while (t - t0 < seconds) {
        if (s2s_loader_next(l, &b, &e)) return fprintf(stderr, "bench_loader: %s\n", e.msg), s2s_loader_close(l), -1;
        samples += b->n;
        t = now_s();
    }
    s2s_loader_close(l);
    printf("{\"mel\": %d, \"mel_threads\": %d, \"batch\": %lld, \"prefetch\": %d, \"audio_seconds\": %.1f, "
           "\"samples\": %lld, \"seconds\": %.2f, \"samples_per_s\": %.1f}\n",
           mel, threads, (long long)batch, prefetch, audio_s, (long long)samples, t - t0, samples / (t - t0));
    fflush(stdout);
    return 0;
}

static int bench(int argc, char **argv) {
    double seconds = 5, audio_s = 10;
    int n = 64, prefetch = 2;
    int64_t batch = 8;
    char threads[64] = "1,2";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--samples") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--audio-seconds") && i + 1 < argc) audio_s = atof(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--prefetch") && i + 1 < argc) prefetch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) snprintf(threads, sizeof threads, "%s", argv[++i]);
        else return fprintf(stderr, "bench_loader: unknown argument %s\n", argv[i]), 2;
    }
    char path[128];
    snprintf(path, sizeof path, "/tmp/s2s_bench_loader_%d.h5", (int)getpid());
    s2s_derr e;
    if (write_bench_shard(path, n, audio_s, &e)) return fprintf(stderr, "bench_loader: %s\n", e.msg), 1;
    int rc = 0;
    for (char *tok = strtok(threads, ","); tok && !rc; tok = strtok(NULL, ","))
        rc = measure(path, 1, atoi(tok), batch, prefetch, seconds, audio_s);
    if (!rc) rc = measure(path, 0, 1, batch, prefetch, seconds, audio_s);
    unlink(path);
    return rc ? 1 : 0;
}

// ---- dump ---------------------------------------------------------------------------------------------------

static void ints32(const char *name, const int32_t *v, int64_t n) {
    printf("\"%s\": [", name);
    for (int64_t i = 0; i < n; i++) printf(i ? ", %d" : "%d", v[i]);
    printf("]");
}

static void print_batch(const s2s_loader *l, const s2s_batch *b) {
    printf("{\"epoch\": %lld, \"step\": %lld, \"steps_in_epoch\": %lld, \"samples\": [", (long long)b->epoch,
           (long long)b->step, (long long)b->steps_in_epoch);
    for (int64_t i = 0; i < b->n; i++) {
        int64_t t0 = b->tok_off[i], t1 = b->tok_off[i + 1];
        printf("%s{\"shard\": \"%s\", \"index\": %lld, \"cost\": %lld, ", i ? ", " : "",
               s2s_loader_shard_path(l, b->shard[i]), (long long)b->index[i], (long long)b->cost[i]);
        ints32("input_ids", b->input_ids + t0, t1 - t0);
        printf(", ");
        ints32("labels", b->labels + t0, t1 - t0);
        printf(", \"token_types\": [");
        for (int64_t j = t0; j < t1; j++) printf(j > t0 ? ", %d" : "%d", b->token_types[j]);
        printf("], ");
        ints32("units", b->units + b->unit_off[i], b->unit_off[i + 1] - b->unit_off[i]);
        printf(", ");
        ints32("teacher_ids", b->teacher_ids + b->teacher_off[i], b->teacher_off[i + 1] - b->teacher_off[i]);
        double spk = 0;
        for (int j = 0; j < S2S_SHARD_SPK_DIM; j++) spk += b->spk_emb[i * S2S_SHARD_SPK_DIM + j];
        printf(", \"spk_sum\": %.6g, \"flags\": %d, \"emotion\": %d, \"audios\": [", spk, b->flags[i], b->emotion[i]);
        for (int64_t a = b->audio_off[i]; a < b->audio_off[i + 1]; a++) {
            printf("%s{\"pcm\": [", a > b->audio_off[i] ? ", " : "");
            for (int64_t j = b->pcm_off[a]; j < b->pcm_off[a + 1]; j++) printf(j > b->pcm_off[a] ? ", %d" : "%d", b->pcm[j]);
            printf("], \"valid_frames\": %lld", (long long)b->valid_frames[a]);
            if (b->n_chunks) {  // mel statistics over the valid frames: enough to see it is there and sane
                double sum = 0, mn = INFINITY, mx = -INFINITY;
                const float *m = b->mel + b->chunk_off[a] * S2S_MEL_BINS * S2S_MEL_CHUNK_FRAMES;
                int64_t v = b->chunk_valid[b->chunk_off[a]];
                for (int k = 0; k < S2S_MEL_BINS; k++)
                    for (int64_t t = 0; t < v; t++) {
                        double x = m[k * S2S_MEL_CHUNK_FRAMES + t];
                        sum += x, mn = x < mn ? x : mn, mx = x > mx ? x : mx;
                    }
                printf(", \"chunks\": %lld, \"mel_mean\": %.6g, \"mel_min\": %.6g, \"mel_max\": %.6g",
                       (long long)(b->chunk_off[a + 1] - b->chunk_off[a]), sum / (S2S_MEL_BINS * v), mn, mx);
            }
            printf("}");
        }
        printf("]}");
    }
    printf("]}\n");
}

static int dump(int argc, char **argv) {
    s2s_loader_config c = {.prefetch = 2};
    const char **paths = calloc(argc, sizeof *paths);
    int64_t steps = -1, resume_at = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--dump")) continue;
        else if (!strcmp(a, "--batch") && more) c.batch_samples = atoll(argv[++i]);
        else if (!strcmp(a, "--budget") && more) c.token_budget = atoll(argv[++i]);
        else if (!strcmp(a, "--world") && more) c.world = atoi(argv[++i]);
        else if (!strcmp(a, "--rank") && more) c.rank = atoi(argv[++i]);
        else if (!strcmp(a, "--seed") && more) c.seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(a, "--steps") && more) steps = atoll(argv[++i]);
        else if (!strcmp(a, "--bucket") && more) c.bucket_window = atoll(argv[++i]);
        else if (!strcmp(a, "--resume-at") && more) resume_at = atoll(argv[++i]);
        else if (!strcmp(a, "--prefetch") && more) c.prefetch = atoi(argv[++i]);
        else if (!strcmp(a, "--mel")) c.mel = 1;
        else if (!strcmp(a, "--pad-last")) c.pad_last = 1;
        else if (!strcmp(a, "--no-shuffle")) c.no_shuffle = 1;
        else if (!strcmp(a, "--check-samples")) c.check_samples = 1;
        else if (a[0] == '-') return fprintf(stderr, "bench_loader: unknown argument %s\n", a), 2;
        else paths[c.n_paths++] = a;
    }
    c.paths = paths;
    s2s_derr e;
    s2s_loader *l = s2s_loader_open(&c, &e);
    int rc = 1;
    if (!l) goto fail;
    if (steps < 0 && (steps = s2s_loader_steps_in_epoch(l, 0, &e)) < 0) goto fail;
    for (int64_t k = 0; k < steps; k++) {
        if (k == resume_at) {
            s2s_loader_cursor cur = s2s_loader_tell(l);
            char *json = s2s_loader_cursor_json(&cur);
            fprintf(stderr, "cursor %s\n", json);
            s2s_loader_close(l);
            if (!(l = s2s_loader_open(&c, &e)) || s2s_loader_cursor_parse(json, &cur, &e) || s2s_loader_seek(l, &cur, &e)) {
                free(json);
                goto fail;
            }
            free(json);
        }
        const s2s_batch *b;
        if (s2s_loader_next(l, &b, &e)) goto fail;
        print_batch(l, b);
    }
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "bench_loader: %s\n", e.msg);
done:
    fflush(stdout);
    s2s_loader_close(l);
    free(paths);
    return rc;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--dump")) return dump(argc, argv);
    return bench(argc, argv);
}
