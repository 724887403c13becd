// cmd_init.c — `s2s init`: a randomly initialised OmniSpeech model of any size described by an OmniSpeech
// config.json, written in the OpenS2S checkpoint layout (config.json + safetensors under OpenS2S names), so a
// tiny model for tests and the demo, or a from-scratch one, needs no Python.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fs.h"
#include "args.h"
#include "cli.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/omnispeech.h"

static int run(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *dtype = "f32";
    int64_t seed = 0;
    double shard_mb = 0;
    const s2s_arg args[] = {
        {"--config", S2S_ARG_STR, &config, "FILE", "an OmniSpeech config.json, e.g. configs/tiny/model.json"},
        {"--out", S2S_ARG_STR, &out, "DIR", "writes DIR/config.json and DIR/model.safetensors"},
        {"--seed", S2S_ARG_INT, &seed, "N", "(default 0) the same seed gives the same weights"},
        {"--dtype", S2S_ARG_STR, &dtype, "f32|bf16|f16", "in the files (default f32)"},
        {"--shard-mb", S2S_ARG_F64, &shard_mb, "N", "shard the safetensors (with an index) above N MiB"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "init", .synopsis = "--config FILE --out DIR [--seed N] [--dtype f32|bf16|f16] [--shard-mb N]",
        .args = args,
        .epilog = "  FILE holds audio_encoder_config, llm_config, tts_lm_config, conv_kernel_sizes, adapter_inner_dim\n"
                  "  and interleave_strategy. Every parameter is written under its OpenS2S name, initialised as a\n"
                  "  freshly constructed OpenS2S model: encoder, LLM and TTS-LM as transformers' _init_weights\n"
                  "  (normal(0, 0.02), zero biases and pad rows, unit norms); adapter, llm2tts and llm_ln with\n"
                  "  PyTorch's module defaults.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!config || !out) {
        fprintf(stderr, "s2s init: --config and --out are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    s2s_dtype dt = !strcmp(dtype, "f32") ? S2S_F32 : !strcmp(dtype, "bf16") ? S2S_BF16 : !strcmp(dtype, "f16") ? S2S_F16 : -1;
    if ((int)dt < 0) {
        fprintf(stderr, "s2s init: --dtype must be f32, bf16 or f16, not '%s'\n", dtype);
        return 2;
    }
    char err[1024];
    s2s_omnispeech_config cfg;
    if (s2s_omnispeech_config_read(&cfg, config, err, sizeof err)) {
        fprintf(stderr, "s2s init: %s\n", err);
        return 1;
    }
    if (s2s_mkdir_p(out)) {
        fprintf(stderr, "s2s init: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    s2s_params P;
    s2s_params_init(&P, S2S_CPU);
    s2s_omnispeech m;
    s2s_omnispeech_create(&m, &P, &cfg);
    s2s_omnispeech_init_weights(&m, (uint64_t)seed);

    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out);
    int rc = s2s_omnispeech_config_write(&cfg, path, err, sizeof err);
    s2s_ckpt_save_opts so = {.dtype = dt, .max_shard_bytes = (size_t)(shard_mb * 1048576.0)};
    if (!rc) rc = s2s_ckpt_save(&P, out, &so, err, sizeof err);
    if (rc) fprintf(stderr, "s2s init: %s\n", err);
    else
        printf("s2s init: %s: %d tensors, %lld parameters (seed %llu, %s)\n", out, P.n,
               (long long)s2s_params_count(&P, false), (unsigned long long)seed, dtype);
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_init = {"init", "write a randomly initialised OmniSpeech model (OpenS2S layout)", run};
