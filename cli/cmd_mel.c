// cmd_mel.c — `s2s mel`: one audio file (or OpenS2S path:start:frames segment) to its 128-bin log-mel,
// written as safetensors. Lets a user check features against Hugging Face and time the front end.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <stdbool.h>
#include "args.h"
#include "cli.h"
#include "data/audio/audio.h"
#include "data/audio/logmel.h"
#include "model/safetensors.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(int argc, char **argv) {
    const char *audio = NULL, *out = NULL;
    bool pad30 = false, with_audio = false;
    int64_t bench = 0;
    const s2s_arg args[] = {
        {"--audio", S2S_ARG_STR, &audio, "FILE[:start:frames]", "an audio file or an OpenS2S segment of one"},
        {"--out", S2S_ARG_STR, &out, "FILE.safetensors", "writes tensor `mel` f32 [128, frames]"},
        {"--pad30", S2S_ARG_FLAG, &pad30, NULL, "keep the whole padded array (3000 frames per 30 s chunk)"},
        {"--with-audio", S2S_ARG_FLAG, &with_audio, NULL, "also write `audio` f32 [samples], the 16 kHz signal"},
        {"--bench", S2S_ARG_INT, &bench, "N", "compute the mel N more times, print the fastest (ms) and the plan"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "mel", .synopsis = "--audio FILE[:start:frames] --out FILE.safetensors [options]", .args = args,
        .epilog = "  The mel is WhisperFeatureExtractor(feature_size=128) as OpenS2S calls it (audio zero-padded to\n"
                  "  a multiple of 30 s); frames = ceil(samples / 160), the valid frames. Metadata: valid_frames,\n"
                  "  padded_frames, samples, sample_rate. `s2s mel --find-wisdom` prints the FFTW wisdom\n"
                  "  FFTW_PATIENT finds for the transform here.\n"};
    if (argc == 2 && !strcmp(argv[1], "--find-wisdom")) {  // for maintainers: see mel_wisdom in data/audio/logmel.c
        char *w = s2s_logmel_find_wisdom();
        if (!w) {
            fprintf(stderr, "s2s mel: FFTW could not plan the transform\n");
            return 1;
        }
        fputs(w, stdout);
        free(w);
        return 0;
    }
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!audio || !out) {
        fprintf(stderr, "s2s mel: --audio and --out are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    s2s_derr err;
    float *pcm = NULL;  // [n] 16 kHz mono
    int64_t n = 0;
    if (s2s_audio_load(audio, &pcm, &n, &err)) {
        fprintf(stderr, "s2s mel: %s\n", err.msg);
        return 1;
    }
    s2s_logmel *lm = NULL;
    if (s2s_logmel_new(&lm, &err)) {
        fprintf(stderr, "s2s mel: %s\n", err.msg);
        free(pcm);
        return 1;
    }
    int64_t F = s2s_logmel_padded_frames(n), valid = s2s_logmel_valid_frames(n);
    float *mel = malloc(sizeof(float) * S2S_MEL_BINS * F);  // [128, F]
    int rc = 1;
    if (!mel) {
        fprintf(stderr, "s2s mel: %s: out of memory for %lld frames\n", audio, (long long)F);
        goto done;
    }
    if (s2s_logmel_compute(lm, pcm, n, F, mel, &err)) {
        fprintf(stderr, "s2s mel: %s: %s\n", audio, err.msg);
        goto done;
    }
    if (bench > 0) {
        double best = 1e30;
        for (int r = 0; r < bench; r++) {
            double t = now_s();
            s2s_logmel_compute(lm, pcm, n, F, mel, &err);
            t = now_s() - t;
            best = t < best ? t : best;
        }
        printf("mel_ms %.4f frames %lld samples %lld plan %s\n", best * 1e3, (long long)F, (long long)n,
               s2s_logmel_plan(lm));
    }
    int64_t keep = pad30 ? F : valid;
    if (keep < F)  // rows are F long; keep the first `keep` of each in place
        for (int b = 1; b < S2S_MEL_BINS; b++) memmove(mel + b * keep, mel + b * F, sizeof(float) * keep);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    int64_t shape[2] = {S2S_MEL_BINS, keep}, ashape[1] = {n};
    s2s_st_writer_add(&w, "mel", S2S_F32, 2, shape, mel);
    if (with_audio) s2s_st_writer_add(&w, "audio", S2S_F32, 1, ashape, pcm);
    char buf[4][32];
    snprintf(buf[0], sizeof buf[0], "%lld", (long long)valid);
    snprintf(buf[1], sizeof buf[1], "%lld", (long long)F);
    snprintf(buf[2], sizeof buf[2], "%lld", (long long)n);
    snprintf(buf[3], sizeof buf[3], "%d", S2S_AUDIO_RATE);
    s2s_st_writer_meta(&w, "valid_frames", buf[0]);
    s2s_st_writer_meta(&w, "padded_frames", buf[1]);
    s2s_st_writer_meta(&w, "samples", buf[2]);
    s2s_st_writer_meta(&w, "sample_rate", buf[3]);
    char werr[1024];
    if (s2s_st_writer_write(&w, out, werr, sizeof werr)) fprintf(stderr, "s2s mel: %s\n", werr);
    else rc = 0;
    s2s_st_writer_free(&w);
done:
    free(mel);
    free(pcm);
    s2s_logmel_free(lm);
    return rc;
}

const s2s_cmd s2s_cmd_mel = {"mel", "audio file -> 128-bin Whisper log-mel (safetensors)", run};
