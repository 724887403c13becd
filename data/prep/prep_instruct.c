// prep_instruct.c — an OpenS2S {"messages": [...]} record, tokenised as `process_dataset` in CASIA-LM/OpenS2S
// src/instruction_dataset.py does it. Every piece is encoded on its own, so BPE never merges across pieces:
//   system turn   enc("<|im_start|>") enc("system") enc("\n") enc(prompt) enc("<|im_end|>\n")      unlabelled
//   turn opener   enc("<|im_start|>") enc(role) enc("\n") [+ enc("<think></think>") for the assistant] unlabelled
//   user audio    enc("<|im_audio_start|>") -200 enc("<|im_audio_end|>")                           unlabelled
//   speech reply  enc("<|im_tts_start|>" + text + "<|im_tts_end|>")  token_type 1, labelled; units + EOS
//   text          enc(text)                                         labelled on assistant turns
//   turn close    enc("<|im_end|>\n")                               labelled on assistant turns
// An item is audio if its "audio" is non-empty, else speech if its "speech_units" are, else text if its "text"
// is, else nothing (OpenS2S tests them in that order).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "prep_internal.h"

static int piece_str(s2s_prep_worker *w, prep_seq *q, const char *s, int labelled, s2s_derr *e) {
    return prep_piece(w, q, s, strlen(s), labelled, 0, e);
}

int prep_turn_open(s2s_prep_worker *w, prep_seq *q, const char *role, s2s_derr *e) {
    if (piece_str(w, q, "<|im_start|>", 0, e) || piece_str(w, q, role, 0, e) || piece_str(w, q, "\n", 0, e))
        return -1;
    if (!strcmp(role, "assistant") && !w->c->opts.enable_thinking) return piece_str(w, q, "<think></think>", 0, e);
    return 0;
}

int prep_turn_close(s2s_prep_worker *w, prep_seq *q, int assistant, s2s_derr *e) {
    return piece_str(w, q, "<|im_end|>\n", assistant, e);
}

int prep_system(s2s_prep_worker *w, prep_seq *q, const char *prompt, s2s_derr *e) {
    if (prep_turn_open(w, q, "system", e)) return -1;
    if (*prompt && piece_str(w, q, prompt, 0, e)) return -1;
    return prep_turn_close(w, q, 0, e);
}

// "<|im_tts_start|>" + text + "<|im_tts_end|>" as one string: the markers are special tokens, so they are
// matched whole and the text between them is encoded as if alone.
static int speech_piece(s2s_prep_worker *w, prep_seq *q, const char *text, s2s_derr *e) {
    static const char open[] = "<|im_tts_start|>", close[] = "<|im_tts_end|>";
    size_t n = strlen(text), need = sizeof open - 1 + n + sizeof close;
    if (need > w->text_cap) {
        char *p = realloc(w->text, need);
        if (!p) return s2s_derr_set(e, "out of memory");
        w->text = p;
        w->text_cap = need;
    }
    memcpy(w->text, open, sizeof open - 1);
    memcpy(w->text + sizeof open - 1, text, n);
    memcpy(w->text + sizeof open - 1 + n, close, sizeof close);
    return prep_piece(w, q, w->text, need - 1, 1, 1, e);
}

// Prefixes the field to an error from the tokenizer (invalid UTF-8 names only a byte offset).
static int field_err(s2s_derr *e, const char *what, const char *field) {
    s2s_derr inner = *e;
    return s2s_derr_set(e, "%s%s: %s", what, field, inner.msg);
}

// True for what OpenS2S's `if item["speech_units"]` accepts: a non-empty string (or, here, a non-empty array).
static int units_present(const cJSON *u) {
    if (!u || cJSON_IsNull(u)) return 0;
    if (cJSON_IsString(u)) return u->valuestring[0] != 0;
    if (cJSON_IsArray(u)) return u->child != NULL;
    return 1;  // a wrong type: present, and refused by prep_push_units
}

typedef struct dialogue {
    int speech_items;
    const char *spk_emb;  // the speaker embedding path of the speech items ("" = none)
    char spk_what[128];
} dialogue;

static int item_build(s2s_prep_worker *w, prep_seq *q, dialogue *d, const cJSON *item, const char *role, int mi,
                      int ii, s2s_derr *e) {
    char what[96];
    snprintf(what, sizeof what, "messages[%d].content[%d]", mi, ii);
    if (!cJSON_IsObject(item)) return s2s_derr_set(e, "%s must be an object", what);
    const char *audio, *text, *spk;
    if (prep_get_str(item, "audio", &audio, what, e) || prep_get_str(item, "text", &text, what, e) ||
        prep_get_str(item, "spk_emb", &spk, what, e))
        return -1;
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(item, "speech_units");
    int assistant = !strcmp(role, "assistant");
    char field[112];
    if (audio && *audio) {
        snprintf(field, sizeof field, "%s.audio", what);
        if (strcmp(role, "user")) return s2s_derr_set(e, "%s: audio input is only allowed in a user turn", field);
        static const int32_t placeholder = S2S_SHARD_AUDIO_TOKEN;
        if (piece_str(w, q, "<|im_audio_start|>", 0, e) || prep_push_tokens(q, &placeholder, 1, 0, 0) ||
            piece_str(w, q, "<|im_audio_end|>", 0, e))
            return -1;
        return prep_push_audio(w, q->r, audio, field, e);
    }
    if (units_present(units)) {
        snprintf(field, sizeof field, "%s.speech_units", what);
        if (!assistant) return s2s_derr_set(e, "%s: speech output is only allowed in an assistant turn", field);
        if (!text || !*text) return s2s_derr_set(e, "%s.text: a speech response needs its text", what);
        const s2s_shard_sample *s = &q->r->sample;
        // Adjacent speech items would form one token_type-1 span, while OpenS2S pairs every span with one unit
        // sequence (prepare_inputs_labels_for_tts_lm asserts it).
        if (s->n_tokens > 0 && s->token_types[s->n_tokens - 1] == 1)
            return s2s_derr_set(e, "%s follows another speech item directly; their spans would merge into one", what);
        if (speech_piece(w, q, text, e)) return field_err(e, what, ".text");
        if (prep_push_units(w, q->r, units, field, e)) return -1;
        if (!spk) spk = "";
        if (d->speech_items++ == 0) {
            d->spk_emb = spk;
            snprintf(d->spk_what, sizeof d->spk_what, "%s.spk_emb", what);
        } else if (strcmp(spk, d->spk_emb))
            return s2s_derr_set(e, "%s.spk_emb: '%s' differs from '%s' of an earlier speech item; a sample holds one "
                                "speaker embedding", what, spk, d->spk_emb);
        return 0;
    }
    if (text && *text) {
        if (!assistant && strcmp(role, "user") && strcmp(role, "system"))
            return s2s_derr_set(e, "%s: unknown role", what);
        return piece_str(w, q, text, assistant, e) ? field_err(e, what, ".text") : 0;
    }
    return 0;  // an empty item: skipped, as OpenS2S does
}

// Builds one turn's items; a string content is one text item.
static int turn_build(s2s_prep_worker *w, prep_seq *q, dialogue *d, const cJSON *msg, const char *role, int mi,
                      s2s_derr *e) {
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    int assistant = !strcmp(role, "assistant");
    if (prep_turn_open(w, q, role, e)) return -1;
    if (cJSON_IsString(content)) {
        if (*content->valuestring && piece_str(w, q, content->valuestring, assistant, e)) {
            char what[48];
            snprintf(what, sizeof what, "messages[%d]", mi);
            return field_err(e, what, ".content");
        }
    } else if (cJSON_IsArray(content)) {
        int ii = 0;
        for (const cJSON *it = content->child; it; it = it->next, ii++)
            if (item_build(w, q, d, it, role, mi, ii, e)) return -1;
    } else
        return s2s_derr_set(e, "messages[%d].content must be a list of items or a string", mi);
    return prep_turn_close(w, q, assistant, e);
}

int prep_build_instruct(s2s_prep_worker *w, const cJSON *root, s2s_prep_record *r, s2s_derr *e) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(msgs)) return s2s_derr_set(e, "messages must be a list");
    prep_seq q = {r, 0};
    dialogue d = {0};
    int mi = 0;
    const cJSON *m = msgs->child;
    const char *role0 = NULL;
    if (m && cJSON_IsObject(m) && prep_get_str(m, "role", &role0, "messages[0]", e)) return -1;
    // OpenS2S always opens with its fixed system prompt. A leading "system" message (which OpenS2S cannot
    // read) replaces it, rendered as the same pieces.
    if (role0 && !strcmp(role0, "system")) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(content))
            for (const cJSON *it = content->child; it; it = it->next) {
                const char *a = NULL;
                const cJSON *u = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "speech_units") : NULL;
                if (cJSON_IsObject(it) && prep_get_str(it, "audio", &a, "messages[0].content[]", e)) return -1;
                if ((a && *a) || units_present(u))
                    return s2s_derr_set(e, "messages[0]: a system message holds text only");
            }
        if (turn_build(w, &q, &d, m, "system", 0, e)) return -1;
        m = m->next, mi = 1;
    } else if (prep_system(w, &q, S2S_PREP_SYSTEM_PROMPT, e))
        return -1;
    for (; m; m = m->next, mi++) {
        char what[48];
        snprintf(what, sizeof what, "messages[%d]", mi);
        if (!cJSON_IsObject(m)) return s2s_derr_set(e, "%s must be an object", what);
        const char *role;
        if (prep_get_str(m, "role", &role, what, e)) return -1;
        if (!role || (strcmp(role, "user") && strcmp(role, "assistant")))
            return s2s_derr_set(e, "%s.role must be \"user\" or \"assistant\"%s", what,
                                role && !strcmp(role, "system") ? " (a system message may only come first)" : "");
        if (turn_build(w, &q, &d, m, role, mi, e)) return -1;
    }
    const s2s_shard_sample *s = &r->sample;
    int64_t labelled = 0;
    for (int64_t j = 0; j < s->n_tokens; j++) labelled += s->labels[j] != S2S_SHARD_IGNORE;
    if (labelled == 0) return s2s_derr_set(e, "nothing to train on: the dialogue has no assistant turn");
    if (d.speech_items && *d.spk_emb) {
        char path[4200];
        s2s_derr ne;
        if (prep_resolve_path(w->c, d.spk_emb, path, sizeof path, d.spk_what, e)) return -1;
        if (s2s_npy_spk(path, r->sample.spk_emb, S2S_SHARD_SPK_DIM, &ne))
            return s2s_derr_set(e, "%s: %s", d.spk_what, ne.msg);
        r->sample.has_spk_emb = 1;
    }
    return 0;
}
