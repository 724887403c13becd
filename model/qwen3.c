// qwen3.c — the Qwen3 decoder: parameters, initialisation, forward (optionally one recompute region per
// layer), logits and loss. Conformance against transformers: tests/unit/test_qwen3.c.
#include "qwen3.h"
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../autograd/rng.h"

// ---- parameters ------------------------------------------------------------------------------------

typedef struct reg {
    s2s_params *p;
    const char *prefix;
    char module[64];
    bool trainable;
} reg;

static s2s_tensor *add(reg *r, const char *name, int ndim, int64_t d0, int64_t d1, bool decay) {
    char full[256];
    int n = snprintf(full, sizeof full, "%s%s", r->prefix, name);
    S2S_CHECK(n > 0 && n < (int)sizeof full, "qwen3: parameter name %s%s is too long", r->prefix, name);
    int64_t shape[2] = {d0, d1};
    return s2s_params_add(r->p, full, r->module, ndim, shape, r->trainable, decay);
}

void s2s_qwen3_create(s2s_qwen3 *q, s2s_params *p, const s2s_qwen3_config *c, const char *prefix,
                      const s2s_qwen3_opts *o) {
    S2S_CHECK(c->vocab_size > 0 && c->hidden_size > 0 && c->intermediate_size > 0 && c->num_hidden_layers > 0 &&
                  c->num_attention_heads > 0 && c->num_key_value_heads > 0 && c->head_dim > 0,
              "qwen3: config has a non-positive size (read it with s2s_qwen3_config_read)");
    S2S_CHECK(c->num_attention_heads % c->num_key_value_heads == 0,
              "qwen3: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
              (long long)c->num_attention_heads, (long long)c->num_key_value_heads);
    S2S_CHECK(c->head_dim % 2 == 0, "qwen3: head_dim %lld must be even for RoPE", (long long)c->head_dim);
    S2S_CHECK(strlen(prefix) < sizeof q->prefix, "qwen3: prefix '%s' is too long", prefix);
    memset(q, 0, sizeof *q);
    q->cfg = *c;
    snprintf(q->prefix, sizeof q->prefix, "%s", prefix);
    reg r = {.p = p, .prefix = prefix, .trainable = o ? o->trainable : true};
    snprintf(r.module, sizeof r.module, "%s", prefix);
    size_t ml = strlen(r.module);
    if (ml && r.module[ml - 1] == '.') r.module[ml - 1] = 0;  // "llm_model." is owned by module "llm_model"

    const int64_t V = c->vocab_size, H = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    const int64_t QD = c->num_attention_heads * D, KD = c->num_key_value_heads * D;
    q->embed = add(&r, "model.embed_tokens.weight", 2, V, H, true);
    q->layers = s2s_calloc((size_t)c->num_hidden_layers, sizeof *q->layers);
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &q->layers[l];
        char n[160];
#define NAME(s) (snprintf(n, sizeof n, "model.layers.%lld." s, (long long)l), n)
        L->input_ln = add(&r, NAME("input_layernorm.weight"), 1, H, 0, false);
        L->wq = add(&r, NAME("self_attn.q_proj.weight"), 2, QD, H, true);
        L->wk = add(&r, NAME("self_attn.k_proj.weight"), 2, KD, H, true);
        L->wv = add(&r, NAME("self_attn.v_proj.weight"), 2, KD, H, true);
        L->wo = add(&r, NAME("self_attn.o_proj.weight"), 2, H, QD, true);
        L->q_norm = add(&r, NAME("self_attn.q_norm.weight"), 1, D, 0, false);
        L->k_norm = add(&r, NAME("self_attn.k_norm.weight"), 1, D, 0, false);
        L->post_ln = add(&r, NAME("post_attention_layernorm.weight"), 1, H, 0, false);
        L->w_gate = add(&r, NAME("mlp.gate_proj.weight"), 2, I, H, true);
        L->w_up = add(&r, NAME("mlp.up_proj.weight"), 2, I, H, true);
        L->w_down = add(&r, NAME("mlp.down_proj.weight"), 2, H, I, true);
#undef NAME
    }
    q->norm = add(&r, "model.norm.weight", 1, H, 0, false);
    if (!c->tie_word_embeddings) q->lm_head = add(&r, "lm_head.weight", 2, V, H, true);
    if (o && o->speaker) {
        q->spk2tts = add(&r, "spk2tts.weight", 2, H, S2S_SPK_DIM, true);
        q->spk_ln_w = add(&r, "spk_ln.weight", 1, H, 0, false);
        q->spk_ln_b = add(&r, "spk_ln.bias", 1, H, 0, false);
        s2s_params_set_norm(p, q->spk_ln_w, S2S_NORM_LAYER);
        s2s_params_set_norm(p, q->spk_ln_b, S2S_NORM_LAYER);
    }
    for (int64_t l = 0; l < c->num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &q->layers[l];
        const s2s_tensor *rms[] = {L->input_ln, L->q_norm, L->k_norm, L->post_ln};
        for (size_t i = 0; i < sizeof rms / sizeof *rms; i++) s2s_params_set_norm(p, rms[i], S2S_NORM_RMS);
    }
    s2s_params_set_norm(p, q->norm, S2S_NORM_RMS);
}

void s2s_qwen3_free(s2s_qwen3 *q) {
    free(q->layers);
    q->layers = NULL;
}

s2s_tensor *s2s_qwen3_lm_head(const s2s_qwen3 *q) { return q->lm_head ? q->lm_head : q->embed; }

// ---- initialisation ----------------------------------------------------------------------------------

// A generator per tensor, seeded by (seed, HF name) (s2s_rng_seed_named): values do not depend on the order of
// registration, and a model initialised tied or untied, with or without a speaker bridge, shares every common
// tensor. Values are made on the host and copied: initialisation runs once, on any device.
static void init_normal(s2s_tensor *t, float std, uint64_t seed) {
    int64_t n = s2s_numel(t);
    float *v = s2s_malloc((size_t)n * sizeof(float));
    s2s_rng r;
    s2s_rng_seed_named(&r, seed, t->name);
    s2s_rng_fill_normal(&r, v, n, std);
    s2s_dev_copy(t->device, t->data, S2S_CPU, v, (size_t)n * sizeof(float));
    free(v);
}

static void init_const(s2s_tensor *t, float c) {
    int64_t n = s2s_numel(t);
    float *v = s2s_malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = c;
    s2s_dev_copy(t->device, t->data, S2S_CPU, v, (size_t)n * sizeof(float));
    free(v);
}

void s2s_qwen3_init(s2s_qwen3 *q, double init_std, uint64_t seed) {
    const float std = (float)(init_std > 0 ? init_std : 0.02);
    init_normal(q->embed, std, seed);
    const int64_t pad = q->cfg.pad_token_id;
    if (pad >= 0 && pad < q->cfg.vocab_size)  // nn.Embedding(padding_idx) starts its pad row at zero
        s2s_dev_memset0(q->embed->device, (float *)q->embed->data + pad * q->cfg.hidden_size,
                        (size_t)q->cfg.hidden_size * sizeof(float));
    for (int64_t l = 0; l < q->cfg.num_hidden_layers; l++) {
        s2s_qwen3_layer *L = &q->layers[l];
        s2s_tensor *mats[] = {L->wq, L->wk, L->wv, L->wo, L->w_gate, L->w_up, L->w_down};
        for (size_t i = 0; i < sizeof mats / sizeof *mats; i++) init_normal(mats[i], std, seed);
        s2s_tensor *norms[] = {L->input_ln, L->q_norm, L->k_norm, L->post_ln};
        for (size_t i = 0; i < sizeof norms / sizeof *norms; i++) init_const(norms[i], 1.0f);
    }
    init_const(q->norm, 1.0f);
    if (q->lm_head) init_normal(q->lm_head, std, seed);
    if (q->spk2tts) {
        init_normal(q->spk2tts, std, seed);
        init_const(q->spk_ln_w, 1.0f);
        init_const(q->spk_ln_b, 0.0f);
    }
}

// ---- embedding ---------------------------------------------------------------------------------------

s2s_tensor *s2s_qwen3_embed(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *ids) {
    S2S_CHECK(ids->dtype == S2S_I32 && ids->ndim == 1, "qwen3_embed: ids must be i32 [T]");
    s2s_tensor *e = s2s_embedding(ctx, ids, q->embed);  // e [T, H]
    const int64_t pad = q->cfg.pad_token_id, T = ids->shape[0];
    if (pad < 0 || !e->requires_grad) return e;
    // padding_idx: the pad id's rows are replaced by a constant copy of the pad embedding, so no gradient
    // reaches that row of embed_tokens from the input side. It matters: the pad row starts at zero, and
    // RMSNorm's gradient at a zero row is 1/sqrt(eps), which would blow that row up on the first step.
    int32_t *host = s2s_malloc((size_t)(T + 1) * sizeof(int32_t));
    s2s_dev_copy(S2S_CPU, host, ids->device, ids->data, (size_t)T * sizeof(int32_t));
    int32_t M = 0;
    for (int64_t t = 0; t < T; t++)
        if (host[t] == pad) host[M++] = (int32_t)t;
    if (M > 0) {
        s2s_tensor *at = s2s_new1(ctx, S2S_I32, M);     // at [M] rows holding the pad id
        s2s_tensor *pid = s2s_new1(ctx, S2S_I32, M);    // pid [M] = pad
        s2s_dev_copy(ctx->device, at->data, S2S_CPU, host, (size_t)M * sizeof(int32_t));
        for (int32_t m = 0; m < M; m++) host[m] = (int32_t)pad;
        s2s_dev_copy(ctx->device, pid->data, S2S_CPU, host, (size_t)M * sizeof(int32_t));
        s2s_no_grad_begin(ctx);
        s2s_tensor *rows = s2s_embedding(ctx, pid, q->embed);  // rows [M, H], constant
        s2s_no_grad_end(ctx);
        e = s2s_scatter_rows(ctx, e, at, rows);
    }
    free(host);
    return e;
}

s2s_tensor *s2s_qwen3_speaker(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *spk) {
    S2S_CHECK(q->spk2tts, "qwen3_speaker: %s was created without the speaker bridge (opts.speaker)", q->prefix);
    s2s_tensor *h = s2s_linear(ctx, spk, q->spk2tts, NULL);  // h [S, H]
    return s2s_layernorm(ctx, h, q->spk_ln_w, q->spk_ln_b, 1e-5f);
}

// ---- decoder layers ----------------------------------------------------------------------------------

// Everything one layer needs besides its tensor inputs; lives in the step arena so a recompute region can
// re-run the layer during backward.
typedef struct layer_call {
    const s2s_qwen3 *q;
    int64_t l;
    s2s_qwen3_fwd f;
} layer_call;

// The stream of a LoRA dropout mask: one per (layer, projection), so every call site draws its own.
static s2s_lora_drop drop_for(const layer_call *c, int proj) {
    return (s2s_lora_drop){.training = c->f.training, .seed = c->f.dropout_seed, .stream = (uint64_t)c->l * 4 + proj};
}

// x [T, H] -> [T, H]
static s2s_tensor *layer_forward(s2s_ctx *ctx, const layer_call *c, s2s_tensor *x, s2s_tensor *pos, s2s_tensor *cu) {
    const s2s_qwen3_config *cfg = &c->q->cfg;
    const s2s_qwen3_layer *L = &c->q->layers[c->l];
    const int64_t T = x->shape[0], Hq = cfg->num_attention_heads, Hkv = cfg->num_key_value_heads;
    const int64_t D = cfg->head_dim;
    const float eps = (float)cfg->rms_norm_eps, theta = (float)cfg->rope_theta;

    s2s_tensor *h = s2s_rmsnorm(ctx, x, L->input_ln, eps);  // h [T, H]
    s2s_tensor *qh = s2s_lora_linear(ctx, h, L->wq, &L->lora_q, drop_for(c, 0));  // qh [T, Hq*D]
    s2s_tensor *kh = s2s_lora_linear(ctx, h, L->wk, &L->lora_k, drop_for(c, 1));  // kh [T, Hkv*D]
    s2s_tensor *vh = s2s_lora_linear(ctx, h, L->wv, &L->lora_v, drop_for(c, 2));  // vh [T, Hkv*D]
    qh = s2s_reshape(ctx, qh, 3, (int64_t[]){T, Hq, D});  // qh [T, Hq, D]
    kh = s2s_reshape(ctx, kh, 3, (int64_t[]){T, Hkv, D});  // kh [T, Hkv, D]
    vh = s2s_reshape(ctx, vh, 3, (int64_t[]){T, Hkv, D});  // vh [T, Hkv, D]
    // Qwen3 normalises each head before RoPE (q_norm / k_norm over head_dim).
    qh = s2s_rope(ctx, s2s_rmsnorm(ctx, qh, L->q_norm, eps), pos, theta);
    kh = s2s_rope(ctx, s2s_rmsnorm(ctx, kh, L->k_norm, eps), pos, theta);
    s2s_tensor *a = s2s_attention(ctx, qh, kh, vh, cu, true, 1.0f / sqrtf((float)D));  // a [T, Hq, D]
    a = s2s_reshape(ctx, a, 2, (int64_t[]){T, Hq * D});                                 // a [T, Hq*D]
    x = s2s_add(ctx, x, s2s_lora_linear(ctx, a, L->wo, &L->lora_o, drop_for(c, 3)));    // x [T, H]

    h = s2s_rmsnorm(ctx, x, L->post_ln, eps);  // h [T, H]
    s2s_tensor *g = s2s_linear(ctx, h, L->w_gate, NULL);  // g [T, I]
    s2s_tensor *u = s2s_linear(ctx, h, L->w_up, NULL);    // u [T, I]
    s2s_tensor *m = s2s_linear(ctx, s2s_silu_mul(ctx, g, u), L->w_down, NULL);  // m [T, H]
    return s2s_add(ctx, x, m);
}

static void layer_region(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    outs[0] = layer_forward(ctx, user, ins[0], ins[1], n_in > 2 ? ins[2] : NULL);
}

s2s_tensor *s2s_qwen3_forward(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *x, s2s_tensor *pos,
                              s2s_tensor *cu_seqlens, const s2s_qwen3_fwd *f) {
    const s2s_qwen3_config *cfg = &q->cfg;
    S2S_CHECK(x->ndim == 2 && x->shape[1] == cfg->hidden_size,
              "qwen3_forward (%s): input must be [T, %lld] embeddings", q->prefix, (long long)cfg->hidden_size);
    S2S_CHECK(pos && pos->dtype == S2S_I32 && pos->ndim == 1 && pos->shape[0] == x->shape[0],
              "qwen3_forward (%s): positions must be i32 [%lld]", q->prefix, (long long)x->shape[0]);
    s2s_qwen3_fwd none = {0};
    if (!f) f = &none;
    if (!s2s_grad_enabled(ctx)) {
        // Forward only (a frozen LLM feeding the TTS-LM, inference): each layer's intermediates are given back as
        // soon as its output is copied out, so the arena holds one layer's activations, not the model's.
        s2s_tensor *buf[2] = {s2s_new_like(ctx, x), s2s_new_like(ctx, x)};  // [T, H] ping-pong
        for (int64_t l = 0; l < cfg->num_hidden_layers; l++) {
            s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
            layer_call c = {.q = q, .l = l, .f = *f};
            s2s_tensor *y = layer_forward(ctx, &c, x, pos, cu_seqlens);  // [T, H]
            s2s_dev_copy(ctx->device, buf[l % 2]->data, ctx->device, y->data, s2s_nbytes(y));
            s2s_arena_rewind(ctx->cur, mark);
            x = buf[l % 2];
        }
        return s2s_rmsnorm(ctx, x, q->norm, (float)cfg->rms_norm_eps);  // [T, H]
    }
    for (int64_t l = 0; l < cfg->num_hidden_layers; l++) {
        layer_call *c = s2s_host_alloc(ctx, sizeof *c);
        *c = (layer_call){.q = q, .l = l, .f = *f};
        if (f->recompute) {
            s2s_tensor *ins[3] = {x, pos, cu_seqlens}, *out = NULL;
            s2s_recompute(ctx, layer_region, c, ins, cu_seqlens ? 3 : 2, &out, 1);
            x = out;
        } else {
            x = layer_forward(ctx, c, x, pos, cu_seqlens);
        }
    }
    return s2s_rmsnorm(ctx, x, q->norm, (float)cfg->rms_norm_eps);  // [T, H]
}

// ---- output ------------------------------------------------------------------------------------------

s2s_tensor *s2s_qwen3_logits(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h) {
    return s2s_linear(ctx, h, s2s_qwen3_lm_head(q), NULL);  // [T, V]
}

int64_t s2s_qwen3_count_correct(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, const int32_t *targets) {
    enum { CHUNK = 256 };  // supervised rows per logits block: [256, V] at a time
    const int64_t T = h->shape[0], V = q->cfg.vocab_size;
    int32_t rows[CHUNK], want[CHUNK];
    float *lg = s2s_malloc((size_t)(CHUNK * V) * sizeof *lg);  // host copy of one block's logits
    int64_t hits = 0;
    s2s_no_grad_begin(ctx);
    for (int64_t t = 0; t < T;) {
        int n = 0;
        for (; t < T && n < CHUNK; t++)
            if (targets[t] != S2S_IGNORE_INDEX) rows[n] = (int32_t)t, want[n++] = targets[t];
        if (!n) break;
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *idx = s2s_new1(ctx, S2S_I32, n);  // idx [n]
        s2s_dev_copy(ctx->device, idx->data, S2S_CPU, rows, (size_t)n * sizeof *rows);
        s2s_tensor *logits = s2s_qwen3_logits(ctx, q, s2s_gather_rows(ctx, h, idx));  // [n, V]
        s2s_dev_copy(S2S_CPU, lg, ctx->device, logits->data, (size_t)(n * V) * sizeof *lg);
        s2s_arena_rewind(ctx->cur, mark);
        for (int i = 0; i < n; i++) {
            const float *r = lg + (int64_t)i * V;
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (r[v] > r[best]) best = v;
            hits += best == want[i];
        }
    }
    s2s_no_grad_end(ctx);
    free(lg);
    return hits;
}

s2s_tensor *s2s_qwen3_loss(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, s2s_tensor *targets, float weight) {
    return s2s_cross_entropy_fused(ctx, h, s2s_qwen3_lm_head(q), targets, S2S_IGNORE_INDEX, weight);
}

void s2s_qwen3_shift_labels(int32_t *targets, const int32_t *labels, int64_t T, const int32_t *cu_seqlens,
                            int n_seq) {
    int32_t one[2] = {0, (int32_t)T};
    if (!cu_seqlens) cu_seqlens = one, n_seq = 1;
    S2S_CHECK(cu_seqlens[0] == 0 && cu_seqlens[n_seq] == T, "shift_labels: cu_seqlens must run from 0 to T=%lld",
              (long long)T);
    for (int s = 0; s < n_seq; s++) {
        const int32_t b = cu_seqlens[s], e = cu_seqlens[s + 1];
        S2S_CHECK(b <= e, "shift_labels: cu_seqlens must not decrease (sample %d)", s);
        for (int32_t t = b; t < e; t++) targets[t] = t + 1 < e ? labels[t + 1] : S2S_IGNORE_INDEX;
    }
}
