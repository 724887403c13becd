// shard_check.c — the content rules of one sample (docs/shard-format.md, "Content rules"), shared by the writer
// (nothing invalid is ever written) and the reader (nothing invalid is ever handed out), and the full-file
// check behind `s2s inspect`.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "data/shard/shard.h"

static const char *kind_names[] = {"instruct", "align", "tts_pretrain"};

const char *s2s_shard_kind_name(s2s_shard_kind k) {
    return (unsigned)k < sizeof kind_names / sizeof *kind_names ? kind_names[k] : "?";
}

int s2s_shard_kind_parse(const char *name, s2s_shard_kind *out) {
    for (int k = 0; k < (int)(sizeof kind_names / sizeof *kind_names); k++)
        if (!strcmp(name, kind_names[k])) return *out = (s2s_shard_kind)k, 0;
    return -1;
}

uint8_t s2s_shard_sample_flags(const s2s_shard_sample *s) {
    return (uint8_t)((s->n_units > 0 ? S2S_SHARD_HAS_UNITS : 0) | (s->has_spk_emb ? S2S_SHARD_HAS_SPK_EMB : 0) |
                     (s->emotion >= 0 ? S2S_SHARD_HAS_EMOTION : 0) | (s->n_teacher > 0 ? S2S_SHARD_HAS_TEACHER : 0));
}

void s2s_shard_sample_free(s2s_shard_sample *s) {
    free(s->input_ids);
    free(s->labels);
    free(s->token_types);
    free(s->audio_len);
    free(s->audio);
    free(s->units);
    free(s->teacher_ids);
    free(s->teacher_labels);
    memset(s, 0, sizeof *s);
}

// Labels are unshifted copies of the ids or -100; returns the first offending position or -1, and the count
// of labelled positions.
static int64_t labels_bad(const int32_t *ids, const int32_t *labels, int64_t n, int64_t *labelled) {
    int64_t c = 0;
    for (int64_t j = 0; j < n; j++) {
        if (labels[j] == S2S_SHARD_IGNORE) continue;
        if (labels[j] != ids[j] || ids[j] < 0) return j;
        c++;
    }
    *labelled = c;
    return -1;
}

int s2s_shard_sample_check(s2s_shard_kind kind, const s2s_shard_sample *s, const char *path, int64_t i,
                           s2s_derr *e) {
    if (s->n_tokens < 0 || s->n_audio < 0 || s->n_units < 0 || s->n_teacher < 0)
        return s2s_derr_set(e, "%s: sample %lld: negative length", path, (long long)i);
    int64_t placeholders = 0;
    for (int64_t j = 0; j < s->n_tokens; j++) {
        if (s->token_types[j] != 0 && s->token_types[j] != 1)
            return s2s_derr_set(e, "%s: sample %lld: token_types[%lld] = %d, must be 0 or 1", path, (long long)i,
                                (long long)j, s->token_types[j]);
        if (s->input_ids[j] == S2S_SHARD_AUDIO_TOKEN) placeholders++;
        else if (s->input_ids[j] < 0)
            return s2s_derr_set(e, "%s: sample %lld: input_ids[%lld] = %d, must be >= 0 or -200 (audio)", path,
                                (long long)i, (long long)j, s->input_ids[j]);
    }
    int64_t labelled = 0, bad = labels_bad(s->input_ids, s->labels, s->n_tokens, &labelled);
    if (bad >= 0)
        return s2s_derr_set(e, "%s: sample %lld: labels[%lld] = %d but input_ids[%lld] = %d (labels must be -100 "
                            "or equal the unshifted, non-audio input id)", path, (long long)i, (long long)bad,
                            s->labels[bad], (long long)bad, s->input_ids[bad]);
    if (placeholders != s->n_audio)
        return s2s_derr_set(e, "%s: sample %lld: input_ids has %lld audio placeholders (-200) but the sample has "
                            "%lld audios", path, (long long)i, (long long)placeholders, (long long)s->n_audio);
    for (int64_t a = 0; a < s->n_audio; a++)
        if (s->audio_len[a] <= 0)
            return s2s_derr_set(e, "%s: sample %lld: audio %lld of the sample is empty", path, (long long)i,
                                (long long)a);
    for (int64_t j = 0; j < s->n_units; j++)
        if (s->units[j] < 0)
            return s2s_derr_set(e, "%s: sample %lld: units[%lld] = %d, must be >= 0", path, (long long)i,
                                (long long)j, s->units[j]);
    if (s->n_teacher > 0) {
        for (int64_t j = 0; j < s->n_teacher; j++)
            if (s->teacher_ids[j] < 0)
                return s2s_derr_set(e, "%s: sample %lld: teacher_ids[%lld] = %d, must be >= 0 (the teacher prompt "
                                    "is text only)", path, (long long)i, (long long)j, s->teacher_ids[j]);
        int64_t tl = 0;
        bad = labels_bad(s->teacher_ids, s->teacher_labels, s->n_teacher, &tl);
        if (bad >= 0)
            return s2s_derr_set(e, "%s: sample %lld: teacher_labels[%lld] = %d but teacher_ids[%lld] = %d", path,
                                (long long)i, (long long)bad, s->teacher_labels[bad], (long long)bad,
                                s->teacher_ids[bad]);
        // The KL pairs the i-th labelled teacher position with the i-th labelled student position.
        if (tl != labelled)
            return s2s_derr_set(e, "%s: sample %lld: teacher_labels marks %lld positions but labels marks %lld; the "
                                "kl objective needs them equal", path, (long long)i, (long long)tl,
                                (long long)labelled);
    }
    if (s->has_spk_emb)
        for (int j = 0; j < S2S_SHARD_SPK_DIM; j++)
            if (!isfinite(s->spk_emb[j]))
                return s2s_derr_set(e, "%s: sample %lld: spk_emb[%d] is not finite", path, (long long)i, j);
    if (s->emotion < -1 || s->emotion > 127)
        return s2s_derr_set(e, "%s: sample %lld: emotion = %d, must be -1 (none) or 0..127", path, (long long)i,
                            s->emotion);
    if (kind == S2S_SHARD_ALIGN && s->n_audio < 1)
        return s2s_derr_set(e, "%s: sample %lld: an align sample needs at least one audio", path, (long long)i);
    if (kind == S2S_SHARD_TTS_PRETRAIN && s->n_units < 1)
        return s2s_derr_set(e, "%s: sample %lld: a tts_pretrain sample needs units", path, (long long)i);
    return 0;
}

int s2s_shard_check(s2s_shard *sh, s2s_shard_stats *stats, s2s_derr *e) {
    s2s_shard_stats st = {0};
    s2s_shard_sample s = {0};
    int64_t n = s2s_shard_num_samples(sh);
    st.samples = n;
    st.min_tokens = n ? INT64_MAX : 0;
    for (int64_t i = 0; i < n; i++) {
        if (s2s_shard_read(sh, i, &s, e)) {
            s2s_shard_sample_free(&s);
            return -1;
        }
        st.tokens += s.n_tokens;
        for (int64_t j = 0; j < s.n_tokens; j++) {
            st.labelled += s.labels[j] != S2S_SHARD_IGNORE;
            st.speech_tokens += s.token_types[j] == 1;
        }
        if (s.n_tokens < st.min_tokens) st.min_tokens = s.n_tokens;
        if (s.n_tokens > st.max_tokens) st.max_tokens = s.n_tokens;
        st.audios += s.n_audio;
        for (int64_t a = 0; a < s.n_audio; a++) {
            st.audio_samples += s.audio_len[a];
            if (s.audio_len[a] > st.max_audio_samples) st.max_audio_samples = s.audio_len[a];
        }
        st.units += s.n_units;
        if (s.n_units > st.max_units) st.max_units = s.n_units;
        st.teacher_tokens += s.n_teacher;
        st.with_audio += s.n_audio > 0;
        st.with_units += (s.flags & S2S_SHARD_HAS_UNITS) != 0;
        st.with_spk_emb += (s.flags & S2S_SHARD_HAS_SPK_EMB) != 0;
        st.with_emotion += (s.flags & S2S_SHARD_HAS_EMOTION) != 0;
        st.with_teacher += (s.flags & S2S_SHARD_HAS_TEACHER) != 0;
    }
    s2s_shard_sample_free(&s);
    if (stats) *stats = st;
    return 0;
}
