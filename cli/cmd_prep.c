// cmd_prep.c — `s2s prep`: OpenS2S JSONL manifests (and the stage-1 / stage-2a record forms) to HDF5 shards.
// The work is data/prep/prep.h's; this file is the command line. docs/prep.md describes the records and the output.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "data/prep/prep.h"

#define PREP_MAX_LIST 1024

static void usage(FILE *f) {
    fprintf(f,
            "usage: s2s prep --manifest A.jsonl[,B.jsonl] --tokenizer DIR --out DIR [options]\n\n"
            "  --manifest F[,F]     JSONL manifests (repeatable): OpenS2S {\"messages\": ...} dialogues, stage-1\n"
            "                       {\"audio\", \"continuation\", ...} and stage-2a {\"text\", \"units\"} records\n"
            "  --tokenizer DIR      the LLM's Hugging Face tokenizer (with <|im_audio_start|> ... <|im_tts_end|>)\n"
            "  --tts-tokenizer DIR  the TTS-LM's tokenizer (<|audio_N|> and an eos_token); needed for speech units\n"
            "  --out DIR            writes DIR/<kind>-NNNNN.h5 shards and DIR/prep.json\n"
            "  --shard-mb N         close a shard once it holds N MiB of payload (default 1024)\n"
            "  --jobs N             worker threads (default 1); the output is the same for any N\n"
            "  --audio-root DIR     relative audio and spk_emb paths are relative to DIR (default: as given)\n"
            "  --enable-thinking    no <think></think> on assistant turns (OpenS2S enable_thinking)\n"
            "  --emotion-labels L   comma-separated emotion names; a stage-1 \"emotion\" string is its index here\n"
            "  --max-tokens N       skip records longer than N tokens (default: no limit)\n"
            "  --max-units N        skip records with more than N units (default: no limit)\n"
            "  --max-audio-s S      skip records with an audio longer than S seconds (default: no limit)\n"
            "  --overwrite          replace a previous output in DIR\n"
            "  --quiet              no progress lines\n\n"
            "A bad line is reported as file:line: reason and skipped. Exit 0 when at least one record was kept,\n"
            "1 when none was or on an I/O failure, 2 on a usage error.\n");
}

// Splits a comma-separated list into out (pointers into s, which is modified), appending after *n.
static int split_list(char *s, const char **out, int *n, int max) {
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (!*tok) continue;
        if (*n == max) return -1;
        out[(*n)++] = tok;
    }
    return 0;
}

static int parse_num(const char *opt, const char *v, double lo, double *out) {
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo)) {
        fprintf(stderr, "s2s prep: %s '%s' must be a number >= %g\n", opt, v, lo);
        return -1;
    }
    *out = d;
    return 0;
}

static int run(int argc, char **argv) {
    static const char *manifests[PREP_MAX_LIST], *emotions[PREP_MAX_LIST];
    s2s_prep_opts o = {.manifests = manifests, .emotion_labels = emotions, .jobs = 1,
                       .shard_bytes = (int64_t)1024 << 20, .created_by = "s2s prep 0.1.0"};
    double d;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(stdout), 0;
        if (!strcmp(a, "--enable-thinking")) { o.enable_thinking = 1; continue; }
        if (!strcmp(a, "--overwrite")) { o.overwrite = 1; continue; }
        if (!strcmp(a, "--quiet")) { o.quiet = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "s2s prep: %s needs a value (or is unknown)\n\n", a);
            usage(stderr);
            return 2;
        }
        char *v = argv[++i];
        if (!strcmp(a, "--manifest")) {
            if (split_list(v, manifests, &o.n_manifests, PREP_MAX_LIST)) {
                fprintf(stderr, "s2s prep: more than %d manifests\n", PREP_MAX_LIST);
                return 2;
            }
        } else if (!strcmp(a, "--emotion-labels")) {
            if (split_list(v, emotions, &o.n_emotion_labels, 128)) {
                fprintf(stderr, "s2s prep: more than 128 emotion labels (emotion is stored as int8)\n");
                return 2;
            }
        } else if (!strcmp(a, "--tokenizer")) o.llm_tokenizer = v;
        else if (!strcmp(a, "--tts-tokenizer")) o.tts_tokenizer = v;
        else if (!strcmp(a, "--out")) o.out_dir = v;
        else if (!strcmp(a, "--audio-root")) o.audio_root = v;
        else if (!strcmp(a, "--shard-mb")) {
            if (parse_num(a, v, 1e-6, &d)) return 2;
            o.shard_bytes = (int64_t)(d * 1048576.0) > 0 ? (int64_t)(d * 1048576.0) : 1;
        } else if (!strcmp(a, "--jobs")) {
            if (parse_num(a, v, 1, &d) || d > 1024) return 2;
            o.jobs = (int)d;
        } else if (!strcmp(a, "--max-tokens")) {
            if (parse_num(a, v, 0, &d)) return 2;
            o.max_tokens = (int64_t)d;
        } else if (!strcmp(a, "--max-units")) {
            if (parse_num(a, v, 0, &d)) return 2;
            o.max_units = (int64_t)d;
        } else if (!strcmp(a, "--max-audio-s")) {
            if (parse_num(a, v, 0, &d)) return 2;
            o.max_audio_s = d;
        } else {
            fprintf(stderr, "s2s prep: unknown option %s\n\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.n_manifests || !o.llm_tokenizer || !o.out_dir) {
        fprintf(stderr, "s2s prep: --manifest, --tokenizer and --out are required\n\n");
        usage(stderr);
        return 2;
    }
    s2s_prep_counts c = {0};
    s2s_derr e;
    int rc = s2s_prep_run(&o, &c, &e);
    if (!rc || c.records)
        printf("prep: %lld records: %lld kept (instruct %lld, align %lld, tts_pretrain %lld), %lld skipped; "
           "%lld shards in %s\n",
           (long long)c.records, (long long)c.kept, (long long)c.kept_by_kind[0], (long long)c.kept_by_kind[1],
           (long long)c.kept_by_kind[2], (long long)c.skipped,
           (long long)(c.shards_by_kind[0] + c.shards_by_kind[1] + c.shards_by_kind[2]), o.out_dir);
    if (rc) {
        fprintf(stderr, "s2s prep: %s\n", e.msg);
        return 1;
    }
    if (c.kept == 0) {
        fprintf(stderr, "s2s prep: no record was kept\n");
        return 1;
    }
    return 0;
}

const s2s_cmd s2s_cmd_prep = {"prep", "convert JSONL manifests (OpenS2S messages, stage-1, stage-2a) to shards", run};
