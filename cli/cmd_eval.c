// cmd_eval.c — `s2s eval`: held-out losses and accuracies over shards (eval/eval_data.h).
#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>
#include "args.h"
#include "cli.h"
#include "eval/eval_data.h"
#include "eval/eval_manifest.h"

static int run(int argc, char **argv) {
    const char *model = NULL, *ckpt = NULL, *device = "cpu", *manifest = NULL, *out = NULL;
    static s2s_arg_list data;
    int64_t threads = 0, max_samples = 0, max_new = 0, tts_max_new = 0, seed = 0, batch = 8;
    double temperature = -1, top_p = -1;
    bool json = false, quiet = false;
    const s2s_arg args[] = {
        {"--model", S2S_ARG_STR, &model, "DIR", "an OpenS2S / exported model directory"},
        {"--ckpt", S2S_ARG_STR, &ckpt, "DIR", "a training checkpoint step_N, or a run directory (its newest)"},
        {"--data", S2S_ARG_LIST, &data, "SHARDS", "held-out shards: files, directories or globs (repeatable)"},
        {"--max-samples", S2S_ARG_INT, &max_samples, "N", "evaluate the first N samples only"},
        {"--manifest", S2S_ARG_STR, &manifest, "IN.jsonl", "instead of --data: answer every item (audio and/or text)"},
        {"--out", S2S_ARG_STR, &out, "OUT.jsonl", "with --manifest: one line per item (resumes where it stopped)"},
        {"--max-new", S2S_ARG_INT, &max_new, "N", "with --manifest: text tokens per reply (default: the config's)"},
        {"--tts-max-new", S2S_ARG_INT, &tts_max_new, "N", "with --manifest: units per reply"},
        {"--temperature", S2S_ARG_F64, &temperature, "T", "with --manifest: 0 greedy, > 0 sampled text"},
        {"--top-p", S2S_ARG_F64, &top_p, "P", "with --manifest: nucleus sampling of the text"},
        {"--seed", S2S_ARG_INT, &seed, "S", "with --manifest: item i samples with seed S + i"},
        {"--batch", S2S_ARG_INT, &batch, "N", "with --manifest: items answered together (default 8; 1..256)"},
        {"--json", S2S_ARG_FLAG, &json, NULL, "print the result as one JSON object"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress line"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "where the model runs (default cpu)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "CPU threads (default: OpenMP's)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "eval",
        .synopsis = "(--model DIR | --ckpt DIR) (--data SHARDS [--json] | --manifest IN.jsonl --out OUT.jsonl)",
        .args = args,
        .epilog = "loss, loss_llm, loss_tts: token means over the whole set, as training defines them; text_accuracy,\n"
                  "unit_accuracy: greedy next-token hits over the same targets. The shards' tokenizer hashes must\n"
                  "match the model's tokenizers.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!!model == !!ckpt || (data.n == 0) == !manifest || (manifest && !out)) {
        fprintf(stderr, "s2s eval: one of --model / --ckpt, and either --data or --manifest with --out, are "
                "required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    char err[4096];
    if (manifest) {
        s2s_session s;
        if (s2s_session_open(&s, model ? model : ckpt, device, (int)threads, err, sizeof err)) {
            fprintf(stderr, "s2s eval: %s\n", err);
            return 1;
        }
        if (batch < 1 || batch > 256) {
            fprintf(stderr, "s2s eval: --batch %lld: 1..256\n", (long long)batch);
            s2s_session_close(&s);
            return 2;
        }
        s2s_eval_manifest_opts mo = {.manifest = manifest, .out = out, .reply = s2s_reply_defaults(),
                                     .batch = (int)batch, .quiet = quiet};
        mo.reply.max_new_tokens = max_new, mo.reply.tts_max_new_tokens = tts_max_new;
        mo.reply.temperature = temperature, mo.reply.top_p = top_p, mo.reply.seed = (uint64_t)seed;
        s2s_eval_manifest_result mr;
        int rc = s2s_eval_manifest(&s, &mo, &mr, err, sizeof err);
        s2s_session_close(&s);
        if (rc) {
            fprintf(stderr, "s2s eval: %s\n", err);
            return 1;
        }
        fprintf(stderr, "s2s eval: %lld items: %lld answered now, %lld kept from before, %lld malformed -> %s\n",
                (long long)mr.items, (long long)mr.answered, (long long)mr.resumed, (long long)mr.failed, out);
        return 0;
    }
    s2s_eval_data_opts o = {.model = model ? model : ckpt, .shards = data.v, .n_shards = data.n, .device = device,
                            .threads = (int)threads, .max_samples = max_samples, .quiet = quiet || json};
    s2s_eval_data_result r;
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
