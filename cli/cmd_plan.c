// cmd_plan.c — `s2s plan`: a recipe's memory per rank without weights or allocation (train/plan.h).
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include "args.h"
#include "cli.h"
#include "train/config.h"
#include "train/plan.h"
#include "train/recipe.h"

// "80GB" (10^9), "80GiB" (2^30), "500MB", "512MiB", a bare number is GB. -1 when malformed.
static double parse_size(const char *s) {
    char *end;
    const double v = strtod(s, &end);
    if (end == s || v <= 0) return -1;
    static const struct { const char *u; double f; } units[] = {
        {"", 1e9}, {"GB", 1e9}, {"G", 1e9}, {"GiB", 1073741824.0}, {"MB", 1e6}, {"M", 1e6}, {"MiB", 1048576.0},
        {"TB", 1e12}, {"TiB", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcasecmp(end, units[i].u) && (units[i].u[0] || !*end)) return v * units[i].f;
    return -1;
}

static double gib(int64_t b) { return (double)b / 1073741824.0; }

static void print_table(const s2s_recipe *r, const s2s_plan_shape *sh, const s2s_plan_opts *o, const s2s_plan *p) {
    const s2s_omnispeech_config *c = &p->cfg;
    printf("s2s plan: %s, %d rank%s, dist.zero %lld, %s, micro-batch %lld x %lld LLM rows (audio %.1f s, response %lld, "
           "units %lld)\n", r->stage, o->world, o->world == 1 ? "" : "s", (long long)r->zero, o->bf16 ? "bf16" : "f32",
           (long long)sh->batch, (long long)sh->tokens, sh->audio_frames / 100.0, (long long)sh->response,
           (long long)sh->units);
    printf("model: encoder d %lld x %lld layers, LLM H %lld x %lld layers (vocab %lld), TTS-LM H %lld x %lld layers "
           "(vocab %lld)\n", (long long)c->audio.d_model, (long long)c->audio.encoder_layers,
           (long long)c->llm.hidden_size, (long long)c->llm.num_hidden_layers, (long long)c->llm.vocab_size,
           (long long)c->tts.hidden_size, (long long)c->tts.num_hidden_layers, (long long)c->tts.vocab_size);
    printf("parameters: %lld total, %lld trainable\n", (long long)p->params_total, (long long)p->params_trainable);
    printf("%-34s %12s\n", "per rank", "GiB");
    printf("%-34s %12.3f\n", "parameters", gib(p->bytes_params));
    printf("%-34s %12.3f\n", "gradients", gib(p->bytes_grads));
    printf("%-34s %12.3f\n", "optimizer state", gib(p->bytes_optim));
    printf("%-34s %12.3f%s\n", "activations, no recompute", gib(p->act_plain), p->recompute ? "" : "  <- recipe");
    printf("%-34s %12.3f%s\n", "activations, recompute", gib(p->act_recompute), p->recompute ? "  <- recipe" : "");
    printf("%-34s %12.3f\n", "total", gib(p->bytes_per_rank));
    printf("fits %.1f GiB: %s (headroom %.3f GiB)\n", o->gpu_bytes / 1073741824.0, p->fits ? "yes" : "no",
           (o->gpu_bytes - (double)p->bytes_per_rank) / 1073741824.0);
    printf("largest micro-batch that fits: %lld (recompute), %lld (no recompute)\n", (long long)p->max_batch[1],
           (long long)p->max_batch[0]);
}

static void print_json(const s2s_recipe *r, const s2s_plan_shape *sh, const s2s_plan_opts *o, const s2s_plan *p) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "stage", r->stage);
    cJSON_AddNumberToObject(j, "world", o->world);
    cJSON_AddNumberToObject(j, "zero", (double)r->zero);
    cJSON_AddStringToObject(j, "precision", o->bf16 ? "bf16" : "f32");
    cJSON_AddNumberToObject(j, "batch", (double)sh->batch);
    cJSON_AddNumberToObject(j, "tokens", (double)sh->tokens);
    cJSON_AddNumberToObject(j, "params_total", (double)p->params_total);
    cJSON_AddNumberToObject(j, "params_trainable", (double)p->params_trainable);
    cJSON_AddNumberToObject(j, "bytes_params", (double)p->bytes_params);
    cJSON_AddNumberToObject(j, "bytes_grads", (double)p->bytes_grads);
    cJSON_AddNumberToObject(j, "bytes_optim", (double)p->bytes_optim);
    cJSON_AddNumberToObject(j, "bytes_act", (double)(p->recompute ? p->act_recompute : p->act_plain));
    cJSON_AddNumberToObject(j, "bytes_act_no_recompute", (double)p->act_plain);
    cJSON_AddNumberToObject(j, "bytes_act_recompute", (double)p->act_recompute);
    cJSON_AddNumberToObject(j, "arena_step_bytes", (double)p->act_step[p->recompute]);
    cJSON_AddNumberToObject(j, "arena_scratch_bytes", (double)p->act_scratch[p->recompute]);
    cJSON_AddBoolToObject(j, "recompute", p->recompute);
    cJSON_AddNumberToObject(j, "bytes_per_rank", (double)p->bytes_per_rank);
    cJSON_AddNumberToObject(j, "gpu_bytes", o->gpu_bytes);
    cJSON_AddBoolToObject(j, "fits", p->fits);
    cJSON_AddNumberToObject(j, "headroom_bytes", o->gpu_bytes - (double)p->bytes_per_rank);
    cJSON_AddNumberToObject(j, "max_batch", (double)p->max_batch[p->recompute]);
    cJSON_AddNumberToObject(j, "max_batch_recompute", (double)p->max_batch[1]);
    cJSON_AddNumberToObject(j, "max_batch_no_recompute", (double)p->max_batch[0]);
    char *s = cJSON_Print(j);
    puts(s);
    free(s);
    cJSON_Delete(j);
}

static int run(int argc, char **argv) {
    const char *config = NULL, *gpu_mem = "80GB", *precision = "bf16", *model = NULL;
    static s2s_arg_list sets;
    int64_t world = 1, batch = 0, tokens = 2048, response = -1, units = -1, targets = -1, threads = 0;
    double audio_s = 30;
    bool json = false;
    const s2s_arg args[] = {
        {"--config", S2S_ARG_STR, &config, "RECIPE.yaml", "the recipe (its model.*, stage, train.*, dist.*)"},
        {"--set", S2S_ARG_MULTI, &sets, "KEY=VALUE", "override a recipe key (as s2s train --set)"},
        {"--world", S2S_ARG_INT, &world, "N", "data-parallel ranks (the ZeRO split; default 1)"},
        {"--gpu-mem", S2S_ARG_STR, &gpu_mem, "SIZE", "memory of one GPU: 80GB, 80GiB, 500MB (default 80GB)"},
        {"--precision", S2S_ARG_STR, &precision, "bf16|f32", "bf16: the GPU path (default); f32: the CPU trainer"},
        {"--model", S2S_ARG_STR, &model, "CONFIG.json", "an OmniSpeech config.json instead of the recipe's model"},
        {"--batch", S2S_ARG_INT, &batch, "N", "samples per micro-batch (default train.batch_size)"},
        {"--tokens", S2S_ARG_INT, &tokens, "N", "LLM rows per sample, the audio's included (default 2048)"},
        {"--audio-s", S2S_ARG_F64, &audio_s, "S", "seconds of audio per sample (default 30; 0: none)"},
        {"--response", S2S_ARG_INT, &response, "N", "speech-response rows per sample (default tokens / 8)"},
        {"--units", S2S_ARG_INT, &units, "N", "speech units per sample (default: the TTS-LM sequence = tokens)"},
        {"--targets", S2S_ARG_INT, &targets, "N", "supervised LLM rows per sample (default = response)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "CPU threads (f32; default train.threads or OpenMP's)"},
        {"--json", S2S_ARG_FLAG, &json, NULL, "print the plan as JSON"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "plan", .synopsis = "--config RECIPE.yaml [--world N] [--gpu-mem 80GB] [--json] [options]",
        .args = args,
        .epilog = "Reads the architecture only (config.json files, tokenizers), opens no weights and allocates no\n"
                  "model. Every sample of the micro-batch has the shape given. docs/training.md, \"Planning memory\".\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!config) {
        fprintf(stderr, "s2s plan: --config is required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    const double gpu = parse_size(gpu_mem);
    if (gpu <= 0) return fprintf(stderr, "s2s plan: --gpu-mem '%s' is not a size like 80GB, 80GiB or 500MB\n", gpu_mem), 2;
    if (strcmp(precision, "bf16") && strcmp(precision, "f32"))
        return fprintf(stderr, "s2s plan: --precision is bf16 or f32, not '%s'\n", precision), 2;
    if (world < 1 || tokens < 1 || audio_s < 0)
        return fprintf(stderr, "s2s plan: --world and --tokens must be >= 1, --audio-s >= 0\n"), 2;
    char err[2048];
    s2s_cfg cfg;
    s2s_cfg_init(&cfg);
    s2s_recipe r;
    memset(&r, 0, sizeof r);
    int rc = s2s_cfg_load_yaml(&cfg, config, err, sizeof err);
    for (int i = 0; !rc && i < sets.n; i++) rc = s2s_cfg_set(&cfg, sets.v[i], err, sizeof err);
    if (!rc) rc = s2s_recipe_from_cfg(&r, &cfg, err, sizeof err);
    if (!rc) {
        const bool s2a = !strcmp(r.stage, "stage2a");
        s2s_plan_shape sh = {.batch = batch > 0 ? batch : r.batch_size, .tokens = tokens,
                             .audio_frames = s2a ? 0 : (int64_t)(audio_s * 100 + 0.5)};
        sh.response = response >= 0 ? response : tokens / 8;
        sh.units = units >= 0 ? units : tokens - sh.response - (s2a ? 0 : 1);
        sh.targets = targets >= 0 ? targets : sh.response;
        const bool bf16 = !strcmp(precision, "bf16");
        int nt = (int)(threads > 0 ? threads : r.threads);
#ifdef _OPENMP
        if (nt <= 0) nt = omp_get_max_threads();
#endif
        s2s_plan_opts o = {.world = (int)world, .threads = bf16 ? 1 : (nt > 0 ? nt : 1), .bf16 = bf16,
                           .gpu_bytes = gpu, .model = model};
        s2s_plan p;
        rc = s2s_plan_run(&r, &sh, &o, &p, err, sizeof err);
        if (!rc) json ? print_json(&r, &sh, &o, &p) : print_table(&r, &sh, &o, &p);
    }
    if (rc) fprintf(stderr, "s2s plan: %s\n", err);
    s2s_recipe_free(&r);
    s2s_cfg_free(&cfg);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_plan = {"plan", "memory per rank of a recipe (parameters, gradients, optimizer, activations)", run};
