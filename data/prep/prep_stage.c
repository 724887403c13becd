// prep_stage.c — the stage-specific records (docs/prep.md).
//
// Stage 1, {"audio", "continuation"[, "transcript", "emotion", "instruction"]}: the dialogue OpenS2S's
// text_generation.py writes for its stage-1 data, tokenised by the same pieces as any dialogue:
//   user [{"text": instruction}, {"audio": audio}], assistant [{"text": continuation}]
// With a transcript, the teacher prompt of the `kl` objective is the same dialogue with the speech replaced by
// its words: user [{"text": instruction + transcript}] (one piece: the LLM wrote the continuation for that
// text), assistant identical, so teacher and student label the same continuation tokens.
//
// Stage 2a, {"text", "units"}: the text encoded with the TTS tokenizer (the TTS-LM embeds its own text prefix),
// unlabelled; units + EOS are what the TTS-LM learns.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prep_internal.h"

static int emotion_class(const s2s_prep_ctx *c, const cJSON *v, int *out, s2s_derr *e) {
    const s2s_prep_opts *o = &c->opts;
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d != floor(d) || d < 0 || d > 127) return s2s_derr_set(e, "emotion must be a class 0..127 or a label");
        *out = (int)d;
        return 0;
    }
    if (!cJSON_IsString(v)) return s2s_derr_set(e, "emotion must be a class 0..127 or a label");
    for (int i = 0; i < o->n_emotion_labels; i++)
        if (!strcmp(o->emotion_labels[i], v->valuestring)) return *out = i, 0;
    if (!o->n_emotion_labels)
        return s2s_derr_set(e, "emotion '%s' is a label, but no --emotion-labels were given to number it",
                            v->valuestring);
    return s2s_derr_set(e, "emotion '%s' is not one of --emotion-labels", v->valuestring);
}

// One side of a stage-1 record: the student (speech) or the teacher (transcript as text).
static int align_side(s2s_prep_worker *w, prep_seq *q, const char *instruction, const char *transcript,
                      const char *continuation, s2s_derr *e) {
    if (prep_system(w, q, S2S_PREP_SYSTEM_PROMPT, e) || prep_turn_open(w, q, "user", e)) return -1;
    if (!q->teacher) {
        if (*instruction && prep_piece(w, q, instruction, strlen(instruction), 0, 0, e)) return -1;
        static const int32_t placeholder = S2S_SHARD_AUDIO_TOKEN;
        if (prep_piece(w, q, "<|im_audio_start|>", 18, 0, 0, e) || prep_push_tokens(q, &placeholder, 1, 0, 0) ||
            prep_piece(w, q, "<|im_audio_end|>", 16, 0, 0, e))
            return -1;
    } else {
        size_t a = strlen(instruction), b = strlen(transcript);
        char *t = malloc(a + b + 1);
        if (!t) return s2s_derr_set(e, "out of memory");
        memcpy(t, instruction, a);
        memcpy(t + a, transcript, b + 1);
        int rc = prep_piece(w, q, t, a + b, 0, 0, e);
        free(t);
        if (rc) return -1;
    }
    if (prep_turn_close(w, q, 0, e) || prep_turn_open(w, q, "assistant", e) ||
        prep_piece(w, q, continuation, strlen(continuation), 1, 0, e) || prep_turn_close(w, q, 1, e))
        return -1;
    return 0;
}

int prep_build_align(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e) {
    const char *audio, *cont, *transcript, *instruction;
    if (prep_get_str(root, "audio", &audio, "", e) || prep_get_str(root, "continuation", &cont, "", e) ||
        prep_get_str(root, "transcript", &transcript, "", e) ||
        prep_get_str(root, "instruction", &instruction, "", e))
        return -1;
    if (!audio || !*audio) return s2s_derr_set(e, "audio: a stage-1 record needs its speech");
    if (!cont || !*cont) return s2s_derr_set(e, "continuation: missing or empty");
    const cJSON *emo = cJSON_GetObjectItemCaseSensitive(root, "emotion");
    int has_emo = emo && !cJSON_IsNull(emo);
    if (has_emo && emotion_class(w->c, emo, &r->sample.emotion, e)) return -1;
    if (!instruction) instruction = has_emo ? S2S_PREP_ALIGN_EMOTION_INSTRUCTION : S2S_PREP_ALIGN_INSTRUCTION;
    prep_seq student = {r, 0};
    if (align_side(w, &student, instruction, NULL, cont, e)) return -1;
    if (transcript) {
        if (!*transcript) return s2s_derr_set(e, "transcript: empty");
        prep_seq teacher = {r, 1};
        if (align_side(w, &teacher, instruction, transcript, cont, e)) return -1;
    }
    return prep_push_audio(w, r, audio, "audio", e);
}

int prep_build_tts(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e) {
    const char *text;
    if (prep_get_str(root, "text", &text, "", e)) return -1;
    if (!text || !*text) return s2s_derr_set(e, "text: a stage-2a record needs the text its units speak");
    if (!w->c->tts) return s2s_derr_set(e, "units: stage-2a records need a TTS tokenizer (--tts-tokenizer)");
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(root, "units");
    if (!units || cJSON_IsNull(units)) return s2s_derr_set(e, "units: missing");
    if (prep_push_units(w, r, units, "units", e)) return -1;
    // The text prefix is in the TTS vocabulary; the LLM-side piece helper is not used.
    w->piece.n = 0;
    s2s_derr te;
    if (s2s_tok_encode(w->tts, text, strlen(text), &w->piece, &te)) return s2s_derr_set(e, "text: %s", te.msg);
    if (!w->piece.n) return s2s_derr_set(e, "text: encodes to no tokens");
    prep_seq q = {r, 0};
    if (prep_push_tokens(&q, w->piece.ids, (int64_t)w->piece.n, 0, 0)) return s2s_derr_set(e, "out of memory");
    return 0;
}
