// trainer.c — the training loop of `s2s train` (trainer.h): micro-batches -> one optimizer step with the
// semantics of OpenS2S's Hugging Face Trainer (docs/optimizer-semantics.md), metrics, evaluation, checkpoints,
// resume, and a clean stop on SIGTERM / SIGINT.
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "grad_sync.h"
#include "base/fs.h"
#include "run_checkpoint.h"
#include "trainer_internal.h"

// The one piece of process state: a signal handler can only talk through a global. It asks the loop to finish
// its step, checkpoint and return.
static volatile sig_atomic_t stop_requested;
static void on_signal(int sig) { stop_requested = sig; }

// ---- state in trainer.json ---------------------------------------------------------------------------------

static cJSON *trainer_state(const trainer *t) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "format", "s2s-trainer-1");
    cJSON_AddStringToObject(j, "stage", t->stage->name);
    cJSON_AddNumberToObject(j, "step", (double)t->step);
    cJSON_AddNumberToObject(j, "optimizer_step", (double)t->opt.step);
    cJSON_AddNumberToObject(j, "bad_steps", (double)t->bad);
    cJSON_AddNumberToObject(j, "samples", (double)t->samples);
    cJSON_AddNumberToObject(j, "world_size", t->world);
    cJSON_AddNumberToObject(j, "zero", t->zero_on ? t->zero.level : 0);
    // Which flat range of the gradient layout each optimizer file holds (ZeRO 1, 2: rank r's; else all in rank 0's).
    cJSON *rg = cJSON_AddArrayToObject(j, "optimizer_ranges");
    for (int r = 0; r < (t->zero_on ? t->world : 1); r++) {
        const int64_t n = t->opt.n, lo = t->zero_on ? r * t->zero.blk : 0;
        const int64_t hi = t->zero_on ? lo + t->zero.blk : n;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "lo", (double)(lo < n ? lo : n));
        cJSON_AddNumberToObject(o, "hi", (double)(hi < n ? hi : n));
        cJSON_AddItemToArray(rg, o);
    }
    s2s_loader_cursor c = s2s_loader_tell(t->train);
    char *cj = s2s_loader_cursor_json(&c);
    cJSON_AddItemToObject(j, "loader", cJSON_Parse(cj));
    free(cj);
    cJSON *sch = cJSON_AddObjectToObject(j, "schedule");
    cJSON_AddStringToObject(sch, "kind", t->r.schedule);
    cJSON_AddNumberToObject(sch, "lr", t->r.lr);
    cJSON_AddNumberToObject(sch, "warmup_steps", (double)t->r.warmup_steps);
    cJSON_AddNumberToObject(sch, "total_steps", (double)t->r.max_steps);
    // The generators: data order comes from (seed, epoch) in the loader cursor and LoRA dropout from (seed, step),
    // so the seed and the step are the whole random state.
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(j, "rng"), "seed", (double)t->r.seed);
    cJSON_AddItemToObject(j, "recipe", trainer_recipe_json(t->cfg));
    return j;
}

static int64_t num(cJSON *j, const char *k) {
    cJSON *v = cJSON_GetObjectItem(j, k);
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : -1;
}

int trainer_restore(trainer *t, cJSON *st, char *err, size_t errlen) {
    cJSON *stage = cJSON_GetObjectItem(st, "stage");
    if (!cJSON_IsString(stage) || strcmp(stage->valuestring, t->stage->name))
        return s2s_errf(err, errlen, "--resume %s: the checkpoint is of stage %s, the recipe's stage is %s",
                        t->resume_dir, cJSON_IsString(stage) ? stage->valuestring : "?", t->stage->name);
    // Every rank reads every optimizer file and keeps its own range, whatever the world size that wrote them.
    char **files;
    const int nf = s2s_runckpt_optimizer_files(t->resume_dir, &files, err, errlen);
    if (nf < 0) return -1;
    int lrc = s2s_adam_load_files(&t->opt, (const char *const *)files, nf, err, errlen);
    for (int i = 0; i < nf; i++) free(files[i]);
    free(files);
    if (lrc) return -1;
    t->step = num(st, "step"), t->bad = num(st, "bad_steps"), t->samples = num(st, "samples");
    if (t->step < 0 || t->bad < 0) return s2s_errf(err, errlen, "%s/trainer.json: no step / bad_steps", t->resume_dir);
    char *lj = cJSON_PrintUnformatted(cJSON_GetObjectItem(st, "loader"));
    s2s_loader_cursor c;
    s2s_derr de;
    int rc = lj && !s2s_loader_cursor_parse(lj, &c, &de) && !s2s_loader_seek(t->train, &c, &de) ? 0 : -1;
    free(lj);
    if (rc) return s2s_errf(err, errlen, "%s/trainer.json: loader cursor: %s", t->resume_dir, de.msg);
    trainer_log(t, "resuming %s at step %lld", t->resume_dir, (long long)t->step);
    return 0;
}

// metrics.jsonl past the resumed step belongs to the run that was killed: drop those rows so the file reads as
// one uninterrupted run.
static void truncate_metrics(const char *path, int64_t step) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char tmp[4200];
    s2s_atomic_file o;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp || s2s_atomic_open_tmp(&o, path, tmp, NULL, 0)) {
        fclose(f);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        long long s = -1;
        const char *k = strstr(line, "\"step\": ");
        if (k) s = strtoll(k + 8, NULL, 10);
        if (s >= 0 && s <= step) fputs(line, o.fp);
    }
    free(line);
    fclose(f);
    s2s_atomic_commit(&o, NULL, 0);
}

// ---- one step -------------------------------------------------------------------------------------------------

typedef struct step_stats {
    double loss, term[S2S_STAGE_MAX_TERMS];
    int64_t rows[S2S_STAGE_MAX_TERMS], samples, tokens, epoch;
    double flops_fwd, flops_bwd;  // GEMM flops (2MNK) of the forwards and of the backwards
    double t_comm, t_optim;       // seconds in collectives (none overlaps compute yet) and in the optimizer
    int64_t grad_peak;            // ZeRO-2: the most gradient-bucket bytes held at once during a backward
} step_stats;

static double scalar(const s2s_tensor *t) {  // a loss, wherever it lives (one sync on a GPU)
    float v;
    s2s_dev_copy(S2S_CPU, &v, t->device, t->data, sizeof v);
    return v;
}

// Forward + backward of every micro-batch of one optimizer step. Returns -1 on a data error.
static int accumulate(trainer *t, step_stats *st, char *err, size_t errlen) {
    const int64_t G = t->r.grad_accum;
    const int nt = t->terms.n;
    s2s_train_batch *mb = s2s_calloc((size_t)G, sizeof *mb);
    int rc = 0;
    memset(st, 0, sizeof *st);
    int64_t total[S2S_STAGE_MAX_TERMS] = {0};
    for (int64_t g = 0; g < G && !rc; g++) {
        const s2s_batch *b;
        s2s_derr de;
        if (s2s_loader_next(t->train, &b, &de)) rc = s2s_errf(err, errlen, "data.train: %s", de.msg);
        else rc = s2s_train_batch_from_loader(&mb[g], b, t->train, t->stage->mode, t->tts_eos, err, errlen);
        if (rc) break;
        int64_t r[S2S_STAGE_MAX_TERMS] = {0};
        t->stage->rows(&t->env, &mb[g], r);
        for (int k = 0; k < nt; k++) total[k] += r[k];
        st->samples += mb[g].n;
        st->tokens += mb[g].n_tok + mb[g].n_units_total;
        st->epoch = mb[g].epoch;
    }
    // A data error on one rank: every rank must still reach the same collectives (the step's agreement in run()
    // stops them all), so the failing rank skips the work, not the communication.
    int64_t glob[S2S_STAGE_MAX_TERMS + 2];
    for (int k = 0; k < nt; k++) glob[k] = total[k];
    glob[nt] = st->samples, glob[nt + 1] = st->tokens;
    double tc = s2s_now();
    if (t->world > 1) s2s_comm_allreduce(t->comm, glob, nt + 2, S2S_COMM_I64, S2S_COMM_SUM);
    st->t_comm += s2s_now() - tc;
    for (int k = 0; k < nt; k++) total[k] = glob[k];
    st->samples = glob[nt], st->tokens = glob[nt + 1];
    const bool tokens_norm = !strcmp(t->r.loss_norm, "tokens");
    bool reduced = false;  // the gradient buckets went out during the last backward
    const bool z2 = t->zero_on && t->zero.level == 2;
    for (int64_t g = 0; g < G && !rc; g++) {
        double div[S2S_STAGE_MAX_TERMS];
        int64_t r[S2S_STAGE_MAX_TERMS] = {0};
        t->stage->rows(&t->env, &mb[g], r);
        // micro_mean: HF's per-micro-batch means / G, averaged over the ranks as DDP does.
        for (int k = 0; k < nt; k++) div[k] = tokens_norm ? (double)total[k] : (double)(r[k] * G * t->world);
        s2s_stage_out o = {0};
        // The last micro-batch's backward hands finished gradient buckets to the communicator as it goes; under
        // ZeRO-2 every micro-batch's does (there is no local buffer to accumulate in).
        const bool overlap = t->world > 1 && (z2 || (g == G - 1 && !t->zero_on));
        s2s_grad_overlap ov;
        if (overlap)
            s2s_grad_overlap_begin(&ov, t->comm, t->ctx, &t->P, t->r.bucket_mb, z2 ? s2s_zero_shard(&t->zero, g) : NULL);
        const double f0 = t->ctx->stats.gemm_flops;
        t->stage->micro(t->ctx, &t->env, &mb[g], div, &o);
        const double f1 = t->ctx->stats.gemm_flops;
        if (o.loss) {
            st->loss += scalar(o.loss);
            s2s_backward(t->ctx, o.loss, NULL);
        }
        if (overlap) {
            const double tw = s2s_now();
            int64_t nb, peak, early = s2s_grad_overlap_end(&ov, &nb, &peak);  // the rest, and the wait
            if (z2) s2s_zero_accumulate(&t->zero, t->ctx, g);
            st->t_comm += s2s_now() - tw;
            if (peak > st->grad_peak) st->grad_peak = peak;
            if ((t->step == 0 || t->step == t->first_step) && g == G - 1)
                trainer_log(t, "gradient buckets: %lld of %lld sent while the backward ran", (long long)early,
                            (long long)nb);
            reduced = true;
        }
        st->flops_fwd += f1 - f0, st->flops_bwd += t->ctx->stats.gemm_flops - f1;
        for (int k = 0; k < nt; k++) {
            st->term[k] += o.term[k] * (double)o.rows[k];
            st->rows[k] += o.rows[k];
        }
        s2s_ctx_step_reset(t->ctx);
    }
    if (t->world > 1) {  // the step's loss and term sums over the ranks; the gradients
        tc = s2s_now();
        // A rank whose data failed ran no last micro-batch: it still sends its buckets, in the same order and
        // before the sums below, as every rank must issue the same collectives.
        if (!reduced && !t->zero_on) s2s_grad_allreduce(t->comm, &t->P, t->r.bucket_mb);
        if (!reduced && z2)
            for (int64_t g = 0; g < G; g++) s2s_grad_shard_idle(t->comm, &t->P, t->r.bucket_mb, s2s_zero_shard(&t->zero, g));
        double red[1 + 2 * S2S_STAGE_MAX_TERMS];
        red[0] = st->loss;
        for (int k = 0; k < nt; k++) red[1 + k] = st->term[k], red[1 + nt + k] = (double)st->rows[k];
        s2s_comm_allreduce(t->comm, red, 1 + 2 * nt, S2S_COMM_F64, S2S_COMM_SUM);
        st->loss = red[0];
        for (int k = 0; k < nt; k++) st->term[k] = red[1 + k], st->rows[k] = (int64_t)red[1 + nt + k];
        st->t_comm += s2s_now() - tc;
    }
    for (int k = 0; k < nt; k++) st->term[k] = st->rows[k] ? st->term[k] / (double)st->rows[k] : 0.0;
    for (int64_t g = 0; g < G; g++) s2s_train_batch_free(&mb[g]);
    free(mb);
    return rc;
}

// ---- evaluation -----------------------------------------------------------------------------------------------

static int evaluate(trainer *t, char *err, size_t errlen) {
    if (!t->valid) return 0;
    const int nt = t->terms.n;
    s2s_derr de;
    s2s_loader_cursor c = s2s_loader_tell(t->valid);
    c.epoch = 0, c.step = 0;
    if (s2s_loader_seek(t->valid, &c, &de)) return s2s_errf(err, errlen, "data.valid: %s", de.msg);
    int64_t n = s2s_loader_steps_in_epoch(t->valid, 0, &de);
    if (t->r.eval_batches > 0 && t->r.eval_batches < n) n = t->r.eval_batches;
    double sum[S2S_STAGE_MAX_TERMS] = {0}, loss = 0;
    int64_t rows[S2S_STAGE_MAX_TERMS] = {0};
    s2s_no_grad_begin(t->ctx);
    int rc = 0;
    // Every rank reads the whole held-out set (a world-1 loader) and evaluates every world-th batch: the result
    // is the same for any number of ranks.
    for (int64_t i = 0; i < n && !rc; i++) {
        const s2s_batch *b;
        s2s_train_batch tb;
        if (s2s_loader_next(t->valid, &b, &de)) { rc = s2s_errf(err, errlen, "data.valid: %s", de.msg); break; }
        if (i % t->world != t->rank) continue;
        if (s2s_train_batch_from_loader(&tb, b, t->valid, t->stage->mode, t->tts_eos, err, errlen)) { rc = -1; break; }
        double div[S2S_STAGE_MAX_TERMS] = {0};
        s2s_stage_out o = {0};
        t->stage->micro(t->ctx, &t->env, &tb, div, &o);
        for (int k = 0; k < nt; k++) sum[k] += o.term[k] * (double)o.rows[k], rows[k] += o.rows[k];
        s2s_ctx_step_reset(t->ctx);
        s2s_train_batch_free(&tb);
    }
    s2s_no_grad_end(t->ctx);
    if (t->world > 1) {
        double red[2 * S2S_STAGE_MAX_TERMS];
        for (int k = 0; k < nt; k++) red[k] = sum[k], red[nt + k] = (double)rows[k];
        s2s_comm_allreduce(t->comm, red, 2 * nt, S2S_COMM_F64, S2S_COMM_SUM);
        for (int k = 0; k < nt; k++) sum[k] = red[k], rows[k] = (int64_t)red[nt + k];
        if (s2s_comm_agree(t->comm, rc, err, errlen, NULL)) return -1;
    }
    if (rc) return rc;
    const char *keys[1 + S2S_STAGE_MAX_TERMS];
    char names[S2S_STAGE_MAX_TERMS][48];
    double vals[1 + S2S_STAGE_MAX_TERMS];
    keys[0] = "eval_loss";
    for (int k = 0; k < nt; k++) {
        const double mean = rows[k] ? sum[k] / (double)rows[k] : 0.0;
        loss += t->terms.weight[k] * mean;
        snprintf(names[k], sizeof names[k], "eval_%s", t->terms.name[k]);
        keys[1 + k] = names[k], vals[1 + k] = mean;
    }
    vals[0] = loss;
    s2s_metrics_log(&t->met, t->step, 1 + nt, keys, vals);
    trainer_log(t, "eval step %lld | eval_loss %.4f over %lld samples", (long long)t->step, loss, (long long)n);
    return 0;
}

// ---- the run --------------------------------------------------------------------------------------------------

static int checkpoint(trainer *t, char *err, size_t errlen) {
    cJSON *state = trainer_state(t);
    const s2s_runckpt_assets assets = {.init = t->r.model_init, .audio = t->r.model_audio, .llm = t->r.model_llm,
                                       .tts = t->r.model_tts, .tokenizer = t->r.tokenizer,
                                       .tts_tokenizer = t->r.tts_tokenizer};
    s2s_runckpt_save s = {.run_dir = t->r.run_dir, .step = t->step, .P = &t->P, .cfg = &t->mcfg, .opt = &t->opt,
                          .trainer = state, .dtype = strcmp(t->r.ckpt_dtype, "bf16") ? S2S_F32 : S2S_BF16,
                          .keep = (int)t->r.ckpt_keep,
                          .aux_prefix = t->env.emotion_w ? "emotion_head." : NULL, .assets = &assets};
    // The weights (and with dist.zero 0 the optimizer state) are the same on every rank: rank 0 writes them. A
    // sharded state is written by every rank into rank 0's temporary directory first. Every rank waits for the
    // outcome, so none runs ahead of a checkpoint it may have to resume from.
    int rc = 0;
    if (t->zero_on) {
        if (t->rank == 0) rc = s2s_runckpt_prepare(t->r.run_dir, t->step, err, errlen);
        if (!s2s_comm_agree(t->comm, rc, err, errlen, NULL))
            rc = s2s_runckpt_write_optimizer(t->r.run_dir, t->step, t->rank, &t->opt, err, errlen);
        else
            rc = -1;
        s.prepared = true;
        if (!s2s_comm_agree(t->comm, rc, err, errlen, NULL)) rc = t->rank == 0 ? s2s_runckpt_write(&s, err, errlen) : 0;
        else rc = -1;
    } else {
        rc = t->rank == 0 ? s2s_runckpt_write(&s, err, errlen) : 0;
    }
    cJSON_Delete(state);
    if (t->world > 1 && s2s_comm_agree(t->comm, rc, err, errlen, NULL)) return -1;
    if (!rc) trainer_log(t, "checkpoint %s/checkpoints/step_%08lld", t->r.run_dir, (long long)t->step);
    return rc;
}

static int write_recipe(trainer *t, char *err, size_t errlen) {
    if (t->rank) return 0;
    char p[4200];
    snprintf(p, sizeof p, "%s/config.yaml", t->r.run_dir);
    s2s_atomic_file a;
    if (s2s_atomic_open(&a, p, err, errlen)) return -1;
    fprintf(a.fp, "# the effective recipe of this run (defaults filled in), written by s2s train\n");
    s2s_recipe_write(t->cfg, a.fp);
    return s2s_atomic_commit(&a, err, errlen);
}

static int run(trainer *t, const s2s_train_opts *o, s2s_train_result *res, char *err, size_t errlen) {
    const s2s_recipe *r = &t->r;
    if (!o->quiet && t->rank == 0) {
        fprintf(stderr, "s2s train: effective recipe\n");
        s2s_recipe_write(t->cfg, stderr);
    }
    trainer_log(t, "%s, %lld parameters, %lld trainable, %lld samples in %d shards, %lld steps / epoch, rank %d of %d "
                "(%s)", t->stage->name, (long long)s2s_params_count(&t->P, false),
                (long long)s2s_params_count(&t->P, true), (long long)s2s_loader_num_samples(t->train),
                s2s_loader_num_shards(t->train),
                (long long)s2s_loader_steps_in_epoch(t->train, 0, &(s2s_derr){0}) / r->grad_accum, t->rank, t->world,
                s2s_comm_backend(t->comm));
    if (write_recipe(t, err, errlen)) return -1;
    // Metrics and the progress line come from rank 0 (every rank logs the same global values).
    char mp[4200];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", r->run_dir);
    if (t->rank == 0) {
        if (t->resume_dir) truncate_metrics(mp, t->step);
        else unlink(mp);
    }
    if (s2s_metrics_open(&t->met, t->rank == 0 ? mp : NULL)) return s2s_errf(err, errlen, "%s: cannot open", mp);

    const int nt = t->terms.n;
    const char *const *names = t->terms.name;
    bool saved = false;
    const int64_t start = t->step;
    t->first_step = start;
    while (t->step < r->max_steps) {
        step_stats st;
        const double t0 = s2s_now();
        int arc = accumulate(t, &st, err, errlen);
        if (t->world > 1) arc = s2s_comm_agree(t->comm, arc, err, errlen, NULL);
        if (arc) return -1;
        // Clip by the global norm (logged before clipping), then update; a non-finite loss or gradient skips the
        // update and leaves parameters and moments as they were.
        const double lr = r->lr * s2s_schedule_lambda(t->sched, t->step, r->warmup_steps, r->max_steps);
        double tc = s2s_now();
        double norm = t->zero_on ? s2s_zero_reduce(&t->zero, t->comm, t->ctx, &t->P) : s2s_grad_norm(t->ctx, &t->P);
        if (t->zero_on) st.t_comm += s2s_now() - tc;
        else st.t_optim += s2s_now() - tc;
        const double to = s2s_now();
        const bool bad = !isfinite(st.loss) || !isfinite(norm);
        if (bad) {
            t->bad++;
            trainer_log(t, "step %lld: non-finite %s (loss %g, grad norm %g): update skipped (%lld in a row, "
                        "train.max_bad_steps %lld)", (long long)t->step + 1, isfinite(st.loss) ? "gradient" : "loss",
                        st.loss, norm, (long long)t->bad, (long long)r->max_bad_steps);
        } else {
            t->bad = 0;
            if (t->zero_on) {
                s2s_zero_clip(&t->zero, t->ctx, norm, r->clip);
                s2s_zero_update(&t->zero, t->ctx, &t->opt, &t->P, lr);
                st.t_optim += s2s_now() - to;
                tc = s2s_now();
                s2s_zero_gather(&t->zero, t->comm, &t->opt, &t->P);
                st.t_comm += s2s_now() - tc;
            } else {
                if (r->clip > 0) s2s_grad_clip_known(t->ctx, &t->P, norm, r->clip);  // norm: computed above
                s2s_adam_update(t->ctx, &t->opt, &t->P, lr);
                st.t_optim += s2s_now() - to;
            }
        }
        s2s_params_zero_grad(&t->P);
        t->step++;
        t->samples += st.samples;
        saved = false;
        if (t->step == start + 1) {
            res->first_loss = st.loss;
            if (t->zero_on && t->zero.level == 2)
                trainer_log(t, "ZeRO-2: at most %.1f MiB of gradient buckets held at once during a backward (the "
                            "full gradient would be %.1f MiB)", st.grad_peak / 1048576.0,
                            t->P.flat_grad_n * 4 / 1048576.0);
        }
        res->last_loss = st.loss;
        res->step = t->step;
        if (t->bad >= r->max_bad_steps)
            return s2s_errf(err, errlen, "%lld non-finite steps in a row (train.max_bad_steps): stopping; the last "
                            "checkpoint is intact", (long long)t->bad);

        const double dt = s2s_now() - t0;
        if (t->step % r->log_every == 0 || t->step == r->max_steps) {
            const char *keys[20];
            double vals[20];
            int n = 0;
            keys[n] = "loss", vals[n++] = st.loss;
            for (int k = 0; k < nt; k++) keys[n] = names[k], vals[n++] = st.term[k];
            keys[n] = "lr", vals[n++] = lr;
            keys[n] = "grad_norm", vals[n++] = norm;
            keys[n] = "tokens_per_s", vals[n++] = dt > 0 ? (double)st.tokens / dt : 0;
            keys[n] = "samples", vals[n++] = (double)t->samples;
            keys[n] = "epoch", vals[n++] = (double)st.epoch;
            keys[n] = "arena_peak_mb", vals[n++] = (double)s2s_ctx_peak_bytes(t->ctx) / (1 << 20);
            keys[n] = "skipped", vals[n++] = bad;
            keys[n] = "flops_fwd", vals[n++] = st.flops_fwd;
            keys[n] = "flops_bwd", vals[n++] = st.flops_bwd;
            // The step's wall time split: compute (forward + backward + loader waits), collectives, optimizer.
            keys[n] = "time_s", vals[n++] = dt;
            keys[n] = "time_comm_s", vals[n++] = st.t_comm;
            keys[n] = "time_optim_s", vals[n++] = st.t_optim;
            if (t->zero_on && t->zero.level == 2) keys[n] = "grad_peak_mb", vals[n++] = (double)st.grad_peak / (1 << 20);
            s2s_metrics_log(&t->met, t->step, n, keys, vals);
            if (!o->quiet && t->rank == 0) s2s_progress(&t->met, t->step - start, r->max_steps - start, st.loss, st.tokens);
        }
        if (r->eval_every > 0 && t->step % r->eval_every == 0 && evaluate(t, err, errlen)) return -1;
        // A signal may reach some ranks only (or at different steps): they agree to stop after the same step.
        int64_t stop = stop_requested;
        if (t->world > 1) s2s_comm_allreduce(t->comm, &stop, 1, S2S_COMM_I64, S2S_COMM_MAX);
        if (t->step % r->ckpt_every == 0 || stop) {
            if (checkpoint(t, err, errlen)) return -1;
            saved = true;
        }
        if (o->stop_after > 0 && t->step - start >= o->stop_after && t->step < r->max_steps) {
            if (!saved && checkpoint(t, err, errlen)) return -1;
            trainer_log(t, "--stop-after %lld: stopped at step %lld", (long long)o->stop_after, (long long)t->step);
            res->interrupted = true;
            return 0;
        }
        if (stop) {
            trainer_log(t, "%s received: stopped after step %lld with a checkpoint; --resume auto continues",
                        stop == SIGINT ? "SIGINT" : stop == SIGUSR1 ? "SIGUSR1" : "SIGTERM", (long long)t->step);
            res->interrupted = true;
            return 0;
        }
    }
    if (!saved && t->step > start && checkpoint(t, err, errlen)) return -1;
    if ((r->eval_every == 0 || t->step % r->eval_every) && evaluate(t, err, errlen)) return -1;
    trainer_log(t, "done, step %lld; arena peak %.1f MiB", (long long)t->step,
                (double)s2s_ctx_peak_bytes(t->ctx) / (1 << 20));
    return 0;
}

int s2s_train(s2s_cfg *cfg, const s2s_train_opts *o, s2s_train_result *res, char *err, size_t errlen) {
    s2s_train_opts none = {0};
    s2s_train_result dummy;
    if (!o) o = &none;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    trainer *t = s2s_calloc(1, sizeof *t);
    t->cfg = cfg;
    t->comm = o->comm;
    if (!t->comm) {
        t->comm = s2s_comm_init(&(s2s_comm_opts){.force_self = true}, err, errlen);
        t->own_comm = true;
    }
    t->rank = s2s_comm_rank(t->comm), t->world = s2s_comm_world(t->comm);
    stop_requested = 0;
    // SIGUSR1 as well: mpirun forwards it to every rank and exits 0 (a SIGTERM to mpirun makes Open MPI end the
    // job on its own terms).
    struct sigaction sa = {.sa_handler = on_signal}, old_term, old_int, old_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGUSR1, &sa, &old_usr1);
    int rc = trainer_setup(t, o, err, errlen);
    // An error on any rank before step 1 stops every rank with its message.
    if (t->world > 1 && !t->agreed) rc = s2s_comm_agree(t->comm, rc, err, errlen, NULL);
    if (!rc) rc = run(t, o, res, err, errlen);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGUSR1, &old_usr1, NULL);
    trainer_teardown(t);
    if (t->own_comm) s2s_comm_free(t->comm);
    free(t);
    return rc;
}
