// test_decode.c — incremental decoding (eval/decode.h, eval/kv_cache.h, eval/generate.h) against the full forward
// s2s_qwen3_forward on the same sequence, on the tiny Qwen3 fixtures (tied, untied, untied + LoRA adapters).
// For several schedules of the same T input rows (prefill 1 / 5 / T rows, then single rows, with one chunk of 3
// in the middle) every row's final-norm hidden state and logits must match the full forward's within TOL
// (max |decode - full| / max |full|, measured errors printed). Also: truncating the cache and decoding again gives
// the same bits; decode steps after the first take no new arena memory; generate's hidden rows equal the full
// forward of prompt + generated tokens; greedy argmax takes the first max.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "autograd/rng.h"
#include "eval/decode.h"
#include "eval/generate.h"
#include "eval/kv_cache.h"
#include "eval/sample.h"
#include "model/checkpoint.h"
#include "model/lora.h"
#include "model/qwen3.h"
#include "expect.h"

#define TOL 1e-5
#define FIX "tests/fixtures/"
#define T_ROWS 13

typedef struct loaded {
    s2s_params p;
    s2s_qwen3 q;
} loaded;

static void load(loaded *m, const char *name, bool lora) {
    char dir[256], err[512];
    snprintf(dir, sizeof dir, FIX "qwen3_%s", name);
    s2s_qwen3_config cfg;
    S2S_CHECK(s2s_qwen3_config_read(&cfg, dir, err, sizeof err) == 0, "%s", err);
    s2s_params_init(&m->p, S2S_CPU);
    s2s_qwen3_create(&m->q, &m->p, &cfg, "llm_model.", &(s2s_qwen3_opts){.trainable = true});
    if (lora) s2s_lora_attach(&m->p, &m->q, &(s2s_lora_config){.r = 4, .alpha = 8, .dropout = 0.0}, 7);
    s2s_ckpt_source src[2] = {{dir, S2S_CKPT_HF_LLM}, {FIX "qwen3_lora/adapter.safetensors", S2S_CKPT_HF_LLM}};
    S2S_CHECK(s2s_ckpt_load(&m->p, src, lora ? 2 : 1, NULL, NULL, err, sizeof err) == 0, "%s", err);
}

static void unload(loaded *m) {
    s2s_qwen3_free(&m->q);
    s2s_params_free(&m->p);
}

// max |a - b| / max |b|; a NaN (a poisoned row left unwritten) is an infinite error.
static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / (m > 0 ? m : 1e-30);
}

static s2s_tensor *host_rows(s2s_ctx *ctx, const float *x, int64_t n, int64_t H) {
    s2s_tensor *t = s2s_new2(ctx, S2S_F32, n, H);  // [n, H]
    memcpy(t->data, x, (size_t)(n * H) * sizeof(float));
    return t;
}

// The full forward of x [T, H] (positions 0..T-1): hidden [T, H] and logits [T, V] into host arrays.
static void full_forward(s2s_ctx *ctx, const s2s_qwen3 *q, const float *x, int64_t T, float *hid, float *lg) {
    const int64_t H = q->cfg.hidden_size;
    s2s_no_grad_begin(ctx);
    s2s_tensor *pos = s2s_new1(ctx, S2S_I32, T);  // pos [T]
    for (int64_t t = 0; t < T; t++) ((int32_t *)pos->data)[t] = (int32_t)t;
    s2s_tensor *h = s2s_qwen3_forward(ctx, q, host_rows(ctx, x, T, H), pos, NULL, NULL);  // h [T, H]
    memcpy(hid, h->data, s2s_nbytes(h));
    s2s_tensor *l = s2s_qwen3_logits(ctx, q, h);  // l [T, V]
    if (lg) memcpy(lg, l->data, s2s_nbytes(l));
    s2s_no_grad_end(ctx);
    s2s_ctx_step_reset(ctx);
}

// Decode rows from .. T-1 of x in chunks of sched[] rows (the last repeats), writing hidden / logits rows.
// Each call rewinds the arena to where it started; *grow counts arena growth after the first two calls.
static void decode_rows(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *kv, const float *x, int64_t from, int64_t T,
                        const int *sched, int n_sched, float *hid, float *lg, size_t *grow) {
    const int64_t H = q->cfg.hidden_size, V = q->cfg.vocab_size;
    size_t g0 = 0;
    int call = 0;
    for (int64_t t = from; t < T; call++) {
        int64_t n = sched[call < n_sched ? call : n_sched - 1];
        if (n > T - t) n = T - t;
        if (call == 2) g0 = ctx->arena.grow_events;
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *xr = host_rows(ctx, x + t * H, n, H);
        s2s_tensor *h = s2s_decode_step(ctx, q, kv, xr);  // h [n, H]
        EXPECT(h->shape[0] == n && !h->requires_grad, "decode_step output [%lld, H], no grad", (long long)n);
        memcpy(hid + t * H, h->data, s2s_nbytes(h));
        s2s_tensor *l = s2s_decode_logits(ctx, q, h, 0, n);  // l [n, V]
        memcpy(lg + t * V, l->data, s2s_nbytes(l));
        s2s_arena_rewind(ctx->cur, mark);
        t += n;
    }
    if (grow) *grow = call > 2 ? ctx->arena.grow_events - g0 : 0;
}

static void test_incremental(const char *name, bool lora) {
    loaded m;
    load(&m, name, lora);
    const s2s_qwen3 *q = &m.q;
    const int64_t H = q->cfg.hidden_size, V = q->cfg.vocab_size, T = T_ROWS;
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2, .arena_bytes = 1 << 20});
    // Input rows: token embeddings, with two rows of random "audio" features spliced in (inputs_embeds).
    float *x = malloc((size_t)(T * H) * sizeof(float));
    s2s_rng r;
    s2s_rng_seed(&r, 11);
    for (int64_t t = 0; t < T; t++) {
        const int64_t id = (int64_t)(s2s_rng_u64(&r) % (uint64_t)V);
        for (int64_t k = 0; k < H; k++)
            x[t * H + k] = (t == 3 || t == 4) ? 0.1f * s2s_rng_normal(&r) : ((float *)q->embed->data)[id * H + k];
    }
    float *hf = malloc((size_t)(T * H) * sizeof(float)), *lf = malloc((size_t)(T * V) * sizeof(float));
    float *hd = malloc((size_t)(T * H) * sizeof(float)), *ld = malloc((size_t)(T * V) * sizeof(float));
    float *h2 = malloc((size_t)(T * H) * sizeof(float)), *l2 = malloc((size_t)(T * V) * sizeof(float));
    full_forward(ctx, q, x, T, hf, lf);

    s2s_kv_cache kv;
    s2s_kv_cache_init_qwen3(&kv, q, 32);
    EXPECT(kv.dtype == q->embed->dtype && kv.k[0].shape[1] == q->cfg.num_key_value_heads,
           "cache in the model's dtype, GQA-sized");
    const int s_one[] = {1}, s_five[] = {5, 1, 3, 1}, s_all[] = {T_ROWS};
    const struct { const char *name; const int *s; int n; } scheds[] = {
        {"prefill 1, then 1 by 1", s_one, 1}, {"prefill 5, 1, chunk of 3, then 1 by 1", s_five, 4},
        {"prefill all", s_all, 1}};
    for (size_t si = 0; si < sizeof scheds / sizeof *scheds; si++) {
        s2s_kv_cache_reset(&kv);
        memset(hd, 0xff, (size_t)(T * H) * sizeof(float));  // poisoned: NaN where a row is not written
        memset(ld, 0xff, (size_t)(T * V) * sizeof(float));
        size_t grow = 0;
        decode_rows(ctx, q, &kv, x, 0, T, scheds[si].s, scheds[si].n, hd, ld, &grow);
        EXPECT(s2s_kv_cache_len(&kv) == T, "cache length %lld after %lld rows", (long long)kv.len, (long long)T);
        const double eh = rel_err(hd, hf, T * H), el = rel_err(ld, lf, T * V);
        printf("%-8s%s %-40s hidden %.2e logits %.2e\n", name, lora ? "+lora" : "", scheds[si].name, eh, el);
        EXPECT(eh <= TOL && el <= TOL, "%s%s, %s: hidden %.3g, logits %.3g vs the full forward", name,
               lora ? " + LoRA" : "", scheds[si].name, eh, el);
        EXPECT(grow == 0, "%s: the arena grew %zu times after the second decode call", scheds[si].name, grow);
    }
    // Decode 1 by 1, rewind to 6 positions and decode the rest again: the same bits as the first pass.
    s2s_kv_cache_reset(&kv);
    decode_rows(ctx, q, &kv, x, 0, T, s_one, 1, hd, ld, NULL);
    s2s_kv_cache_truncate(&kv, 6);
    memset(h2, 0xff, (size_t)(T * H) * sizeof(float));
    memset(l2, 0xff, (size_t)(T * V) * sizeof(float));
    decode_rows(ctx, q, &kv, x, 6, T, s_one, 1, h2, l2, NULL);
    EXPECT(memcmp(h2 + 6 * H, hd + 6 * H, (size_t)((T - 6) * H) * sizeof(float)) == 0 &&
               memcmp(l2 + 6 * V, ld + 6 * V, (size_t)((T - 6) * V) * sizeof(float)) == 0,
           "%s: truncate(6) and decoding again differs from the first pass", name);

    // generate: its hidden rows are the full forward's on prompt + generated tokens (all but the last).
    s2s_kv_cache_reset(&kv);
    const int64_t P = 5;
    s2s_generate_cfg gc = {.max_new_tokens = 8, .sample = s2s_sample_defaults(), .want_hidden = true};
    s2s_generate_out go;
    s2s_generate_qwen3(ctx, q, &kv, host_rows(ctx, x, P, H), &gc, &go);
    s2s_ctx_step_reset(ctx);
    EXPECT(go.n_ids == 8 && !go.hit_eos && go.n_hidden == P + 7, "generate: %lld ids, %lld hidden rows",
           (long long)go.n_ids, (long long)go.n_hidden);
    float *seq = malloc((size_t)((P + 7) * H) * sizeof(float)), *hs = malloc((size_t)((P + 7) * H) * sizeof(float));
    memcpy(seq, x, (size_t)(P * H) * sizeof(float));
    for (int64_t i = 0; i + 1 < go.n_ids; i++)
        memcpy(seq + (P + i) * H, (float *)q->embed->data + go.ids[i] * H, (size_t)H * sizeof(float));
    full_forward(ctx, q, seq, P + 7, hs, NULL);
    const double eg = rel_err(go.hidden, hs, (P + 7) * H);
    printf("%-8s%s %-40s hidden %.2e\n", name, lora ? "+lora" : "", "generate 8 greedy tokens", eg);
    EXPECT(eg <= TOL, "%s: generate's hidden rows vs the full forward: %.3g", name, eg);
    // The same prompt with an EOS set holding the third generated token stops there, EOS included.
    int32_t eos[2] = {-5, go.ids[2]};
    int64_t first = 0;
    while (go.ids[first] != eos[1]) first++;
    s2s_kv_cache_reset(&kv);
    s2s_generate_cfg ge = gc;
    ge.eos = eos, ge.n_eos = 2, ge.want_hidden = false;
    s2s_generate_out g2;
    s2s_generate_qwen3(ctx, q, &kv, host_rows(ctx, x, P, H), &ge, &g2);
    s2s_ctx_step_reset(ctx);
    EXPECT(g2.hit_eos && g2.n_ids == first + 1 && memcmp(g2.ids, go.ids, (size_t)g2.n_ids * sizeof(int32_t)) == 0 &&
               !g2.hidden && kv.len == P + first,
           "generate with EOS %d: %lld ids (want %lld), cache %lld", eos[1], (long long)g2.n_ids,
           (long long)first + 1, (long long)kv.len);
    s2s_generate_out_free(&g2);
    s2s_generate_out_free(&go);
    free(seq), free(hs);
    s2s_kv_cache_free(&kv);
    free(x), free(hf), free(lf), free(hd), free(ld), free(h2), free(l2);
    s2s_ctx_free(ctx);
    unload(&m);
}

static void test_argmax(void) {
    const float a[] = {1, 3, 3, 2}, b[] = {NAN, -1, 5, 5};
    EXPECT(s2s_sample_argmax(a, 4) == 1 && s2s_sample_argmax(b, 4) == 2, "argmax: first max, NaN never wins");
}

int main(void) {
    test_argmax();
    test_incremental("tied", false);
    test_incremental("untied", false);
    test_incremental("untied", true);
    if (failures) {
        fprintf(stderr, "test_decode: %d failures\n", failures);
        return 1;
    }
    printf("test_decode: all passed\n");
    return 0;
}
