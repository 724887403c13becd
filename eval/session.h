// session.h — a loaded model ready to answer: the weights (eval/source.h) on a device, both tokenizers, the two
// generation configs, the log-mel front end; and one turn answered as OpenS2S's model_worker.py answers it (its
// prompt, eval/prompt.h; its audio features; OmniSpeechModel.generate(units_gen=True), eval/chat.h). What
// `s2s chat` and `s2s eval --manifest` share; no trainer.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/ctx.h"
#include "chat.h"
#include "data/audio/logmel.h"
#include "data/tokenizer/tokenizer.h"
#include "gen_config.h"
#include "prompt.h"
#include "source.h"

#define S2S_N_UNITS 16384  // <|audio_0|> .. <|audio_16383|>: the speech-unit vocabulary

typedef struct s2s_session {
    s2s_model_src src;
    s2s_omnispeech_config cfg;
    s2s_params P;
    s2s_omnispeech m;
    s2s_ctx *ctx;
    s2s_tokenizer *tok, *tts_tok;
    s2s_tok_encoder *enc;
    s2s_logmel *mel;
    s2s_gen_config gen, tts_gen;  // generation_config.json and tts/generation_config.json (or config.json's EOS)
    int32_t units_bias;           // the TTS id of <|audio_0|> (model_worker.py's units_bias)
    char device[256];             // what it runs on ("cpu", "cuda:0 NVIDIA H200, ...")
} s2s_session;

// model: an OpenS2S / exported directory, a training checkpoint or a run directory (eval/source.h); device
// "cpu" or "cuda"; threads 0: OpenMP's default. 0, or -1 with err naming the file at fault.
int s2s_session_open(s2s_session *s, const char *model, const char *device, int threads, char *err, size_t errlen);
void s2s_session_close(s2s_session *s);

// One user turn: an audio (a file, or NULL) then a text (or NULL), model_worker.py's content items in that order.
typedef struct s2s_turn {
    const char *system;  // NULL: "You are a helpful assistant."
    const char *audio;   // path[:start:frames] (data/audio/audio.h)
    const char *text;
} s2s_turn;

// The generation settings of a reply: the session's generation configs, overridable.
typedef struct s2s_reply_opts {
    int64_t max_new_tokens, tts_max_new_tokens;  // <= 0: the generation config's, else 512 (OpenS2S's default)
    double temperature;   // < 0: the generation config's; 0: greedy; > 0: sample the text with it
    double top_p;         // < 0: the generation config's
    bool tts_sample;      // sample the units with the TTS generation config's warpers (else its do_sample decides)
    uint64_t seed;
    const float *spk;     // [512] or NULL
    void (*on_text)(void *user, int b, const int32_t *ids, int64_t n);  // b: the sequence (0 alone)
    void (*on_units)(void *user, int b, const int32_t *ids, int64_t n);
    void *user;
} s2s_reply_opts;

typedef struct s2s_reply {
    s2s_prompt prompt;
    s2s_chat_out out;
    double t_prompt;      // seconds for the audio features and the prompt's embeddings
} s2s_reply;

s2s_reply_opts s2s_reply_defaults(void);
int s2s_session_reply(s2s_session *s, const s2s_turn *turn, const s2s_reply_opts *o, s2s_reply *r, char *err,
                      size_t errlen);
// n turns answered in lockstep (eval/chat.h's batch): turn i samples with seeds[i] (o->seed unused) and r[i] is what
// s2s_session_reply gives for it alone. A turn whose prompt fails (an unreadable audio) gets failed[i] = 1 and its
// reason in errs[i], the others are answered. Returns how many were.
int s2s_session_reply_batch(s2s_session *s, const s2s_turn *turns, int n, const s2s_reply_opts *o,
                            const uint64_t *seeds, s2s_reply *r, int *failed, char (*errs)[1024]);
void s2s_reply_free(s2s_reply *r);
// The speech units of a reply's TTS ids: those of the unit vocabulary, offset removed (0 .. 16383), in order;
// returns how many were written to out (room for n).
int64_t s2s_session_units(const s2s_session *s, const int32_t *ids, int64_t n, int32_t *out);
