// test_qwen3.c — the Qwen3 decoder, LoRA and vocabulary resizing against Hugging Face transformers / PEFT.
// Fixtures: tests/fixtures/qwen3_{tied,untied,lora,tts}, written by tools/fixtures/gen_qwen3.py (packed batch of
// two samples; every parameter's gradient of HF's shifted cross-entropy).
// Tolerance: max |s2s - HF| / max |HF| per tensor (f32 both sides) below TOL; measured errors are printed.
// Mutants (rms eps 1e-5 instead of 1e-6, rope theta 1e4 <-> 1e6) must exceed MUTANT_MIN = 10 x TOL: the
// comparison is sharp enough to catch them.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "autograd/rng.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/lora.h"
#include "model/qwen3.h"
#include "model/safetensors.h"
#include "model/vocab_resize.h"
#include "ops/ops.h"
#include "expect.h"

#define TOL 2e-5
#define MUTANT_MIN (10 * TOL)
#define FIX "tests/fixtures/"


static s2s_ctx *new_ctx(void) {
    return s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 2, .arena_bytes = 8 << 20, .scratch_bytes = 4 << 20});
}

// ---- fixture access ------------------------------------------------------------------------------------

// A copy of one tensor of an expected.safetensors (the mapping need not be aligned), NULL when absent.
static void *fx_get(const s2s_st_file *f, const char *name, s2s_dtype want, int64_t *numel) {
    const s2s_st_entry *e = s2s_st_find(f, name);
    if (!e) return NULL;
    S2S_CHECK(e->supported && e->dtype == want, "fixture %s: %s has the wrong dtype", f->path, name);
    void *v = malloc(e->nbytes + 4);
    memcpy(v, e->data, e->nbytes);
    if (numel) *numel = s2s_st_numel(e);
    return v;
}

static void *fx_need(const s2s_st_file *f, const char *name, s2s_dtype want, int64_t *numel) {
    void *v = fx_get(f, name, want, numel);
    S2S_CHECK(v, "fixture %s has no tensor %s: rerun tools/fixtures/gen_qwen3.py", f->path, name);
    return v;
}

static double rel_err(const float *a, const float *b, int64_t n) {
    double d = 0, m = 0;
    for (int64_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - (double)b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return d / (m > 0 ? m : 1e-30);
}

static s2s_tensor *i32_tensor(s2s_ctx *ctx, const int32_t *v, int64_t n) {
    s2s_tensor *t = s2s_new1(ctx, S2S_I32, n);
    memcpy(t->data, v, (size_t)n * sizeof(int32_t));
    return t;
}

// A model and its registry loaded from a fixture directory (HF layout mapped under prefix).
typedef struct loaded {
    s2s_params p;
    s2s_qwen3 q;
} loaded;

static void load_model(loaded *m, const char *dir, const char *prefix, bool speaker) {
    s2s_qwen3_config cfg;
    char err[512];
    S2S_CHECK(s2s_qwen3_config_read(&cfg, dir, err, sizeof err) == 0, "%s", err);
    s2s_params_init(&m->p, S2S_CPU);
    s2s_qwen3_create(&m->q, &m->p, &cfg, prefix, &(s2s_qwen3_opts){.speaker = speaker, .trainable = true});
}

static void load_weights(loaded *m, const char *dir, s2s_ckpt_layout layout, const char *extra_file) {
    char err[512];
    s2s_ckpt_source src[2] = {{dir, layout}, {extra_file, layout}};
    S2S_CHECK(s2s_ckpt_load(&m->p, src, extra_file ? 2 : 1, NULL, NULL, err, sizeof err) == 0, "%s", err);
}

static void free_model(loaded *m) {
    s2s_qwen3_free(&m->q);
    s2s_params_free(&m->p);
}

// The packed inputs of a fixture.
typedef struct batch {
    int32_t *ids, *pos, *cu, *labels, *shifted;
    int64_t n_ids, T, n_seq;
    float *spk;  // [S, 512] or NULL
} batch;

static void batch_load(batch *b, const s2s_st_file *f) {
    int64_t n_cu, n_lab;
    b->ids = fx_need(f, "input_ids", S2S_I32, &b->n_ids);
    b->pos = fx_need(f, "positions", S2S_I32, &b->T);
    b->cu = fx_need(f, "cu_seqlens", S2S_I32, &n_cu);
    b->labels = fx_need(f, "labels", S2S_I32, &n_lab);
    b->shifted = fx_need(f, "shifted_labels", S2S_I32, NULL);
    b->n_seq = n_cu - 1;
    b->spk = fx_get(f, "spk", S2S_F32, NULL);
    S2S_CHECK(n_lab == b->T, "fixture %s: labels and positions differ in length", f->path);
}

static void batch_free(batch *b) {
    free(b->ids), free(b->pos), free(b->cu), free(b->labels), free(b->shifted), free(b->spk);
}

// Input embeddings: token embeddings, with the TTS-LM's speaker row first in each sample when spk is given.
static s2s_tensor *inputs(s2s_ctx *ctx, const s2s_qwen3 *q, const batch *b) {
    s2s_tensor *e = s2s_qwen3_embed(ctx, q, i32_tensor(ctx, b->ids, b->n_ids));  // e [n_ids, H]
    if (!b->spk) return e;
    s2s_tensor *spk = s2s_new2(ctx, S2S_F32, b->n_seq, S2S_SPK_DIM);  // spk [S, 512]
    memcpy(spk->data, b->spk, s2s_nbytes(spk));
    s2s_tensor *rows = s2s_qwen3_speaker(ctx, q, spk);  // rows [S, H]
    s2s_tensor *parts[16];
    int np = 0, at = 0;
    S2S_CHECK(2 * b->n_seq <= 16, "too many samples");
    for (int64_t s = 0; s < b->n_seq; s++) {
        const int n_tok = b->cu[s + 1] - b->cu[s] - 1;
        parts[np++] = s2s_slice(ctx, rows, 0, s, 1);
        parts[np++] = s2s_slice(ctx, e, 0, at, n_tok);
        at += n_tok;
    }
    return s2s_concat(ctx, parts, np, 0);  // [T, H]
}

typedef struct run_out {
    float *hidden, *logits, loss;
} run_out;

// Forward, logits (no grad), loss with the HF shift, backward when the loss needs a gradient.
static run_out run(s2s_ctx *ctx, const s2s_qwen3 *q, const batch *b, const s2s_qwen3_fwd *f) {
    run_out r = {0};
    s2s_tensor *x = inputs(ctx, q, b);
    s2s_tensor *pos = i32_tensor(ctx, b->pos, b->T), *cu = i32_tensor(ctx, b->cu, b->n_seq + 1);
    s2s_tensor *h = s2s_qwen3_forward(ctx, q, x, pos, cu, f);  // h [T, H]
    s2s_no_grad_begin(ctx);
    s2s_tensor *lg = s2s_qwen3_logits(ctx, q, h);  // lg [T, V]
    s2s_no_grad_end(ctx);
    r.hidden = malloc(s2s_nbytes(h));
    memcpy(r.hidden, h->data, s2s_nbytes(h));
    r.logits = malloc(s2s_nbytes(lg));
    memcpy(r.logits, lg->data, s2s_nbytes(lg));
    int32_t *tg = malloc((size_t)b->T * sizeof(int32_t));
    s2s_qwen3_shift_labels(tg, b->labels, b->T, b->cu, (int)b->n_seq);
    EXPECT(memcmp(tg, b->shifted, (size_t)b->T * sizeof(int32_t)) == 0, "shift_labels differs from HF's shift");
    s2s_tensor *loss = s2s_qwen3_loss(ctx, q, h, i32_tensor(ctx, tg, b->T), 1.0f);
    free(tg);
    r.loss = ((float *)loss->data)[0];
    if (loss->requires_grad) s2s_backward(ctx, loss, NULL);
    s2s_ctx_step_reset(ctx);
    return r;
}

static void run_free(run_out *r) { free(r->hidden), free(r->logits); }

static double compare(const s2s_st_file *f, const char *name, const float *got, int64_t n, const char *what) {
    int64_t ne;
    float *want = fx_need(f, name, S2S_F32, &ne);
    EXPECT(ne == n, "%s: %s has %lld values, s2s %lld", what, name, (long long)ne, (long long)n);
    double e = ne == n ? rel_err(got, want, n) : INFINITY;
    EXPECT(e < TOL, "%s: %s rel err %.3g", what, name, e);
    free(want);
    return e;
}

// Every trainable parameter's gradient against grad.<HF name> (the registry name less the prefix).
// Returns the largest error; *n counts the compared tensors.
static double compare_grads(const s2s_st_file *f, s2s_params *p, const char *prefix, const char *what, int *n) {
    double worst = 0;
    *n = 0;
    for (int i = 0; i < p->n; i++) {
        s2s_param *pr = &p->items[i];
        if (!pr->trainable) continue;
        char key[300];
        snprintf(key, sizeof key, "grad.%s", pr->name + strlen(prefix));
        double e = compare(f, key, pr->t->grad->data, s2s_numel(pr->t), what);
        worst = fmax(worst, e);
        (*n)++;
    }
    return worst;
}

// ---- conformance: tied / untied LLM, TTS-LM with the speaker bridge --------------------------------------

static void test_conformance(const char *name, const char *prefix, s2s_ckpt_layout layout, bool speaker) {
    char dir[256], exp[300];
    snprintf(dir, sizeof dir, FIX "qwen3_%s", name);
    snprintf(exp, sizeof exp, "%s/expected.safetensors", dir);
    s2s_st_file f;
    char err[512];
    S2S_CHECK(s2s_st_open(&f, exp, err, sizeof err) == 0, "%s", err);
    batch b;
    batch_load(&b, &f);
    loaded m;
    load_model(&m, dir, prefix, speaker);
    load_weights(&m, dir, layout, NULL);
    const s2s_qwen3_config *c = &m.q.cfg;
    EXPECT((m.q.lm_head == NULL) == c->tie_word_embeddings, "%s: lm_head presence must follow tie_word_embeddings", name);
    s2s_ctx *ctx = new_ctx();
    float *grads0 = NULL;
    for (int rc = 0; rc < 2; rc++) {  // plain, then one recompute region per layer
        s2s_params_zero_grad(&m.p);
        run_out r = run(ctx, &m.q, &b, &(s2s_qwen3_fwd){.recompute = rc});
        char what[64];
        snprintf(what, sizeof what, "%s%s", name, rc ? " (recompute)" : "");
        double eh = compare(&f, "hidden", r.hidden, b.T * c->hidden_size, what);
        double el = compare(&f, "logits", r.logits, b.T * c->vocab_size, what);
        double ex = compare(&f, "loss", &r.loss, 1, what);
        int ng;
        double eg = compare_grads(&f, &m.p, prefix, what, &ng);
        EXPECT(ng == m.p.n, "%s: %d of %d parameters compared", what, ng, m.p.n);
        printf("qwen3 %-20s hidden %.2e logits %.2e loss %.2e grads(%d) %.2e\n", what, eh, el, ex, ng, eg);
        // The recompute path must give the very same gradients as the plain one.
        int64_t total = 0;
        for (int i = 0; i < m.p.n; i++) total += s2s_numel(m.p.items[i].t);
        float *g = malloc((size_t)total * sizeof(float));
        for (int i = 0, at = 0; i < m.p.n; at += (int)s2s_numel(m.p.items[i].t), i++)
            memcpy(g + at, m.p.items[i].t->grad->data, s2s_nbytes(m.p.items[i].t));
        if (!grads0) grads0 = g;
        else {
            double d = rel_err(g, grads0, total);
            EXPECT(d < 1e-6, "%s: recompute gradients differ from plain ones by %.3g", name, d);
            free(g);
        }
        run_free(&r);
    }
    free(grads0);

    // Mutants: a wrong rms eps (x10: 1e-5 is the Llama default) or rope theta must fail the comparison.
    int64_t nl;
    float *want = fx_need(&f, "logits", S2S_F32, &nl);
    const s2s_qwen3_config good = *c;
    for (int k = 0; k < 2; k++) {
        if (k == 0) m.q.cfg.rms_norm_eps = good.rms_norm_eps * 10;
        else m.q.cfg.rope_theta = good.rope_theta == 1e6 ? 1e4 : 1e6;
        s2s_no_grad_begin(ctx);
        run_out r = run(ctx, &m.q, &b, NULL);
        s2s_no_grad_end(ctx);
        double e = rel_err(r.logits, want, nl);
        EXPECT(e > MUTANT_MIN, "%s: mutant %s passes (rel err %.3g)", name, k ? "rope theta" : "rms eps", e);
        printf("qwen3 %-20s mutant %-10s logits rel err %.2e (must exceed %.0e)\n", name, k ? "rope theta" : "rms eps", e,
               MUTANT_MIN);
        m.q.cfg = good;
        run_free(&r);
    }
    free(want);

    // Stage-1 shape: the decoder frozen, only the input side trains. No frozen weight gets a gradient
    // buffer, and the gradient that reaches the input (here the TTS speaker bridge) is still exact.
    if (speaker) {
        s2s_params_set_trainable(&m.p, prefix, false);
        char pfx[128];
        snprintf(pfx, sizeof pfx, "%sspk", prefix);
        int k = s2s_params_set_trainable(&m.p, pfx, true);
        EXPECT(k == 3, "speaker bridge has %d tensors, want 3", k);
        s2s_params_zero_grad(&m.p);
        run_out r = run(ctx, &m.q, &b, &(s2s_qwen3_fwd){.recompute = true});
        int ng;
        double eg = compare_grads(&f, &m.p, prefix, "frozen decoder", &ng);
        EXPECT(ng == 3, "%d trainable tensors compared", ng);
        for (int i = 0; i < m.p.n; i++)
            EXPECT(m.p.items[i].trainable || !m.p.items[i].t->grad, "frozen %s holds a gradient", m.p.items[i].name);
        printf("qwen3 %-20s frozen decoder: speaker-bridge grads %.2e\n", name, eg);
        run_free(&r);
    }
    s2s_ctx_free(ctx);
    free_model(&m);
    batch_free(&b);
    s2s_st_close(&f);
}

// ---- LoRA against PEFT --------------------------------------------------------------------------------

static void test_lora(void) {
    const char *base = FIX "qwen3_untied", *prefix = "llm_model.";
    s2s_st_file f;
    char err[512];
    S2S_CHECK(s2s_st_open(&f, FIX "qwen3_lora/expected.safetensors", err, sizeof err) == 0, "%s", err);
    batch b;
    batch_load(&b, &f);
    loaded m;
    load_model(&m, base, prefix, false);
    const int n_base = m.p.n;
    int n = s2s_lora_attach(&m.p, &m.q, &(s2s_lora_config){.r = 4, .alpha = 8, .dropout = 0.0}, 7);
    EXPECT(n == 4 * m.q.cfg.num_hidden_layers, "%d adapters attached", n);
    EXPECT(m.p.n == n_base + 2 * n, "registry has %d tensors", m.p.n);
    // PEFT's initial state: B = 0 (no change to the model), A bounded by 1/sqrt(in).
    {
        const s2s_lora *a = &m.q.layers[0].lora_q;
        const float *A = a->A->data, *B = a->B->data;
        double amax = 0, bmax = 0;
        for (int64_t i = 0; i < s2s_numel(a->A); i++) amax = fmax(amax, fabs(A[i]));
        for (int64_t i = 0; i < s2s_numel(a->B); i++) bmax = fmax(bmax, fabs(B[i]));
        EXPECT(bmax == 0 && amax > 0 && amax <= 1 / sqrt((double)m.q.cfg.hidden_size), "init: |A| %g |B| %g", amax, bmax);
        EXPECT(fabsf(a->scaling - 2.0f) < 1e-7f, "scaling %g, want alpha / r = 2", a->scaling);
    }
    load_weights(&m, base, S2S_CKPT_HF_LLM, FIX "qwen3_lora/adapter.safetensors");
    for (int i = 0; i < m.p.n; i++)
        EXPECT(m.p.items[i].trainable == (strstr(m.p.items[i].name, ".lora_") != NULL),
               "%s: only adapters train under LoRA", m.p.items[i].name);

    s2s_ctx *ctx = new_ctx();
    for (int rc = 0; rc < 2; rc++) {
        s2s_params_zero_grad(&m.p);
        run_out r = run(ctx, &m.q, &b, &(s2s_qwen3_fwd){.recompute = rc, .training = true, .dropout_seed = 3});
        const char *what = rc ? "lora (recompute)" : "lora";
        double el = compare(&f, "logits", r.logits, b.T * m.q.cfg.vocab_size, what);
        double ex = compare(&f, "loss", &r.loss, 1, what);
        int ng;
        double eg = compare_grads(&f, &m.p, prefix, what, &ng);
        EXPECT(ng == 2 * n, "%s: %d adapter gradients compared", what, ng);
        for (int i = 0; i < m.p.n; i++) EXPECT(m.p.items[i].trainable || !m.p.items[i].t->grad, "frozen base has a gradient");
        printf("qwen3 %-20s logits %.2e loss %.2e grads(%d) %.2e\n", what, el, ex, ng, eg);
        run_free(&r);
    }

    // Dropout: off in eval; in training a pure function of the seed, identical under recompute.
    for (int64_t l = 0; l < m.q.cfg.num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &m.q.layers[l];
        L->lora_q.dropout = L->lora_k.dropout = L->lora_v.dropout = L->lora_o.dropout = 0.3f;
    }
    {
        s2s_no_grad_begin(ctx);
        run_out ev = run(ctx, &m.q, &b, &(s2s_qwen3_fwd){.training = false, .dropout_seed = 1});
        s2s_no_grad_end(ctx);
        double e = compare(&f, "logits", ev.logits, b.T * m.q.cfg.vocab_size, "lora eval (dropout off)");
        run_free(&ev);
        float loss[3];
        float *g[2];
        for (int k = 0; k < 3; k++) {
            s2s_params_zero_grad(&m.p);
            run_out r = run(ctx, &m.q, &b, &(s2s_qwen3_fwd){.recompute = k == 1, .training = true, .dropout_seed = k < 2 ? 11 : 12});
            loss[k] = r.loss;
            if (k < 2) {
                g[k] = malloc(s2s_nbytes(m.q.layers[0].lora_q.A));
                memcpy(g[k], m.q.layers[0].lora_q.A->grad->data, s2s_nbytes(m.q.layers[0].lora_q.A));
            }
            run_free(&r);
        }
        double dg = rel_err(g[1], g[0], s2s_numel(m.q.layers[0].lora_q.A));
        EXPECT(loss[0] == loss[1] && dg < 1e-6, "dropout with the same seed: losses %.9g %.9g, grads differ %.3g",
               loss[0], loss[1], dg);
        EXPECT(loss[2] != loss[0], "a new dropout seed must draw new masks");
        int64_t nl;
        float *want = fx_need(&f, "loss", S2S_F32, &nl);
        EXPECT(loss[0] != want[0], "dropout in training must change the loss");
        printf("qwen3 %-20s eval logits %.2e; train loss seed 11: %.6f (recompute %.6f), seed 12: %.6f, p=0: %.6f\n",
               "lora dropout", e, loss[0], loss[1], loss[2], want[0]);
        free(want), free(g[0]), free(g[1]);
    }

    // Merge: W + B A * scaling equals PEFT's merge_and_unload, the adapters leave the registry, and the merged
    // model computes the adapted logits.
    s2s_lora_merge(ctx, &m.p, &m.q);
    EXPECT(m.p.n == n_base, "after merge the registry has %d tensors, want %d", m.p.n, n_base);
    double em = 0;
    for (int i = 0; i < m.p.n; i++) {
        const char *nm = m.p.items[i].name + strlen(prefix);
        EXPECT(!strstr(nm, "lora_"), "%s survived the merge", nm);
        if (!strstr(nm, "_proj") || strstr(nm, "mlp.")) continue;
        char key[300];
        snprintf(key, sizeof key, "merged.%s", nm);
        em = fmax(em, compare(&f, key, m.p.items[i].t->data, s2s_numel(m.p.items[i].t), "lora merge"));
    }
    EXPECT(!m.q.layers[0].lora_q.A, "adapters still attached after merge");
    s2s_no_grad_begin(ctx);
    run_out r = run(ctx, &m.q, &b, NULL);
    s2s_no_grad_end(ctx);
    double el = compare(&f, "logits", r.logits, b.T * m.q.cfg.vocab_size, "merged model");
    printf("qwen3 %-20s weights %.2e logits %.2e\n", "lora merge", em, el);
    run_free(&r);
    s2s_ctx_free(ctx);
    free_model(&m);
    batch_free(&b);
    s2s_st_close(&f);
}

// The dropout itself: with W = 0, A = B = I and scaling 1 the adapter returns exactly dropout(x).
static void test_lora_dropout_mask(void) {
    const int64_t T = 128, C = 64;
    const float p = 0.25f;
    s2s_params reg;
    s2s_params_init(&reg, S2S_CPU);
    s2s_tensor *w = s2s_params_add(&reg, "w", "t", 2, (int64_t[]){C, C}, false, false);
    s2s_tensor *A = s2s_params_add(&reg, "A", "t", 2, (int64_t[]){C, C}, true, false);
    s2s_tensor *B = s2s_params_add(&reg, "B", "t", 2, (int64_t[]){C, C}, true, false);
    for (int64_t i = 0; i < C; i++) ((float *)A->data)[i * C + i] = ((float *)B->data)[i * C + i] = 1.0f;
    s2s_lora l = {.A = A, .B = B, .scaling = 1.0f, .dropout = p};
    s2s_ctx *ctx = new_ctx();
    s2s_tensor *x = s2s_new2(ctx, S2S_F32, T, C);
    for (int64_t i = 0; i < T * C; i++) ((float *)x->data)[i] = 1.0f + (float)(i % 7);
    s2s_no_grad_begin(ctx);
    s2s_tensor *y = s2s_lora_linear(ctx, x, w, &l, (s2s_lora_drop){.training = true, .seed = 5, .stream = 2});
    s2s_tensor *y2 = s2s_lora_linear(ctx, x, w, &l, (s2s_lora_drop){.training = true, .seed = 5, .stream = 3});
    s2s_tensor *ye = s2s_lora_linear(ctx, x, w, &l, (s2s_lora_drop){.training = false, .seed = 5, .stream = 2});
    s2s_no_grad_end(ctx);
    int64_t zeros = 0, bad = 0, same = 0;
    for (int64_t i = 0; i < T * C; i++) {
        float xi = ((float *)x->data)[i], yi = ((float *)y->data)[i];
        if (yi == 0) zeros++;
        else if (fabsf(yi - xi / (1 - p)) > 1e-5f * xi) bad++;
        same += yi == ((float *)y2->data)[i];
        if (((float *)ye->data)[i] != xi) bad++;
    }
    double frac = (double)zeros / (double)(T * C);
    EXPECT(bad == 0, "%lld outputs are neither 0 nor x / (1 - p) (or eval changed x)", (long long)bad);
    EXPECT(fabs(frac - p) < 0.02, "dropped fraction %.4f, want %.2f", frac, p);
    EXPECT(same < T * C * 0.8, "two streams drew the same mask (%lld equal)", (long long)same);
    printf("qwen3 lora dropout mask: dropped %.4f (p %.2f), kept = x/(1-p), eval = identity\n", frac, p);
    s2s_ctx_free(ctx);
    s2s_params_free(&reg);
}

// ---- vocabulary resize ---------------------------------------------------------------------------------

static void row_stats(const float *w, int64_t r0, int64_t r1, int64_t C, double *mean, double *cov) {
    const int64_t n = r1 - r0;
    for (int64_t c = 0; c < C; c++) mean[c] = 0;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t c = 0; c < C; c++) mean[c] += w[r * C + c] / (double)n;
    if (!cov) return;
    for (int64_t i = 0; i < C * C; i++) cov[i] = 0;
    for (int64_t r = r0; r < r1; r++)
        for (int64_t i = 0; i < C; i++)
            for (int64_t j = 0; j < C; j++)
                cov[i * C + j] += (w[r * C + i] - mean[i]) * (w[r * C + j] - mean[j]) / (double)n;
}

static void test_vocab_resize(void) {
    s2s_ctx *ctx = new_ctx();
    // Tied model: grows by OpenS2S's four special tokens; the head stays the embedding.
    {
        loaded m;
        load_model(&m, FIX "qwen3_tied", "llm_model.", false);
        load_weights(&m, FIX "qwen3_tied", S2S_CKPT_HF_LLM, NULL);
        const int64_t V = m.q.cfg.vocab_size, C = m.q.cfg.hidden_size, NV = V + 4;
        float *old = malloc(s2s_nbytes(m.q.embed));
        memcpy(old, m.q.embed->data, s2s_nbytes(m.q.embed));
        s2s_tensor *before = m.q.embed;
        s2s_vocab_resize(ctx, &m.q, NV, 99);
        const float *w = m.q.embed->data;
        EXPECT(m.q.embed == before && s2s_qwen3_lm_head(&m.q) == m.q.embed && !m.q.lm_head, "tied head must stay tied");
        EXPECT(m.q.cfg.vocab_size == NV && m.q.embed->shape[0] == NV &&
                   s2s_params_find(&m.p, "llm_model.model.embed_tokens.weight")->t->shape[0] == NV,
               "embedding not resized to %lld rows", (long long)NV);
        EXPECT(memcmp(w, old, (size_t)(V * C) * sizeof(float)) == 0, "old rows changed");
        EXPECT(m.q.embed->grad->shape[0] == NV, "gradient not resized");
        double mu[64], sd = 0, dev = 0;
        row_stats(w, 0, V, C, mu, NULL);
        for (int64_t r = 0; r < V; r++)
            for (int64_t c = 0; c < C; c++) sd += (w[r * C + c] - mu[c]) * (w[r * C + c] - mu[c]) / (double)(V * C);
        sd = sqrt(sd);
        for (int64_t r = V; r < NV; r++)
            for (int64_t c = 0; c < C; c++) dev = fmax(dev, fabs(w[r * C + c] - mu[c]));
        EXPECT(dev > 0 && dev < 1e-3 * sd, "new rows deviate from the old mean by %.3g (old std %.3g)", dev, sd);
        EXPECT(memcmp(w + V * C, w + (V + 1) * C, (size_t)C * sizeof(float)) != 0, "new rows are identical");
        printf("qwen3 vocab resize tied %lld->%lld: old rows kept, |new - mean| max %.2e (old row std %.2e)\n",
               (long long)V, (long long)NV, dev, sd);
        // The resized model trains: a label in a new row gets a gradient there, through the tied head.
        s2s_tensor *ids = i32_tensor(ctx, (int32_t[]){1, (int32_t)V + 2, 5}, 3);
        s2s_tensor *pos = i32_tensor(ctx, (int32_t[]){0, 1, 2}, 3);
        s2s_tensor *h = s2s_qwen3_forward(ctx, &m.q, s2s_qwen3_embed(ctx, &m.q, ids), pos, NULL, NULL);
        s2s_tensor *loss = s2s_qwen3_loss(ctx, &m.q, h, i32_tensor(ctx, (int32_t[]){(int32_t)V + 3, 7, -100}, 3), 1.0f);
        s2s_backward(ctx, loss, NULL);
        s2s_ctx_step_reset(ctx);
        double gn = 0;
        for (int64_t c = 0; c < C; c++) gn += fabs(((float *)m.q.embed->grad->data)[(V + 3) * C + c]);
        EXPECT(isfinite(((float *)loss->data)[0]) && gn > 0, "no gradient reaches a new row");
        free(old);
        free_model(&m);
    }
    // Untied: the head grows with its own statistics; shrinking keeps the leading rows.
    {
        loaded m;
        load_model(&m, FIX "qwen3_untied", "llm_model.", false);
        load_weights(&m, FIX "qwen3_untied", S2S_CKPT_HF_LLM, NULL);
        const int64_t V = m.q.cfg.vocab_size, C = m.q.cfg.hidden_size;
        float *old_h = malloc(s2s_nbytes(m.q.lm_head));
        memcpy(old_h, m.q.lm_head->data, s2s_nbytes(m.q.lm_head));
        s2s_vocab_resize(ctx, &m.q, V + 3, 5);
        const float *wh = m.q.lm_head->data;
        double mu[64], dev = 0;
        row_stats(old_h, 0, V, C, mu, NULL);
        for (int64_t c = 0; c < C; c++) dev = fmax(dev, fabs(wh[V * C + c] - mu[c]));
        EXPECT(m.q.lm_head->shape[0] == V + 3 && memcmp(wh, old_h, (size_t)(V * C) * sizeof(float)) == 0 && dev < 1e-4,
               "untied lm_head resize: new row off its own mean by %.3g", dev);
        s2s_vocab_resize(ctx, &m.q, V - 10, 5);
        EXPECT(m.q.embed->shape[0] == V - 10 && m.q.lm_head->shape[0] == V - 10 &&
                   memcmp(m.q.lm_head->data, old_h, (size_t)((V - 10) * C) * sizeof(float)) == 0,
               "shrinking must keep the leading rows");
        free(old_h);
        free_model(&m);
    }
    // The distribution: many new rows have the old mean and 1e-9 times the old covariance; with fewer old
    // rows than dimensions the covariance is singular and every new row is the mean.
    {
        const int64_t C = 6, V = 200, K = 6000;
        s2s_params reg;
        s2s_params_init(&reg, S2S_CPU);
        s2s_tensor *w = s2s_params_add(&reg, "w", "t", 2, (int64_t[]){V + K, C}, false, false);
        s2s_rng rng;
        s2s_rng_seed(&rng, 3);
        float *x = w->data;
        for (int64_t r = 0; r < V; r++) {  // correlated columns with distinct means
            float z0 = s2s_rng_normal(&rng);
            for (int64_t c = 0; c < C; c++) x[r * C + c] = 0.1f * (float)c + 0.5f * z0 + 0.3f * (c + 1) * s2s_rng_normal(&rng) / C;
        }
        s2s_vocab_init_rows(ctx, w, V, 17);
        double m0[8], c0[64], m1[8], c1[64], dm = 0, dc = 0, nc = 0;
        row_stats(x, 0, V, C, m0, c0);
        row_stats(x, V, V + K, C, m1, c1);
        for (int64_t c = 0; c < C; c++) dm = fmax(dm, fabs(m1[c] - m0[c]) / sqrt(1e-9 * c0[c * C + c]));
        for (int64_t i = 0; i < C * C; i++) {
            dc += (c1[i] - 1e-9 * c0[i]) * (c1[i] - 1e-9 * c0[i]);
            nc += 1e-18 * c0[i] * c0[i];
        }
        dc = sqrt(dc / nc);
        EXPECT(dm < 0.1 && dc < 0.1, "new rows: mean off by %.3g sd, covariance off by %.3g (relative)", dm, dc);
        printf("qwen3 vocab resize distribution (%lld draws): mean off %.3f sd, covariance vs 1e-9 cov rel %.3f\n",
               (long long)K, dm, dc);
        s2s_tensor *w2 = s2s_params_add(&reg, "w2", "t", 2, (int64_t[]){C + 4, C}, false, false);
        memcpy(w2->data, x, (size_t)(C - 2) * C * sizeof(float));
        s2s_vocab_init_rows(ctx, w2, C - 2, 17);
        row_stats(w2->data, 0, C - 2, C, m0, NULL);
        double off = 0;
        for (int64_t r = C - 2; r < C + 4; r++)
            for (int64_t c = 0; c < C; c++) off = fmax(off, fabs(((float *)w2->data)[r * C + c] - (float)m0[c]));
        EXPECT(off == 0, "singular covariance: new rows must equal the mean (off by %.3g)", off);
        s2s_params_free(&reg);
    }
    s2s_ctx_free(ctx);
}

// ---- init ----------------------------------------------------------------------------------------------

static void test_init(void) {
    s2s_qwen3_config c = {.vocab_size = 300, .hidden_size = 64, .intermediate_size = 96, .num_hidden_layers = 2,
                          .num_attention_heads = 4, .num_key_value_heads = 2, .head_dim = 16, .rope_theta = 1e6,
                          .rms_norm_eps = 1e-6, .tie_word_embeddings = false, .pad_token_id = 7};
    s2s_params a, b;
    s2s_qwen3 qa, qb;
    s2s_params_init(&a, S2S_CPU);
    s2s_params_init(&b, S2S_CPU);
    s2s_qwen3_create(&qa, &a, &c, "tts_lm_model.", &(s2s_qwen3_opts){.speaker = true, .trainable = true});
    c.tie_word_embeddings = true;  // another layout: common tensors must still get the same values
    s2s_qwen3_create(&qb, &b, &c, "tts_lm_model.", &(s2s_qwen3_opts){.trainable = false});
    s2s_qwen3_init(&qa, 0.02, 42);
    s2s_qwen3_init(&qb, 0.02, 42);
    EXPECT(memcmp(qa.layers[1].wk->data, qb.layers[1].wk->data, s2s_nbytes(qb.layers[1].wk)) == 0 &&
               memcmp(qa.embed->data, qb.embed->data, s2s_nbytes(qb.embed)) == 0,
           "init must depend on (seed, name) only");
    EXPECT(a.n == b.n + 4 && !b.items[0].trainable && b.items[0].t->grad == NULL, "registry layout / trainable flags");
    EXPECT(s2s_params_find(&a, "tts_lm_model.spk2tts.weight")->t->shape[1] == S2S_SPK_DIM, "spk2tts is [H, 512]");
    const float *e = qa.embed->data;
    double s = 0, s2 = 0, pz = 0;
    const int64_t n = s2s_numel(qa.embed);
    for (int64_t i = 0; i < n; i++) s += e[i], s2 += (double)e[i] * e[i];
    for (int64_t k = 0; k < c.hidden_size; k++) pz += fabs(e[7 * c.hidden_size + k]);
    double sd = sqrt(s2 / n - (s / n) * (s / n));
    EXPECT(fabs(sd - 0.02) < 0.001 && pz == 0, "embedding std %.4f (want 0.02), pad row |.| %.3g", sd, pz);
    EXPECT(((float *)qa.layers[0].q_norm->data)[3] == 1.0f && ((float *)qa.spk_ln_b->data)[0] == 0.0f, "norm init");
    s2s_qwen3_free(&qa), s2s_qwen3_free(&qb);
    s2s_params_free(&a), s2s_params_free(&b);
}

int main(void) {
    test_init();
    test_conformance("tied", "llm_model.", S2S_CKPT_HF_LLM, false);
    test_conformance("untied", "llm_model.", S2S_CKPT_HF_LLM, false);
    test_conformance("tts", "tts_lm_model.", S2S_CKPT_HF_TTS, true);
    test_lora();
    test_lora_dropout_mask();
    test_vocab_resize();
    if (failures) {
        fprintf(stderr, "test_qwen3: %d failures\n", failures);
        return 1;
    }
    printf("test_qwen3: all passed\n");
    return 0;
}
