// generate.c — prefill, then token by token until EOS or max_new_tokens (see generate.h).
#include "generate.h"
#include <stdlib.h>
#include <string.h>
#include "../autograd/check.h"
#include "../autograd/device.h"

static bool is_eos(const s2s_generate_cfg *cfg, int32_t id) {
    for (int i = 0; i < cfg->n_eos; i++)
        if (cfg->eos[i] == id) return true;
    return false;
}

// Copies h [n, H] to the host output and the last row's logits to scores [V]; nothing stays in the arena.
static void take(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_tensor *h, s2s_generate_out *out, float *scores) {
    const int64_t n = h->shape[0], H = h->shape[1];
    if (out->hidden) {
        s2s_dev_copy(S2S_CPU, out->hidden + out->n_hidden * H, ctx->device, h->data, s2s_nbytes(h));
        out->n_hidden += n;
    }
    s2s_tensor *lg = s2s_decode_logits(ctx, q, h, n - 1, 1);  // lg [1, V]
    s2s_dev_copy(S2S_CPU, scores, ctx->device, lg->data, s2s_nbytes(lg));
}

void s2s_generate_qwen3(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *kv, s2s_tensor *prompt,
                        const s2s_generate_cfg *cfg, s2s_generate_out *out) {
    const int64_t T = prompt->ndim == 2 ? prompt->shape[0] : 0, H = q->cfg.hidden_size, V = q->cfg.vocab_size;
    S2S_CHECK(prompt->ndim == 2 && T > 0 && prompt->shape[1] == H,
              "generate (%s): the prompt must be [T, %lld] input embeddings with T >= 1", q->prefix, (long long)H);
    S2S_CHECK(cfg->max_new_tokens > 0, "generate: max_new_tokens must be positive (got %lld)",
              (long long)cfg->max_new_tokens);
    S2S_CHECK(cfg->n_eos >= 0 && (cfg->n_eos == 0 || cfg->eos), "generate: n_eos %d without eos ids", cfg->n_eos);
    S2S_CHECK(kv->len + T + cfg->max_new_tokens - 1 <= kv->max_len,
              "generate (%s): %lld cached + %lld prompt + %lld new positions exceed the cache's max_len %lld", q->prefix,
              (long long)kv->len, (long long)T, (long long)(cfg->max_new_tokens - 1), (long long)kv->max_len);
    memset(out, 0, sizeof *out);
    out->ids = s2s_malloc((size_t)cfg->max_new_tokens * sizeof *out->ids);
    out->hidden_size = H;
    if (cfg->want_hidden) out->hidden = s2s_malloc((size_t)((T + cfg->max_new_tokens - 1) * H) * sizeof(float));
    s2s_sampler smp;
    s2s_sampler_init(&smp, &cfg->sample, V, cfg->seed);
    float *scores = s2s_malloc((size_t)V * sizeof *scores);  // [V] the last row's logits, host

    s2s_no_grad_begin(ctx);
    s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
    take(ctx, q, s2s_decode_step(ctx, q, kv, prompt), out, scores);  // prefill: T rows in one pass
    s2s_arena_rewind(ctx->cur, mark);
    for (;;) {
        const int32_t id = s2s_sampler_next(&smp, scores);
        out->ids[out->n_ids++] = id;
        if (is_eos(cfg, id)) {
            out->hit_eos = true;
            break;
        }
        if (out->n_ids == cfg->max_new_tokens) break;
        mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *tok = s2s_new1(ctx, S2S_I32, 1);  // tok [1]
        s2s_dev_copy(ctx->device, tok->data, S2S_CPU, &id, sizeof id);
        s2s_tensor *x = s2s_qwen3_embed(ctx, q, tok);  // x [1, H]
        take(ctx, q, s2s_decode_step(ctx, q, kv, x), out, scores);
        s2s_arena_rewind(ctx->cur, mark);
    }
    s2s_no_grad_end(ctx);
    free(scores);
    s2s_sampler_free(&smp);
}

void s2s_generate_qwen3_batch(s2s_ctx *ctx, const s2s_qwen3 *q, s2s_kv_cache *const *kv,
                              s2s_tensor *const *prompts, int B, const s2s_generate_cfg *cfg, s2s_generate_out *out) {
    const int64_t H = q->cfg.hidden_size, V = q->cfg.vocab_size;
    S2S_CHECK(B >= 1 && B <= S2S_DECODE_MAX_BATCH, "generate (%s): batch of %d sequences (1..%d)", q->prefix, B,
              S2S_DECODE_MAX_BATCH);
    S2S_CHECK(!cfg->want_hidden, "generate (%s): want_hidden is for one sequence (s2s_generate_qwen3)", q->prefix);
    S2S_CHECK(cfg->max_new_tokens > 0, "generate: max_new_tokens must be positive (got %lld)",
              (long long)cfg->max_new_tokens);
    S2S_CHECK(cfg->n_eos >= 0 && (cfg->n_eos == 0 || cfg->eos), "generate: n_eos %d without eos ids", cfg->n_eos);
    for (int b = 0; b < B; b++) {
        const s2s_tensor *p = prompts[b];
        const int64_t T = p->ndim == 2 ? p->shape[0] : 0;
        S2S_CHECK(p->ndim == 2 && T > 0 && p->shape[1] == H,
                  "generate (%s): prompt %d must be [T, %lld] input embeddings with T >= 1", q->prefix, b,
                  (long long)H);
        S2S_CHECK(kv[b]->len + T + cfg->max_new_tokens - 1 <= kv[b]->max_len,
                  "generate (%s): sequence %d: %lld cached + %lld prompt + %lld new positions exceed the cache's "
                  "max_len %lld", q->prefix, b, (long long)kv[b]->len, (long long)T,
                  (long long)(cfg->max_new_tokens - 1), (long long)kv[b]->max_len);
    }
    s2s_sampler *smp = s2s_malloc((size_t)B * sizeof *smp);
    float *scores = s2s_malloc((size_t)B * (size_t)V * sizeof *scores);  // [B, V] each sequence's last logits
    int *active = s2s_malloc((size_t)B * sizeof *active);                // the unfinished sequences, in order
    int32_t *toks = s2s_malloc((size_t)B * sizeof *toks);
    s2s_kv_cache **akv = s2s_malloc((size_t)B * sizeof *akv);
    int n_active = 0;

    s2s_no_grad_begin(ctx);
    for (int b = 0; b < B; b++) {
        memset(&out[b], 0, sizeof out[b]);
        out[b].ids = s2s_malloc((size_t)cfg->max_new_tokens * sizeof *out[b].ids);
        out[b].hidden_size = H;
        s2s_sampler_init(&smp[b], &cfg->sample, V, cfg->seed);
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        take(ctx, q, s2s_decode_step(ctx, q, kv[b], prompts[b]), &out[b], scores + (size_t)b * V);  // prefill
        s2s_arena_rewind(ctx->cur, mark);
        active[n_active++] = b;
    }
    while (n_active > 0) {
        int kept = 0;
        for (int i = 0; i < n_active; i++) {  // each unfinished sequence chooses its next token
            const int b = active[i];
            const int32_t id = s2s_sampler_next(&smp[b], scores + (size_t)b * V);
            out[b].ids[out[b].n_ids++] = id;
            if (is_eos(cfg, id)) out[b].hit_eos = true;
            else if (out[b].n_ids < cfg->max_new_tokens) active[kept++] = b, toks[kept - 1] = id;
        }
        n_active = kept;
        if (!n_active) break;
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *tok = s2s_new1(ctx, S2S_I32, n_active);  // tok [A]
        s2s_dev_copy(ctx->device, tok->data, S2S_CPU, toks, (size_t)n_active * sizeof *toks);
        for (int i = 0; i < n_active; i++) akv[i] = kv[active[i]];
        s2s_tensor *x = s2s_qwen3_embed(ctx, q, tok);                              // x [A, H]
        s2s_tensor *h = s2s_decode_step_batch(ctx, q, akv, n_active, x);           // h [A, H]
        s2s_tensor *lg = s2s_decode_logits(ctx, q, h, 0, n_active);                // lg [A, V]
        float *row = s2s_host_alloc(ctx, s2s_nbytes(lg));
        s2s_dev_copy(S2S_CPU, row, ctx->device, lg->data, s2s_nbytes(lg));
        for (int i = 0; i < n_active; i++)
            memcpy(scores + (size_t)active[i] * V, row + (size_t)i * V, (size_t)V * sizeof *scores);
        s2s_arena_rewind(ctx->cur, mark);
    }
    s2s_no_grad_end(ctx);
    for (int b = 0; b < B; b++) s2s_sampler_free(&smp[b]);
    free(smp), free(scores), free(active), free(toks), free(akv);
}

void s2s_generate_out_free(s2s_generate_out *o) {
    free(o->ids);
    free(o->hidden);
    memset(o, 0, sizeof *o);
}
