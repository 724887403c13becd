// cmd_mel.c — `s2s mel`: one audio file (or OpenS2S path:start:frames segment) to its 128-bin log-mel,
// written as safetensors. Lets a user check features against Hugging Face and time the front end.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cli.h"
#include "data/audio/audio.h"
#include "data/audio/logmel.h"
#include "model/safetensors.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: s2s mel --audio FILE[:start:frames] --out FILE.safetensors [--pad30] [--with-audio] [--bench N]\n"
            "  Writes tensor `mel` f32 [128, frames]: WhisperFeatureExtractor(feature_size=128) as OpenS2S calls\n"
            "  it (audio zero-padded to a multiple of 30 s). frames = ceil(samples / 160), the valid frames;\n"
            "  --pad30 keeps the whole padded array (3000 frames per 30 s chunk).\n"
            "  --with-audio  also write `audio` f32 [samples], the 16 kHz mono signal the mel was made from\n"
            "  --bench N     compute the mel N more times and print the fastest, in ms, and the FFT plan\n"
            "  s2s mel --find-wisdom: print the FFTW wisdom FFTW_PATIENT finds for the transform here\n"
            "  metadata: valid_frames, padded_frames, samples, sample_rate\n");
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run(int argc, char **argv) {
    const char *audio = NULL, *out = NULL;
    int pad30 = 0, with_audio = 0, bench = 0;
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
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--audio") && i + 1 < argc) audio = argv[++i];
        else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--pad30")) pad30 = 1;
        else if (!strcmp(argv[i], "--with-audio")) with_audio = 1;
        else if (!strcmp(argv[i], "--bench") && i + 1 < argc) bench = atoi(argv[++i]);
        else {
            usage(strcmp(argv[i], "--help") ? stderr : stdout);
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (!audio || !out) {
        usage(stderr);
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
