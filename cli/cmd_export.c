// cmd_export.c — `s2s export`: a training checkpoint (or an OpenS2S model directory) in the layout OpenS2S's
// train.py saves, LoRA merged (eval/export.h, docs/export.md). Parsing only; the work is the library's.
#include <stdio.h>
#include <string.h>
#include "args.h"
#include "cli.h"
#include "eval/export.h"

static int run(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL, *dtype = "bf16", *shard = "5GB", *tok = NULL, *ttok = NULL;
    bool force = false;
    int64_t threads = 0;
    const s2s_arg args[] = {
        {"--ckpt", S2S_ARG_STR, &ckpt, "DIR", "a checkpoint step_N, a run directory (its latest) or an OpenS2S model"},
        {"--out", S2S_ARG_STR, &out, "DIR", "the directory to create (it appears whole or not at all)"},
        {"--dtype", S2S_ARG_STR, &dtype, "bf16|f32", "tensors in the files (default bf16, as OpenS2S releases)"},
        {"--shard-size", S2S_ARG_STR, &shard, "SIZE", "save_pretrained's max_shard_size: 5GB (default), 500MB, 2GiB, "
                                                      "bytes; 0: one file"},
        {"--force", S2S_ARG_FLAG, &force, NULL, "replace an existing DIR (swapped in one rename)"},
        {"--tokenizer", S2S_ARG_STR, &tok, "DIR", "the LLM tokenizer (default: the checkpoint's hf/, else its recipe's)"},
        {"--tts-tokenizer", S2S_ARG_STR, &ttok, "DIR", "the TTS tokenizer (default: hf/tts/, else the recipe's)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "threads of the LoRA merge (default: OpenMP's)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "export", .synopsis = "--ckpt DIR --out DIR [--dtype bf16|f32] [--shard-size 5GB] [--force]",
        .args = args,
        .epilog = "  DIR gets config.json (OmniSpeechConfig), model.safetensors or shards + model.safetensors.index.json,\n"
                  "  generation_config.json, the tokenizer files, audio/preprocessor_config.json and tts/ (tokenizer +\n"
                  "  generation_config.json): what OpenS2S's OmniSpeechModel.from_pretrained and model_worker.py load.\n"
                  "  LoRA adapters are merged (W + alpha/r B A). An existing DIR is refused without --force.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!ckpt || !out) {
        fprintf(stderr, "s2s export: --ckpt and --out are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    s2s_export_opts o = {.ckpt = ckpt, .out = out, .force = force, .tokenizer = tok, .tts_tokenizer = ttok,
                         .threads = (int)threads};
    if (!strcmp(dtype, "f32")) o.dtype = S2S_F32;
    else if (!strcmp(dtype, "bf16")) o.dtype = S2S_BF16;
    else {
        fprintf(stderr, "s2s export: --dtype must be bf16 or f32, not '%s'\n", dtype);
        return 2;
    }
    if (s2s_export_parse_size(shard, &o.max_shard_bytes)) {
        fprintf(stderr, "s2s export: --shard-size '%s' is not a size (an integer followed by GB, MB, KB, GiB, MiB, "
                "KiB, or bytes)\n", shard);
        return 2;
    }
    char err[2048];
    s2s_export_report rep;
    if (s2s_export(&o, &rep, err, sizeof err)) {
        fprintf(stderr, "s2s export: %s\n", err);
        return 1;
    }
    printf("s2s export: %s: %d tensors from %s (%d LoRA adapters merged), %s, %zu bytes in %d file%s\n", out,
           rep.n_tensors, rep.model_dir, rep.n_merged, dtype, rep.bytes, rep.n_shards, rep.n_shards == 1 ? "" : "s");
    printf("s2s export: copied");
    for (int i = 0; i < rep.n_copied; i++) printf(" %s", rep.copied[i]);
    printf("%s\n", rep.n_copied ? "" : " nothing");
    if (rep.n_made) {
        printf("s2s export: made from config.json (the source has none)");
        for (int i = 0; i < rep.n_made; i++) printf(" %s", rep.made[i]);
        printf("\n");
    }
    return 0;
}

const s2s_cmd s2s_cmd_export = {"export", "a checkpoint in OpenS2S's Hugging Face layout (LoRA merged)", run};
