// eval_data.c — held-out losses and accuracies over shards (eval_data.h).
#include "eval_data.h"
#include <stdio.h>
#include <string.h>
#include "autograd/ctx.h"
#include "autograd/device.h"
#include "base/err.h"
#include "data/hash.h"
#include "data/loader/loader.h"
#include "source.h"
#include "train/batch.h"
#include "train/metrics.h"

// The SHA-256 of dir/tokenizer.json into hex, or "" when there is none (then the shards' hashes are not checked).
static void tokenizer_sha(const char *dir, char hex[65]) {
    char p[8500];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    s2s_derr de;
    if (!*dir || s2s_sha256_file(p, hex, &de)) hex[0] = 0;
}

int s2s_eval_data(const s2s_eval_data_opts *o, s2s_eval_data_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    char dev_info[256];
    s2s_device dev;
    if (s2s_device_open(o->device, 0, &dev, dev_info, sizeof dev_info, err, errlen)) return -1;
    s2s_model_src src;
    if (s2s_model_src_resolve(o->model, &src, err, errlen)) return -1;
    // The shards must have been made with the model's tokenizers (the loader compares the hashes they record).
    char llm_sha[65], tts_sha[65], sub[8400];
    tokenizer_sha(src.assets_dir, llm_sha);
    if (!*llm_sha) tokenizer_sha(src.recipe_tokenizer, llm_sha);
    snprintf(sub, sizeof sub, "%s/tts", src.assets_dir);
    tokenizer_sha(sub, tts_sha);
    if (!*tts_sha) tokenizer_sha(src.recipe_tts_tokenizer, tts_sha);
    s2s_loader_config lc = {.paths = o->shards, .n_paths = o->n_shards, .world = 1, .batch_samples = 1,
                            .no_shuffle = 1, .prefetch = 2, .mel = 1,
                            .llm_tokenizer_sha256 = *llm_sha ? llm_sha : NULL,
                            .tts_tokenizer_sha256 = *tts_sha ? tts_sha : NULL};
    s2s_derr de;
    s2s_loader *l = s2s_loader_open(&lc, &de);  // every sample once, one per batch: nothing dropped or repeated
    if (!l) return s2s_errf(err, errlen, "--data: %s", de.msg);
    const s2s_shard_kind kind = s2s_loader_kind(l);
    snprintf(r->kind, sizeof r->kind, "%s", s2s_shard_kind_name(kind));
    const s2s_batch_mode mode = kind == S2S_SHARD_TTS_PRETRAIN ? S2S_BATCH_TTS
                              : kind == S2S_SHARD_ALIGN ? S2S_BATCH_ALIGN : S2S_BATCH_INSTRUCT;
    s2s_omnispeech_config cfg;
    s2s_params P;
    s2s_omnispeech m;
    if (s2s_model_src_load(&src, dev, o->threads, &cfg, &P, &m, NULL, err, errlen)) {
        s2s_loader_close(l);
        return -1;
    }
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .n_threads = o->threads});
    s2s_omni_stats stats = {0};
    m.stats = &stats;
    const int32_t tts_eos = cfg.tts.n_eos > 0 ? (int32_t)cfg.tts.eos_token_id[0] : -1;
    int64_t total = s2s_loader_num_samples(l);
    if (o->max_samples > 0 && o->max_samples < total) total = o->max_samples;
    double sum_llm = 0, sum_tts = 0;
    s2s_metrics met = {0};
    s2s_metrics_open(&met, NULL);
    int rc = 0;
    s2s_no_grad_begin(ctx);
    for (int64_t i = 0; i < total && !rc; i++) {
        const s2s_batch *b;
        if (s2s_loader_next(l, &b, &de)) {
            rc = s2s_errf(err, errlen, "--data: %s", de.msg);
            break;
        }
        s2s_train_batch tb;
        if (s2s_train_batch_from_loader(&tb, b, l, mode, tts_eos, err, errlen)) {
            rc = -1;
            break;
        }
        s2s_omni_batch v = s2s_train_batch_view(ctx, &tb);
        int64_t n_llm = 0, n_tts = 0;
        double ce_llm = 0, ce_tts = 0;
        if (mode == S2S_BATCH_TTS) {
            s2s_omni_tts_pretrain_loss(ctx, &m, &v, 0.0f, 0, &ce_tts, &n_tts);
        } else {
            s2s_omni_out out = s2s_omnispeech_forward(ctx, &m, &v);
            ce_llm = out.loss_llm, ce_tts = out.loss_tts, n_llm = out.n_llm_targets, n_tts = out.n_tts_targets;
        }
        sum_llm += ce_llm * (double)n_llm, sum_tts += ce_tts * (double)n_tts;
        r->llm_targets += n_llm, r->tts_targets += n_tts, r->samples++;
        s2s_ctx_step_reset(ctx);
        s2s_train_batch_free(&tb);
        if (!o->quiet && (r->samples % (total / 20 > 0 ? total / 20 : 1) == 0 || r->samples == total)) {
            const double mean = (r->llm_targets ? sum_llm / (double)r->llm_targets : 0) +
                                (r->tts_targets ? sum_tts / (double)r->tts_targets : 0);
            s2s_progress(&met, r->samples, total, mean, n_llm + n_tts);
        }
    }
    s2s_no_grad_end(ctx);
    r->seconds = s2s_now() - met.t0;
    if (!rc) {
        r->loss_llm = r->llm_targets ? sum_llm / (double)r->llm_targets : 0;
        r->loss_tts = r->tts_targets ? sum_tts / (double)r->tts_targets : 0;
        r->loss = r->loss_llm + r->loss_tts;
        r->text_accuracy = r->llm_targets ? (double)stats.llm_correct / (double)r->llm_targets : 0;
        r->unit_accuracy = r->tts_targets ? (double)stats.tts_correct / (double)r->tts_targets : 0;
    }
    s2s_metrics_close(&met);
    s2s_ctx_free(ctx);
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    s2s_loader_close(l);
    return rc;
}
