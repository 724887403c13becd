// test_loader.c — the loader over shards written here with the C writer: ranks get disjoint slices covering the
// epoch with equal step counts (world 1..4, drop and pad); the order is a function of (seed, epoch); token-budget
// batches fit the budget; bucketing groups similar lengths; a loader resumed mid-epoch from its JSON cursor yields
// the same batches (contents compared) as an uninterrupted one, across an epoch boundary; prefetch on and off
// agree; the mel equals s2s_logmel_compute split into 30 s chunks; damaged, mixed or mismatched shards and bad
// cursors are refused with the file named.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "data/loader/loader.h"
#include "data/audio/logmel.h"
#include "expect.h"


static char dir[64];
static char shard_path[3][128];
static const int64_t shard_n[3] = {11, 0, 19};  // an empty shard in the middle is legal
#define N_TOTAL 30
#define LONG_SHARD 2
#define LONG_INDEX 5  // this sample's audio is 35 s: two mel chunks

static uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// The marker input_ids[0] = 1000 * shard + index identifies a sample inside a batch.
static void make_sample(int shard, int64_t i, s2s_shard_sample *s) {
    memset(s, 0, sizeof *s);
    uint64_t r = mix(shard * 7919 + i + 1);
    int64_t n_audio = i % 3 == 0 ? 0 : i % 5 == 1 ? 2 : 1;
    int64_t n = 3 + n_audio + (int64_t)(r % 60);
    s->n_tokens = n;
    s->input_ids = malloc(n * 4), s->labels = malloc(n * 4), s->token_types = malloc(n);
    for (int64_t j = 0; j < n; j++) {
        uint64_t q = mix(r + j);
        s->input_ids[j] = j == 0 ? (int32_t)(1000 * shard + i) : (int32_t)(q % 150000);
        s->labels[j] = q & 1 ? s->input_ids[j] : -100;
        s->token_types[j] = (q >> 1) & 1;
    }
    for (int64_t a = 0; a < n_audio; a++) s->input_ids[1 + a] = S2S_SHARD_AUDIO_TOKEN, s->labels[1 + a] = -100;
    s->n_audio = n_audio;
    s->audio_len = malloc(sizeof(int64_t) * 2);
    int64_t total = 0;
    for (int64_t a = 0; a < n_audio; a++) {
        s->audio_len[a] = shard == LONG_SHARD && i == LONG_INDEX && a == 0 ? 35 * 16000 : 400 + (int64_t)(mix(r + 100 + a) % 12000);
        total += s->audio_len[a];
    }
    s->audio = malloc(2 * (total + 1));
    for (int64_t j = 0; j < total; j++)  // a tone plus noise, so the mel has structure
        s->audio[j] = (int16_t)(3000.0 * __builtin_sin(j * 0.05 * (1 + i % 7)) + (int64_t)(mix(r + j) % 2001) - 1000);
    s->n_units = i % 2 ? 1 + (int64_t)(r % 50) : 0;
    s->units = malloc(4 * (s->n_units + 1));
    for (int64_t j = 0; j < s->n_units; j++) s->units[j] = 151669 + (int32_t)(mix(r + 7 * j) % 16000);
    s->has_spk_emb = i % 4 == 0;
    for (int j = 0; s->has_spk_emb && j < S2S_SHARD_SPK_DIM; j++) s->spk_emb[j] = (float)(shard + i) + j * 0.001f;
    s->emotion = -1;
}

static int write_shard_hashed(const char *path, int shard, int64_t n, s2s_shard_kind kind, char llm_hash_digit) {
    s2s_shard_meta meta = {.kind = kind};
    if (llm_hash_digit) memset(meta.llm_tokenizer_sha256, llm_hash_digit, 64);
    snprintf(meta.created_by, sizeof meta.created_by, "test_loader.c");
    s2s_derr e;
    s2s_shard_writer *w = s2s_shard_writer_open(path, &meta, &e);
    EXPECT(w, "%s", e.msg);
    if (!w) return -1;
    for (int64_t i = 0; i < n; i++) {
        s2s_shard_sample s;
        make_sample(shard, i, &s);
        if (kind == S2S_SHARD_TTS_PRETRAIN && !s.n_units) s.units[0] = 151669, s.n_units = 1;
        if (kind == S2S_SHARD_TTS_PRETRAIN) {
            for (int64_t j = 0; j < s.n_tokens; j++)
                if (s.input_ids[j] < 0) s.input_ids[j] = 5, s.labels[j] = -100;
            s.n_audio = 0;
        }
        int rc = s2s_shard_writer_add(w, &s, &e);
        EXPECT(!rc, "add: %s", e.msg);
        s2s_shard_sample_free(&s);
        if (rc) return s2s_shard_writer_abort(w), -1;
    }
    int rc = s2s_shard_writer_close(w, &e);
    EXPECT(!rc, "close: %s", e.msg);
    return rc;
}

static int write_shard(const char *path, int shard, int64_t n, s2s_shard_kind kind) {
    return write_shard_hashed(path, shard, n, kind, 0);
}

static const char *paths1[1];

static s2s_loader_config base_config(void) {
    paths1[0] = dir;  // the directory: its *.h5 in name order
    s2s_loader_config c = {.paths = paths1, .n_paths = 1, .seed = 1234, .batch_samples = 2};
    return c;
}

// Content hash of a batch (every field the loader hands out).
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
    return h;
}

static uint64_t batch_hash(const s2s_batch *b) {
    uint64_t h = 0xCBF29CE484222325ULL;
    int64_t n = b->n, T = b->tok_off[n], A = b->n_audio, P = b->pcm_off[A], U = b->unit_off[n], H = b->teacher_off[n];
    int64_t head[] = {b->epoch, b->step, b->steps_in_epoch, n, A, b->n_chunks};
    h = fnv(h, head, sizeof head);
    h = fnv(h, b->shard, 4 * n), h = fnv(h, b->index, 8 * n), h = fnv(h, b->cost, 8 * n);
    h = fnv(h, b->tok_off, 8 * (n + 1)), h = fnv(h, b->input_ids, 4 * T), h = fnv(h, b->labels, 4 * T);
    h = fnv(h, b->token_types, T), h = fnv(h, b->audio_off, 8 * (n + 1)), h = fnv(h, b->pcm_off, 8 * (A + 1));
    h = fnv(h, b->pcm, 2 * P), h = fnv(h, b->valid_frames, 8 * A);
    if (b->n_chunks) {
        h = fnv(h, b->chunk_off, 8 * (A + 1)), h = fnv(h, b->chunk_valid, 8 * b->n_chunks);
        h = fnv(h, b->mel, sizeof(float) * S2S_MEL_BINS * S2S_MEL_CHUNK_FRAMES * b->n_chunks);
    }
    h = fnv(h, b->unit_off, 8 * (n + 1)), h = fnv(h, b->units, 4 * U), h = fnv(h, b->teacher_off, 8 * (n + 1));
    h = fnv(h, b->teacher_ids, 4 * H), h = fnv(h, b->teacher_labels, 4 * H);
    h = fnv(h, b->spk_emb, 4 * S2S_SHARD_SPK_DIM * n), h = fnv(h, b->flags, n), h = fnv(h, b->emotion, 4 * n);
    return h;
}

static int64_t gid(const s2s_batch *b, int64_t i) {  // global id in directory order (shard 1 is empty)
    return b->shard[i] == 0 ? b->index[i] : shard_n[0] + b->index[i];
}

// Every sample is the one it claims to be: the marker token and its lengths match what was written.
static void check_identity(const s2s_loader *l, const s2s_batch *b) {
    for (int64_t i = 0; i < b->n; i++) {
        int shard = b->shard[i] == 0 ? 0 : 2;
        EXPECT(strstr(s2s_loader_shard_path(l, b->shard[i]), shard == 0 ? "a.h5" : "c.h5"), "shard path");
        s2s_shard_sample s;
        make_sample(shard, b->index[i], &s);
        EXPECT(b->input_ids[b->tok_off[i]] == 1000 * shard + b->index[i], "marker of sample %lld", (long long)i);
        EXPECT(b->tok_off[i + 1] - b->tok_off[i] == s.n_tokens, "tokens");
        EXPECT(b->audio_off[i + 1] - b->audio_off[i] == s.n_audio, "audios");
        EXPECT(b->unit_off[i + 1] - b->unit_off[i] == s.n_units, "units");
        EXPECT(!memcmp(b->labels + b->tok_off[i], s.labels, 4 * s.n_tokens), "labels");
        EXPECT(!memcmp(b->spk_emb + i * S2S_SHARD_SPK_DIM, s.spk_emb, sizeof s.spk_emb), "spk_emb");
        EXPECT(((b->flags[i] & S2S_SHARD_HAS_SPK_EMB) != 0) == s.has_spk_emb, "flags");
        s2s_shard_sample_free(&s);
    }
}

static s2s_loader *open_ok(const s2s_loader_config *c) {
    s2s_derr e;
    s2s_loader *l = s2s_loader_open(c, &e);
    EXPECT(l, "open: %s", e.msg);
    return l;
}

static s2s_loader_cursor at(s2s_loader *l, int64_t epoch, int64_t step) {
    s2s_loader_cursor c = s2s_loader_tell(l);
    c.epoch = epoch, c.step = step;
    return c;
}

// ---- slices -------------------------------------------------------------------------------------------------

static void slices(int64_t batch, int64_t budget, int pad_last, int64_t window) {
    for (int world = 1; world <= 4; world++) {
        int seen[N_TOTAL] = {0}, steps0 = -1;
        int64_t total = 0;
        for (int rank = 0; rank < world; rank++) {
            s2s_loader_config c = base_config();
            c.batch_samples = batch, c.token_budget = budget, c.pad_last = pad_last, c.bucket_window = window;
            c.world = world, c.rank = rank, c.prefetch = 2;
            s2s_loader *l = open_ok(&c);
            if (!l) return;
            s2s_derr e;
            s2s_loader_cursor cur = at(l, 1, 0);  // epoch 1: not just the first permutation
            EXPECT(!s2s_loader_seek(l, &cur, &e), "seek: %s", e.msg);
            int64_t steps = s2s_loader_steps_in_epoch(l, 1, &e);
            if (rank == 0) steps0 = (int)steps;
            EXPECT(steps == steps0 && steps > 0, "world %d rank %d: %lld steps, rank 0 has %d", world, rank,
                  (long long)steps, steps0);
            for (int64_t s = 0; s < steps; s++) {
                const s2s_batch *b;
                if (s2s_loader_next(l, &b, &e)) {
                    EXPECT(0, "next: %s", e.msg);
                    break;
                }
                EXPECT(b->epoch == 1 && b->step == s && b->steps_in_epoch == steps, "position %lld/%lld", (long long)b->epoch,
                      (long long)b->step);
                if (batch) EXPECT(b->n == batch, "batch of %lld samples, want %lld", (long long)b->n, (long long)batch);
                int64_t mx = 0;
                for (int64_t i = 0; i < b->n; i++) {
                    seen[gid(b, i)]++, total++;
                    mx = b->cost[i] > mx ? b->cost[i] : mx;
                }
                if (budget) EXPECT(b->n * mx <= budget, "batch of %lld x cost %lld over budget %lld", (long long)b->n,
                                  (long long)mx, (long long)budget);
                check_identity(l, b);
            }
            s2s_loader_cursor after = s2s_loader_tell(l);
            EXPECT(after.epoch == 2 && after.step == 0, "cursor after the epoch: %lld/%lld", (long long)after.epoch,
                  (long long)after.step);
            s2s_loader_close(l);
        }
        int dup = 0, missing = 0;
        for (int g = 0; g < N_TOTAL; g++) dup += seen[g] > 1, missing += seen[g] == 0;
        if (!pad_last) {
            EXPECT(dup == 0, "world %d: %d samples dealt twice", world, dup);
            int64_t unit = budget ? 0 : batch * world;  // what dropping may leave out: less than one step
            if (unit) EXPECT(missing < unit && total == N_TOTAL - missing, "world %d: %d samples missing", world, missing);
        } else {
            EXPECT(missing == 0, "world %d pad_last: %d samples never dealt", world, missing);
        }
    }
}

// ---- order ------------------------------------------------------------------------------------------------

static void epoch_ids(const s2s_loader_config *c, int64_t epoch, int64_t *ids, int64_t *n) {
    s2s_loader *l = open_ok(c);
    if (!l) return;
    s2s_derr e;
    s2s_loader_cursor cur = at(l, epoch, 0);
    EXPECT(!s2s_loader_seek(l, &cur, &e), "seek: %s", e.msg);
    *n = 0;
    int64_t steps = s2s_loader_steps_in_epoch(l, epoch, &e);
    for (int64_t s = 0; s < steps; s++) {
        const s2s_batch *b;
        if (s2s_loader_next(l, &b, &e)) break;
        for (int64_t i = 0; i < b->n; i++) ids[(*n)++] = gid(b, i);
    }
    s2s_loader_close(l);
}

static void order(void) {
    s2s_loader_config c = base_config();
    int64_t a[64], b[64], d[64], f[64], na = 0, nb = 0, nd = 0, nf = 0;
    epoch_ids(&c, 0, a, &na);
    epoch_ids(&c, 0, b, &nb);
    epoch_ids(&c, 1, d, &nd);
    EXPECT(na == N_TOTAL && na == nb && !memcmp(a, b, 8 * na), "the same (seed, epoch) gives the same order");
    EXPECT(nd == na && memcmp(a, d, 8 * na), "another epoch gives another order");
    c.seed = 99;
    epoch_ids(&c, 0, f, &nf);
    EXPECT(nf == na && memcmp(a, f, 8 * na), "another seed gives another order");
    c.no_shuffle = 1;
    epoch_ids(&c, 3, f, &nf);
    for (int64_t i = 0; i < nf; i++) EXPECT(f[i] == i, "no_shuffle keeps shard order");
}

// ---- bucketing ----------------------------------------------------------------------------------------------

// Sum over the epoch's batches of (max - min) cost; *range = max - min over all of them.
static int64_t spread(const s2s_loader_config *c, int *monotone, int64_t *range) {
    s2s_loader *l = open_ok(c);
    if (!l) return -1;
    s2s_derr e;
    int64_t sum = 0, prev = -1, all_lo = INT64_MAX, all_hi = 0;
    *monotone = 1;
    int64_t steps = s2s_loader_steps_in_epoch(l, 0, &e);
    for (int64_t s = 0; s < steps; s++) {
        const s2s_batch *b;
        if (s2s_loader_next(l, &b, &e)) break;
        int64_t lo = INT64_MAX, hi = 0;
        for (int64_t i = 0; i < b->n; i++) lo = b->cost[i] < lo ? b->cost[i] : lo, hi = b->cost[i] > hi ? b->cost[i] : hi;
        sum += hi - lo;
        all_lo = lo < all_lo ? lo : all_lo, all_hi = hi > all_hi ? hi : all_hi;
        if (lo < prev) *monotone = 0;
        prev = lo;
    }
    s2s_loader_close(l);
    *range = all_hi - all_lo;
    return sum;
}

static void bucketing(void) {
    s2s_loader_config c = base_config();
    c.batch_samples = 3;
    int mono;
    int64_t range, plain = spread(&c, &mono, &range);
    c.bucket_window = N_TOTAL;  // one window: batches are consecutive runs of the sorted costs
    int64_t bucketed = spread(&c, &mono, &range);
    // Consecutive runs of a sorted list do not overlap, so their spreads sum to at most the whole range.
    EXPECT(bucketed >= 0 && bucketed <= range && bucketed < plain, "bucketed spread %lld (range %lld) vs plain %lld",
          (long long)bucketed, (long long)range, (long long)plain);
    EXPECT(!mono, "bucketed batches come in shuffled order, not sorted");
}

// ---- resume -------------------------------------------------------------------------------------------------

#define RESUME_STEPS 24  // world 2 x batch 2 over 30 samples: 7 steps an epoch, so this crosses 3 epochs

static void stream(const s2s_loader_config *c, int64_t from, int64_t count, uint64_t *out, int cut_at) {
    s2s_derr e;
    s2s_loader *l = open_ok(c);
    if (!l) return;
    for (int64_t k = 0; k < from; k++) {
        const s2s_batch *b;
        EXPECT(!s2s_loader_next(l, &b, &e), "next: %s", e.msg);
    }
    for (int64_t k = 0; k < count; k++) {
        if (k == cut_at) {  // save the cursor, close, reopen, restore: as a job killed and restarted
            s2s_loader_cursor cur = s2s_loader_tell(l);
            char *json = s2s_loader_cursor_json(&cur);
            s2s_loader_close(l);
            l = open_ok(c);
            if (!l) return;
            s2s_loader_cursor back;
            EXPECT(!s2s_loader_cursor_parse(json, &back, &e), "parse %s: %s", json, e.msg);
            EXPECT(back.epoch == cur.epoch && back.step == cur.step && back.seed == cur.seed &&
                      back.world == cur.world && back.plan_hash == cur.plan_hash,
                  "cursor round trip: %s", json);
            EXPECT(!s2s_loader_seek(l, &back, &e), "seek: %s", e.msg);
            free(json);
        }
        const s2s_batch *b;
        if (s2s_loader_next(l, &b, &e)) {
            EXPECT(0, "next: %s", e.msg);
            break;
        }
        out[k] = batch_hash(b);
        if (k == 0) check_identity(l, b);
    }
    s2s_loader_close(l);
}

static void resume(void) {
    s2s_loader_config c = base_config();
    c.world = 2, c.rank = 1, c.mel = 1, c.prefetch = 3, c.seed = 7;
    uint64_t whole[RESUME_STEPS], cut[RESUME_STEPS], sync[RESUME_STEPS], two[RESUME_STEPS];
    stream(&c, 0, RESUME_STEPS, whole, -1);
    stream(&c, 0, RESUME_STEPS, cut, 10);  // mid-epoch 1
    EXPECT(!memcmp(whole, cut, sizeof whole), "a resumed stream equals the uninterrupted one");
    stream(&c, 0, RESUME_STEPS, cut, 7);  // exactly at an epoch boundary
    EXPECT(!memcmp(whole, cut, sizeof whole), "resumed at an epoch boundary");
    c.prefetch = 0;
    stream(&c, 0, RESUME_STEPS, sync, 3);
    EXPECT(!memcmp(whole, sync, sizeof whole), "prefetch 0 (and a resume there) gives the same batches");
    c.max_open = 1;  // every shard switch closes the other handle and reopens
    stream(&c, 0, RESUME_STEPS, sync, -1);
    EXPECT(!memcmp(whole, sync, sizeof whole), "a reader with one open handle gives the same batches");
    c.max_open = 0, c.prefetch = 1, c.mel_threads = 2;
    stream(&c, 0, RESUME_STEPS, two, -1);
    EXPECT(!memcmp(whole, two, sizeof whole), "the mel does not depend on the thread count");
    c.token_budget = 400, c.batch_samples = 0, c.bucket_window = 12, c.prefetch = 2, c.mel = 0;
    stream(&c, 0, RESUME_STEPS, whole, -1);
    stream(&c, 0, RESUME_STEPS, cut, 9);
    EXPECT(!memcmp(whole, cut, sizeof whole), "a resumed token-budget bucketed stream equals the uninterrupted one");
}

// ---- mel --------------------------------------------------------------------------------------------------

// A job of `from` ranks runs k steps of an epoch and checkpoints its cursor; a job of `to` ranks resumes from it:
// the samples the second job sees in the rest of that epoch and those the first saw are the epoch's batches dealt
// once each (every sample once: no batch repeats without pad_last), whatever the two world sizes.
static void redeal(int from, int to, int64_t k, int64_t batch, int64_t budget) {
    int seen[N_TOTAL] = {0};
    s2s_derr e;
    s2s_loader_cursor saved = {0};
    for (int r = 0; r < from; r++) {
        s2s_loader_config c = base_config();
        c.world = from, c.rank = r, c.batch_samples = batch, c.token_budget = budget, c.prefetch = 1;
        s2s_loader *l = open_ok(&c);
        if (!l) return;
        for (int64_t s = 0; s < k; s++) {
            const s2s_batch *b;
            EXPECT(!s2s_loader_next(l, &b, &e), "next: %s", e.msg);
            for (int64_t i = 0; i < b->n; i++) seen[gid(b, i)]++;
        }
        saved = s2s_loader_tell(l);  // the same on every rank
        s2s_loader_close(l);
    }
    char *json = s2s_loader_cursor_json(&saved);
    s2s_loader_cursor back;
    EXPECT(!s2s_loader_cursor_parse(json, &back, &e), "parse %s: %s", json, e.msg);
    free(json);
    int64_t steps = -1;
    for (int r = 0; r < to; r++) {
        s2s_loader_config c = base_config();
        c.world = to, c.rank = r, c.batch_samples = batch, c.token_budget = budget, c.prefetch = 2;
        s2s_loader *l = open_ok(&c);
        if (!l) return;
        EXPECT(!s2s_loader_seek(l, &back, &e), "seek a world-%d cursor on world %d: %s", from, to, e.msg);
        const s2s_batch *b;
        int64_t n = 0;
        while (!s2s_loader_next(l, &b, &e) && b->epoch == 0) {
            for (int64_t i = 0; i < b->n; i++) seen[gid(b, i)]++;
            n++;
        }
        EXPECT(steps < 0 || steps == n, "ranks of world %d disagree on the steps left (%lld vs %lld)", to,
               (long long)steps, (long long)n);
        steps = n;
        EXPECT(b && b->epoch == 1 && b->step == 0, "world %d: after the epoch comes epoch 1 step 0", to);
        s2s_loader_close(l);
    }
    // Without pad_last a sample appears once at most; the ones left out are a short tail (< `to` batches).
    int twice = 0, missing = 0;
    for (int i = 0; i < N_TOTAL; i++) twice += seen[i] > 1, missing += seen[i] == 0;
    const int64_t per = batch > 0 ? batch : N_TOTAL;
    EXPECT(!twice && missing < to * per + (budget ? N_TOTAL : 0) && (budget || missing % per == 0 || missing < per),
           "world %d -> %d after %lld steps: %d samples twice, %d not seen", from, to, (long long)k, twice, missing);
}

static void mel(void) {
    s2s_loader_config c = base_config();
    c.no_shuffle = 1, c.mel = 1, c.prefetch = 1, c.batch_samples = N_TOTAL;
    s2s_loader *l = open_ok(&c);
    if (!l) return;
    s2s_derr e;
    const s2s_batch *b;
    EXPECT(!s2s_loader_next(l, &b, &e), "next: %s", e.msg);
    s2s_logmel *lm;
    EXPECT(!s2s_logmel_new(&lm, &e), "%s", e.msg);
    const int64_t CH = (int64_t)S2S_MEL_BINS * S2S_MEL_CHUNK_FRAMES;
    int long_seen = 0;
    for (int64_t a = 0; a < b->n_audio; a++) {
        int64_t n = b->pcm_off[a + 1] - b->pcm_off[a], F = s2s_logmel_padded_frames(n), k = F / S2S_MEL_CHUNK_FRAMES;
        long_seen |= k == 2;
        EXPECT(b->chunk_off[a + 1] - b->chunk_off[a] == k, "audio %lld: %lld chunks", (long long)a, (long long)k);
        EXPECT(b->valid_frames[a] == s2s_logmel_valid_frames(n), "valid frames");
        float *x = malloc(4 * n), *m = malloc(4 * S2S_MEL_BINS * F);
        for (int64_t j = 0; j < n; j++) x[j] = b->pcm[b->pcm_off[a] + j] / 32768.0f;
        EXPECT(!s2s_logmel_compute(lm, x, n, F, m, &e), "%s", e.msg);
        int same = 1;
        for (int64_t ch = 0; ch < k; ch++) {
            const float *got = b->mel + (b->chunk_off[a] + ch) * CH;
            for (int bin = 0; bin < S2S_MEL_BINS; bin++)
                same &= !memcmp(got + bin * S2S_MEL_CHUNK_FRAMES, m + bin * F + ch * S2S_MEL_CHUNK_FRAMES,
                                4 * S2S_MEL_CHUNK_FRAMES);
            int64_t v = b->valid_frames[a] - ch * S2S_MEL_CHUNK_FRAMES;
            EXPECT(b->chunk_valid[b->chunk_off[a] + ch] == (v < 3000 ? v : 3000), "chunk valid frames");
        }
        EXPECT(same, "audio %lld: the batch mel equals s2s_logmel_compute, chunk by chunk", (long long)a);
        free(x), free(m);
    }
    EXPECT(long_seen, "the 35 s audio gives two chunks");
    s2s_logmel_free(lm);
    s2s_loader_close(l);
}

// ---- refusals -----------------------------------------------------------------------------------------------

static void copy_file(const char *from, const char *to, double keep) {
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n);
    EXPECT(fread(buf, 1, n, f) == (size_t)n, "read %s", from);
    fwrite(buf, 1, (size_t)(n * keep), g);
    free(buf);
    fclose(f), fclose(g);
}

static void expect_open_error(const s2s_loader_config *c, const char *needle, const char *what) {
    s2s_derr e = {{0}};
    s2s_loader *l = s2s_loader_open(c, &e);
    EXPECT(!l && strstr(e.msg, needle), "%s: want an error naming '%s', got '%s'", what, needle, l ? "(opened)" : e.msg);
    s2s_loader_close(l);
}

static void refusals(void) {
    char bad[200], other[200];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    mkdir(bad, 0700);
    snprintf(other, sizeof other, "%s/bad/b_truncated.h5", dir);
    const char *list[2] = {shard_path[0], other};
    s2s_loader_config c = base_config();
    c.paths = list, c.n_paths = 2;
    const double keep[] = {0.5, 0.97};
    for (int k = 0; k < 2; k++) {  // a truncated copy of a good shard
        copy_file(shard_path[2], other, keep[k]);
        expect_open_error(&c, other, "truncated shard");
    }
    FILE *f = fopen(other, "wb");  // not HDF5 at all
    fputs("this is not a shard\n", f);
    fclose(f);
    expect_open_error(&c, other, "garbage shard");
    unlink(other);
    expect_open_error(&c, other, "missing shard");
    snprintf(other, sizeof other, "%s/bad/tts.h5", dir);
    if (!write_shard(other, 0, 4, S2S_SHARD_TTS_PRETRAIN)) expect_open_error(&c, other, "mixed kinds");
    unlink(other);
    // Tokenizer hashes: shards of two tokenizers, or one other than the run's, are refused.
    char third[200];
    snprintf(other, sizeof other, "%s/bad/hash_a.h5", dir);
    snprintf(third, sizeof third, "%s/bad/hash_b.h5", dir);
    const char *hashed[2] = {other, third};
    s2s_loader_config ch = c;
    ch.paths = hashed;
    if (!write_shard_hashed(other, 0, 4, S2S_SHARD_INSTRUCT, 'a') &&
        !write_shard_hashed(third, 0, 4, S2S_SHARD_INSTRUCT, 'b')) {
        expect_open_error(&ch, "different tokenizers", "shards of two tokenizers");
        char want[65];
        memset(want, 'b', 64), want[64] = 0;
        ch.llm_tokenizer_sha256 = want;
        expect_open_error(&ch, other, "a shard of another tokenizer than the run's");
        ch.paths = hashed + 1, ch.n_paths = 1;
        s2s_loader_close(open_ok(&ch));
    }
    unlink(other), unlink(third);
    list[1] = shard_path[0];
    expect_open_error(&c, "listed twice", "duplicate shard");
    c = base_config();
    c.llm_tokenizer_sha256 = "00";  // the test shards carry no hash ("" = no ids of that tokenizer): accepted
    s2s_loader *l = open_ok(&c);
    s2s_loader_close(l);
    c.token_budget = 20, c.batch_samples = 0;
    expect_open_error(&c, "exceeds token_budget", "a sample over the budget");
    c.token_budget = 0, c.batch_samples = 31;
    expect_open_error(&c, "form no step", "fewer samples than a step");
    c.batch_samples = 2, c.world = 2, c.rank = 2;
    expect_open_error(&c, "rank 2 of world 2", "rank out of range");
    snprintf(other, sizeof other, "%s/bad/*.h5", dir);
    list[0] = other, c.paths = list, c.n_paths = 1, c.rank = 0;
    expect_open_error(&c, "matches no file", "empty glob");
    rmdir(bad);

    // Cursors of another seed or data are refused; malformed JSON too.
    c = base_config();
    s2s_derr e;
    l = open_ok(&c);
    if (!l) return;
    s2s_loader_cursor cur = s2s_loader_tell(l);
    s2s_loader_cursor x = cur;
    x.seed++;
    EXPECT(s2s_loader_seek(l, &x, &e) && strstr(e.msg, "seed"), "other seed: %s", e.msg);
    x = cur, x.plan_hash ^= 1;
    EXPECT(s2s_loader_seek(l, &x, &e) && strstr(e.msg, "plan hash"), "other plan: %s", e.msg);
    x = cur, x.step = 1000;
    EXPECT(s2s_loader_seek(l, &x, &e) && strstr(e.msg, "past"), "step past the epoch: %s", e.msg);
    const s2s_batch *b;
    EXPECT(!s2s_loader_next(l, &b, &e) && b->epoch == 0 && b->step == 0, "a refused seek leaves the stream as it was");
    EXPECT(s2s_loader_cursor_parse("{\"epoch\":1}", &x, &e), "incomplete cursor accepted");
    EXPECT(s2s_loader_cursor_parse("{\"epoch\":1,\"step\":2,\"seed\":\"18446744073709551615\",\"world\":1,"
                                  "\"plan_hash\":\"ffffffffffffffff\"}", &x, &e) == 0 &&
              x.seed == UINT64_MAX && x.plan_hash == UINT64_MAX && x.step == 2,
          "64-bit seed and hash survive JSON: %s", e.msg);
    s2s_loader_close(l);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/s2s_test_loader_XXXXXX");
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    const char *names[3] = {"a.h5", "b.h5", "c.h5"};
    for (int s = 0; s < 3; s++) {
        snprintf(shard_path[s], sizeof shard_path[s], "%s/%s", dir, names[s]);
        if (write_shard(shard_path[s], s, shard_n[s], S2S_SHARD_INSTRUCT)) return 1;
    }
    slices(2, 0, 0, 0);
    slices(2, 0, 1, 0);
    slices(0, 400, 0, 0);
    slices(0, 400, 1, 10);
    slices(3, 0, 0, 8);
    order();
    bucketing();
    resume();
    redeal(2, 3, 2, 2, 0);
    redeal(3, 1, 1, 2, 0);
    redeal(1, 2, 5, 2, 0);
    redeal(2, 1, 3, 0, 400);
    mel();
    refusals();
    for (int s = 0; s < 3; s++) unlink(shard_path[s]);
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "test_loader: %d failures\n", failures);
        return 1;
    }
    printf("test_loader: OK\n");
    return 0;
}
