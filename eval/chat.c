// chat.c — OpenS2S generate(units_gen=True), round by round, for one sequence or several in lockstep (chat.h).
//
// Per round and model, a sequence feeds its uncached suffix (HF generate's cache_position slicing): the prompt, or
// the previous round's last token (which no step fed) with the rows that joined since; suffixes of one length go in
// one batched step (s2s_decode_step_batch), then every sequence still generating in the round feeds its last token
// in one batched step, until it has its round's tokens or an EOS. Each (sequence, model, round) draws from its own
// stream, so a sequence's reply is the same alone and in a batch.
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

static s2s_tensor *embed_ids(s2s_ctx *ctx, const s2s_qwen3 *q, const int32_t *ids, int64_t n) {
    s2s_tensor *tok = s2s_new1(ctx, S2S_I32, n);  // tok [n]
    s2s_dev_copy(ctx->device, tok->data, S2S_CPU, ids, (size_t)n * sizeof *ids);
    return s2s_qwen3_embed(ctx, q, tok);  // [n, H]
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

// What one sequence carries from round to round.
typedef struct seq {
    s2s_kv_cache llm_kv, tts_kv;
    int64_t budget, tts_budget;
    int32_t llm_last, tts_last;  // the previous round's last token (never fed), -1 before the first
    bool finished;               // the text is done (EOS or budget): the TTS-LM runs to its budget this round
    bool done;                   // the reply is complete
    float *pending;              // [n_pending, Ht] TTS input rows its cache lacks (speaker row, bridged states)
    int64_t n_pending;
    float *hid;                  // [n_hid, Hl] this round's hidden states that predicted its tokens
    int64_t n_hid;
    int32_t *round_ids;          // [cap] this round's tokens
    int64_t n_round, want;       // how many this round has, and may have
    bool fed;                    // this round's suffix has been prefilled
    bool stepping;               // still generating in this round
    s2s_sampler smp;
} seq;

// One model's round for the sequences in idx: their suffixes x[k] are prefilled (those of one length in one batched
// step), then the unfinished ones step together token by token. keep_hidden: the fed rows' states that predict a
// token go to seq.hid (the LLM, for the bridge). Picks the next token from a row's logits.
static void round_step(s2s_ctx *ctx, const s2s_qwen3 *q, seq *S, const int *idx, int n, s2s_tensor *const *x,
                       bool tts, const int32_t *eos, int n_eos, bool keep_hidden) {
    const int64_t H = q->cfg.hidden_size, V = q->cfg.vocab_size;
    float *scores = s2s_malloc((size_t)V * sizeof *scores);
    float *hrow = s2s_malloc((size_t)H * sizeof *hrow);
    int act[S2S_DECODE_MAX_BATCH];
    s2s_kv_cache *kvs[S2S_DECODE_MAX_BATCH];
    s2s_tensor *grp[S2S_DECODE_MAX_BATCH];
    for (int k = 0; k < n; k++) S[idx[k]].fed = false;
    for (int k0 = 0; k0 < n; k0++) {  // the suffixes, those of one length together (rows of one sequence in turn)
        if (S[idx[k0]].fed) continue;
        const int64_t L = x[k0]->shape[0];
        int G = 0;
        for (int k = k0; k < n; k++)
            if (!S[idx[k]].fed && x[k]->shape[0] == L) {
                seq *s = &S[idx[k]];
                act[G] = idx[k], kvs[G] = tts ? &s->tts_kv : &s->llm_kv, grp[G] = x[k], G++;
                s->fed = true;
            }
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *xs = G == 1 ? grp[0] : s2s_concat(ctx, grp, G, 0);  // [G * L, H]
        s2s_tensor *h = s2s_decode_step_batch(ctx, q, kvs, G, xs);        // [G * L, H]
        for (int j = 0; j < G; j++) {
            seq *s = &S[act[j]];
            const int64_t last = (int64_t)j * L + L - 1;  // the row that predicts the next token
            if (keep_hidden) {
                s2s_dev_copy(S2S_CPU, s->hid + s->n_hid * H, ctx->device, (const float *)h->data + last * H,
                             (size_t)H * sizeof(float));
                s->n_hid++;
            }
            s2s_tensor *lg = s2s_decode_logits(ctx, q, h, last, 1);  // [1, V]
            s2s_dev_copy(S2S_CPU, scores, ctx->device, lg->data, (size_t)V * sizeof *scores);
            const int32_t id = s2s_sampler_next(&s->smp, scores);
            s->round_ids[s->n_round++] = id;
            s->stepping = !(n_eos > 0 && in_set(eos, n_eos, id)) && s->n_round < s->want;
        }
        s2s_arena_rewind(ctx->cur, mark);
    }
    int32_t ids[S2S_DECODE_MAX_BATCH];
    for (;;) {  // the token steps, batched
        int B = 0;
        for (int k = 0; k < n; k++)
            if (S[idx[k]].stepping) act[B] = idx[k], kvs[B] = tts ? &S[idx[k]].tts_kv : &S[idx[k]].llm_kv,
                                   ids[B] = S[idx[k]].round_ids[S[idx[k]].n_round - 1], B++;
        if (!B) break;
        s2s_arena_mark mark = s2s_arena_get_mark(ctx->cur);
        s2s_tensor *h = s2s_decode_step_batch(ctx, q, kvs, B, embed_ids(ctx, q, ids, B));  // [B, H]
        s2s_tensor *lg = s2s_decode_logits(ctx, q, h, 0, B);                                // [B, V]
        for (int j = 0; j < B; j++) {
            seq *s = &S[act[j]];
            if (keep_hidden) {
                s2s_dev_copy(S2S_CPU, hrow, ctx->device, (const float *)h->data + j * H, (size_t)H * sizeof(float));
                memcpy(s->hid + s->n_hid * H, hrow, (size_t)H * sizeof(float));
                s->n_hid++;
            }
            s2s_dev_copy(S2S_CPU, scores, ctx->device, (const float *)lg->data + j * V, (size_t)V * sizeof *scores);
            const int32_t id = s2s_sampler_next(&s->smp, scores);
            s->round_ids[s->n_round++] = id;
            s->stepping = !(n_eos > 0 && in_set(eos, n_eos, id)) && s->n_round < s->want;
        }
        s2s_arena_rewind(ctx->cur, mark);
    }
    free(scores), free(hrow);
}

void s2s_chat_generate_batch(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *const *prompts, int B,
                             const s2s_chat_cfg *cfg, const uint64_t *seeds, s2s_chat_out *out) {
    const int64_t Hl = m->llm.cfg.hidden_size, Ht = m->tts.cfg.hidden_size;
    const int64_t M = m->cfg.interleave_text, N = m->cfg.interleave_speech;
    S2S_CHECK(B >= 1 && B <= S2S_DECODE_MAX_BATCH, "chat: %d sequences (1..%d)", B, S2S_DECODE_MAX_BATCH);
    S2S_CHECK(cfg->max_new_tokens > 0 && cfg->tts_max_new_tokens >= 0, "chat: budgets %lld / %lld",
              (long long)cfg->max_new_tokens, (long long)cfg->tts_max_new_tokens);
    const double t0 = now();
    seq *S = s2s_calloc((size_t)B, sizeof *S);
    int64_t *cap_text = s2s_calloc((size_t)B, sizeof *cap_text), *cap_units = s2s_calloc((size_t)B, sizeof *cap_units);
    s2s_no_grad_begin(ctx);
    s2s_arena_mark base = s2s_arena_get_mark(ctx->cur);
    for (int b = 0; b < B; b++) {
        seq *s = &S[b];
        memset(&out[b], 0, sizeof out[b]);
        const int64_t T = prompts[b]->shape[0];
        S2S_CHECK(prompts[b]->ndim == 2 && prompts[b]->shape[1] == Hl && T > 0,
                  "chat: prompt %d must be [T, %lld] embeddings", b, (long long)Hl);
        s2s_kv_cache_init_qwen3(&s->llm_kv, &m->llm, T + cfg->max_new_tokens);
        // speaker row + one bridged row per text token + the units
        s2s_kv_cache_init_qwen3(&s->tts_kv, &m->tts, 1 + cfg->max_new_tokens + cfg->tts_max_new_tokens);
        s->budget = cfg->max_new_tokens, s->tts_budget = cfg->tts_max_new_tokens;
        s->llm_last = s->tts_last = -1;
        s->pending = s2s_malloc((size_t)(1 + M + 1) * (size_t)Ht * sizeof(float));
        const int64_t cap = (M > cfg->tts_max_new_tokens ? M : cfg->tts_max_new_tokens) + 1;
        s->round_ids = s2s_malloc((size_t)cap * sizeof *s->round_ids);
        s->hid = s2s_malloc((size_t)(M + 1) * (size_t)Hl * sizeof(float));
        // The TTS-LM's input opens with the speaker row: spk_ln(spk2tts(spk)), zeros when none is given.
        s2s_tensor *spk = s2s_new2(ctx, S2S_F32, 1, S2S_SPK_DIM);  // spk [1, 512]
        if (cfg->spk) s2s_dev_copy(ctx->device, spk->data, S2S_CPU, cfg->spk, S2S_SPK_DIM * sizeof(float));
        else s2s_dev_memset0(ctx->device, spk->data, S2S_SPK_DIM * sizeof(float));
        s2s_tensor *row = s2s_qwen3_speaker(ctx, &m->tts, spk);  // row [1, Ht]
        s2s_dev_copy(S2S_CPU, s->pending, ctx->device, row->data, (size_t)Ht * sizeof(float));
        s->n_pending = 1;
        s2s_arena_rewind(ctx->cur, base);
    }
    int *idx = s2s_malloc((size_t)B * sizeof *idx);
    s2s_tensor **x = s2s_malloc((size_t)B * sizeof *x);
    for (int64_t r = 0;; r++) {
        int n = 0;
        for (int b = 0; b < B; b++)
            if (!S[b].done) idx[n++] = b;
        if (!n) break;
        // ---- the LLM: up to M tokens each ---------------------------------------------------------------------
        double ts = now();
        for (int k = 0; k < n; k++) {
            seq *s = &S[idx[k]];
            out[idx[k]].rounds = r + 1;
            s->n_round = s->n_hid = 0;
            s->want = M < s->budget ? M : s->budget;
            s2s_sampler_init(&s->smp, &cfg->sample, m->llm.cfg.vocab_size, round_seed(seeds[idx[k]], 0, r));
            x[k] = r == 0 ? prompts[idx[k]] : embed_ids(ctx, &m->llm, &s->llm_last, 1);  // the uncached suffix
        }
        round_step(ctx, &m->llm, S, idx, n, x, false, cfg->eos, cfg->n_eos, true);
        s2s_arena_rewind(ctx->cur, base);
        const double dl = now() - ts;
        for (int k = 0; k < n; k++) {
            const int b = idx[k];
            seq *s = &S[b];
            s2s_sampler_free(&s->smp);
            out[b].t_llm += dl / n;
            if (r == 0) {
                out[b].t_first_text = now() - t0;
                out[b].t_llm_first = out[b].t_llm, out[b].n_text_first = s->n_round;
            }
            s->budget -= s->n_round;
            s->llm_last = s->round_ids[s->n_round - 1];
            if (in_set(cfg->eos, cfg->n_eos, s->llm_last) || s->budget < 1) s->finished = true;
            append(&out[b].text_ids, &out[b].n_text, &cap_text[b], s->round_ids, s->n_round);
            if (cfg->on_text) cfg->on_text(cfg->user, b, s->round_ids, s->n_round);
            S2S_CHECK(s->n_hid == s->n_round, "chat: %lld hidden rows for %lld tokens", (long long)s->n_hid,
                      (long long)s->n_round);
            // The states that predicted the round's tokens, through the bridge: llm_ln(llm2tts(h)).
            s2s_tensor *h = rows_on(ctx, s->hid, s->n_hid, Hl);  // h [got, Hl]
            s2s_tensor *bt = s2s_layernorm(ctx, s2s_linear(ctx, h, m->llm2tts, NULL), m->llm_ln_w, m->llm_ln_b,
                                           1e-5f);  // bt [got, Ht]
            s2s_dev_copy(S2S_CPU, s->pending + s->n_pending * Ht, ctx->device, bt->data,
                         (size_t)(s->n_hid * Ht) * sizeof(float));
            s->n_pending += s->n_hid;
            s2s_arena_rewind(ctx->cur, base);
        }
        // ---- the TTS-LM: up to N units each (all that is left once the text is done) -----------------------------
        ts = now();
        int nt = 0;
        for (int k = 0; k < n; k++) {
            seq *s = &S[idx[k]];
            s->want = s->finished ? s->tts_budget : (N < s->tts_budget ? N : s->tts_budget);
            if (s->want < 1) {  // OpenS2S: a TTS round with no budget left ends the whole loop
                s->done = true;
                continue;
            }
            s->n_round = 0;
            s2s_sampler_init(&s->smp, &cfg->tts_sample, m->tts.cfg.vocab_size, round_seed(seeds[idx[k]], 1, r));
            s2s_tensor *tx = rows_on(ctx, s->pending, s->n_pending, Ht);  // tx [n_pending, Ht]
            if (s->tts_last >= 0)  // the previous round's last unit leads the uncached suffix
                tx = s2s_concat(ctx, (s2s_tensor *[]){embed_ids(ctx, &m->tts, &s->tts_last, 1), tx}, 2, 0);
            x[nt] = tx, idx[nt++] = idx[k];
        }
        if (nt) round_step(ctx, &m->tts, S, idx, nt, x, true, cfg->tts_eos, cfg->n_tts_eos, false);
        s2s_arena_rewind(ctx->cur, base);
        const double dt = now() - ts;
        for (int k = 0; k < nt; k++) {
            const int b = idx[k];
            seq *s = &S[b];
            s2s_sampler_free(&s->smp);
            s->n_pending = 0;
            s->tts_budget -= s->n_round;
            s->tts_last = s->round_ids[s->n_round - 1];
            append(&out[b].units, &out[b].n_units, &cap_units[b], s->round_ids, s->n_round);
            out[b].t_tts += dt / nt;
            if (out[b].t_first_units == 0) out[b].t_first_units = now() - t0;
            if (cfg->on_units) cfg->on_units(cfg->user, b, s->round_ids, s->n_round);
            if (s->finished) s->done = true;
        }
    }
    s2s_no_grad_end(ctx);
    for (int b = 0; b < B; b++) out[b].t_total = now() - t0;
    for (int b = 0; b < B; b++) {
        s2s_kv_cache_free(&S[b].llm_kv);
        s2s_kv_cache_free(&S[b].tts_kv);
        free(S[b].pending), free(S[b].hid), free(S[b].round_ids);
    }
    free(S), free(idx), free(x), free(cap_text), free(cap_units);
}

void s2s_chat_generate(s2s_ctx *ctx, const s2s_omnispeech *m, s2s_tensor *prompt, const s2s_chat_cfg *cfg,
                       s2s_chat_out *out) {
    s2s_chat_generate_batch(ctx, m, &prompt, 1, cfg, &cfg->seed, out);
}

void s2s_chat_out_free(s2s_chat_out *o) {
    free(o->text_ids);
    free(o->units);
    memset(o, 0, sizeof *o);
}
