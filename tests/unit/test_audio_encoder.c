// test_audio_encoder.c — the Qwen2-Audio encoder and the OpenS2S adapter against Hugging Face transformers /
// PyTorch on tiny random models (fixtures from tools/fixtures/gen_audio_encoder.py, tests/fixtures/audio_*):
//   - a frozen encoder records nothing and keeps one layer's intermediates at a time;
//   - loading: a Qwen2-Audio checkpoint (audio_tower.*, bf16) and a bare encoder checkpoint give the same weights;
//   - the length formulas (encoder L2, adapter with 2 and 3 convolutions) on a range of inputs;
//   - encoder outputs and every parameter gradient of sum(out * R) for a batch of audios of 1, 2 and 3 chunks with
//     different valid lengths (per-layer recompute on), and a single 1-chunk audio beside an empty one;
//   - adapter outputs and gradients (parameters and input) for kernels 5,5 and 3,4,5, and with an empty audio;
//   - mutants: a LayerNorm eps off by a factor of 10, a positional table shifted by one row must fail the same
//     comparisons.
// Errors are max |s2s - reference| / max |reference| per tensor; the reference is float64.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "autograd/rng.h"
#include "model/adapter.h"
#include "model/audio_encoder.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/safetensors.h"
#include "ops/ops.h"
#include "expect.h"

#define F32(t) ((float *)(t)->data)
#define ENC_DIR "tests/fixtures/audio_encoder"
#define ADA_DIR "tests/fixtures/audio_adapter"

// Tolerances, relative to the reference tensor's max |value|. f32 against a float64 reference, measured:
// outputs 2-4e-7, gradients up to 4e-6 (conv1's sums over 18000 frames); a LayerNorm eps of 1e-4 instead of
// 1e-5 moves the encoder output by 9e-5, so TOL_OUT must stay well below that.
#define TOL_OUT 5e-6
#define TOL_GRAD 5e-5
// hash_unit streams shared with the generator.
enum { SEED_MEL = 1, SEED_R = 2, SEED_X = 3, SEED_RA = 4 };


// gen_audio_encoder.py's hash_unit: lowbias32 of (i + seed * 0x9E3779B9) mod 2^32, top 24 bits, in [-1, 1).
static float hash_unit(uint32_t seed, uint64_t i) {
    uint32_t x = (uint32_t)(i + (uint64_t)seed * 0x9E3779B9u);
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return (float)(x >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

static void hash_fill(float *p, int64_t n, uint32_t seed) {
    for (int64_t i = 0; i < n; i++) p[i] = hash_unit(seed, (uint64_t)i);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---- fixture access ----------------------------------------------------------------------------------

static const s2s_st_entry *entry(const s2s_st_file *f, const char *name) {
    const s2s_st_entry *e = s2s_st_find(f, name);
    S2S_CHECK(e, "%s: no tensor '%s' (rerun tools/fixtures/gen_audio_encoder.py)", f->path, name);
    return e;
}

// An f32 / i32 tensor's values as a fresh host array (the mapping need not be aligned).
static void *values(const s2s_st_file *f, const char *name, int64_t *n) {
    const s2s_st_entry *e = entry(f, name);
    void *p = s2s_malloc(e->nbytes ? e->nbytes : 1);
    memcpy(p, e->data, e->nbytes);
    *n = s2s_st_numel(e);
    return p;
}

static double rel_err(const float *got, const float *want, int64_t n) {
    double md = 0, mr = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= md)) md = d;  // NaN propagates as a failure
        if (fabs(want[i]) > mr) mr = fabs(want[i]);
    }
    return mr > 0 ? md / mr : md;
}

// Compare got[n] with the expected tensor `name`; returns the relative error (and counts a failure above tol
// unless quiet).
static double compare(const s2s_st_file *f, const char *name, const float *got, int64_t n, int64_t offset,
                      double tol, bool quiet) {
    const s2s_st_entry *e = entry(f, name);
    S2S_CHECK(e->dtype == S2S_F32 && offset + n <= s2s_st_numel(e), "%s: '%s' is not f32 or too short", f->path,
              name);
    float *want = s2s_malloc((size_t)n * sizeof *want + 1);
    memcpy(want, (const float *)e->data + offset, (size_t)n * sizeof *want);
    double r = rel_err(got, want, n);
    free(want);
    if (!quiet) EXPECT(r <= tol, "%s: relative error %.3g > %.1g", name, r, tol);
    return r;
}

// Every "grad.<param>" of the fixture against the registry's gradient; returns the worst relative error.
static double compare_grads(const s2s_st_file *f, s2s_params *P, double tol) {
    double worst = 0;
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        const char *name = f->entries[i].name;
        if (strncmp(name, "grad.", 5) != 0 || strcmp(name, "grad.x") == 0) continue;
        s2s_param *p = s2s_params_find(P, name + 5);
        EXPECT(p && p->t->grad, "%s: no trainable parameter %s", f->path, name + 5);
        if (!p || !p->t->grad) continue;
        double r = compare(f, name, F32(p->t->grad), s2s_numel(p->t), 0, tol, false);
        if (r > worst) worst = r;
        n++;
    }
    for (int i = 0; i < P->n; i++) {  // and nothing trainable is left unchecked
        char want[300];
        snprintf(want, sizeof want, "grad.%s", P->items[i].name);
        EXPECT(!P->items[i].trainable || s2s_st_find(f, want), "trainable %s has no reference gradient",
               P->items[i].name);
    }
    EXPECT(n > 0, "%s: no gradients compared", f->path);
    return worst;
}

static s2s_ctx *ctx_new(void) {
    return s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2, .arena_bytes = 64u << 20,
                                      .scratch_bytes = 16u << 20});
}

// ---- encoder -------------------------------------------------------------------------------------------

static void load_encoder(s2s_audio_encoder *m, s2s_params *P, const char *dir) {
    s2s_audio_encoder_config cfg;
    char err[1024];
    S2S_CHECK(s2s_audio_encoder_config_read(&cfg, dir, err, sizeof err) == 0, "%s", err);
    s2s_params_init(P, S2S_CPU);
    s2s_audio_encoder_init(m, &cfg, P);
    s2s_ckpt_report rep = {0};
    int rc = s2s_ckpt_load_hf(P, dir, NULL, NULL, NULL, &rep, err, sizeof err);
    EXPECT(rc == 0, "loading %s: %s", dir, err);
    EXPECT(rep.n_loaded == P->n && rep.n_missing == 0, "%s: loaded %d of %d parameters", dir, rep.n_loaded, P->n);
    s2s_ckpt_report_free(&rep);
}

static void test_lengths(const s2s_st_file *f, const s2s_audio_encoder *enc) {
    int64_t n, n2, n3, n4;
    int32_t *in = values(f, "len_in", &n), *le = values(f, "len_enc", &n2), *l2 = values(f, "len_k55", &n3),
            *l3 = values(f, "len_k345", &n4);
    s2s_adapter a2 = {.cfg = {.n_conv = 2}}, a3 = {.cfg = {.n_conv = 3}};
    for (int64_t i = 0; i < n; i++) {
        EXPECT(s2s_audio_encoder_chunk_len(in[i]) == le[i], "chunk_len(%d) = %lld, HF %d", in[i],
               (long long)s2s_audio_encoder_chunk_len(in[i]), le[i]);
        EXPECT(s2s_adapter_out_len(&a2, in[i]) == l2[i], "adapter(5,5) len(%d) = %lld, OpenS2S %d", in[i],
               (long long)s2s_adapter_out_len(&a2, in[i]), l2[i]);
        EXPECT(s2s_adapter_out_len(&a3, in[i]) == l3[i], "adapter(3,4,5) len(%d) = %lld, OpenS2S %d", in[i],
               (long long)s2s_adapter_out_len(&a3, in[i]), l3[i]);
    }
    EXPECT(s2s_audio_encoder_n_chunks(enc, 0) == 0 && s2s_audio_encoder_n_chunks(enc, 1) == 1 &&
               s2s_audio_encoder_n_chunks(enc, 3000) == 1 && s2s_audio_encoder_n_chunks(enc, 3001) == 2,
           "n_chunks");
    EXPECT(s2s_audio_encoder_out_len(enc, 6001) == 1500 && s2s_audio_encoder_out_len(enc, 5345) == 1336,
           "out_len 6001 -> %lld, 5345 -> %lld", (long long)s2s_audio_encoder_out_len(enc, 6001),
           (long long)s2s_audio_encoder_out_len(enc, 5345));
    free(in), free(le), free(l2), free(l3);
}

// mel [A, mels, K * F] from the hash stream: audio a, mel bin c, frame t of a K_src-chunk layout, so a 1-chunk
// mel can hold the first chunk of the fixture's audio a.
static s2s_tensor *make_mel(s2s_ctx *ctx, const s2s_audio_encoder *m, int64_t A, int64_t K, const int64_t *src_audio,
                            int64_t K_src) {
    const int64_t C = m->n_mels, F = m->chunk_frames;
    s2s_tensor *mel = s2s_new3(ctx, S2S_F32, A, C, K * F);  // [A, mels, K F]
    for (int64_t a = 0; a < A; a++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t t = 0; t < K * F; t++)
                F32(mel)[(a * C + c) * K * F + t] =
                    hash_unit(SEED_MEL, (uint64_t)((src_audio[a] * C + c) * K_src * F + t));
    return mel;
}

static void test_encoder(void) {
    s2s_audio_encoder enc, bare;
    s2s_params P, Pb;
    load_encoder(&enc, &P, ENC_DIR "/qwen2_audio");
    load_encoder(&bare, &Pb, ENC_DIR "/encoder");
    EXPECT(enc.n_layers == 2 && enc.d_model == 64 && enc.chunk_frames == 3000, "config");
    bool same = P.n == Pb.n;
    for (int i = 0; same && i < P.n; i++)
        same = strcmp(P.items[i].name, Pb.items[i].name) == 0 &&
               memcmp(P.items[i].t->data, Pb.items[i].t->data, s2s_nbytes(P.items[i].t)) == 0;
    EXPECT(same, "the Qwen2-Audio and bare encoder checkpoints load different weights");
    s2s_audio_encoder_free(&bare);
    s2s_params_free(&Pb);

    s2s_st_file f;
    char err[1024];
    S2S_CHECK(s2s_st_open(&f, ENC_DIR "/expected.safetensors", err, sizeof err) == 0, "%s", err);
    test_lengths(&f, &enc);
    int64_t A, nl;
    int32_t *vf32 = values(&f, "valid_frames", &A), *ol32 = values(&f, "out_lens", &nl);
    int64_t valid[8], lens[8], src[8], N = 0;
    for (int64_t a = 0; a < A; a++) valid[a] = vf32[a], src[a] = a, N += ol32[a];
    const int64_t K = 3, d = enc.d_model;

    // Frozen (as loaded) with grad mode on, as in every OpenS2S stage: nothing recorded, the same output, and
    // an arena peak below that of the trainable forward (layer intermediates are given back).
    int64_t src1[2] = {0, 0}, valid1[2] = {valid[0], 0}, lens1[2];
    size_t peak_frozen = 0, peak_trainable = 0;
    for (int trainable = 0; trainable < 2; trainable++) {
        s2s_audio_encoder_set_trainable(&P, trainable);
        s2s_ctx *c1 = ctx_new();
        s2s_tensor *mel1 = make_mel(c1, &enc, 1, 1, src1, 3);
        size_t base = s2s_ctx_peak_bytes(c1);
        s2s_tensor *o = s2s_audio_encoder_forward(c1, &enc, mel1, valid1, lens1);
        compare(&f, "out", F32(o), lens1[0] * enc.d_model, 0, TOL_OUT, false);
        if (!trainable) EXPECT(c1->stats.nodes_recorded == 0, "frozen encoder recorded %lld nodes",
                               (long long)c1->stats.nodes_recorded);
        *(trainable ? &peak_trainable : &peak_frozen) = s2s_ctx_peak_bytes(c1) - base;
        s2s_ctx_step_reset(c1);
        s2s_ctx_free(c1);
    }
    EXPECT(peak_frozen < peak_trainable, "frozen forward peak %zu >= trainable %zu", peak_frozen, peak_trainable);
    printf("encoder, 1 chunk forward: arena peak frozen %.1f MiB, trainable %.1f MiB\n",
           (double)peak_frozen / (1 << 20), (double)peak_trainable / (1 << 20));

    s2s_audio_encoder_set_trainable(&P, true);
    EXPECT(!s2s_params_find(&P, "audio_encoder_model.embed_positions.weight")->trainable,
           "embed_positions must stay frozen");
    EXPECT(s2s_params_find(&P, "audio_encoder_model.layers.1.fc2.weight")->trainable, "set_trainable");

    // The batch of three audios (1, 2 and 3 chunks), recompute regions on, forward + backward.
    s2s_ctx *ctx = ctx_new();
    enc.recompute = true;
    s2s_tensor *mel = make_mel(ctx, &enc, A, K, src, K);
    double t0 = now_s();
    s2s_tensor *out = s2s_audio_encoder_forward(ctx, &enc, mel, valid, lens);
    double t1 = now_s();
    for (int64_t a = 0; a < A; a++) EXPECT(lens[a] == ol32[a], "audio %lld: %lld rows, OpenS2S %d", (long long)a,
                                           (long long)lens[a], ol32[a]);
    EXPECT(out->shape[0] == N && out->shape[1] == d, "out rows %lld, want %lld", (long long)out->shape[0],
           (long long)N);
    double e_out = compare(&f, "out", F32(out), N * d, 0, TOL_OUT, false);
    float *R = s2s_malloc((size_t)(N * d) * sizeof *R);
    hash_fill(R, N * d, SEED_R);
    s2s_params_zero_grad(&P);
    double t2 = now_s();
    s2s_backward(ctx, out, R);  // loss = sum(out * R)
    double t3 = now_s();
    double e_grad = compare_grads(&f, &P, TOL_GRAD);
    printf("encoder, 3 audios / 6 chunks of 3000 frames: out err %.2e, worst grad err %.2e; forward %.2f s, "
           "backward (with recompute) %.2f s, arena peak %.1f MiB\n", e_out, e_grad, t1 - t0, t3 - t2,
           (double)s2s_ctx_peak_bytes(ctx) / (1 << 20));
    s2s_ctx_step_reset(ctx);

    // One chunk: audio 0 alone in a 1-chunk mel, beside an audio with no valid frame. With and without
    // recompute: the same outputs as in the batch and bit-identical gradients.
    float *g_plain = NULL;
    for (int rc = 0; rc < 2; rc++) {
        enc.recompute = rc == 1;
        s2s_params_zero_grad(&P);
        mel = make_mel(ctx, &enc, 2, 1, src1, K);
        out = s2s_audio_encoder_forward(ctx, &enc, mel, valid1, lens1);
        EXPECT(lens1[0] == ol32[0] && lens1[1] == 0 && out->shape[0] == ol32[0], "1-chunk lens %lld %lld",
               (long long)lens1[0], (long long)lens1[1]);
        double e1 = compare(&f, "out", F32(out), lens1[0] * d, 0, TOL_OUT, false);
        s2s_backward(ctx, out, R);
        float *g = F32(s2s_params_find(&P, "audio_encoder_model.conv1.weight")->t->grad);
        int64_t ng = s2s_numel(s2s_params_find(&P, "audio_encoder_model.conv1.weight")->t);
        if (!g_plain) {
            g_plain = s2s_malloc((size_t)ng * sizeof *g_plain);
            memcpy(g_plain, g, (size_t)ng * sizeof *g);
        } else {
            EXPECT(memcmp(g_plain, g, (size_t)ng * sizeof *g) == 0, "recompute changed the conv1 gradient");
        }
        if (rc == 0) printf("encoder, 1 chunk + 1 empty audio: out err %.2e\n", e1);
        s2s_ctx_step_reset(ctx);
    }
    free(g_plain);

    // Mutants: a LayerNorm eps 10x off, a shifted positional table; both must be seen.
    s2s_no_grad_begin(ctx);
    enc.ln_eps = 1e-4f;
    mel = make_mel(ctx, &enc, 1, 1, src1, K);
    out = s2s_audio_encoder_forward(ctx, &enc, mel, valid1, lens1);
    double em = compare(&f, "out", F32(out), lens1[0] * d, 0, TOL_OUT, true);
    EXPECT(em > TOL_OUT, "mutant LayerNorm eps 1e-4 passes (err %.2e): the tolerance is too loose", em);
    enc.ln_eps = 1e-5f;
    s2s_tensor *pos = enc.embed_positions;
    int64_t np = s2s_numel(pos);
    float *saved = s2s_malloc((size_t)np * sizeof *saved);
    memcpy(saved, F32(pos), (size_t)np * sizeof *saved);
    memmove(F32(pos), saved + d, (size_t)(np - d) * sizeof *saved);  // position p reads row p + 1
    out = s2s_audio_encoder_forward(ctx, &enc, mel, valid1, lens1);
    double ep = compare(&f, "out", F32(out), lens1[0] * d, 0, TOL_OUT, true);
    EXPECT(ep > TOL_OUT, "mutant positions shifted by one passes (err %.2e)", ep);
    memcpy(F32(pos), saved, (size_t)np * sizeof *saved);
    free(saved);
    s2s_no_grad_end(ctx);
    printf("encoder mutants: eps 1e-4 err %.2e, shifted positions err %.2e\n", em, ep);

    free(R), free(vf32), free(ol32);
    s2s_ctx_free(ctx);
    s2s_st_close(&f);
    s2s_audio_encoder_free(&enc);
    s2s_params_free(&P);
}

// ---- adapter -------------------------------------------------------------------------------------------

static void test_adapter(const char *name, s2s_adapter_config cfg) {
    char wpath[256], epath[256], err[1024];
    snprintf(wpath, sizeof wpath, ADA_DIR "/%s.safetensors", name);
    snprintf(epath, sizeof epath, ADA_DIR "/expected_%s.safetensors", name);
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    s2s_adapter m;
    s2s_adapter_init(&m, &cfg, &P);
    s2s_ckpt_source src = {wpath, S2S_CKPT_OPENS2S};
    EXPECT(s2s_ckpt_load(&P, &src, 1, NULL, NULL, err, sizeof err) == 0, "%s", err);
    s2s_st_file f;
    S2S_CHECK(s2s_st_open(&f, epath, err, sizeof err) == 0, "%s", err);
    int64_t A, n2;
    int32_t *l32 = values(&f, "lens", &A), *o32 = values(&f, "out_lens", &n2);
    int64_t lens[16], olens[16], rows = 0, N = 0, H = cfg.hidden;
    for (int64_t a = 0; a < A; a++) lens[a] = l32[a], rows += l32[a], N += o32[a];

    s2s_ctx *ctx = ctx_new();
    s2s_tensor *x = s2s_new2(ctx, S2S_F32, rows, cfg.in_dim);  // [rows, in]
    hash_fill(F32(x), rows * cfg.in_dim, SEED_X);
    x->requires_grad = true;
    s2s_tensor *out = s2s_adapter_forward(ctx, &m, x, lens, A, olens);
    for (int64_t a = 0; a < A; a++) EXPECT(olens[a] == o32[a], "%s audio %lld: %lld rows, OpenS2S %d", name,
                                           (long long)a, (long long)olens[a], o32[a]);
    EXPECT(out->shape[0] == N && out->shape[1] == H, "%s: out rows", name);
    double e_out = compare(&f, "out", F32(out), N * H, 0, TOL_OUT, false);
    float *R = s2s_malloc((size_t)(N * H) * sizeof *R);
    hash_fill(R, N * H, SEED_RA);
    s2s_params_zero_grad(&P);
    s2s_backward(ctx, out, R);
    double e_x = compare(&f, "grad.x", F32(x->grad), rows * cfg.in_dim, 0, TOL_GRAD, false);
    double e_grad = compare_grads(&f, &P, TOL_GRAD);
    printf("adapter %s: out err %.2e, grad x err %.2e, worst param grad err %.2e\n", name, e_out, e_x, e_grad);
    s2s_ctx_step_reset(ctx);

    // An empty audio inserted in the middle changes nothing for the others.
    s2s_no_grad_begin(ctx);
    int64_t lens_e[17], olens_e[17], k = 0;
    for (int64_t a = 0; a < A; a++) {
        if (a == A / 2) lens_e[k++] = 0;
        lens_e[k++] = lens[a];
    }
    x = s2s_new2(ctx, S2S_F32, rows, cfg.in_dim);
    hash_fill(F32(x), rows * cfg.in_dim, SEED_X);
    out = s2s_adapter_forward(ctx, &m, x, lens_e, A + 1, olens_e);
    EXPECT(olens_e[A / 2] == 0 && out->shape[0] == N, "%s: empty audio", name);
    compare(&f, "out", F32(out), N * H, 0, TOL_OUT, false);

    // Mutant: LayerNorm eps 1e-4.
    m.ln_eps = 1e-4f;
    out = s2s_adapter_forward(ctx, &m, x, lens, A, olens);
    double em = compare(&f, "out", F32(out), N * H, 0, TOL_OUT, true);
    EXPECT(em > TOL_OUT, "%s: mutant LayerNorm eps 1e-4 passes (err %.2e)", name, em);
    s2s_no_grad_end(ctx);
    printf("adapter %s mutant: eps 1e-4 err %.2e\n", name, em);

    free(R), free(l32), free(o32);
    s2s_ctx_free(ctx);
    s2s_st_close(&f);
    s2s_params_free(&P);
}

// PyTorch's default init bounds, and the LayerNorm at identity.
static void test_adapter_init(void) {
    s2s_adapter_config cfg = {.in_dim = 32, .hidden = 48, .inner_dim = 16, .n_conv = 2, .kernel = {5, 5}};
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    s2s_adapter m;
    s2s_adapter_init(&m, &cfg, &P);
    EXPECT(P.n == 8, "adapter registers %d parameters, want 8", P.n);
    s2s_rng rng;
    s2s_rng_seed(&rng, 7);
    s2s_adapter_init_weights(&m, &rng);
    struct { s2s_tensor *t; double bound; } w[] = {
        {m.conv_w[0], 1 / sqrt(32.0 * 5)}, {m.conv_b[0], 1 / sqrt(32.0 * 5)}, {m.conv_w[1], 1 / sqrt(32.0 * 5)},
        {m.fc1_w, 1 / sqrt(48.0)}, {m.fc2_w, 1 / sqrt(16.0)}};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++) {
        double mx = 0;
        for (int64_t j = 0; j < s2s_numel(w[i].t); j++) mx = fmax(mx, fabs(F32(w[i].t)[j]));
        EXPECT(mx <= w[i].bound && mx > 0.9 * w[i].bound, "init %zu: max %.4f, bound %.4f", i, mx, w[i].bound);
    }
    EXPECT(F32(m.ln_w)[0] == 1.0f && F32(m.ln_b)[47] == 0.0f, "LayerNorm init");
    s2s_params_free(&P);
}

int main(void) {
    test_encoder();
    test_adapter("k55",
                 (s2s_adapter_config){.in_dim = 32, .hidden = 48, .inner_dim = 32, .n_conv = 2, .kernel = {5, 5}});
    test_adapter("k345",
                 (s2s_adapter_config){.in_dim = 32, .hidden = 40, .inner_dim = 24, .n_conv = 3, .kernel = {3, 4, 5}});
    test_adapter_init();
    if (failures) {
        fprintf(stderr, "test_audio_encoder: %d failure(s)\n", failures);
        return 1;
    }
    printf("test_audio_encoder: ok\n");
    return 0;
}
