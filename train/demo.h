// demo.h — the parts of `s2s demo` (cmd_demo.c).
#pragma once

// Train the tiny OmniSpeech described by config (an OmniSpeech config.json) for steps steps on fixed
// random speech-to-speech batches. Returns 0 when the loss fell.
int demo_omni_run(const char *config, const char *tts_tokenizer, int steps, int threads, const char *metrics_path);
