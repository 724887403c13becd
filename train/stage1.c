// stage1.c — behaviour / emotion alignment of the adapter (OpenS2S stage 1): encoder and LLM frozen, the adapter
// trained through the frozen LLM (no frozen weight gradient is computed: the tape records only what leads back to
// a trainable parameter).
//   objective ce: cross-entropy of the LLM on the LLM-written continuation, given the speech.
//   objective kl: BLSP's response KL at temperature T between the frozen LLM fed the transcript as text (the
//                 teacher prompt, no gradient) and fed the speech, over the continuation rows, paired in order.
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "stage.h"

static bool is_kl(const s2s_stage_env *e) { return !strcmp(e->r->objective, "kl"); }

static void rows(const s2s_stage_env *e, const s2s_train_batch *b, int64_t *r) { r[0] = b->n_llm; }

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

static void micro_kl(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                     s2s_stage_out *out) {
    S2S_CHECK(b->teacher_off, "stage1 kl: the shard has no teacher prompts (give `transcript` in the align "
              "records, docs/prep.md)");
    const s2s_omnispeech *m = e->m;
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    int64_t *audio_len = s2s_malloc((size_t)(v.A + 1) * sizeof(int64_t));
    s2s_tensor *audio = s2s_omni_audio(ctx, m, &v, audio_len);
    s2s_omni_seq qs = s2s_omni_seq_pack(&v, audio_len);
    s2s_tensor *hs = s2s_omni_llm(ctx, m, &qs, audio);  // [T_s, H] student
    // The teacher: the same frozen LLM on the transcript prompt, forward only.
    s2s_omni_batch tv = {.n = b->n, .tok_off = b->teacher_off, .input_ids = b->teacher_ids,
                         .labels = b->teacher_labels};
    s2s_no_grad_begin(ctx);
    s2s_omni_seq qt = s2s_omni_seq_pack(&tv, NULL);
    s2s_tensor *ht = s2s_omni_llm(ctx, m, &qt, NULL);  // [T_t, H] teacher
    s2s_no_grad_end(ctx);
    S2S_CHECK(qs.n_targets == qt.n_targets, "stage1 kl: the speech prompt labels %lld continuation tokens, the "
              "teacher prompt %lld; they must label the same continuation", (long long)qs.n_targets,
              (long long)qt.n_targets);
    const int64_t N = qs.n_targets;
    int32_t *rs = s2s_malloc((size_t)(N + 1) * sizeof *rs), *rt = s2s_malloc((size_t)(N + 1) * sizeof *rt);
    int32_t *ones = s2s_malloc((size_t)(N + 1) * sizeof *ones);
    target_rows(&qs, rs);
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
        const double scale = div[0] > 0 ? (double)N / div[0] : 1.0;
        out->loss = kl->requires_grad ? (scale == 1.0 ? kl : s2s_scale(ctx, kl, (float)scale)) : NULL;
    }
    free(rs), free(rt), free(ones), free(audio_len);
    s2s_omni_seq_free(&qs);
    s2s_omni_seq_free(&qt);
}

static void micro(s2s_ctx *ctx, const s2s_stage_env *e, const s2s_train_batch *b, const double *div,
                  s2s_stage_out *out) {
    if (is_kl(e)) {
        micro_kl(ctx, e, b, div, out);
        return;
    }
    s2s_omni_batch v = s2s_train_batch_view(ctx, b);
    s2s_omni_out o = s2s_omnispeech_forward_ex(ctx, e->m, &v, &(s2s_omni_fwd){.div_llm = div[0]});
    out->loss = o.loss->requires_grad ? o.loss : NULL;
    out->term[0] = o.loss_llm;
    out->rows[0] = o.n_llm_targets;
}

static const char *const TRAINS[] = {"audio_adapter.", NULL};

const s2s_stage s2s_stage1 = {
    .name = "stage1", .kind = S2S_SHARD_ALIGN, .mode = S2S_BATCH_ALIGN, .trains = TRAINS,
    .n_terms = 1, .term_names = {"loss_llm"}, .rows = rows, .micro = micro,
};
