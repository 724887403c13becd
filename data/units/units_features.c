// units_features.c — audio to unit frames: the encoder's log-mel, mean-pooled by 8 to 12.5 Hz, optionally
// mean-normalised per utterance.
#include <stdlib.h>
#include <string.h>
#include "data/audio/audio.h"
#include "units.h"

int64_t s2s_units_frames(int64_t n) {
    int64_t v = s2s_logmel_valid_frames(n);
    return (v + S2S_UNITS_POOL - 1) / S2S_UNITS_POOL;
}

int s2s_units_features(const s2s_logmel *lm, const float *pcm, int64_t n, s2s_units_norm norm, float **feat,
                       int64_t *T, const char *what, s2s_derr *e) {
    *feat = NULL;
    *T = 0;
    if (n < 1) return s2s_derr_set(e, "%s: no audio samples", what);
    // The 30 s-padded mel, as the audio encoder gets it: padding changes the last valid frames (zeros rather than
    // a reflection past the end) and the floor at max - 8, so the units describe the frames the model sees.
    int64_t F = s2s_logmel_padded_frames(n), V = s2s_logmel_valid_frames(n), nt = s2s_units_frames(n);
    float *mel = malloc(sizeof(float) * S2S_MEL_BINS * F);  // [128, F]
    float *out = malloc(sizeof(float) * S2S_UNITS_DIM * nt);  // [nt, 128]
    if (!mel || !out) {
        free(mel), free(out);
        return s2s_derr_set(e, "%s: out of memory for %lld mel frames", what, (long long)F);
    }
    s2s_derr me;
    if (s2s_logmel_compute(lm, pcm, n, F, mel, &me)) {
        free(mel), free(out);
        return s2s_derr_set(e, "%s: %s", what, me.msg);
    }
    for (int64_t t = 0; t < nt; t++) {
        int64_t a = t * S2S_UNITS_POOL, b = a + S2S_UNITS_POOL < V ? a + S2S_UNITS_POOL : V;
        for (int d = 0; d < S2S_UNITS_DIM; d++) {
            const float *row = mel + (int64_t)d * F;
            double s = 0;
            for (int64_t f = a; f < b; f++) s += row[f];
            out[t * S2S_UNITS_DIM + d] = (float)(s / (double)(b - a));
        }
    }
    if (norm == S2S_UNITS_NORM_UTTERANCE_MEAN) {
        // Subtracting the utterance's mean frame removes what is constant over it (level, microphone, much of the
        // voice's timbre), so the centroids are spent on what changes: the phonetic content.
        for (int d = 0; d < S2S_UNITS_DIM; d++) {
            double s = 0;
            for (int64_t t = 0; t < nt; t++) s += out[t * S2S_UNITS_DIM + d];
            float m = (float)(s / (double)nt);
            for (int64_t t = 0; t < nt; t++) out[t * S2S_UNITS_DIM + d] -= m;
        }
    }
    free(mel);
    *feat = out;
    *T = nt;
    return 0;
}

int s2s_units_features_file(const s2s_logmel *lm, const char *spec, s2s_units_norm norm, float **feat, int64_t *T,
                            s2s_derr *e) {
    float *pcm = NULL;  // [n] 16 kHz mono
    int64_t n = 0;
    if (s2s_audio_load(spec, &pcm, &n, e)) return -1;
    int rc = s2s_units_features(lm, pcm, n, norm, feat, T, spec, e);
    free(pcm);
    return rc;
}

int64_t s2s_units_features_batch(const s2s_logmel *lm, const char *const *specs, int64_t count, s2s_units_norm norm,
                                 float **feat, int64_t *T, s2s_derr *errs) {
    int64_t bad = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : bad)
    for (int64_t i = 0; i < count; i++) bad += s2s_units_features_file(lm, specs[i], norm, &feat[i], &T[i], &errs[i]) != 0;
    return bad;
}
