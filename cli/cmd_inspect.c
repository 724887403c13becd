// s2s inspect SHARD.h5 — validates a shard completely (schema at open, then every sample's content) and prints a
// summary, or one sample / all samples. --json prints the same as JSON, exact enough to compare values with
// (ids verbatim, floats with 9 significant digits, which round-trips float32).
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "args.h"
#include "cli.h"
#include "data/shard/shard.h"

static void json_str(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') printf("\\%c", c);
        else if (c < 0x20) printf("\\u%04x", c);
        else putchar(c);
    }
    putchar('"');
}

static void json_i32s(const int32_t *v, int64_t n) {
    printf("[");
    for (int64_t j = 0; j < n; j++) printf(j ? ", %d" : "%d", v[j]);
    printf("]");
}

static void json_sample(int64_t i, const s2s_shard_sample *s) {
    printf("{\"index\": %lld, ", (long long)i);
    printf("\"input_ids\": ");
    json_i32s(s->input_ids, s->n_tokens);
    printf(", \"labels\": ");
    json_i32s(s->labels, s->n_tokens);
    printf(", \"token_types\": [");
    for (int64_t j = 0; j < s->n_tokens; j++) printf(j ? ", %d" : "%d", s->token_types[j]);
    printf("], \"audio\": [");
    const int16_t *pcm = s->audio;
    for (int64_t a = 0; a < s->n_audio; a++) {
        printf(a ? ", [" : "[");
        for (int64_t j = 0; j < s->audio_len[a]; j++) printf(j ? ", %d" : "%d", pcm[j]);
        printf("]");
        pcm += s->audio_len[a];
    }
    printf("], \"units\": ");
    if (s->flags & S2S_SHARD_HAS_UNITS) json_i32s(s->units, s->n_units);
    else printf("null");
    printf(", \"teacher_ids\": ");
    if (s->flags & S2S_SHARD_HAS_TEACHER) {
        json_i32s(s->teacher_ids, s->n_teacher);
        printf(", \"teacher_labels\": ");
        json_i32s(s->teacher_labels, s->n_teacher);
    } else {
        printf("null, \"teacher_labels\": null");
    }
    printf(", \"spk_emb\": ");
    if (s->has_spk_emb) {
        printf("[");
        for (int j = 0; j < S2S_SHARD_SPK_DIM; j++) printf(j ? ", %.9g" : "%.9g", s->spk_emb[j]);
        printf("]");
    } else {
        printf("null");
    }
    printf(", \"emotion\": ");
    if (s->emotion >= 0) printf("%d", s->emotion);
    else printf("null");
    printf(", \"flags\": %d}", s->flags);
}

static void text_ids(const char *key, const int32_t *v, int64_t n) {
    const int64_t shown = 48;
    printf("  %-14s [", key);
    for (int64_t j = 0; j < n && j < shown; j++) printf(j ? " %d" : "%d", v[j]);
    printf(n > shown ? " ... (%lld)]\n" : "]\n", (long long)n);
}

static void text_sample(int64_t i, const s2s_shard_sample *s) {
    printf("sample %lld: %lld tokens, %lld audios, %lld units%s%s%s\n", (long long)i, (long long)s->n_tokens,
           (long long)s->n_audio, (long long)s->n_units, s->n_teacher ? ", teacher prompt" : "",
           s->has_spk_emb ? ", speaker embedding" : "", s->emotion >= 0 ? ", emotion" : "");
    text_ids("input_ids", s->input_ids, s->n_tokens);
    text_ids("labels", s->labels, s->n_tokens);
    printf("  %-14s [", "token_types");
    for (int64_t j = 0; j < s->n_tokens && j < 48; j++) printf(j ? " %d" : "%d", s->token_types[j]);
    printf(s->n_tokens > 48 ? " ...]\n" : "]\n");
    for (int64_t a = 0; a < s->n_audio; a++)
        printf("  %-14s %lld samples (%.3f s)\n", a ? "" : "audio", (long long)s->audio_len[a],
               s->audio_len[a] / (double)S2S_SHARD_SAMPLE_RATE);
    if (s->n_units) text_ids("units", s->units, s->n_units);
    if (s->n_teacher) {
        text_ids("teacher_ids", s->teacher_ids, s->n_teacher);
        text_ids("teacher_labels", s->teacher_labels, s->n_teacher);
    }
    if (s->has_spk_emb) {
        double nrm = 0;
        for (int j = 0; j < S2S_SHARD_SPK_DIM; j++) nrm += (double)s->spk_emb[j] * s->spk_emb[j];
        printf("  %-14s 512 floats, L2 norm %.4f\n", "spk_emb", sqrt(nrm));
    }
    if (s->emotion >= 0) printf("  %-14s %d\n", "emotion", s->emotion);
}

static const char *group_names[] = {"units", "spk_emb", "emotion", "teacher"};

static void text_summary(const s2s_shard *sh, const s2s_shard_stats *st) {
    const s2s_shard_meta *m = s2s_shard_get_meta(sh);
    int g = s2s_shard_groups(sh);
    double sec = st->audio_samples / (double)S2S_SHARD_SAMPLE_RATE;
    printf("%s: OK\n", s2s_shard_path(sh));
    printf("  format        %s version %lld, kind %s\n", S2S_SHARD_FORMAT, (long long)m->version,
           s2s_shard_kind_name(m->kind));
    printf("  samples       %lld\n", (long long)st->samples);
    printf("  tokens        %lld (labelled %lld, speech-response %lld; per sample min %lld max %lld)\n",
           (long long)st->tokens, (long long)st->labelled, (long long)st->speech_tokens, (long long)st->min_tokens,
           (long long)st->max_tokens);
    printf("  audio         %lld clips in %lld samples, %.2f s at %lld Hz (longest %.2f s)\n", (long long)st->audios,
           (long long)st->with_audio, sec, (long long)m->sample_rate,
           st->max_audio_samples / (double)S2S_SHARD_SAMPLE_RATE);
    printf("  units         %lld in %lld samples (longest %lld)\n", (long long)st->units, (long long)st->with_units,
           (long long)st->max_units);
    printf("  teacher       %lld tokens in %lld samples\n", (long long)st->teacher_tokens, (long long)st->with_teacher);
    printf("  spk_emb       %lld samples\n", (long long)st->with_spk_emb);
    printf("  emotion       %lld samples\n", (long long)st->with_emotion);
    printf("  fields        text flags%s", g & S2S_SHARD_GROUP_AUDIO ? " audio" : "");
    for (int b = 0; b < 4; b++)
        if (g & (1 << b)) printf(" %s", group_names[b]);
    printf("\n  llm tokenizer %s\n", m->llm_tokenizer_sha256[0] ? m->llm_tokenizer_sha256 : "(none)");
    printf("  tts tokenizer %s\n", m->tts_tokenizer_sha256[0] ? m->tts_tokenizer_sha256 : "(none)");
    printf("  created by    %s\n", m->created_by);
}

static void json_summary(const s2s_shard *sh, const s2s_shard_stats *st) {
    const s2s_shard_meta *m = s2s_shard_get_meta(sh);
    int g = s2s_shard_groups(sh);
    printf("{\"file\": ");
    json_str(s2s_shard_path(sh));
    printf(", \"ok\": true, \"format\": \"%s\", \"version\": %lld, \"kind\": \"%s\", \"num_samples\": %lld, "
           "\"sample_rate\": %lld, \"llm_tokenizer_sha256\": \"%s\", \"tts_tokenizer_sha256\": \"%s\", "
           "\"created_by\": ",
           S2S_SHARD_FORMAT, (long long)m->version, s2s_shard_kind_name(m->kind), (long long)m->num_samples,
           (long long)m->sample_rate, m->llm_tokenizer_sha256, m->tts_tokenizer_sha256);
    json_str(m->created_by);
    printf(", \"fields\": [\"text\", \"flags\"%s", g & S2S_SHARD_GROUP_AUDIO ? ", \"audio\"" : "");
    for (int b = 0; b < 4; b++)
        if (g & (1 << b)) printf(", \"%s\"", group_names[b]);
    printf("], \"stats\": {\"tokens\": %lld, \"labelled\": %lld, \"speech_tokens\": %lld, \"audios\": %lld, "
           "\"audio_samples\": %lld, \"audio_seconds\": %.6f, \"units\": %lld, \"teacher_tokens\": %lld, "
           "\"with_audio\": %lld, \"with_units\": %lld, \"with_spk_emb\": %lld, \"with_emotion\": %lld, "
           "\"with_teacher\": %lld, \"min_tokens\": %lld, \"max_tokens\": %lld}",
           (long long)st->tokens, (long long)st->labelled, (long long)st->speech_tokens, (long long)st->audios,
           (long long)st->audio_samples, st->audio_samples / (double)S2S_SHARD_SAMPLE_RATE, (long long)st->units,
           (long long)st->teacher_tokens, (long long)st->with_audio, (long long)st->with_units,
           (long long)st->with_spk_emb, (long long)st->with_emotion, (long long)st->with_teacher,
           (long long)st->min_tokens, (long long)st->max_tokens);
}

static int run(int argc, char **argv) {
    const char *which = NULL, *pos[1];
    bool json = false;
    const s2s_arg args[] = {
        {"--sample", S2S_ARG_STR, &which, "I|all", "also print sample I (all: every sample)"},
        {"--json", S2S_ARG_FLAG, &json, NULL, "print JSON instead of text"},
        {NULL},
    };
    const s2s_cli cli = {.cmd = "inspect", .synopsis = "SHARD.h5 [--sample I|all] [--json]", .args = args,
                         .epilog = "  Validates the shard (docs/shard-format.md) and prints a summary; exit 1 naming "
                                   "the fault if any.\n",
                         .min_pos = 1, .max_pos = 1};
    int prc = s2s_args_parse(&cli, argc, argv, pos, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    const char *path = pos[0];
    int64_t first = 0, end = 0;  // the samples to print: [first, end)
    if (which && strcmp(which, "all")) {
        char *stop;
        errno = 0;
        first = strtoll(which, &stop, 10);
        if (errno || *stop || stop == which || first < 0) {
            fprintf(stderr, "s2s inspect: --sample wants a sample index or 'all', got '%s'\n", which);
            return 2;
        }
    }
    s2s_derr e = {{0}};
    s2s_shard *sh = s2s_shard_open(path, &e);
    if (!sh) {
        fprintf(stderr, "s2s inspect: %s\n", e.msg);
        return 1;
    }
    s2s_shard_stats st;
    if (s2s_shard_check(sh, &st, &e)) {
        fprintf(stderr, "s2s inspect: %s\n", e.msg);
        s2s_shard_close(sh);
        return 1;
    }
    if (which) end = strcmp(which, "all") ? first + 1 : s2s_shard_num_samples(sh);
    if (which && end > s2s_shard_num_samples(sh)) {
        fprintf(stderr, "s2s inspect: %s: sample index %lld out of range (the shard has %lld samples)\n", path,
                (long long)first, (long long)s2s_shard_num_samples(sh));
        s2s_shard_close(sh);
        return 1;
    }
    json ? json_summary(sh, &st) : text_summary(sh, &st);
    if (json && which) printf(", \"samples\": [");
    s2s_shard_sample s = {0};
    int rc = 0;
    for (int64_t i = first; i < end; i++) {
        if (s2s_shard_read(sh, i, &s, &e)) {
            fflush(stdout);
            fprintf(stderr, "s2s inspect: %s\n", e.msg);
            rc = 1;
            break;
        }
        if (json) {
            if (i > first) printf(", ");
            json_sample(i, &s);
        } else {
            text_sample(i, &s);
        }
    }
    if (json) printf(which ? "]}\n" : "}\n");
    s2s_shard_sample_free(&s);
    s2s_shard_close(sh);
    return rc;
}

const s2s_cmd s2s_cmd_inspect = {"inspect", "validate an s2s-shard HDF5 file and print a summary", run};
