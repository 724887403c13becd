// cmd_init.c — `s2s init`: a randomly initialised OmniSpeech model of any size described by an OmniSpeech
// config.json, written in the OpenS2S checkpoint layout (config.json + safetensors under OpenS2S names), so a
// tiny model for tests and the demo, or a from-scratch one, needs no Python.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/fs.h"
#include "cli.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/omnispeech.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: s2s init --config FILE --out DIR [--seed N] [--dtype f32|bf16|f16] [--shard-mb N]\n"
            "  FILE  an OmniSpeech config.json (audio_encoder_config, llm_config, tts_lm_config, conv_kernel_sizes,\n"
            "        adapter_inner_dim, interleave_strategy), e.g. configs/tiny/model.json\n"
            "  Writes DIR/config.json and DIR/model.safetensors (sharded with an index above --shard-mb MiB) holding\n"
            "  every parameter under its OpenS2S name, initialised as a freshly constructed OpenS2S model: encoder,\n"
            "  LLM and TTS-LM as transformers' _init_weights (normal(0, 0.02), zero biases and pad rows, unit\n"
            "  norms); adapter, llm2tts and llm_ln with PyTorch's module defaults.\n"
            "  --seed N    (default 0) the same seed gives the same weights\n"
            "  --dtype     in the files (default f32)\n");
}

static int run(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *dtype = "f32";
    unsigned long long seed = 0;
    double shard_mb = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) config = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--dtype") && i + 1 < argc) dtype = argv[++i];
        else if (!strcmp(argv[i], "--shard-mb") && i + 1 < argc) shard_mb = atof(argv[++i]);
        else {
            usage(strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!config || !out) {
        usage(stderr);
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
    s2s_omnispeech_init_weights(&m, seed);

    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", out);
    int rc = s2s_omnispeech_config_write(&cfg, path, err, sizeof err);
    s2s_ckpt_save_opts so = {.dtype = dt, .max_shard_bytes = (size_t)(shard_mb * 1048576.0)};
    if (!rc) rc = s2s_ckpt_save(&P, out, &so, err, sizeof err);
    if (rc) fprintf(stderr, "s2s init: %s\n", err);
    else
        printf("s2s init: %s: %d tensors, %lld parameters (seed %llu, %s)\n", out, P.n,
               (long long)s2s_params_count(&P, false), seed, dtype);
    s2s_omnispeech_free(&m);
    s2s_params_free(&P);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_init = {"init", "write a randomly initialised OmniSpeech model (OpenS2S layout)", run};
