// demo.h — the parts of `s2s demo` (cmd_demo.c).
#pragma once
#include <stdint.h>

// Train the tiny OmniSpeech described by config (an OmniSpeech config.json) for steps steps on fixed
// random speech-to-speech batches (weights seeded 1234 + seed, data 42 + seed). Returns 0 when the loss fell
// by min_drop (demo_loss_fell), 1 otherwise.
int demo_omni_run(const char *config, const char *tts_tokenizer, int steps, int threads, const char *metrics_path,
                  uint64_t seed, double min_drop);

// The demo's pass criterion: the mean loss of the last k steps (the noise of one step averaged out) is below the
// first step's loss by at least min_drop of it. Prints the outcome, naming the margin; 0 when met, 1 when not.
int demo_loss_fell(const char *what, const double *loss, int steps, int k, double min_drop);
