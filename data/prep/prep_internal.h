// prep_internal.h — what the prep_*.c files share: the context and worker structs, the sequence being built,
// and the small helpers (.npy speaker embeddings).
#pragma once
#include "npy.h"  // speaker embeddings
#include <cjson/cJSON.h>
#include "data/prep/prep.h"
#include "data/tokenizer/tokenizer.h"

struct s2s_prep_ctx {
    s2s_prep_opts opts;
    s2s_tokenizer *llm, *tts;  // tts may be NULL
    char llm_sha[65], tts_sha[65];
    // LLM ids of the markers OpenS2S encodes as their own pieces; checked present at load.
    int32_t im_start, im_end, audio_start, audio_end, tts_start, tts_end;
    // TTS vocabulary: units are [unit0, unit0 + n_units), EOS closes every unit sequence.
    int32_t unit0, n_units, tts_eos;
};

struct s2s_prep_worker {
    const s2s_prep_ctx *c;
    s2s_tok_encoder *llm, *tts;
    s2s_tok_ids piece;  // scratch for one encoded piece
    char *text;         // scratch for "<|im_tts_start|>" + text + "<|im_tts_end|>"
    size_t text_cap;
    float *pcm;  // scratch for one decoded audio (s2s_audio_load output is copied out and freed)
};

// Where pieces go: the student sequence (ids, labels, token_types) or the teacher prompt (no token_types).
typedef struct prep_seq {
    s2s_prep_record *r;
    int teacher;
} prep_seq;

// Appends one separately encoded piece. labelled: labels = ids, else -100. type: the token_type (student only).
int prep_piece(s2s_prep_worker *w, prep_seq *q, const char *text, size_t len, int labelled, int type, s2s_derr *e);
// Appends raw ids (the -200 audio placeholder).
int prep_push_tokens(prep_seq *q, const int32_t *ids, int64_t n, int labelled, int type);
// Loads an audio spec (relative to --audio-root), applies OpenS2S's 0.5 s minimum and --max-audio-s, and
// appends it as int16 PCM. `what` names the field in errors.
int prep_push_audio(s2s_prep_worker *w, s2s_prep_record *r, const char *spec, const char *what, s2s_derr *e);
// Speech units from a "<|audio_N|>..." string (encoded with the TTS tokenizer, as OpenS2S does) or a JSON array
// of unit indices, checked against the speech vocabulary, plus EOS, appended to r's units.
int prep_push_units(s2s_prep_worker *w, s2s_prep_record *r, const cJSON *units, const char *what, s2s_derr *e);
// Resolves a manifest path against --audio-root into buf.
int prep_resolve_path(const s2s_prep_ctx *c, const char *path, char *buf, size_t cap, const char *what,
                      s2s_derr *e);

// The three record forms (prep_instruct.c, prep_stage.c). r is reset by the caller.
int prep_build_instruct(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e);
int prep_build_align(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e);
int prep_build_tts(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e);

// A string field: absent or null -> *out = NULL; a non-string -> error naming `what`.
int prep_get_str(const cJSON *obj, const char *key, const char **out, const char *what, s2s_derr *e);

// The OpenS2S dialogue pieces (prep_instruct.c), also used to build stage-1 records.
int prep_turn_open(s2s_prep_worker *w, prep_seq *q, const char *role, s2s_derr *e);
int prep_turn_close(s2s_prep_worker *w, prep_seq *q, int assistant, s2s_derr *e);
int prep_system(s2s_prep_worker *w, prep_seq *q, const char *prompt, s2s_derr *e);

