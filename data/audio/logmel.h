// logmel.h — the Whisper / Qwen2-Audio log-mel front end, equal to Hugging Face's
// WhisperFeatureExtractor(feature_size=128) as OpenS2S calls it (src/feature_extraction_audio.py).
//
// Definition (16 kHz input):
//   pad the audio with zeros to P = 480000 * ceil(n / 480000) samples (a whole number of 30 s chunks);
//   reflect-pad 200 samples each side; frames of 400 samples every 160 (P/160 + 1 of them), periodic
//   Hann window (np.hanning(401)[:-1]); |rfft|^2 (201 bins); Slaney mel filters 0-8000 Hz with Slaney
//   area normalisation (transformers' mel_filter_bank(norm="slaney", mel_scale="slaney")); drop the last
//   frame; log10(max(x, 1e-10)); floor at (max over the whole padded array) - 8; then (x + 4) / 4.
// The result is [128, F] with F = P / 160 = 3000 per chunk; the first ceil(n / 160) frames are valid
// (OpenS2S's attention mask, audio_mask[::160]). Each 3000-frame chunk is encoded separately downstream.
//
// Computed with FFTW in double precision (two frames per complex transform), the power, mel sums and log in
// float32 as in the reference, vectorised across blocks of frames (one vector: 16 with AVX-512), OpenMP over
// blocks. Within ~2e-7 of a float64 rendering of the definition; transformers' torch path (float32 throughout)
// is itself ~3-7e-5 from it on speech, and that is the difference to expect. Every frame is computed the same
// way whatever the thread count and the max is exact, so the output does not depend on the thread count; the
// FFT plan is fixed (see mel_wisdom in logmel.c), not measured, so it does not depend on timing either.
#pragma once
#include <stdint.h>
#include "data/errors.h"

#define S2S_MEL_BINS 128
#define S2S_MEL_NFFT 400
#define S2S_MEL_HOP 160
#define S2S_MEL_CHUNK_FRAMES 3000
#define S2S_MEL_CHUNK_SAMPLES (S2S_MEL_CHUNK_FRAMES * S2S_MEL_HOP)  // 30 s at 16 kHz

typedef struct s2s_logmel s2s_logmel;  // FFTW plan, window, sparse filter bank; reusable, not copyable

int s2s_logmel_new(s2s_logmel **out, s2s_derr *err);
void s2s_logmel_free(s2s_logmel *m);
// Which FFT plan m runs: "wisdom" (the built-in plan, where this FFTW build and CPU can run it) or "estimate".
const char *s2s_logmel_plan(const s2s_logmel *m);
// The FFTW wisdom FFTW_PATIENT finds for the transform on this machine (malloc'd text, NULL on failure). Forgets
// FFTW's accumulated wisdom first; for maintainers refreshing the built-in plan (`s2s mel --find-wisdom`).
char *s2s_logmel_find_wisdom(void);

// Frames of the padded mel for n samples: 3000 * ceil(n / 480000).
int64_t s2s_logmel_padded_frames(int64_t n);
// Frames that carry audio: ceil(n / 160).
int64_t s2s_logmel_valid_frames(int64_t n);

// mel [128, frames] from pcm [n] (16 kHz mono), the audio zero-padded to frames * 160 samples. Pass
// frames = s2s_logmel_padded_frames(n) for OpenS2S; a larger multiple of 3000 gives what a batch padded to a
// longer audio gets. Needs n >= 1 and frames * 160 >= n. Safe to call from several threads at once on
// one object.
int s2s_logmel_compute(const s2s_logmel *m, const float *pcm, int64_t n, int64_t frames, float *mel, s2s_derr *err);
