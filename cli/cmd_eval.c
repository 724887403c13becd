// cmd_eval.c — `s2s eval`: held-out losses and accuracies over shards (eval/eval_data.h).
#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>
#include "args.h"
#include "cli.h"
#include "eval/eval_data.h"

static int run(int argc, char **argv) {
    const char *model = NULL, *ckpt = NULL, *device = "cpu";
    static s2s_arg_list data;
    int64_t threads = 0, max_samples = 0;
    bool json = false, quiet = false;
    const s2s_arg args[] = {
        {"--model", S2S_ARG_STR, &model, "DIR", "an OpenS2S / exported model directory"},
        {"--ckpt", S2S_ARG_STR, &ckpt, "DIR", "a training checkpoint step_N, or a run directory (its newest)"},
        {"--data", S2S_ARG_LIST, &data, "SHARDS", "held-out shards: files, directories or globs (repeatable)"},
        {"--max-samples", S2S_ARG_INT, &max_samples, "N", "evaluate the first N samples only"},
        {"--json", S2S_ARG_FLAG, &json, NULL, "print the result as one JSON object"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress line"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "where the model runs (default cpu)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "CPU threads (default: OpenMP's)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "eval", .synopsis = "(--model DIR | --ckpt DIR) --data SHARDS [--json]", .args = args,
        .epilog = "loss, loss_llm, loss_tts: token means over the whole set, as training defines them; text_accuracy,\n"
                  "unit_accuracy: greedy next-token hits over the same targets. The shards' tokenizer hashes must\n"
                  "match the model's tokenizers.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!!model == !!ckpt || data.n == 0) {
        fprintf(stderr, "s2s eval: one of --model / --ckpt, and --data, are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    s2s_eval_data_opts o = {.model = model ? model : ckpt, .shards = data.v, .n_shards = data.n, .device = device,
                            .threads = (int)threads, .max_samples = max_samples, .quiet = quiet || json};
    s2s_eval_data_result r;
    char err[4096];
    if (s2s_eval_data(&o, &r, err, sizeof err)) {
        fprintf(stderr, "s2s eval: %s\n", err);
        return 1;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "loss", r.loss);
    cJSON_AddNumberToObject(j, "loss_llm", r.loss_llm);
    cJSON_AddNumberToObject(j, "loss_tts", r.loss_tts);
    cJSON_AddNumberToObject(j, "text_accuracy", r.text_accuracy);
    cJSON_AddNumberToObject(j, "unit_accuracy", r.unit_accuracy);
    cJSON_AddNumberToObject(j, "samples", (double)r.samples);
    cJSON_AddNumberToObject(j, "text_targets", (double)r.llm_targets);
    cJSON_AddNumberToObject(j, "unit_targets", (double)r.tts_targets);
    cJSON_AddStringToObject(j, "kind", r.kind);
    cJSON_AddNumberToObject(j, "seconds", r.seconds);
    char *s = json ? cJSON_PrintUnformatted(j) : cJSON_Print(j);
    printf("%s\n", s);
    free(s), cJSON_Delete(j);
    return 0;
}

const s2s_cmd s2s_cmd_eval = {"eval", "held-out losses and accuracies of a model over shards", run};
