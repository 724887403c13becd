// cmd_prep.c — `s2s prep`: OpenS2S JSONL manifests (and the stage-1 / stage-2a record forms) to HDF5 shards.
// The work is data/prep/prep.h's; this file is the command line. docs/prep.md describes the records and the output.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "args.h"
#include "cli.h"
#include "data/prep/prep.h"

static int range(const char *opt, double v, double lo, double hi) {
    if (v >= lo && v <= hi) return 0;
    fprintf(stderr, "s2s prep: %s %g must be in [%g, %g]\n", opt, v, lo, hi);
    return -1;
}

static int run(int argc, char **argv) {
    static s2s_arg_list manifests, emotions;
    const char *tok = NULL, *tts_tok = NULL, *out = NULL, *audio_root = NULL;
    double shard_mb = 1024, jobs = 1, max_tokens = 0, max_units = 0, max_audio_s = 0;
    bool thinking = false, overwrite = false, quiet = false;
    const s2s_arg args[] = {
        {"--manifest", S2S_ARG_LIST, &manifests, "F[,F]", "JSONL manifests (repeatable): OpenS2S {\"messages\"} "
         "dialogues, stage-1 {\"audio\", \"continuation\", ...}, stage-2a {\"text\", \"units\"}"},
        {"--tokenizer", S2S_ARG_STR, &tok, "DIR", "the LLM's Hugging Face tokenizer (with <|im_audio_start|> ...)"},
        {"--tts-tokenizer", S2S_ARG_STR, &tts_tok, "DIR", "the TTS-LM's tokenizer (<|audio_N|>, eos); for units"},
        {"--out", S2S_ARG_STR, &out, "DIR", "writes DIR/<kind>-NNNNN.h5 shards and DIR/prep.json"},
        {"--shard-mb", S2S_ARG_F64, &shard_mb, "N", "close a shard once it holds N MiB of payload (default 1024)"},
        {"--jobs", S2S_ARG_F64, &jobs, "N", "worker threads (default 1); the output is the same for any N"},
        {"--audio-root", S2S_ARG_STR, &audio_root, "DIR", "relative audio / spk_emb paths are relative to DIR"},
        {"--enable-thinking", S2S_ARG_FLAG, &thinking, NULL, "no <think></think> on assistant turns (OpenS2S)"},
        {"--emotion-labels", S2S_ARG_LIST, &emotions, "L", "emotion names; a stage-1 \"emotion\" string is its index"},
        {"--max-tokens", S2S_ARG_F64, &max_tokens, "N", "skip records longer than N tokens (default: no limit)"},
        {"--max-units", S2S_ARG_F64, &max_units, "N", "skip records with more than N units (default: no limit)"},
        {"--max-audio-s", S2S_ARG_F64, &max_audio_s, "S", "skip records with an audio longer than S seconds"},
        {"--overwrite", S2S_ARG_FLAG, &overwrite, NULL, "replace a previous output in DIR"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress lines"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "prep", .synopsis = "--manifest A.jsonl[,B.jsonl] --tokenizer DIR --out DIR [options]", .args = args,
        .epilog = "A bad line is reported as file:line: reason and skipped. Exit 0 when at least one record was kept,\n"
                  "1 when none was or on an I/O failure, 2 on a usage error.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (emotions.n > 128) {
        fprintf(stderr, "s2s prep: more than 128 emotion labels (emotion is stored as int8)\n");
        return 2;
    }
    if (range("--shard-mb", shard_mb, 1e-6, 1e9) || range("--jobs", jobs, 1, 1024) ||
        range("--max-tokens", max_tokens, 0, 1e15) || range("--max-units", max_units, 0, 1e15) ||
        range("--max-audio-s", max_audio_s, 0, 1e9))
        return 2;
    s2s_prep_opts o = {.manifests = manifests.v, .n_manifests = manifests.n, .emotion_labels = emotions.v,
                       .n_emotion_labels = emotions.n, .jobs = (int)jobs, .llm_tokenizer = tok,
                       .tts_tokenizer = tts_tok, .out_dir = out, .audio_root = audio_root,
                       .enable_thinking = thinking, .overwrite = overwrite, .quiet = quiet,
                       .max_tokens = (int64_t)max_tokens, .max_units = (int64_t)max_units, .max_audio_s = max_audio_s,
                       .created_by = "s2s prep 0.1.0"};
    o.shard_bytes = (int64_t)(shard_mb * 1048576.0) > 0 ? (int64_t)(shard_mb * 1048576.0) : 1;
    if (!o.n_manifests || !o.llm_tokenizer || !o.out_dir) {
        fprintf(stderr, "s2s prep: --manifest, --tokenizer and --out are required\n\n");
        s2s_args_usage(&cli, stderr);
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
