// cmd_demo.c — `s2s demo`: by default the tiny OmniSpeech of configs/tiny/model.json (demo_omni.c);
// with --decoder, a tiny Qwen3-style decoder (embedding, RMSNorm, q/k norm, RoPE,
// GQA attention in recompute regions, SwiGLU, fused cross-entropy, AdamW with clipping and warm-up)
// on packed sequences from a random low-entropy Markov chain, and shows the loss fall towards the
// chain's entropy. It exercises the whole foundation end to end until the real stages land.
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/rng.h"
#include "cli.h"
#include "demo.h"
#include "metrics.h"
#include "ops/ops.h"
#include "optim.h"

// The default --min-drop of each demo, a fraction of the first step's loss (see demo_loss_fell). Measured at the
// ctest step counts over --seed 0-19, 2 threads: the OmniSpeech falls 6.2-7.2% in 8 steps (17.8 -> ~16.6 nats;
// seed 0: 6.9%), the decoder 36.9-40.3% in 30 (4.17 -> ~2.57; seed 0: 38.6%). The margins sit well under the
// worst seed and far above a model that does not learn (the fixed batches' step-1 losses differ by < 0.3%);
// more steps only fall further. Both runs are deterministic: the same seed and thread count give the same bits.
#define OMNI_MIN_DROP 0.04
#define DECODER_MIN_DROP 0.25

int demo_loss_fell(const char *what, const double *loss, int steps, int k, double min_drop) {
    if (k > steps) k = steps;
    double tail = 0;
    for (int i = steps - k; i < steps; i++) tail += loss[i];
    tail /= k;
    double drop = (loss[0] - tail) / loss[0];
    bool ok = drop >= min_drop;  // NaN losses fail
    fprintf(stderr, "demo: %s loss fell %.1f%% (step 1: %.4f, mean of the last %d steps: %.4f); required: at least "
                    "%.1f%% (--min-drop %g): %s\n", what, 100 * drop, loss[0], k, tail, 100 * min_drop, min_drop,
            ok ? "ok" : "FAILED");
    return ok ? 0 : 1;
}

typedef struct {
    int vocab, dim, n_layers, n_heads, n_kv, head_dim, ffn;
    float theta, eps;
} demo_cfg;

typedef struct {
    s2s_tensor *ln1, *wq, *wk, *wv, *wo, *qn, *kn, *ln2, *wg, *wu, *wd;
} demo_layer;

typedef struct {
    demo_cfg c;
    s2s_params params;
    s2s_tensor *emb, *norm;
    demo_layer layers[8];
    s2s_tensor *pos, *cu;  // set per step: positions i32 [T], cu_seqlens i32 [S+1]
} demo_model;

static s2s_tensor *add_param(demo_model *m, s2s_rng *r, const char *name, int ndim, int64_t d0, int64_t d1,
                             float std, float fill) {
    int64_t shape[2] = {d0, d1};
    s2s_tensor *t = s2s_params_add(&m->params, name, "demo", ndim, shape, true, ndim == 2);
    float *x = t->data;
    if (std > 0) s2s_rng_fill_normal(r, x, s2s_numel(t), std);
    else for (int64_t i = 0; i < s2s_numel(t); i++) x[i] = fill;
    return t;
}

static void demo_init(demo_model *m, demo_cfg c, uint64_t seed) {
    s2s_rng r;
    s2s_rng_seed(&r, seed);
    m->c = c;
    s2s_params_init(&m->params, S2S_CPU);
    char n[128];
    m->emb = add_param(m, &r, "model.embed_tokens.weight", 2, c.vocab, c.dim, 0.02f, 0);
    for (int l = 0; l < c.n_layers; l++) {
        demo_layer *L = &m->layers[l];
#define P(field, nm, nd, a, b, std, fill) \
        snprintf(n, sizeof n, "model.layers.%d.%s", l, nm); L->field = add_param(m, &r, n, nd, a, b, std, fill)
        P(ln1, "input_layernorm.weight", 1, c.dim, 1, 0, 1.0f);
        P(wq, "self_attn.q_proj.weight", 2, c.n_heads * c.head_dim, c.dim, 0.02f, 0);
        P(wk, "self_attn.k_proj.weight", 2, c.n_kv * c.head_dim, c.dim, 0.02f, 0);
        P(wv, "self_attn.v_proj.weight", 2, c.n_kv * c.head_dim, c.dim, 0.02f, 0);
        P(wo, "self_attn.o_proj.weight", 2, c.dim, c.n_heads * c.head_dim, 0.02f, 0);
        P(qn, "self_attn.q_norm.weight", 1, c.head_dim, 1, 0, 1.0f);
        P(kn, "self_attn.k_norm.weight", 1, c.head_dim, 1, 0, 1.0f);
        P(ln2, "post_attention_layernorm.weight", 1, c.dim, 1, 0, 1.0f);
        P(wg, "mlp.gate_proj.weight", 2, c.ffn, c.dim, 0.02f, 0);
        P(wu, "mlp.up_proj.weight", 2, c.ffn, c.dim, 0.02f, 0);
        P(wd, "mlp.down_proj.weight", 2, c.dim, c.ffn, 0.02f, 0);
#undef P
    }
    m->norm = add_param(m, &r, "model.norm.weight", 1, c.dim, 1, 0, 1.0f);
}

typedef struct {
    demo_model *m;
    int layer;
} block_arg;

// One decoder block; runs inside a recompute region so only its input is kept for backward.
static void block_forward(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    block_arg *a = user;
    demo_model *m = a->m;
    demo_cfg c = m->c;
    demo_layer *L = &m->layers[a->layer];
    s2s_tensor *x = ins[0];  // x [T, dim]
    int64_t T = x->shape[0];
    s2s_tensor *h = s2s_rmsnorm(ctx, x, L->ln1, c.eps);
    s2s_tensor *q = s2s_reshape(ctx, s2s_linear(ctx, h, L->wq, NULL), 3, (int64_t[]){T, c.n_heads, c.head_dim});
    s2s_tensor *k = s2s_reshape(ctx, s2s_linear(ctx, h, L->wk, NULL), 3, (int64_t[]){T, c.n_kv, c.head_dim});
    s2s_tensor *v = s2s_reshape(ctx, s2s_linear(ctx, h, L->wv, NULL), 3, (int64_t[]){T, c.n_kv, c.head_dim});
    q = s2s_rope(ctx, s2s_rmsnorm(ctx, q, L->qn, c.eps), m->pos, c.theta);  // q [T, Hq, D]
    k = s2s_rope(ctx, s2s_rmsnorm(ctx, k, L->kn, c.eps), m->pos, c.theta);  // k [T, Hkv, D]
    s2s_tensor *att = s2s_attention(ctx, q, k, v, m->cu, true, 1.0f / sqrtf((float)c.head_dim));
    att = s2s_reshape(ctx, att, 2, (int64_t[]){T, (int64_t)c.n_heads * c.head_dim});
    x = s2s_add(ctx, x, s2s_linear(ctx, att, L->wo, NULL));
    h = s2s_rmsnorm(ctx, x, L->ln2, c.eps);
    s2s_tensor *f = s2s_silu_mul(ctx, s2s_linear(ctx, h, L->wg, NULL), s2s_linear(ctx, h, L->wu, NULL));
    outs[0] = s2s_add(ctx, x, s2s_linear(ctx, f, L->wd, NULL));  // [T, dim]
}

static int run(int argc, char **argv) {
    int steps = 0, n_seq = 8, seq_len = 48, threads = 0, decoder = 0;
    uint64_t seed = 0;
    double min_drop = NAN;
    const char *metrics_path = NULL, *config = "configs/tiny/model.json", *tts_tok = "configs/tiny/tts-tokenizer";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--metrics") && i + 1 < argc) metrics_path = argv[++i];
        else if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--tts-tokenizer") && i + 1 < argc) tts_tok = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--min-drop") && i + 1 < argc) min_drop = atof(argv[++i]);
        else if (!strcmp(argv[i], "--decoder")) decoder = 1;
        else {
            fprintf(stderr, "usage: s2s demo [--steps N] [--threads N] [--metrics FILE.jsonl] [--seed N]\n"
                            "                [--min-drop F] [--config OMNISPEECH.json] [--tts-tokenizer DIR]\n"
                            "                [--decoder]\n"
                            "  default: the tiny OmniSpeech of configs/tiny/model.json on fixed random\n"
                            "  speech-to-speech batches (30 steps); --decoder: a tiny Qwen3-style decoder on a\n"
                            "  Markov chain (60 steps). --seed N shifts the weights' and the data's seeds\n"
                            "  (default 0).\n"
                            "  Exits 1 unless the mean loss of the last steps (3 OmniSpeech, 5 decoder) is below\n"
                            "  the first step's by at least F of it: --min-drop, default %g OmniSpeech, %g decoder.\n",
                    OMNI_MIN_DROP, DECODER_MIN_DROP);
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    if (!steps) steps = decoder ? 60 : 30;
    S2S_CHECK(steps >= 1, "s2s demo: --steps must be at least 1");
    if (isnan(min_drop)) min_drop = decoder ? DECODER_MIN_DROP : OMNI_MIN_DROP;
    if (!decoder) return demo_omni_run(config, tts_tok, steps, threads, metrics_path, seed, min_drop);
    demo_cfg c = {.vocab = 64, .dim = 64, .n_layers = 2, .n_heads = 4, .n_kv = 2, .head_dim = 16, .ffn = 128,
                  .theta = 10000.0f, .eps = 1e-6f};
    demo_model m;
    demo_init(&m, c, 1234 + seed);
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = threads});

    // The data: a Markov chain where each token has 3 likely successors (entropy ~1.1 nats).
    s2s_rng r;
    s2s_rng_seed(&r, 42 + seed);
    int succ[64][3];
    for (int v = 0; v < c.vocab; v++)
        for (int j = 0; j < 3; j++) succ[v][j] = (int)(s2s_rng_u64(&r) % (uint64_t)c.vocab);

    int64_t T = (int64_t)n_seq * seq_len;
    s2s_adam_state opt;
    s2s_adam_init(&opt, &m.params);
    // Region closures must outlive the step: backward re-runs each block with its argument.
    block_arg blocks[8];
    for (int l = 0; l < c.n_layers; l++) blocks[l] = (block_arg){&m, l};
    s2s_metrics met;
    S2S_CHECK(s2s_metrics_open(&met, metrics_path) == 0, "cannot open metrics file %s", metrics_path);
    fprintf(stderr, "demo: %lld parameters, %d layers, %lld tokens per step, %d threads\n",
            (long long)s2s_params_count(&m.params, true), c.n_layers, (long long)T, ctx->n_threads);
    double *losses = s2s_malloc(sizeof(double) * (size_t)steps);
    for (int step = 1; step <= steps; step++) {
        s2s_tensor *ids = s2s_new1(ctx, S2S_I32, T), *labels = s2s_new1(ctx, S2S_I32, T);
        m.pos = s2s_new1(ctx, S2S_I32, T);
        m.cu = s2s_new1(ctx, S2S_I32, n_seq + 1);
        int32_t *id = ids->data, *lab = labels->data, *pos = m.pos->data, *cu = m.cu->data;
        for (int s = 0; s < n_seq; s++) {
            cu[s] = s * seq_len;
            int tok = (int)(s2s_rng_u64(&r) % (uint64_t)c.vocab);
            for (int t = 0; t < seq_len; t++) {
                id[s * seq_len + t] = tok;
                pos[s * seq_len + t] = t;
                double u = s2s_rng_uniform(&r);
                tok = u < 0.9 ? succ[tok][(int)(u / 0.3)] : (int)(s2s_rng_u64(&r) % (uint64_t)c.vocab);
                lab[s * seq_len + t] = t + 1 < seq_len ? tok : -100;  // next token; none after the last
            }
        }
        cu[n_seq] = (int)T;
        s2s_tensor *x = s2s_embedding(ctx, ids, m.emb);  // x [T, dim]
        for (int l = 0; l < c.n_layers; l++) {
            s2s_tensor *out[1];
            s2s_checkpoint(ctx, block_forward, &blocks[l], &x, 1, out, 1);
            x = out[0];
        }
        x = s2s_rmsnorm(ctx, x, m.norm, c.eps);
        s2s_tensor *loss = s2s_cross_entropy_fused(ctx, x, m.emb, labels, -100, 1.0f);  // tied head
        double lv = ((float *)loss->data)[0];
        s2s_backward(ctx, loss, NULL);
        float lr = 3e-3f * (step <= 10 ? (float)step / 10.0f : 1.0f);
        double gnorm = s2s_adam_step(ctx, &opt, &m.params, lr, 1.0);
        s2s_ctx_step_reset(ctx);
        losses[step - 1] = lv;
        s2s_progress(&met, step, steps, lv, T);
        s2s_metrics_log(&met, step, 3, (const char *[]){"loss", "grad_norm", "lr"}, (double[]){lv, gnorm, lr});
    }
    fprintf(stderr, "demo: loss %.3f -> %.3f (uniform would be %.3f); arena peak %.1f MiB\n", losses[0],
            losses[steps - 1], log((double)c.vocab), (double)s2s_ctx_peak_bytes(ctx) / (1 << 20));
    // Every step draws fresh sequences from the chain: the mean of the last 5 evens out one draw's luck.
    int rc = demo_loss_fell("decoder", losses, steps, 5, min_drop);
    free(losses);
    s2s_adam_free(&opt);
    s2s_metrics_close(&met);
    s2s_params_free(&m.params);
    s2s_ctx_free(ctx);
    return rc;
}

const s2s_cmd s2s_cmd_demo = {"demo", "train the tiny OmniSpeech (or --decoder) on synthetic data, end to end", run};
