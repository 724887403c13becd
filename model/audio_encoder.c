// audio_encoder.c — the Qwen2-Audio encoder over 30 s chunks, with OpenS2S's length bookkeeping.
#include "audio_encoder.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"

#define ENC_PREFIX "audio_encoder_model."

// ---- parameters ------------------------------------------------------------------------------------

// Register "audio_encoder_model.<fmt...>". Weight decay follows the Hugging Face Trainer: matrices and conv
// kernels decay, biases and LayerNorm parameters do not.
static s2s_tensor *enc_param(s2s_params *P, bool decay, int ndim, const int64_t *shape, const char *fmt, ...) {
    char name[256];
    int at = snprintf(name, sizeof name, ENC_PREFIX);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name + at, sizeof name - (size_t)at, fmt, ap);
    va_end(ap);
    return s2s_params_add(P, name, "audio_encoder_model", ndim, shape, false, decay);
}

void s2s_audio_encoder_init(s2s_audio_encoder *m, const s2s_audio_encoder_config *cfg, s2s_params *P) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const int64_t d = cfg->d_model, f = cfg->encoder_ffn_dim, mels = cfg->num_mel_bins;
    S2S_CHECK(d > 0 && f > 0 && mels > 0 && cfg->encoder_layers > 0, "audio encoder: config sizes must be positive");
    S2S_CHECK(cfg->encoder_attention_heads > 0 && d % cfg->encoder_attention_heads == 0,
              "audio encoder: encoder_attention_heads (%lld) must divide d_model (%lld)",
              (long long)cfg->encoder_attention_heads, (long long)d);
    S2S_CHECK(cfg->max_source_positions >= 2,
              "audio encoder: max_source_positions (%lld) must be >= 2 (the average pool halves it)",
              (long long)cfg->max_source_positions);
    m->n_mels = mels;
    m->d_model = d;
    m->n_heads = cfg->encoder_attention_heads;
    m->head_dim = d / m->n_heads;
    m->ffn_dim = f;
    m->n_layers = cfg->encoder_layers;
    m->n_pos = cfg->max_source_positions;
    m->chunk_frames = 2 * m->n_pos;  // conv2's stride: HF checks input_features has exactly this many frames
    m->ln_eps = 1e-5f;

    m->conv1_w = enc_param(P, true, 3, (int64_t[]){d, mels, 3}, "conv1.weight");
    m->conv1_b = enc_param(P, false, 1, (int64_t[]){d}, "conv1.bias");
    m->conv2_w = enc_param(P, true, 3, (int64_t[]){d, d, 3}, "conv2.weight");
    m->conv2_b = enc_param(P, false, 1, (int64_t[]){d}, "conv2.bias");
    m->embed_positions = enc_param(P, false, 2, (int64_t[]){m->n_pos, d}, "embed_positions.weight");
    m->layers = s2s_calloc((size_t)m->n_layers, sizeof *m->layers);
    for (int64_t l = 0; l < m->n_layers; l++) {
        s2s_audio_encoder_layer *L = &m->layers[l];
        const int64_t dd[2] = {d, d}, fd[2] = {f, d}, df[2] = {d, f}, vd[1] = {d}, vf[1] = {f};
        const long long i = (long long)l;
        L->enc = m;
        L->k_w = enc_param(P, true, 2, dd, "layers.%lld.self_attn.k_proj.weight", i);
        L->v_w = enc_param(P, true, 2, dd, "layers.%lld.self_attn.v_proj.weight", i);
        L->v_b = enc_param(P, false, 1, vd, "layers.%lld.self_attn.v_proj.bias", i);
        L->q_w = enc_param(P, true, 2, dd, "layers.%lld.self_attn.q_proj.weight", i);
        L->q_b = enc_param(P, false, 1, vd, "layers.%lld.self_attn.q_proj.bias", i);
        L->o_w = enc_param(P, true, 2, dd, "layers.%lld.self_attn.out_proj.weight", i);
        L->o_b = enc_param(P, false, 1, vd, "layers.%lld.self_attn.out_proj.bias", i);
        L->attn_ln_w = enc_param(P, false, 1, vd, "layers.%lld.self_attn_layer_norm.weight", i);
        L->attn_ln_b = enc_param(P, false, 1, vd, "layers.%lld.self_attn_layer_norm.bias", i);
        L->fc1_w = enc_param(P, true, 2, fd, "layers.%lld.fc1.weight", i);
        L->fc1_b = enc_param(P, false, 1, vf, "layers.%lld.fc1.bias", i);
        L->fc2_w = enc_param(P, true, 2, df, "layers.%lld.fc2.weight", i);
        L->fc2_b = enc_param(P, false, 1, vd, "layers.%lld.fc2.bias", i);
        L->ffn_ln_w = enc_param(P, false, 1, vd, "layers.%lld.final_layer_norm.weight", i);
        L->ffn_ln_b = enc_param(P, false, 1, vd, "layers.%lld.final_layer_norm.bias", i);
    }
    m->ln_w = enc_param(P, false, 1, (int64_t[]){d}, "layer_norm.weight");
    m->ln_b = enc_param(P, false, 1, (int64_t[]){d}, "layer_norm.bias");
    s2s_params_set_norm(P, m->ln_w, S2S_NORM_LAYER);
    s2s_params_set_norm(P, m->ln_b, S2S_NORM_LAYER);
    for (int64_t i = 0; i < m->n_layers; i++) {
        const s2s_tensor *ln[] = {m->layers[i].attn_ln_w, m->layers[i].attn_ln_b, m->layers[i].ffn_ln_w,
                                  m->layers[i].ffn_ln_b};
        for (size_t k = 0; k < sizeof ln / sizeof *ln; k++) s2s_params_set_norm(P, ln[k], S2S_NORM_LAYER);
    }
}

void s2s_audio_encoder_free(s2s_audio_encoder *m) {
    free(m->layers);
    memset(m, 0, sizeof *m);
}

void s2s_audio_encoder_set_trainable(s2s_params *P, bool trainable) {
    s2s_params_set_trainable(P, ENC_PREFIX, trainable);
    s2s_params_set_trainable(P, ENC_PREFIX "embed_positions.", false);
}

// ---- lengths ---------------------------------------------------------------------------------------

// Python's //: the length formulas go negative for tiny inputs, where C's / would round towards zero.
static int64_t floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t s2s_audio_encoder_chunk_len(int64_t frames) {
    if (frames <= 0) return 0;
    int64_t l1 = floordiv(frames - 1, 2) + 1;  // conv2 (stride 2)
    return floordiv(l1 - 2, 2) + 1;            // the average pool
}

int64_t s2s_audio_encoder_n_chunks(const s2s_audio_encoder *m, int64_t valid_frames) {
    return valid_frames <= 0 ? 0 : (valid_frames + m->chunk_frames - 1) / m->chunk_frames;
}

int64_t s2s_audio_encoder_out_len(const s2s_audio_encoder *m, int64_t valid_frames) {
    int64_t n = 0, F = m->chunk_frames;
    for (int64_t c = 0; c < s2s_audio_encoder_n_chunks(m, valid_frames); c++) {
        int64_t left = valid_frames - c * F;
        n += s2s_audio_encoder_chunk_len(left < F ? left : F);
    }
    return n;
}

// ---- forward ---------------------------------------------------------------------------------------

// An i32 index tensor on ctx's device from host values.
static s2s_tensor *index_tensor(s2s_ctx *ctx, const int32_t *host, int64_t n) {
    s2s_tensor *t = s2s_new1(ctx, S2S_I32, n);  // [n]
    s2s_dev_copy(ctx->device, t->data, S2S_CPU, host, (size_t)n * sizeof *host);
    return t;
}

// One pre-LN encoder layer on the packed chunks: x [T, d] -> [T, d]; cu i32 [M+1] bounds each chunk.
static s2s_tensor *layer_forward(s2s_ctx *ctx, const s2s_audio_encoder_layer *L, s2s_tensor *x, s2s_tensor *cu) {
    const s2s_audio_encoder *e = L->enc;
    const int64_t T = x->shape[0], d = e->d_model, qkv_shape[3] = {T, e->n_heads, e->head_dim};
    s2s_tensor *h = s2s_layernorm(ctx, x, L->attn_ln_w, L->attn_ln_b, e->ln_eps);     // [T, d]
    s2s_tensor *q = s2s_reshape(ctx, s2s_linear(ctx, h, L->q_w, L->q_b), 3, qkv_shape);  // [T, H, D]
    s2s_tensor *k = s2s_reshape(ctx, s2s_linear(ctx, h, L->k_w, NULL), 3, qkv_shape);    // [T, H, D]
    s2s_tensor *v = s2s_reshape(ctx, s2s_linear(ctx, h, L->v_w, L->v_b), 3, qkv_shape);  // [T, H, D]
    // HF multiplies q by head_dim^-0.5 before q.k; scaling the product instead is the same map, and the same
    // rounding when head_dim^-0.5 is a power of two (head_dim 64: 1/8).
    s2s_tensor *a = s2s_attention(ctx, q, k, v, cu, false, 1.0f / sqrtf((float)e->head_dim));  // [T, H, D]
    a = s2s_linear(ctx, s2s_reshape(ctx, a, 2, (int64_t[]){T, d}), L->o_w, L->o_b);        // [T, d]
    x = s2s_add(ctx, x, a);                                                                 // [T, d]
    h = s2s_layernorm(ctx, x, L->ffn_ln_w, L->ffn_ln_b, e->ln_eps);                        // [T, d]
    h = s2s_gelu(ctx, s2s_linear(ctx, h, L->fc1_w, L->fc1_b));                             // [T, ffn]
    h = s2s_linear(ctx, h, L->fc2_w, L->fc2_b);                                             // [T, d]
    return s2s_add(ctx, x, h);                                                              // [T, d]
}

static bool layer_trains(const s2s_audio_encoder_layer *L) {
    const s2s_tensor *w[] = {L->attn_ln_w, L->attn_ln_b, L->q_w, L->q_b, L->k_w, L->v_w, L->v_b, L->o_w,
                             L->o_b, L->ffn_ln_w, L->ffn_ln_b, L->fc1_w, L->fc1_b, L->fc2_w, L->fc2_b};
    for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
        if (w[i]->requires_grad) return true;
    return false;
}

static void layer_region(s2s_ctx *ctx, void *user, s2s_tensor **ins, int n_in, s2s_tensor **outs, int n_out) {
    outs[0] = layer_forward(ctx, user, ins[0], ins[1]);
}

s2s_tensor *s2s_audio_encoder_forward_chunks(s2s_ctx *ctx, const s2s_audio_encoder *m, s2s_tensor *mel,
                                             const int64_t *chunk_off, const int64_t *valid_frames, int64_t A,
                                             int64_t *out_lens) {
    const int64_t F = m->chunk_frames, P = m->n_pos, P2 = P / 2, d = m->d_model, mels = m->n_mels;
    char sm[64];
    S2S_CHECK(mel->dtype == S2S_F32 && mel->ndim == 3 && mel->shape[1] == mels && mel->shape[2] == F,
              "audio encoder: chunked mel must be f32 [C, %lld, %lld] (one 30 s chunk per row), got %s",
              (long long)mels, (long long)F, s2s_shape_str(mel, sm, sizeof sm));
    S2S_CHECK(chunk_off[0] == 0 && chunk_off[A] <= mel->shape[0], "audio encoder: chunk offsets run from %lld to "
              "%lld over %lld chunks", (long long)chunk_off[0], (long long)chunk_off[A], (long long)mel->shape[0]);

    // Which chunks run (audio a's first n_chunks), and which of their P2 output rows each audio keeps.
    int64_t M = 0, N = 0;
    for (int64_t a = 0; a < A; a++) {
        const int64_t have = chunk_off[a + 1] - chunk_off[a];
        S2S_CHECK(valid_frames[a] >= 0 && valid_frames[a] <= have * F,
                  "audio encoder: audio %lld has %lld valid frames, outside 0..%lld (its %lld chunks)",
                  (long long)a, (long long)valid_frames[a], (long long)(have * F), (long long)have);
        M += s2s_audio_encoder_n_chunks(m, valid_frames[a]);
        out_lens[a] = s2s_audio_encoder_out_len(m, valid_frames[a]);
        N += out_lens[a];
    }
    if (N == 0) return s2s_new2(ctx, S2S_F32, 0, d);  // [0, d]: no audio keeps a row, nothing to compute
    S2S_CHECK(M * P <= INT32_MAX, "audio encoder: %lld chunks exceed the i32 row indices", (long long)M);
    int32_t *chunk_rows = s2s_malloc((size_t)M * sizeof *chunk_rows);
    int32_t *keep = s2s_malloc((size_t)N * sizeof *keep);
    int32_t *cu = s2s_malloc((size_t)(M + 1) * sizeof *cu);
    int64_t i = 0, n = 0;
    for (int64_t a = 0; a < A; a++)
        for (int64_t c = 0; c < s2s_audio_encoder_n_chunks(m, valid_frames[a]); c++, i++) {
            int64_t left = valid_frames[a] - c * F, rows = s2s_audio_encoder_chunk_len(left < F ? left : F);
            chunk_rows[i] = (int32_t)(chunk_off[a] + c);
            for (int64_t r = 0; r < rows; r++) keep[n++] = (int32_t)(i * P2 + r);
        }
    for (int64_t c = 0; c <= M; c++) cu[c] = (int32_t)(c * P);

    s2s_tensor *x = mel;  // [C, mels, F]
    if (M < mel->shape[0]) {
        x = s2s_reshape(ctx, mel, 2, (int64_t[]){mel->shape[0], mels * F});              // [C, mels F]
        x = s2s_reshape(ctx, s2s_gather_rows(ctx, x, index_tensor(ctx, chunk_rows, M)), 3,
                        (int64_t[]){M, mels, F});                                         // [M, mels, F]
    }
    s2s_tensor *h = s2s_gelu(ctx, s2s_conv1d(ctx, x, m->conv1_w, m->conv1_b, 1, 1));  // [M, d, F]
    h = s2s_gelu(ctx, s2s_conv1d(ctx, h, m->conv2_w, m->conv2_b, 2, 1));             // [M, d, P]
    h = s2s_add(ctx, s2s_transpose(ctx, h, 1, 2), m->embed_positions);              // [M, P, d]
    h = s2s_reshape(ctx, h, 2, (int64_t[]){M * P, d});                              // [M P, d]

    s2s_tensor *cu_t = index_tensor(ctx, cu, M + 1);  // [M+1]: attention stays inside each chunk
    for (int64_t l = 0; l < m->n_layers; l++) {
        s2s_audio_encoder_layer *L = &m->layers[l];
        if (!s2s_grad_enabled(ctx) || !(h->requires_grad || layer_trains(L))) {
            // Nothing here will be recorded (the encoder is frozen in every OpenS2S stage): run the layer, write
            // its output over h and give its intermediates back, so a frozen encoder's arena peak is one layer's.
            s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
            s2s_tensor *y = layer_forward(ctx, L, h, cu_t);  // [M P, d]
            s2s_dev_copy(ctx->device, h->data, ctx->device, y->data, s2s_nbytes(h));
            s2s_arena_rewind(ctx->cur, mark);
        } else if (m->recompute) {
            s2s_tensor *out[1];
            s2s_recompute(ctx, layer_region, L, (s2s_tensor *[]){h, cu_t}, 2, out, 1);
            h = out[0];
        } else {
            h = layer_forward(ctx, L, h, cu_t);
        }
    }

    h = s2s_transpose(ctx, s2s_reshape(ctx, h, 3, (int64_t[]){M, P, d}), 1, 2);  // [M, d, P]
    h = s2s_transpose(ctx, s2s_avgpool1d(ctx, h, 2, 2), 1, 2);                   // [M, P2, d]
    h = s2s_reshape(ctx, h, 2, (int64_t[]){M * P2, d});                          // [M P2, d]
    // The final LayerNorm is per row, so dropping the padding rows first changes nothing but the work.
    if (N < M * P2) h = s2s_gather_rows(ctx, h, index_tensor(ctx, keep, N));   // [N, d]
    h = s2s_layernorm(ctx, h, m->ln_w, m->ln_b, m->ln_eps);                      // [N, d]
    free(chunk_rows);
    free(keep);
    free(cu);
    return h;
}

s2s_tensor *s2s_audio_encoder_forward(s2s_ctx *ctx, const s2s_audio_encoder *m, s2s_tensor *mel,
                                      const int64_t *valid_frames, int64_t *out_lens) {
    const int64_t F = m->chunk_frames, mels = m->n_mels;
    char sm[64];
    S2S_CHECK(mel->dtype == S2S_F32 && mel->ndim == 3 && mel->shape[1] == mels && mel->shape[2] > 0 &&
                  mel->shape[2] % F == 0,
              "audio encoder: mel must be f32 [A, %lld, k * %lld] (30 s chunks; pad the features to a multiple "
              "of %lld frames), got %s", (long long)mels, (long long)F, (long long)F,
              s2s_shape_str(mel, sm, sizeof sm));
    const int64_t A = mel->shape[0], K = mel->shape[2] / F;
    // [A, mels, K, F] -> [A, K, mels, F]: chunk-major, audio a owning chunks a K .. a K + K - 1.
    s2s_tensor *x = mel;
    if (K > 1) x = s2s_transpose(ctx, s2s_reshape(ctx, mel, 4, (int64_t[]){A, mels, K, F}), 1, 2);
    x = s2s_reshape(ctx, x, 3, (int64_t[]){A * K, mels, F});  // [A K, mels, F]
    int64_t *off = s2s_malloc((size_t)(A + 1) * sizeof *off);
    for (int64_t a = 0; a <= A; a++) off[a] = a * K;
    s2s_tensor *h = s2s_audio_encoder_forward_chunks(ctx, m, x, off, valid_frames, A, out_lens);
    free(off);
    return h;
}
