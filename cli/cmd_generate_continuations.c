// cmd_generate_continuations.c — `s2s generate-continuations`: stage 1's targets, OpenS2S text_generation.py's
// greedy continuations of each transcript by the frozen text LLM, as `align` records for `s2s prep`
// (eval/continuations.h does the work).
#include <stdio.h>
#include "args.h"
#include "cli.h"
#include "eval/continuations.h"

static int run(int argc, char **argv) {
    const char *model = NULL, *manifest = NULL, *out = NULL, *task = "asr", *device = "cpu";
    int64_t batch = 8, max_new = 1024, threads = 0;
    bool quiet = false;
    const s2s_arg args[] = {
        {"--model", S2S_ARG_STR, &model, "DIR", "the frozen text LLM: a Qwen3ForCausalLM directory with its tokenizer"},
        {"--manifest", S2S_ARG_STR, &manifest, "IN.jsonl", "items {\"text\", \"audio\"[, \"label\", \"id\"]}"},
        {"--out", S2S_ARG_STR, &out, "OUT.jsonl", "align records for s2s prep; an existing file is continued"},
        {"--task", S2S_ARG_STR, &task, "asr|ser", "text_generation.py's instruction (ser: with the item's label)"},
        {"--batch", S2S_ARG_INT, &batch, "N", "items decoded together (default 8)"},
        {"--max-new", S2S_ARG_INT, &max_new, "N", "tokens per continuation at most (default 1024, max_tokens)"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "where the model runs (default cpu)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "CPU threads (default: OpenMP's)"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress line on stderr"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "generate-continuations", .synopsis = "--model LLM_DIR --manifest IN.jsonl --out OUT.jsonl [options]",
        .args = args,
        .epilog = "OpenS2S text_generation.py: the system prompt, the task's instruction + the item's text, Qwen3's\n"
                  "chat template with thinking off, greedy decoding to EOS or --max-new. Each output line is\n"
                  "{\"audio\", \"transcript\", [\"emotion\",] \"instruction\", \"continuation\"}, OUT's k-th line\n"
                  "for the k-th good item; a killed run rerun with the same command continues after OUT's last\n"
                  "complete line. A bad line is reported as file:line and skipped.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    const int t = s2s_cont_task_parse(task);
    if (!model || !manifest || !out || t < 0) {
        fprintf(stderr, "s2s generate-continuations: %s\n\n",
                t < 0 ? "--task must be asr or ser" : "--model, --manifest and --out are required");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    const s2s_cont_opts o = {.model = model, .manifest = manifest, .out = out, .task = (s2s_cont_task)t,
                             .batch = batch > 0 && batch <= 1 << 20 ? (int)batch : -1, .max_new_tokens = max_new,
                             .device = device, .threads = (int)threads, .quiet = quiet};
    s2s_cont_stats st;
    char err[4096];
    if (s2s_cont_run(&o, &st, err, sizeof err)) {
        fprintf(stderr, "s2s generate-continuations: %s\n", err);
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "generate-continuations: %lld lines: %lld written, %lld resumed, %lld skipped; %s\n",
                (long long)st.lines, (long long)st.written, (long long)st.resumed, (long long)st.skipped, out);
    return 0;
}

const s2s_cmd s2s_cmd_generate_continuations = {
    "generate-continuations", "stage-1 targets: the frozen LLM's greedy continuations (OpenS2S text_generation.py)",
    run};
