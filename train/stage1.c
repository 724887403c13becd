// stage1.c — behaviour / emotion alignment of the adapter (OpenS2S stage 1): encoder and LLM frozen, the adapter
// trained through the frozen LLM (no frozen weight gradient is computed: the tape records only what leads back to
// a trainable parameter).
//   objective ce: cross-entropy of the LLM on the LLM-written continuation, given the speech.
//   objective kl: BLSP's response KL at temperature T between the frozen LLM fed the transcript as text (the
//                 teacher prompt, no gradient) and fed the speech, over the continuation rows, paired in order.
//   emotion.weight > 0 adds an emotion classifier (s2s's, not OpenS2S's): a linear head on the mean of the
//                 sample's adapter rows, cross-entropy on the shard's emotion class, samples without one skipped.
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "stage.h"

static bool is_kl(const s2s_stage_env *e) { return !strcmp(e->r->objective, "kl"); }

static bool has_emotion(const s2s_stage_env *e) { return e->emotion_w != NULL; }

static int64_t audios_of(const s2s_train_batch *b, int64_t i) {
    int64_t k = 0;
    for (int64_t t = b->tok_off[i]; t < b->tok_off[i + 1]; t++) k += b->ids[t] == S2S_AUDIO_TOKEN_INDEX;
    return k;
}

// Samples the emotion head is trained on: a class and at least one audio.
static int64_t emotion_rows(const s2s_train_batch *b) {
    int64_t n = 0;
    for (int64_t i = 0; i < b->n; i++) n += b->emotion[i] >= 0 && audios_of(b, i) > 0;
    return n;
}

static void rows(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *r) {
    r[0] = b->n_llm;
    if (has_emotion(e)) r[1] = emotion_rows(b);
}

static void terms(const s2s_recipe *r, s2s_stage_terms *out) {
    const bool kl = !strcmp(r->objective, "kl");
    out->n = 1, out->name[0] = kl ? "loss_kl" : "loss_llm", out->weight[0] = kl ? 1.0 : r->w_llm;
    if (r->emotion_weight > 0) out->n = 2, out->name[1] = "loss_emotion", out->weight[1] = r->emotion_weight;
}

static s2s_tensor *i32_on(s2s_ctx *ctx, const int32_t *host, int64_t n) {
    s2s_tensor *t = s2s_new1(ctx, S2S_I32, n);  // [n]
    s2s_dev_copy(ctx->device, t->data, S2S_CPU, host, (size_t)n * sizeof(int32_t));
    return t;
}

// Rows of a packed sequence that carry a target, in order.
static int64_t target_rows(const s2s_omni_seq *q, int32_t *rows) {
    int64_t n = 0;
    for (int64_t t = 0; t < q->T; t++)
        if (q->targets[t] != S2S_IGNORE_INDEX) rows[n++] = (int32_t)t;
    return n;
}

// weight * CE of the emotion head, summed over the labelled samples / div. audio [R, H]: the adapter rows of all
// audios, audio a owning audio_len[a] of them in placeholder order.
static s2s_tensor *emotion_term(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, s2s_tensor *audio,
                                const int64_t *audio_len, double div, s2s_stage_out *out) {
    const int64_t N = emotion_rows(b), R = audio->shape[0], C = e->emotion_w->shape[0];
    out->rows[1] = N;
    if (N == 0) return NULL;
    // pool [N, R]: row j averages sample j's adapter rows (all its audios), a constant of the batch.
    float *pool = s2s_calloc((size_t)(N * R), sizeof *pool);
    int32_t *cls = s2s_malloc((size_t)N * sizeof *cls);
    for (int64_t i = 0, a = 0, r0 = 0, j = 0; i < b->n; i++) {
        const int64_t k = audios_of(b, i);
        int64_t rows = 0;
        for (int64_t q = 0; q < k; q++) rows += audio_len[a + q];
        if (b->emotion[i] >= 0 && k > 0) {
            S2S_CHECK(b->emotion[i] < C, "stage1: sample %lld of the batch has emotion class %d, but emotion.classes "
                      "is %lld (the shards' --emotion-labels must fit)", (long long)i, b->emotion[i], (long long)C);
            for (int64_t r = r0; r < r0 + rows; r++) pool[j * R + r] = 1.0f / (float)rows;
            cls[j++] = b->emotion[i];
        }
        a += k, r0 += rows;
    }
    s2s_tensor *P = s2s_new(ctx, S2S_F32, 3, (int64_t[]){1, N, R});  // [1, N, R]
    s2s_dev_copy(ctx->device, P->data, S2S_CPU, pool, (size_t)(N * R) * sizeof *pool);
    const int64_t H = audio->shape[1];
    s2s_tensor *mean = s2s_bmm(ctx, P, s2s_reshape(ctx, audio, 3, (int64_t[]){1, R, H}), false);  // [1, N, H]
    mean = s2s_reshape(ctx, mean, 2, (int64_t[]){N, H});                                          // [N, H]
    s2s_tensor *logits = s2s_linear(ctx, mean, e->emotion_w, e->emotion_b);                      // [N, C]
    s2s_tensor *ce = s2s_cross_entropy(ctx, logits, i32_on(ctx, cls, N), S2S_IGNORE_INDEX);      // scalar mean
    float v;
    s2s_dev_copy(S2S_CPU, &v, ce->device, ce->data, sizeof v);
    out->term[1] = v;
    free(pool), free(cls);
    const double scale = e->r->emotion_weight * (div > 0 ? (double)N / div : 1.0);
    return s2s_scale(ctx, ce, (float)scale);
}

static s2s_tensor *add_terms(s2s_ctx *ctx, s2s_tensor *a, s2s_tensor *b) {
    if (a && !a->requires_grad) a = NULL;
    if (b && !b->requires_grad) b = NULL;
    return a && b ? s2s_add(ctx, a, b) : a ? a : b;
}

// The KL term of the student's continuation rows hs (speech prompt, sequence qs) against the teacher's.
static s2s_tensor *kl_term(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const s2s_omni_seq *qs,
                           s2s_tensor *hs, double div, s2s_stage_out *out) {
    S2S_CHECK(b->teacher_off, "stage1 kl: the shard has no teacher prompts (give `transcript` in the align "
              "records, docs/prep.md)");
    const s2s_omnispeech *m = e->m;
    s2s_tensor *loss = NULL;
    // The teacher: the same frozen LLM on the transcript prompt, forward only.
    s2s_omni_batch tv = {.n = b->n, .tok_off = b->teacher_off, .input_ids = b->teacher_ids,
                         .labels = b->teacher_labels};
    s2s_no_grad_begin(ctx);
    s2s_omni_seq qt = s2s_omni_seq_pack(&tv, NULL);
    s2s_tensor *ht = s2s_omni_llm(ctx, m, &qt, NULL);  // [T_t, H] teacher
    s2s_no_grad_end(ctx);
    S2S_CHECK(qs->n_targets == qt.n_targets, "stage1 kl: the speech prompt labels %lld continuation tokens, the "
              "teacher prompt %lld; they must label the same continuation", (long long)qs->n_targets,
              (long long)qt.n_targets);
    const int64_t N = qs->n_targets;
    int32_t *rs = s2s_malloc((size_t)(N + 1) * sizeof *rs), *rt = s2s_malloc((size_t)(N + 1) * sizeof *rt);
    int32_t *ones = s2s_malloc((size_t)(N + 1) * sizeof *ones);
    target_rows(qs, rs);
    target_rows(&qt, rt);
    for (int64_t i = 0; i < N; i++) ones[i] = 1;
    out->rows[0] = N;
    if (N > 0) {
        s2s_tensor *ss = s2s_gather_rows(ctx, hs, i32_on(ctx, rs, N));  // [N, H]
        s2s_no_grad_begin(ctx);
        s2s_tensor *st = s2s_gather_rows(ctx, ht, i32_on(ctx, rt, N));  // [N, H]
        s2s_no_grad_end(ctx);
        s2s_tensor *kl = s2s_kl_fused(ctx, ss, st, s2s_qwen3_lm_head(&m->llm), i32_on(ctx, ones, N),
                                      (float)e->r->kl_temperature);  // scalar: mean over the N rows
        float v0;
        s2s_dev_copy(S2S_CPU, &v0, kl->device, kl->data, sizeof v0);
        out->term[0] = v0;
        const double scale = div > 0 ? (double)N / div : 1.0;
        loss = scale == 1.0 ? kl : s2s_scale(ctx, kl, (float)scale);
    }
    free(rs), free(rt), free(ones);
    s2s_omni_seq_free(&qt);
    return loss;
}

static void micro(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out) {
    const s2s_omnispeech *m = e->m;
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    int64_t *audio_len = s2s_malloc((size_t)(v.A + 1) * sizeof(int64_t));
    s2s_tensor *audio = s2s_omni_audio(ctx, m, &v, audio_len);  // [R, H] adapter rows
    s2s_omni_seq q = s2s_omni_seq_pack(&v, audio_len);
    s2s_tensor *h = s2s_omni_llm(ctx, m, &q, audio);            // [T, H] the LLM on the speech prompt
    s2s_tensor *main;
    if (is_kl(e)) {
        main = kl_term(ctx, e, b, &q, h, div[0], out);
    } else {
        main = s2s_omni_llm_loss(ctx, m, &q, h, m->w_llm, div[0], &out->term[0]);
        out->rows[0] = q.n_targets;
    }
    s2s_tensor *emo = has_emotion(e) ? emotion_term(ctx, e, b, audio, audio_len, div[1], out) : NULL;
    out->loss = add_terms(ctx, main, emo);
    free(audio_len);
    s2s_omni_seq_free(&q);
}

static const char *const TRAINS[] = {"audio_adapter.", NULL};

const s2s_stage s2s_stage1 = {
    .name = "stage1", .kind = S2S_SHARD_ALIGN, .mode = S2S_BATCH_ALIGN, .trains = TRAINS,
    .terms = terms, .rows = rows, .micro = micro,
};
