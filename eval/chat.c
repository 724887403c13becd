// chat.c — OpenS2S generate(units_gen=True), round by round (chat.h).
#include "chat.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "../autograd/check.h"
#include "../autograd/device.h"
#include "../base/mix.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static s2s_tensor *rows_on(s2s_ctx *ctx, const float *host, int64_t n, int64_t H) {
    s2s_tensor *t = s2s_new2(ctx, S2S_F32, n, H);  // t [n, H]
    s2s_dev_copy(ctx->device, t->data, S2S_CPU, host, (size_t)(n * H) * sizeof(float));
    return t;
}

static s2s_tensor *embed_one(s2s_ctx *ctx, const s2s_qwen3 *q, int32_t id) {
    s2s_tensor *tok = s2s_new1(ctx, S2S_I32, 1);  // tok [1]
    s2s_dev_copy(ctx->device, tok->data, S2S_CPU, &id, sizeof id);
    return s2s_qwen3_embed(ctx, q, tok);  // [1, H]
}

static void append(int32_t **v, int64_t *n, int64_t *cap, const int32_t *ids, int64_t k) {
    if (*n + k > *cap) {
        *cap = (*n + k) * 2 + 16;
        *v = s2s_realloc(*v, (size_t)*cap * sizeof **v);
    }
    memcpy(*v + *n, ids, (size_t)k * sizeof *ids);
    *n += k;
}

static bool in_set(const int32_t *set, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (set[i] == id) return true;
    return false;
}

// One round's seed: a stream per (model, round), so rounds do not replay each other's draws.
static uint64_t round_seed(uint64_t seed, int model, int64_t round) {
    return s2s_mix64(seed ^ s2s_mix64(((uint64_t)round << 1) | (uint64_t)model));
}

void s2s_chat_generate(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *prompt, const s2s_chat_cfg *cfg,
                       s2s_chat_out *out) {
    const int64_t T = prompt->shape[0], Hl = m->llm.cfg.hidden_size, Ht = m->tts.cfg.hidden_size;
    S2S_CHECK(prompt->ndim == 2 && prompt->shape[1] == Hl && T > 0, "chat: the prompt must be [T, %lld] embeddings",
              (long long)Hl);
    S2S_CHECK(cfg->max_new_tokens > 0 && cfg->tts_max_new_tokens >= 0, "chat: budgets %lld / %lld",
              (long long)cfg->max_new_tokens, (long long)cfg->tts_max_new_tokens);
    const int64_t M = m->cfg.interleave_text, N = m->cfg.interleave_speech;
    memset(out, 0, sizeof *out);
    int64_t cap_text = 0, cap_units = 0;
    s2s_kv_cache llm_kv, tts_kv;
    s2s_kv_cache_init_qwen3(&llm_kv, &m->llm, T + cfg->max_new_tokens);
    // speaker row + one bridged row per text token + the units
    s2s_kv_cache_init_qwen3(&tts_kv, &m->tts, 1 + cfg->max_new_tokens + cfg->tts_max_new_tokens);
    const double t0 = now();

    s2s_no_grad_begin(ctx);
    s2s_arena_mark base = s2s_arena_get_mark(ctx->cur);
    // The TTS-LM's input so far that its cache lacks (HF feeds exactly that): first the speaker row.
    float *tts_pending = s2s_malloc((size_t)(1 + cfg->max_new_tokens + 1) * (size_t)Ht * sizeof(float));
    int64_t n_pending = 0;
    {
        s2s_tensor *spk = s2s_new2(ctx, S2S_F32, 1, S2S_SPK_DIM);  // spk [1, 512]
        if (cfg->spk) s2s_dev_copy(ctx->device, spk->data, S2S_CPU, cfg->spk, S2S_SPK_DIM * sizeof(float));
        else s2s_dev_memset0(ctx->device, spk->data, S2S_SPK_DIM * sizeof(float));
        s2s_tensor *row = s2s_qwen3_speaker(ctx, &m->tts, spk);  // row [1, Ht]
        s2s_dev_copy(S2S_CPU, tts_pending, ctx->device, row->data, (size_t)Ht * sizeof(float));
        n_pending = 1;
    }
    s2s_arena_rewind(ctx->cur, base);

    int64_t budget = cfg->max_new_tokens, tts_budget = cfg->tts_max_new_tokens;
    int32_t llm_last = -1, tts_last = -1;  // the previous round's last token: never fed, so the next round's first
    bool finished = false;
    for (int64_t r = 0; !finished; r++) {
        out->rounds = r + 1;
        // ---- the LLM: up to M tokens -------------------------------------------------------------------------
        double ts = now();
        s2s_tensor *x = r == 0 ? prompt : embed_one(ctx, &m->llm, llm_last);  // the uncached suffix
        s2s_generate_cfg g = {.max_new_tokens = M < budget ? M : budget, .eos = cfg->eos, .n_eos = cfg->n_eos,
                              .sample = cfg->sample, .seed = round_seed(cfg->seed, 0, r), .want_hidden = true};
        s2s_generate_out go;
        s2s_generate_qwen3(ctx, &m->llm, &llm_kv, x, &g, &go);
        s2s_arena_rewind(ctx->cur, base);
        out->t_llm += now() - ts;
        if (r == 0) out->t_first_text = now() - t0;
        const int64_t got = go.n_ids;
        budget -= got;
        llm_last = go.ids[got - 1];
        if (in_set(cfg->eos, cfg->n_eos, llm_last) || budget < 1) finished = true;
        append(&out->text_ids, &out->n_text, &cap_text, go.ids, got);
        if (cfg->on_text) cfg->on_text(cfg->user, go.ids, got);
        // The hidden states that predicted this round's tokens: the last fed row before each (round 0: the last
        // prompt row, then the fed tokens; later rounds: every fed row, the previous round's last token first).
        const int64_t skip = r == 0 ? x->shape[0] - 1 : 0;
        S2S_CHECK(go.n_hidden - skip == got, "chat: %lld hidden rows for %lld tokens", (long long)(go.n_hidden - skip),
                  (long long)got);
        ts = now();
        s2s_tensor *h = rows_on(ctx, go.hidden + skip * Hl, got, Hl);  // h [got, Hl]
        s2s_tensor *b = s2s_layernorm(ctx, s2s_linear(ctx, h, m->llm2tts, NULL), m->llm_ln_w, m->llm_ln_b,
                                      1e-5f);  // b [got, Ht]
        s2s_dev_copy(S2S_CPU, tts_pending + n_pending * Ht, ctx->device, b->data, (size_t)(got * Ht) * sizeof(float));
        n_pending += got;
        s2s_arena_rewind(ctx->cur, base);
        s2s_generate_out_free(&go);
        // ---- the TTS-LM: up to N units (all that is left once the text is done) -----------------------------------
        const int64_t n = finished ? tts_budget : (N < tts_budget ? N : tts_budget);
        if (n < 1) {
            out->t_tts += now() - ts;
            break;
        }
        s2s_tensor *tx = rows_on(ctx, tts_pending, n_pending, Ht);  // tx [n_pending, Ht]
        if (tts_last >= 0) {  // the previous round's last unit leads the uncached suffix
            tx = s2s_concat(ctx, (s2s_tensor *[]){embed_one(ctx, &m->tts, tts_last), tx}, 2, 0);
        }
        s2s_generate_cfg tg = {.max_new_tokens = n, .eos = cfg->tts_eos, .n_eos = cfg->n_tts_eos,
                               .sample = cfg->tts_sample, .seed = round_seed(cfg->seed, 1, r)};
        s2s_generate_out gu;
        s2s_generate_qwen3(ctx, &m->tts, &tts_kv, tx, &tg, &gu);
        s2s_arena_rewind(ctx->cur, base);
        n_pending = 0;
        tts_budget -= gu.n_ids;
        tts_last = gu.ids[gu.n_ids - 1];
        append(&out->units, &out->n_units, &cap_units, gu.ids, gu.n_ids);
        out->t_tts += now() - ts;
        if (r == 0 || out->t_first_units == 0) out->t_first_units = now() - t0;
        if (cfg->on_units) cfg->on_units(cfg->user, gu.ids, gu.n_ids);
        s2s_generate_out_free(&gu);
    }
    s2s_no_grad_end(ctx);
    free(tts_pending);
    s2s_kv_cache_free(&llm_kv);
    s2s_kv_cache_free(&tts_kv);
}

void s2s_chat_out_free(s2s_chat_out *o) {
    free(o->text_ids);
    free(o->units);
    memset(o, 0, sizeof *o);
}
