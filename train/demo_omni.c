// demo_omni.c — the OmniSpeech half of `s2s demo`: the tiny OmniSpeech of configs/tiny/model.json (audio
// encoder frozen, adapter + LLM + bridges + TTS-LM trained) on a few fixed random speech-to-speech batches:
// random log-mel in, a text prompt with an audio placeholder, an assistant speech span (token_type 1) with
// its units. The loss falls as the model memorises them: the whole composite, end to end, with AdamW.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/rng.h"
#include "data/tokenizer.h"
#include "demo.h"
#include "metrics.h"
#include "model/omnispeech.h"
#include "optim.h"

enum { N_BATCH = 3, B = 2, L = 40, SPAN = 10, N_UNITS = 17 };

typedef struct {
    int32_t ids[B * L], mask[B * L], labels[B * L], types[B * L];
    int64_t mel_frames[B], units_len[B];
    int32_t units[B * N_UNITS];
    float *mel;  // [B, 128, 3000]
} demo_batch;

// One sample per row: 6 prompt tokens, the audio placeholder, 3 more, the speech span (labelled,
// token_type 1), 2 labelled closing tokens, right padding.
static void batch_fill(demo_batch *d, s2s_rng *r, int32_t llm_vocab, int32_t unit0, int32_t eos) {
    for (int b = 0; b < B; b++) {
        int len = L - 4 * b;
        for (int t = 0; t < len; t++) {
            int32_t *id = &d->ids[b * L + t], *lab = &d->labels[b * L + t], *ty = &d->types[b * L + t];
            *id = (int32_t)(s2s_rng_u64(r) % (uint64_t)(llm_vocab - 64));
            *lab = -100;
            *ty = 0;
            if (t == 6) *id = S2S_AUDIO_TOKEN_INDEX;
            if (t >= 10 && t < 10 + SPAN) { *lab = *id; *ty = 1; }
            if (t >= 10 + SPAN && t < 12 + SPAN) *lab = *id;
            d->mask[b * L + t] = 1;
        }
        for (int t = len; t < L; t++) {
            d->ids[b * L + t] = 0;
            d->labels[b * L + t] = -100;
            d->types[b * L + t] = 0;
            d->mask[b * L + t] = 0;
        }
        d->mel_frames[b] = 900 + (int64_t)(s2s_rng_u64(r) % 2000);
        d->units_len[b] = N_UNITS - 3 * b;
        for (int u = 0; u < d->units_len[b]; u++)
            d->units[b * N_UNITS + u] = u + 1 < d->units_len[b] ? unit0 + (int32_t)(s2s_rng_u64(r) % 64) : eos;
    }
    d->mel = s2s_malloc(sizeof(float) * B * 128 * 3000);
    for (int64_t i = 0; i < (int64_t)B * 128 * 3000; i++) d->mel[i] = (float)(s2s_rng_uniform(r) * 2.0 - 1.0);
}

int demo_omni_run(const char *config, const char *tts_tokenizer, int steps, int threads, const char *metrics_path,
                  uint64_t seed, double min_drop) {
    char err[1024];
    s2s_omnispeech_config cfg;
    S2S_CHECK(s2s_omnispeech_config_read(&cfg, config, err, sizeof err) == 0, "%s", err);
    s2s_derr derr;
    s2s_tokenizer *tok = s2s_tok_load(tts_tokenizer, &derr);
    S2S_CHECK(tok, "%s", derr.msg);
    int32_t unit0 = s2s_tok_token_to_id(tok, "<|audio_0|>"), eos = s2s_tok_eos_id(tok);
    S2S_CHECK(unit0 >= 0 && eos >= 0, "%s: needs <|audio_0|> and an eos_token", tts_tokenizer);
    s2s_tok_free(tok);

    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    s2s_omnispeech m;
    s2s_omnispeech_create(&m, &P, &cfg);
    s2s_omnispeech_init_weights(&m, 1234 + seed);
    s2s_omnispeech_set_recompute(&m, true);
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = threads});

    s2s_rng r;
    s2s_rng_seed(&r, 42 + seed);
    demo_batch *data = s2s_calloc(N_BATCH, sizeof *data);
    for (int i = 0; i < N_BATCH; i++) batch_fill(&data[i], &r, cfg.llm.vocab_size, unit0, eos);
    s2s_adam_state opt;
    s2s_adam_init(&opt, &P);
    s2s_metrics met;
    S2S_CHECK(s2s_metrics_open(&met, metrics_path) == 0, "cannot open metrics file %s", metrics_path);
    fprintf(stderr, "demo: tiny OmniSpeech (%s): %lld parameters, %lld trainable, %d threads\n", config,
            (long long)s2s_params_count(&P, false), (long long)s2s_params_count(&P, true), ctx->n_threads);
    double *losses = s2s_malloc(sizeof(double) * (size_t)steps);
    for (int step = 1; step <= steps; step++) {
        demo_batch *d = &data[(step - 1) % N_BATCH];
        s2s_tensor *mel = s2s_new3(ctx, S2S_F32, B, 128, 3000);
        memcpy(mel->data, d->mel, s2s_nbytes(mel));
        s2s_omni_batch b;
        s2s_omni_padded own;
        s2s_omni_batch_from_padded(ctx, &b, &own, B, L, d->ids, d->mask, d->labels, d->types, mel, d->mel_frames,
                                   m.enc.chunk_frames);
        b.units_len = d->units_len, b.n_units = B;
        // units are stored with a stride of N_UNITS; the batch wants them concatenated
        int32_t cat[B * N_UNITS];
        int64_t off = 0;
        for (int s = 0; s < B; s++) {
            memcpy(cat + off, d->units + s * N_UNITS, sizeof(int32_t) * (size_t)d->units_len[s]);
            off += d->units_len[s];
        }
        b.units = cat;
        s2s_omni_out o = s2s_omnispeech_forward(ctx, &m, &b);
        s2s_omni_padded_free(&own);
        double lv = ((float *)o.loss->data)[0];
        s2s_backward(ctx, o.loss, NULL);
        float lr = 2e-3f * (step <= 5 ? (float)step / 5.0f : 1.0f);
        double gnorm = s2s_adam_step(ctx, &opt, &P, lr, 1.0);
        s2s_ctx_step_reset(ctx);
        losses[step - 1] = lv;
        s2s_progress(&met, step, steps, lv, o.n_llm_targets + o.n_tts_targets);
        s2s_metrics_log(&met, step, 5, (const char *[]){"loss", "loss_llm", "loss_tts", "grad_norm", "lr"},
                        (double[]){lv, o.loss_llm, o.loss_tts, gnorm, lr});
    }
    fprintf(stderr, "demo: OmniSpeech loss %.3f -> %.3f over %d steps on %d fixed batches; arena peak %.1f MiB\n",
            losses[0], losses[steps - 1], steps, N_BATCH, (double)s2s_ctx_peak_bytes(ctx) / (1 << 20));
    // The last N_BATCH steps saw each fixed batch once: their mean is not one batch's luck.
    int rc = demo_loss_fell("OmniSpeech", losses, steps, N_BATCH, min_drop);
    free(losses);
    for (int i = 0; i < N_BATCH; i++) free(data[i].mel);
    free(data);
    s2s_adam_free(&opt);
    s2s_metrics_close(&met);
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    s2s_ctx_free(ctx);
    return rc;
}
