// cmd_forward.c — `s2s forward`: the OmniSpeech training forward on one batch given as tensors, writing the
// losses (as transformers / OpenS2S compute them for that batch), the LLM's final-norm hidden states and,
// optionally, every trainable parameter's gradient. The batch format is docs/forward-batch.md; this is how the
// conformance tests drive the model, and a way to check a checkpoint or a batch by hand.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "args.h"
#include "cli.h"
#include "model/checkpoint.h"
#include "model/interleave.h"
#include "model/omnispeech.h"
#include "model/safetensors.h"

// ---- batch tensors ---------------------------------------------------------------------------------------

typedef struct batch_file {
    s2s_st_file f;
    char err[1024];
} batch_file;

// The entry, checked for rank and shape (shape[i] < 0: any); NULL when absent and optional.
static const s2s_st_entry *entry(batch_file *b, const char *name, int ndim, const int64_t *shape, bool required) {
    const s2s_st_entry *e = s2s_st_find(&b->f, name);
    if (!e) {
        S2S_CHECK(!required, "%s: no tensor '%s' (docs/forward-batch.md lists the batch tensors)", b->f.path, name);
        return NULL;
    }
    S2S_CHECK(e->ndim == ndim, "%s: '%s' must have %d dimensions, has %d", b->f.path, name, ndim, e->ndim);
    for (int i = 0; i < ndim; i++)
        S2S_CHECK(shape[i] < 0 || e->shape[i] == shape[i], "%s: '%s' dimension %d is %lld, expected %lld",
                  b->f.path, name, i, (long long)e->shape[i], (long long)shape[i]);
    return e;
}

// An integer tensor (I32, or I64 within i32's range) as a new i32 host array; NULL when absent and optional.
static int32_t *ints(batch_file *b, const char *name, int ndim, const int64_t *shape, bool required) {
    const s2s_st_entry *e = entry(b, name, ndim, shape, required);
    if (!e) return NULL;
    const int64_t n = s2s_st_numel(e);
    int32_t *v = s2s_malloc((size_t)(n + 1) * sizeof *v);
    if (e->supported && e->dtype == S2S_I32) {
        memcpy(v, e->data, (size_t)n * sizeof *v);
    } else {
        S2S_CHECK(!strcmp(e->dtype_name, "I64"), "%s: '%s' must be I32 or I64, is %s", b->f.path, name, e->dtype_name);
        for (int64_t i = 0; i < n; i++) {
            int64_t x;
            memcpy(&x, (const char *)e->data + i * 8, 8);
            S2S_CHECK(x >= INT32_MIN && x <= INT32_MAX, "%s: '%s' value %lld does not fit i32", b->f.path, name,
                      (long long)x);
            v[i] = (int32_t)x;
        }
    }
    return v;
}

// A float tensor (F32 / BF16 / F16) as an f32 tensor on ctx's device.
static s2s_tensor *floats(s2s_ctx *ctx, batch_file *b, const char *name, int ndim, const int64_t *shape,
                          bool required) {
    const s2s_st_entry *e = entry(b, name, ndim, shape, required);
    if (!e) return NULL;
    S2S_CHECK(e->supported && e->dtype != S2S_I32, "%s: '%s' must be F32, BF16 or F16, is %s", b->f.path, name,
              e->dtype_name);
    const int64_t n = s2s_st_numel(e);
    float *host = s2s_malloc((size_t)(n + 1) * sizeof(float));
    s2s_convert_host(host, S2S_F32, e->data, e->dtype, n);
    s2s_tensor *t = s2s_new(ctx, S2S_F32, e->ndim, e->shape);
    s2s_dev_copy(t->device, t->data, S2S_CPU, host, (size_t)n * sizeof(float));
    free(host);
    return t;
}

// The unit rows of the file as one sequence per speech span. The file has one row per span (OpenS2S's
// speech_units), or one row per sample with speech output holding its spans' EOS-terminated runs in order
// (the shard layout, docs/prep.md). Either way spk_emb has one row per unit row, copied to each of its spans.
typedef struct span_units {
    int32_t *units;   // concatenated
    int64_t *len;     // [n]
    int64_t n;
    int64_t *row_of;  // [n] the file row each span's units come from
} span_units;

static span_units split_units(const char *path, const int32_t *units, const int32_t *units_len, int64_t S, int64_t U,
                              const int64_t *spans_per_sample, int64_t B, int64_t n_spans, int32_t eos, bool have_eos) {
    span_units r = {0};
    int64_t total = 0, with_spans = 0;
    for (int64_t s = 0; s < S; s++) {
        S2S_CHECK(units_len[s] >= 1 && units_len[s] <= U, "%s: units_len[%lld] = %d outside 1..%lld", path,
                  (long long)s, (int)units_len[s], (long long)U);
        total += units_len[s];
    }
    for (int64_t s = 0; s < B; s++) with_spans += spans_per_sample[s] > 0;
    r.units = s2s_malloc((size_t)(total + 1) * sizeof(int32_t));
    r.len = s2s_malloc((size_t)(n_spans + S + 1) * sizeof(int64_t));
    r.row_of = s2s_malloc((size_t)(n_spans + S + 1) * sizeof(int64_t));
    int64_t at = 0;
    for (int64_t s = 0; s < S; s++) {
        memcpy(r.units + at, units + s * U, (size_t)units_len[s] * sizeof(int32_t));
        at += units_len[s];
    }
    if (S == n_spans) {  // one row per span
        for (int64_t s = 0; s < S; s++) r.len[s] = units_len[s], r.row_of[s] = s;
        r.n = S;
        return r;
    }
    S2S_CHECK(S == with_spans, "%s: %lld unit rows, but the batch has %lld speech spans in %lld samples: give one "
              "row per span, or one per sample with speech output", path, (long long)S, (long long)n_spans,
              (long long)with_spans);
    S2S_CHECK(have_eos, "%s: a sample has several speech spans and its unit row must be split at the TTS EOS: the "
              "tts_lm_config has no eos_token_id; give tts_eos i32 [1]", path);
    int64_t row = 0;
    for (int64_t s = 0; s < B; s++) {
        if (!spans_per_sample[s]) continue;
        const int32_t *u = units + row * U;
        int64_t k = s2s_interleave_split_runs(u, units_len[row], eos, r.len + r.n, spans_per_sample[s]);
        S2S_CHECK(k == spans_per_sample[s], "%s: unit row %lld (sample %lld) holds %lld EOS(%d)-terminated runs for "
                  "%lld speech spans", path, (long long)row, (long long)s, (long long)k, (int)eos,
                  (long long)spans_per_sample[s]);
        for (int64_t j = 0; j < k; j++) r.row_of[r.n + j] = row;
        r.n += k;
        row++;
    }
    return r;
}

static void span_units_free(span_units *r) {
    free(r->units), free(r->len), free(r->row_of);
}

// Speech spans per sample, counted on the file's arrays as the model will find them after splicing (a -200
// placeholder becomes audio rows of token_type 0, padding is dropped).
static void count_spans(const int32_t *ids, const int32_t *mask, const int32_t *tt, int64_t B, int64_t L,
                        int64_t *per_sample) {
    int32_t *row = s2s_malloc((size_t)(L + 1) * sizeof *row);
    for (int64_t s = 0; s < B; s++) {
        int32_t n = 0;
        while (n < L && (!mask || mask[s * L + n] == 1)) {
            row[n] = ids[s * L + n] == S2S_AUDIO_TOKEN_INDEX || !tt ? 0 : tt[s * L + n];
            n++;
        }
        int32_t cu[2] = {0, n};
        per_sample[s] = s2s_interleave_find_spans(row, cu, 1, NULL, NULL, 0);
    }
    free(row);
}

// ---- the command -----------------------------------------------------------------------------------------

static int freeze_list(s2s_params *P, const char *list) {
    char *s = strdup(list), *save = NULL;
    int rc = 0;
    for (char *p = strtok_r(s, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (s2s_params_set_trainable(P, p, false) == 0) {
            fprintf(stderr, "s2s forward: --freeze %s matches no parameter\n", p);
            rc = 1;
        }
    free(s);
    return rc;
}

static int run(int argc, char **argv) {
    const char *model = NULL, *inputs = NULL, *out = NULL, *freeze = NULL, *device = "cpu";
    bool grads = false, unfreeze_audio = false, recompute = false;
    int64_t threads = 0;
    const s2s_arg args[] = {
        {"--model", S2S_ARG_STR, &model, "DIR", "an OpenS2S checkpoint directory (config.json + safetensors)"},
        {"--inputs", S2S_ARG_STR, &inputs, "BATCH.safetensors", "the batch as tensors (docs/forward-batch.md)"},
        {"--out", S2S_ARG_STR, &out, "OUT.safetensors", "loss, loss_llm, loss_tts, llm_hidden, llm_cu_seqlens"},
        {"--grads", S2S_ARG_FLAG, &grads, NULL, "backward from loss: grad.<name> for every trainable parameter"},
        {"--unfreeze-audio", S2S_ARG_FLAG, &unfreeze_audio, NULL, "train the audio encoder too (not embed_positions)"},
        {"--freeze", S2S_ARG_STR, &freeze, "PREFIX[,PREFIX]", "take registry-name prefixes off the trainable set"},
        {"--recompute", S2S_ARG_FLAG, &recompute, NULL, "one recompute region per encoder / decoder layer"},
        {"--threads", S2S_ARG_INT, &threads, "N", "OpenMP / OpenBLAS threads (default: their defaults)"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "where the model and the batch live (default cpu)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "forward", .synopsis = "--model DIR --inputs BATCH.safetensors --out OUT.safetensors [options]",
        .args = args,
        .epilog = "  BATCH  input_ids, attention_mask, labels, token_types i32 [B, L]; mel f32 [A, 128, 3000 k] and\n"
                  "         mel_frames i32 [A]; units i32 [S, U] and units_len i32 [S]; optional spk_emb f32 [S, 512],\n"
                  "         tts_eos i32 [1]. Integer tensors may also be i64. Trainable with --grads: everything but\n"
                  "         the audio encoder (as in every OpenS2S stage).\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!model || !inputs || !out) {
        fprintf(stderr, "s2s forward: --model, --inputs and --out are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    char err[1024], dev_info[256];
    s2s_device dev;
    if (s2s_device_open(device, 0, &dev, dev_info, sizeof dev_info, err, sizeof err)) {
        fprintf(stderr, "s2s forward: %s\n", err);
        return 1;
    }
    s2s_omnispeech_config cfg;
    if (s2s_omnispeech_config_read(&cfg, model, err, sizeof err)) {
        fprintf(stderr, "s2s forward: %s\n", err);
        return 1;
    }
    s2s_params P;
    s2s_params_init(&P, dev);
    s2s_omnispeech m;
    s2s_omnispeech_create(&m, &P, &cfg);
    if (s2s_ckpt_load_opens2s(&P, model, NULL, NULL, err, sizeof err)) {
        fprintf(stderr, "s2s forward: %s\n", err);
        return 1;
    }
    if (unfreeze_audio) s2s_audio_encoder_set_trainable(&P, true);
    if (freeze && freeze_list(&P, freeze)) return 2;
    s2s_omnispeech_set_recompute(&m, recompute);

    batch_file bf = {0};
    if (s2s_st_open(&bf.f, inputs, bf.err, sizeof bf.err)) {
        fprintf(stderr, "s2s forward: %s\n", bf.err);
        return 1;
    }
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = dev, .n_threads = (int)threads, .arena_bytes = 64 << 20,
                                              .scratch_bytes = 16 << 20});
    const s2s_st_entry *ide = entry(&bf, "input_ids", 2, (int64_t[]){-1, -1}, true);
    const int64_t B = ide->shape[0], L = ide->shape[1];
    const int64_t BL[2] = {B, L};
    int32_t *ids = ints(&bf, "input_ids", 2, BL, true);
    int32_t *mask = ints(&bf, "attention_mask", 2, BL, false);
    int32_t *labels = ints(&bf, "labels", 2, BL, false);
    int32_t *tt = ints(&bf, "token_types", 2, BL, false);

    // Audio.
    int32_t *frames32 = NULL;
    int64_t *frames = NULL;
    s2s_tensor *mel = NULL;
    if (s2s_st_find(&bf.f, "mel")) {
        mel = floats(ctx, &bf, "mel", 3, (int64_t[]){-1, cfg.audio.num_mel_bins, -1}, true);
        frames32 = ints(&bf, "mel_frames", 1, (int64_t[]){mel->shape[0]}, true);
        frames = s2s_malloc((size_t)(mel->shape[0] + 1) * sizeof *frames);
        for (int64_t a = 0; a < mel->shape[0]; a++) frames[a] = frames32[a];
    }
    // The file holds OpenS2S's padded layout; the model takes the packed one.
    s2s_omni_batch b;
    s2s_omni_padded own;
    s2s_omni_batch_from_padded(ctx, &b, &own, B, L, ids, mask, labels, tt, mel, frames, m.enc.chunk_frames);

    // Units, one sequence per speech span.
    span_units su = {0};
    int64_t *per_sample = s2s_malloc((size_t)B * sizeof *per_sample);
    count_spans(ids, mask, tt, B, L, per_sample);
    int64_t n_spans = 0;
    for (int64_t s = 0; s < B; s++) n_spans += per_sample[s];
    const s2s_st_entry *ue = entry(&bf, "units", 2, (int64_t[]){-1, -1}, false);
    if (ue) {
        const int64_t S = ue->shape[0], U = ue->shape[1];
        int32_t *units = ints(&bf, "units", 2, (int64_t[]){S, U}, true);
        int32_t *ulen = ints(&bf, "units_len", 1, (int64_t[]){S}, true);
        int32_t *eos = ints(&bf, "tts_eos", 1, (int64_t[]){1}, false);
        const bool have_eos = eos || cfg.tts.n_eos > 0;
        const int32_t eos_id = eos ? eos[0] : cfg.tts.n_eos > 0 ? (int32_t)cfg.tts.eos_token_id[0] : -1;
        su = split_units(inputs, units, ulen, S, U, per_sample, B, n_spans, eos_id, have_eos);
        b.units = su.units, b.units_len = su.len, b.n_units = su.n;
        s2s_tensor *spk = floats(ctx, &bf, "spk_emb", 2, (int64_t[]){S, S2S_SPK_DIM}, false);
        if (spk && su.n != S) {  // one row per span
            s2s_tensor *idx = s2s_new1(ctx, S2S_I32, su.n);
            int32_t *rows = s2s_malloc((size_t)(su.n + 1) * sizeof *rows);
            for (int64_t j = 0; j < su.n; j++) rows[j] = (int32_t)su.row_of[j];
            s2s_dev_copy(idx->device, idx->data, S2S_CPU, rows, (size_t)su.n * sizeof *rows);
            free(rows);
            spk = s2s_gather_rows(ctx, spk, idx);
        }
        b.spk = spk;
        free(units), free(ulen), free(eos);
    }

    if (!grads) s2s_no_grad_begin(ctx);
    s2s_omni_out o = s2s_omnispeech_forward(ctx, &m, &b);
    if (grads) s2s_backward(ctx, o.loss, NULL);

    float loss, loss_llm = (float)o.loss_llm, loss_tts = (float)o.loss_tts;
    s2s_dev_copy(S2S_CPU, &loss, o.loss->device, o.loss->data, sizeof loss);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "loss", S2S_F32, 0, NULL, &loss);
    s2s_st_writer_add(&w, "loss_llm", S2S_F32, 0, NULL, &loss_llm);
    s2s_st_writer_add(&w, "loss_tts", S2S_F32, 0, NULL, &loss_tts);
    s2s_st_writer_add_from(&w, "llm_hidden", S2S_F32, 2, o.llm_hidden->shape, o.llm_hidden->data, S2S_F32,
                           o.llm_hidden->device);
    s2s_st_writer_add_from(&w, "llm_cu_seqlens", S2S_I32, 1, o.llm_cu_seqlens->shape, o.llm_cu_seqlens->data,
                           S2S_I32, o.llm_cu_seqlens->device);
    char names[4][32], vals[4][32];
    const char *keys[4] = {"n_llm_targets", "n_tts_targets", "n_spans", "n_audios"};
    const long long nums[4] = {o.n_llm_targets, o.n_tts_targets, o.n_spans, (long long)b.A};
    for (int i = 0; i < 4; i++) {
        snprintf(names[i], sizeof names[i], "%s", keys[i]);
        snprintf(vals[i], sizeof vals[i], "%lld", nums[i]);
        s2s_st_writer_meta(&w, names[i], vals[i]);
    }
    char (*gnames)[320] = s2s_calloc((size_t)P.n + 1, sizeof *gnames);
    if (grads)
        for (int i = 0; i < P.n; i++) {
            s2s_param *p = &P.items[i];
            if (!p->trainable) continue;
            float *g = s2s_grad(ctx, p->t);  // the persistent gradient (zeros if nothing reached it)
            snprintf(gnames[i], sizeof gnames[i], "grad.%s", p->name);
            s2s_st_writer_add_from(&w, gnames[i], S2S_F32, p->t->ndim, p->t->shape, g, S2S_F32, p->t->device);
        }
    int rc = s2s_st_writer_write(&w, out, err, sizeof err);
    if (rc) fprintf(stderr, "s2s forward: %s\n", err);
    else
        printf("s2s forward: loss %.7g (llm %.7g over %lld targets, tts %.7g over %lld targets; %lld spans)\n",
               (double)loss, o.loss_llm, (long long)o.n_llm_targets, o.loss_tts, (long long)o.n_tts_targets,
               (long long)o.n_spans);
    s2s_st_writer_free(&w);
    free(gnames);
    if (!grads) s2s_no_grad_end(ctx);
    s2s_ctx_step_reset(ctx);
    s2s_ctx_free(ctx);
    span_units_free(&su);
    s2s_omni_padded_free(&own);
    free(per_sample), free(ids), free(mask), free(labels), free(tt), free(frames32), free(frames);
    s2s_st_close(&bf.f);
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_forward = {"forward", "OmniSpeech forward (+ gradients) on one batch of tensors", run};
