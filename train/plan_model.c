// plan_model.c — the stages' forwards (train/stage*.c over model/omnispeech_forward.c, qwen3.c, audio_encoder.c,
// adapter.c) replayed op for op on shapes (plan_internal.h), then their backward: the arena high-water mark of one
// micro-batch (plan.h). Each block names the function it mirrors; when the model's forward changes, so must this.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "model/omnispeech.h"
#include "plan.h"
#include "plan_internal.h"

typedef struct rp {
    sim *s;
    const s2s_params *P;
    const s2s_omnispeech_config *c;
    const s2s_recipe *r;
    bool recompute;
} rp;

static int par(const rp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int par(const rp *p, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return plan_param(p->s, p->P, name);
}

// ---- Qwen3 (qwen3.c) -------------------------------------------------------------------------------------

typedef struct qcall {
    const rp *p;
    const s2s_qwen3_config *q;
    const char *prefix;
    int64_t l, T, n_seq, seq;
    int pos, cu;
} qcall;

// s2s_lora_linear: the base projection, plus the adapter's path when it has one.
static int lora_linear(const qcall *c, int x, const char *proj, int64_t in, int64_t out) {
    const rp *p = c->p;
    const int w = par(p, "%smodel.layers.%lld.self_attn.%s.weight", c->prefix, (long long)c->l, proj);
    int y = plan_linear(p->s, x, w, -1, c->T, out);
    if (p->r->lora_r <= 0 || strcmp(c->prefix, "llm_model.")) return y;
    bool has = false;
    for (int i = 0; i < p->r->lora_targets.n; i++) has |= !strcmp(p->r->lora_targets.v[i], proj);
    if (!has) return y;
    const int A = par(p, "%smodel.layers.%lld.self_attn.%s.lora_A.weight", c->prefix, (long long)c->l, proj);
    const int B = par(p, "%smodel.layers.%lld.self_attn.%s.lora_B.weight", c->prefix, (long long)c->l, proj);
    int xd = x;
    if (p->r->lora_dropout > 0) xd = plan_binary(p->s, x, plan_new(p->s, c->T * in));  // x * mask
    const int z = plan_linear(p->s, plan_linear(p->s, xd, A, -1, c->T, p->r->lora_r), B, -1, c->T, out);
    return plan_binary(p->s, y, plan_unary(p->s, z));
}

// layer_forward of qwen3.c: x [T, H] -> [T, H].
static int qwen3_layer(sim *s, const qcall *c, int x) {
    const rp *p = c->p;
    const s2s_qwen3_config *q = c->q;
    const int64_t T = c->T, H = q->hidden_size, I = q->intermediate_size, D = q->head_dim;
    const int64_t Hq = q->num_attention_heads, Hkv = q->num_key_value_heads;
    const char *pf = c->prefix;
    const long long l = (long long)c->l;
    int h = plan_rmsnorm(s, x, par(p, "%smodel.layers.%lld.input_layernorm.weight", pf, l), T, H);
    int qh = plan_reshape(s, lora_linear(c, h, "q_proj", H, Hq * D));
    int kh = plan_reshape(s, lora_linear(c, h, "k_proj", H, Hkv * D));
    int vh = plan_reshape(s, lora_linear(c, h, "v_proj", H, Hkv * D));
    qh = plan_rope(s, plan_rmsnorm(s, qh, par(p, "%smodel.layers.%lld.self_attn.q_norm.weight", pf, l), T * Hq, D),
                   c->pos, T, Hq, D);
    kh = plan_rope(s, plan_rmsnorm(s, kh, par(p, "%smodel.layers.%lld.self_attn.k_norm.weight", pf, l), T * Hkv, D),
                   c->pos, T, Hkv, D);
    int a = plan_reshape(s, plan_attention(s, qh, kh, vh, c->cu, T, Hq, Hkv, D, c->n_seq, c->seq));
    x = plan_binary(s, x, lora_linear(c, a, "o_proj", Hq * D, H));
    h = plan_rmsnorm(s, x, par(p, "%smodel.layers.%lld.post_attention_layernorm.weight", pf, l), T, H);
    const int g = plan_linear(s, h, par(p, "%smodel.layers.%lld.mlp.gate_proj.weight", pf, l), -1, T, I);
    const int u = plan_linear(s, h, par(p, "%smodel.layers.%lld.mlp.up_proj.weight", pf, l), -1, T, I);
    const int m = plan_linear(s, plan_binary(s, g, u), par(p, "%smodel.layers.%lld.mlp.down_proj.weight", pf, l), -1,
                              T, H);
    return plan_binary(s, x, m);
}

static void qwen3_region(sim *s, const void *user, int x, int *out) { *out = qwen3_layer(s, user, x); }

// s2s_qwen3_forward: x [T, H] -> final-norm hidden states [T, H]. calls: one per layer, kept until backward.
static int qwen3_forward(const rp *p, const s2s_qwen3_config *q, const char *prefix, int x, int64_t T, int64_t n_seq,
                         int64_t seq, bool grad, qcall *calls) {
    sim *s = p->s;
    const int pos = plan_idx(s, T), cu = plan_idx(s, n_seq + 1);
    const int64_t H = q->hidden_size;
    if (!grad) {  // forward only: one layer's intermediates at a time, ping-pong outputs
        plan_new(s, T * H), plan_new(s, T * H);
        for (int64_t l = 0; l < q->num_hidden_layers; l++) {
            arena_mark m = plan_mark(s);
            qcall c = {p, q, prefix, l, T, n_seq, seq, pos, cu};
            qwen3_layer(s, &c, x);
            plan_rewind(s, m);
        }
    } else {
        for (int64_t l = 0; l < q->num_hidden_layers; l++) {
            plan_new(s, 0);  // the layer_call struct, host memory of the arena (rounded to 64 like a header)
            calls[l] = (qcall){p, q, prefix, l, T, n_seq, seq, pos, cu};
            x = p->recompute ? plan_region(s, qwen3_region, &calls[l], x) : qwen3_layer(s, &calls[l], x);
        }
    }
    return plan_rmsnorm(s, x, par(p, "%smodel.norm.weight", prefix), T, H);
}

static int lm_head(const rp *p, const s2s_qwen3_config *q, const char *prefix) {
    return q->tie_word_embeddings ? par(p, "%smodel.embed_tokens.weight", prefix) : par(p, "%slm_head.weight", prefix);
}

// ---- audio: encoder (frozen in every stage) and adapter (audio_encoder.c, adapter.c) -------------------------

static int audio(const rp *p, const s2s_plan_shape *sh, int64_t *rows_per_sample) {
    sim *s = p->s;
    const s2s_audio_encoder_config *e = &p->c->audio;
    const int64_t B = sh->batch, d = e->d_model, P = e->max_source_positions, F = 2 * P, P2 = P / 2;
    const int64_t chunks = (sh->audio_frames + F - 1) / F, M = B * chunks;
    int64_t enc_rows = 0;  // s2s_audio_encoder_out_len
    for (int64_t k = 0; k < chunks; k++) {
        const int64_t left = sh->audio_frames - k * F, f = left < F ? left : F, l1 = (f - 1) / 2 + 1;
        enc_rows += (l1 - 2) / 2 + 1;
    }
    const int64_t N = B * enc_rows;
    int x = plan_new(s, M * e->num_mel_bins * F);  // the batch's log-mel (s2s_train_batch_view)
    int h = plan_unary(s, plan_conv1d(s, x, par(p, "audio_encoder_model.conv1.weight"),
                                      par(p, "audio_encoder_model.conv1.bias"), M, e->num_mel_bins, d, 3, F, 1, 1));
    h = plan_unary(s, plan_conv1d(s, h, par(p, "audio_encoder_model.conv2.weight"),
                                  par(p, "audio_encoder_model.conv2.bias"), M, d, d, 3, P, 2, 1));
    h = plan_reshape(s, plan_binary(s, plan_unary(s, h), par(p, "audio_encoder_model.embed_positions.weight")));
    const int cu = plan_idx(s, M + 1);
    const int64_t T = M * P, Hh = e->encoder_attention_heads, D = d / Hh;
    for (int64_t l = 0; l < e->encoder_layers; l++) {  // frozen: each layer's intermediates given back
        arena_mark m = plan_mark(s);
        const long long L = (long long)l;
        int a = plan_layernorm(s, h, par(p, "audio_encoder_model.layers.%lld.self_attn_layer_norm.weight", L),
                               par(p, "audio_encoder_model.layers.%lld.self_attn_layer_norm.bias", L), T, d);
        int q = plan_reshape(s, plan_linear(s, a, -1, -1, T, d));
        int k = plan_reshape(s, plan_linear(s, a, -1, -1, T, d));
        int v = plan_reshape(s, plan_linear(s, a, -1, -1, T, d));
        int o = plan_linear(s, plan_reshape(s, plan_attention(s, q, k, v, cu, T, Hh, Hh, D, M, P)), -1, -1, T, d);
        int y = plan_binary(s, h, o);
        int f = plan_layernorm(s, y, -1, -1, T, d);
        f = plan_linear(s, plan_unary(s, plan_linear(s, f, -1, -1, T, e->encoder_ffn_dim)), -1, -1, T, d);
        plan_binary(s, y, f);
        plan_rewind(s, m);
    }
    h = plan_unary(s, plan_reshape(s, h));           // [M, d, P]
    h = plan_rows_op(s, h, -1, M * d * P2);          // avgpool
    h = plan_reshape(s, plan_unary(s, h));           // [M P2, d]
    if (N < M * P2) h = plan_rows_op(s, h, plan_idx(s, N), N * d);
    h = plan_layernorm(s, h, par(p, "audio_encoder_model.layer_norm.weight"), par(p, "audio_encoder_model.layer_norm.bias"),
                       N, d);
    // Adapter (s2s_adapter_forward), per audio.
    const s2s_omnispeech_config *c = p->c;
    const int64_t Hl = c->llm.hidden_size;
    int *parts = s2s_malloc((size_t)B * sizeof *parts);
    int64_t L1 = enc_rows, out_len = enc_rows;
    for (int i = 0; i < c->n_conv; i++) out_len = out_len <= 0 ? 0 : (out_len - 1) / 2 + 1;
    for (int64_t b = 0; b < B; b++) {
        int a = plan_unary(s, plan_reshape(s, plan_rows_op(s, h, -1, enc_rows * d)));  // slice, [1, in, L]
        int64_t Cin = d, L = L1;
        for (int i = 0; i < c->n_conv; i++) {
            const int64_t K = c->conv_kernel_sizes[i], Lo = (L + 2 * (K / 2) - K) / 2 + 1, Cout = i == 0 ? 2 * d : 2 * Hl;
            a = plan_conv1d(s, a, par(p, "audio_adapter.subsampler.conv_layers.%d.weight", i),
                            par(p, "audio_adapter.subsampler.conv_layers.%d.bias", i), 1, Cin, Cout, K, Lo, 2,
                            (int)(K / 2));
            a = plan_rows_op(s, a, -1, Cout / 2 * Lo);  // glu
            Cin = Cout / 2, L = Lo;
        }
        if (L > out_len) a = plan_rows_op(s, a, -1, Cin * out_len);
        parts[b] = plan_reshape(s, plan_unary(s, a));
    }
    const int64_t R = B * out_len;
    int a = B == 1 ? parts[0] : plan_concat(s, parts, (int)B);
    free(parts);
    int f = plan_unary(s, plan_linear(s, a, par(p, "audio_adapter.fc1.weight"), -1, R, c->adapter_inner_dim));
    f = plan_linear(s, f, par(p, "audio_adapter.fc2.weight"), -1, R, Hl);
    *rows_per_sample = out_len;
    return plan_layernorm(s, plan_binary(s, f, a), par(p, "audio_adapter.ln.weight"), par(p, "audio_adapter.ln.bias"),
                          R, Hl);
}

// ---- the stages ------------------------------------------------------------------------------------------

static int ce(const rp *p, const s2s_qwen3_config *q, const char *prefix, int h, int64_t T, int64_t M) {
    return plan_ce_fused(p->s, h, lm_head(p, q, prefix), plan_idx(p->s, T), M, q->hidden_size, q->vocab_size);
}

int s2s_plan_activations(const s2s_recipe *r, const s2s_omnispeech_config *c, const s2s_params *P,
                         const s2s_plan_shape *sh, bool recompute, int threads, bool bf16, int64_t *step,
                         int64_t *scratch, char *err, size_t errlen) {
    const int64_t layers = c->llm.num_hidden_layers + c->tts.num_hidden_layers;
    sim *s = plan_sim_new(threads, (int)layers + 1, bf16 ? 2 : 4);
    rp p = {s, P, c, r, recompute};
    qcall *calls = s2s_calloc((size_t)layers + 1, sizeof *calls);
    const int64_t B = sh->batch, Hl = c->llm.hidden_size, Ht = c->tts.hidden_size;
    const bool s2a = !strcmp(r->stage, "stage2a"), s2b = !strcmp(r->stage, "stage2b"), s1 = !strcmp(r->stage, "stage1");
    int loss = -1, rc = 0;
    if (s2a) {  // s2s_omni_tts_pretrain_loss: [text] + units per sample
        const int64_t seq = sh->response + sh->units, T = B * seq;
        int x = plan_embedding(s, plan_idx(s, T), par(&p, "tts_lm_model.model.embed_tokens.weight"), T, Ht);
        int h = qwen3_forward(&p, &c->tts, "tts_lm_model.", x, T, B, seq, true, calls);
        loss = ce(&p, &c->tts, "tts_lm_model.", h, T, B * sh->units);
    } else {
        if (s2b) plan_no_grad(s, true);
        int64_t arows = 0;
        const int au = sh->audio_frames > 0 ? audio(&p, sh, &arows) : -1;
        if (arows >= sh->tokens) {
            rc = s2s_errf(err, errlen, "plan: %lld LLM rows per sample hold no text beside the audio's %lld",
                          (long long)sh->tokens, (long long)arows);
            goto done;
        }
        const int64_t T = B * sh->tokens, n_text = T - B * arows;
        // s2s_omni_llm: text embeddings, spliced with the audio rows (concat + gather).
        int x = plan_embedding(s, plan_idx(s, n_text), par(&p, "llm_model.model.embed_tokens.weight"), n_text, Hl);
        if (au >= 0) x = plan_rows_op(s, plan_concat(s, (int[]){x, au}, 2), plan_idx(s, T), T * Hl);
        int h = qwen3_forward(&p, &c->llm, "llm_model.", x, T, B, sh->tokens, !s2b, calls);
        int llm = -1;
        if (s2b) {  // measured, not trained
            ce(&p, &c->llm, "llm_model.", h, T, B * sh->targets);
            plan_no_grad(s, false);
        } else {
            llm = ce(&p, &c->llm, "llm_model.", h, T, B * sh->targets);
        }
        if (s1 && r->emotion_weight > 0 && au >= 0) {  // stage1.c emotion_term: pool, head, CE, scale
            const int64_t C = r->emotion_classes, R = B * arows;
            int P3 = plan_new(s, B * R);
            int mean = plan_reshape(s, plan_rows_op(s, P3, plan_reshape(s, au), B * Hl));
            int lg = plan_linear(s, mean, par(&p, "emotion_head.weight"), par(&p, "emotion_head.bias"), B, C);
            int e = plan_rows_op(s, lg, plan_idx(s, B), 0);
            plan_new(s, 2 * (B + 1));  // lse, loss rows
            llm = plan_binary(s, llm, plan_unary(s, e));
        }
        plan_new(s, B + 1);  // llm_cu_seqlens
        int tts = -1;
        if (!s1 && sh->units > 0) {  // s2s_omni_tts_loss: [spk] + interleave(response rows, units)
            const int64_t n_text = B * sh->response, n_units = B * sh->units, seq = 1 + sh->response + sh->units;
            const int64_t Tt = B * seq;
            int spk = plan_new(s, B * S2S_SPK_DIM);
            int sr = plan_layernorm(s, plan_linear(s, spk, par(&p, "tts_lm_model.spk2tts.weight"), -1, B, Ht),
                                    par(&p, "tts_lm_model.spk_ln.weight"), par(&p, "tts_lm_model.spk_ln.bias"), B, Ht);
            int sel = plan_rows_op(s, h, plan_idx(s, n_text), n_text * Hl);
            int tx = plan_layernorm(s, plan_linear(s, sel, par(&p, "llm2tts.weight"), -1, n_text, Ht),
                                    par(&p, "llm_ln.weight"), par(&p, "llm_ln.bias"), n_text, Ht);
            int un = plan_embedding(s, plan_idx(s, n_units), par(&p, "tts_lm_model.model.embed_tokens.weight"),
                                    n_units, Ht);
            int all = plan_concat(s, (int[]){sr, tx, un}, 3);
            int xt = plan_rows_op(s, all, plan_idx(s, Tt), Tt * Ht);
            int ht = qwen3_forward(&p, &c->tts, "tts_lm_model.", xt, Tt, B, seq, true, calls + c->llm.num_hidden_layers);
            tts = ce(&p, &c->tts, "tts_lm_model.", ht, Tt, n_units);
        }
        if (llm >= 0 && tts >= 0) loss = plan_binary(s, llm, tts);
        else loss = llm >= 0 ? llm : tts;
    }
    if (loss >= 0 && plan_rg(s, loss)) plan_backward(s, loss);
    plan_sim_peak(s, step, scratch);
done:
    free(calls);
    plan_sim_free(s);
    return rc;
}
