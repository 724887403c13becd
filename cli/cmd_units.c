// cmd_units.c — `s2s units fit | encode | info`: the speech-unit quantiser of data/units/units.h on the command
// line. docs/units.md describes the features, the k-means and the codebook file.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include "args.h"
#include "cli.h"
#include "data/units/units.h"
#include "model/safetensors.h"

#define UNITS_MAX_INPUTS 65536

static void usage(FILE *f) {
    fprintf(f,
            "usage: s2s units fit --out CODEBOOK.safetensors [options] AUDIO_OR_MANIFEST.jsonl...\n"
            "       s2s units encode --codebook CODEBOOK [--dedup] [--format string|list] AUDIO...\n"
            "       s2s units encode --codebook CODEBOOK [--dedup] [--format string|list] IN.jsonl --out OUT.jsonl\n"
            "       s2s units info [--json] CODEBOOK\n\n"
            "Speech units: k-means over the 128-bin Whisper log-mel (100 frames/s) mean-pooled by 8 (12.5 Hz).\n\n"
            "fit: a .jsonl input contributes every audio it names (each distinct path once); others are audio files\n"
            "  --k K              centroids (default 128; 1..16384, the <|audio_N|> tokens)\n"
            "  --seed S           k-means++ and frame sampling seed (default 42)\n"
            "  --iters N          at most N Lloyd iterations (default 100); stops when assignments stop changing\n"
            "  --max-frames N     cluster a seeded uniform sample of N frames (default 1000000; 0 = all)\n"
            "  --norm M           utterance_mean (default: subtract each utterance's mean frame) | none\n"
            "  --audio-root DIR   relative manifest audio paths are relative to DIR\n"
            "  --init CODEBOOK    start Lloyd from this codebook's centroids (its k and norm) instead of k-means++\n"
            "  --save-frames F    also write F.safetensors: frames F32 [n,128], picks I32 [k], assign I32 [n]\n"
            "  --quiet            no progress lines\n"
            "encode: audio files -> one line each on stdout, `AUDIO<TAB>UNITS`; a manifest -> --out, where every\n"
            "  assistant item with an \"audio\" gains \"speech_units\" (its audio emptied) and every {\"text\", \"audio\"}\n"
            "  record becomes {\"text\", \"units\"}; other records are copied. The forms s2s prep reads:\n"
            "  --format string    <|audio_3|><|audio_7|>... (default)    --format list   [3, 7, ...]\n"
            "  --dedup            collapse runs of the same unit\n"
            "  --audio-root DIR   relative manifest audio paths are relative to DIR\n"
            "Exit status 0 on success, 1 on a failure (named on stderr), 2 on a usage error.\n");
}

static int parse_i64(const char *opt, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "s2s units: %s '%s' must be an integer in [%lld, %lld]\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int save_frames(const char *path, const s2s_units_fit_trace *t, int k) {
    int32_t *picks = malloc(sizeof(int32_t) * k);
    if (!picks) return fprintf(stderr, "s2s units: out of memory\n"), 1;
    for (int j = 0; j < k; j++) picks[j] = (int32_t)t->picks[j];
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    int64_t fs[2] = {t->n, S2S_UNITS_DIM}, ps[1] = {k}, as[1] = {t->n};
    s2s_st_writer_add(&w, "frames", S2S_F32, 2, fs, t->frames);
    s2s_st_writer_add(&w, "picks", S2S_I32, 1, ps, picks);
    s2s_st_writer_add(&w, "assign", S2S_I32, 1, as, t->assign);
    char err[1024];
    int rc = s2s_st_writer_write(&w, path, err, sizeof err);
    if (rc) fprintf(stderr, "s2s units: %s\n", err);
    s2s_st_writer_free(&w);
    free(picks);
    return rc ? 1 : 0;
}

static int cmd_fit(int argc, char **argv) {
    static const char *inputs[UNITS_MAX_INPUTS];
    s2s_units_fit_opts o = {.inputs = inputs, .k = 128, .seed = 42, .max_iters = 100, .max_frames = 1000000,
                            .norm = S2S_UNITS_NORM_UTTERANCE_MEAN, .log = stderr};
    const char *out = NULL, *frames_out = NULL, *init = NULL, *norm = NULL;
    int64_t k = -1, seed = 42, iters = 100, max_frames = 1000000;
    bool quiet = false;
    const s2s_arg args[] = {
        {"--out", S2S_ARG_STR, &out, "CODEBOOK", "the codebook to write (.safetensors)"},
        {"--k", S2S_ARG_INT, &k, "K", "centroids (default 128; 1..16384, the <|audio_N|> tokens)"},
        {"--seed", S2S_ARG_INT, &seed, "S", "k-means++ and frame sampling seed (default 42)"},
        {"--iters", S2S_ARG_INT, &iters, "N", "at most N Lloyd iterations (default 100)"},
        {"--max-frames", S2S_ARG_INT, &max_frames, "N", "cluster a seeded sample of N frames (default 1e6; 0 = all)"},
        {"--norm", S2S_ARG_STR, &norm, "M", "utterance_mean (default: subtract each utterance's mean) | none"},
        {"--audio-root", S2S_ARG_STR, &o.audio_root, "DIR", "relative manifest audio paths are relative to DIR"},
        {"--init", S2S_ARG_STR, &init, "CODEBOOK", "start Lloyd from this codebook's centroids (its k and norm)"},
        {"--save-frames", S2S_ARG_STR, &frames_out, "F", "also write frames, k-means++ picks and assignments to F"},
        {"--quiet", S2S_ARG_FLAG, &quiet, NULL, "no progress lines"},
        {NULL},
    };
    const s2s_cli cli = {.cmd = "units fit", .synopsis = "--out CODEBOOK.safetensors [options] AUDIO_OR_MANIFEST.jsonl...",
                         .args = args, .max_pos = UNITS_MAX_INPUTS,
                         .epilog = "  A .jsonl input contributes every audio it names (each distinct path once); others "
                                   "are audio files.\n"};
    int n_pos = 0, prc = s2s_args_parse(&cli, argc, argv, inputs, &n_pos);
    if (prc) return prc == 1 ? 0 : 2;
    o.n_inputs = n_pos;
    if (quiet) o.log = NULL;
    const bool k_given = k >= 0, norm_given = norm != NULL;
    long long v;
    char buf[32];
    if (k_given) {
        snprintf(buf, sizeof buf, "%lld", (long long)k);
        if (parse_i64("--k", buf, 1, S2S_UNITS_MAX_K, &v)) return 2;
        o.k = (int)v;
    }
    if (seed < 0 || iters < 0 || iters > 1 << 30 || max_frames < 0 || max_frames > (int64_t)1 << 40)
        return fprintf(stderr, "s2s units fit: --seed, --iters and --max-frames must be non-negative (iters <= 2^30, "
                       "max-frames <= 2^40)\n"), 2;
    o.seed = (uint64_t)seed, o.max_iters = (int)iters, o.max_frames = max_frames;
    if (norm && !strcmp(norm, "utterance_mean")) o.norm = S2S_UNITS_NORM_UTTERANCE_MEAN;
    else if (norm && !strcmp(norm, "none")) o.norm = S2S_UNITS_NORM_NONE;
    else if (norm) return fprintf(stderr, "s2s units fit: --norm must be utterance_mean or none\n"), 2;
    if (!out || !o.n_inputs) return fprintf(stderr, "s2s units fit: --out and at least one input are required\n"), 2;
    s2s_units_codebook cb, start = {0};
    s2s_units_fit_trace tr;
    s2s_derr e;
    if (init) {
        if (s2s_units_codebook_load(&start, init, &e)) return fprintf(stderr, "s2s units fit: --init: %s\n", e.msg), 1;
        if ((k_given && o.k != start.k) || (norm_given && o.norm != start.norm)) {
            fprintf(stderr, "s2s units fit: --init %s has k %d and norm %s; --k / --norm disagree\n", init, start.k,
                    s2s_units_norm_name(start.norm));
            s2s_units_codebook_free(&start);
            return 2;
        }
        o.k = start.k, o.norm = start.norm, o.init = start.centroids;
    }
    int bad = s2s_units_fit(&o, &cb, frames_out ? &tr : NULL, &e);
    s2s_units_codebook_free(&start);
    if (bad) {
        fprintf(stderr, "s2s units fit: %s\n", e.msg);
        return 1;
    }
    int rc = 0;
    if (s2s_units_codebook_save(&cb, out, &e)) fprintf(stderr, "s2s units fit: %s\n", e.msg), rc = 1;
    if (!rc && frames_out) rc = save_frames(frames_out, &tr, cb.k);
    if (frames_out) s2s_units_fit_trace_free(&tr);
    s2s_units_codebook_free(&cb);
    return rc;
}

static int cmd_encode(int argc, char **argv) {
    static const char *inputs[UNITS_MAX_INPUTS];
    int n_inputs = 0, n_manifests = 0;
    bool dedup = false;
    s2s_units_format fmt = S2S_UNITS_FMT_STRING;
    const char *codebook = NULL, *out = NULL, *root = NULL, *format = NULL;
    const s2s_arg args[] = {
        {"--codebook", S2S_ARG_STR, &codebook, "CODEBOOK", "from s2s units fit"},
        {"--out", S2S_ARG_STR, &out, "OUT.jsonl", "with a manifest input: the rewritten manifest"},
        {"--audio-root", S2S_ARG_STR, &root, "DIR", "relative manifest audio paths are relative to DIR"},
        {"--dedup", S2S_ARG_FLAG, &dedup, NULL, "merge runs of the same unit"},
        {"--format", S2S_ARG_STR, &format, "string|list", "<|audio_N|> strings (default) or index lists"},
        {NULL},
    };
    const s2s_cli cli = {.cmd = "units encode", .args = args, .max_pos = UNITS_MAX_INPUTS,
                         .synopsis = "--codebook CODEBOOK [--dedup] [--format string|list] (AUDIO... | IN.jsonl "
                                     "--out OUT.jsonl)",
                         .epilog = "  Audio files: one line each on stdout, AUDIO<TAB>UNITS. A manifest: every "
                                   "assistant audio item gains speech_units (docs/units.md).\n"};
    int prc = s2s_args_parse(&cli, argc, argv, inputs, &n_inputs);
    if (prc) return prc == 1 ? 0 : 2;
    for (int i = 0; i < n_inputs; i++) {
        const size_t L = strlen(inputs[i]);
        n_manifests += L >= 6 && !strcmp(inputs[i] + L - 6, ".jsonl");
    }
    if (format && !strcmp(format, "list")) fmt = S2S_UNITS_FMT_LIST;
    else if (format && strcmp(format, "string"))
        return fprintf(stderr, "s2s units encode: --format must be string or list\n"), 2;
    if (!codebook || !n_inputs) return fprintf(stderr, "s2s units encode: --codebook and an input are required\n"), 2;
    if (n_manifests && (n_inputs != 1 || !out))
        return fprintf(stderr, "s2s units encode: a manifest is encoded alone, with --out OUT.jsonl\n"), 2;
    if (!n_manifests && out)
        return fprintf(stderr, "s2s units encode: --out is for a manifest; audio units go to stdout\n"), 2;
    s2s_units_codebook cb;
    s2s_derr e;
    if (s2s_units_codebook_load(&cb, codebook, &e)) {
        fprintf(stderr, "s2s units encode: %s\n", e.msg);
        return 1;
    }
    int rc = 0;
    if (n_manifests) {
        s2s_units_manifest_opts mo = {.in = inputs[0], .out = out, .audio_root = root, .dedup = dedup, .format = fmt};
        s2s_units_manifest_stats st;
        rc = s2s_units_encode_manifest(&cb, &mo, &st, &e) ? 1 : 0;
        fprintf(stderr, "units encode: %lld records, %lld audios encoded (%lld units), %lld failed -> %s\n",
                (long long)st.records, (long long)st.encoded_items, (long long)st.units, (long long)st.errors, out);
        if (rc) fprintf(stderr, "s2s units encode: %s\n", e.msg);
    } else {
        s2s_logmel *lm = NULL;
        if (s2s_logmel_new(&lm, &e)) {
            fprintf(stderr, "s2s units encode: %s\n", e.msg);
            s2s_units_codebook_free(&cb);
            return 1;
        }
        enum { B = 64 };  // audios encoded in parallel, printed in order
        for (int i = 0; i < n_inputs && !rc; i += B) {
            int nb = n_inputs - i < B ? n_inputs - i : B;
            int32_t *u[B];
            int64_t n[B];
            s2s_derr errs[B];
            s2s_units_encode_batch(&cb, lm, inputs + i, nb, dedup, u, n, errs);
            for (int b = 0; b < nb; b++) {
                char *s = rc || !u[b] ? NULL : s2s_units_format_str(u[b], n[b], fmt);
                if (!rc && !u[b]) fprintf(stderr, "s2s units encode: %s\n", errs[b].msg), rc = 1;
                else if (!rc && !s) fprintf(stderr, "s2s units encode: out of memory\n"), rc = 1;
                else if (!rc) printf("%s\t%s\n", inputs[i + b], s);
                free(s);
                free(u[b]);
            }
        }
        s2s_logmel_free(lm);
        if (fflush(stdout)) fprintf(stderr, "s2s units encode: writing stdout failed\n"), rc = 1;
    }
    s2s_units_codebook_free(&cb);
    return rc;
}

static int cmd_info(int argc, char **argv) {
    const char *pos[1];
    bool json = false;
    const s2s_arg args[] = {{"--json", S2S_ARG_FLAG, &json, NULL, "print JSON"}, {NULL}};
    const s2s_cli cli = {.cmd = "units info", .synopsis = "[--json] CODEBOOK", .args = args, .min_pos = 1,
                         .max_pos = 1};
    int prc = s2s_args_parse(&cli, argc, argv, pos, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    const char *path = pos[0];
    s2s_units_codebook cb;
    s2s_derr e;
    if (s2s_units_codebook_load(&cb, path, &e)) {
        fprintf(stderr, "s2s units info: %s\n", e.msg);
        return 1;
    }
    int64_t used = 0, lo = -1, hi = 0;
    for (int j = 0; j < cb.k; j++) {
        used += cb.counts[j] > 0;
        if (lo < 0 || cb.counts[j] < lo) lo = cb.counts[j];
        if (cb.counts[j] > hi) hi = cb.counts[j];
    }
    if (json)
        printf("{\"k\": %d, \"dim\": %d, \"mel_bins\": %d, \"sample_rate\": %d, \"hop\": %d, \"pool\": %d, "
               "\"frame_rate\": %g, \"norm\": \"%s\", \"seed\": %llu, \"max_iters\": %d, \"iterations\": %d, "
               "\"converged\": %s, \"relocated\": %d, \"inertia\": %.9g, \"frames\": %lld, \"frames_seen\": %lld, "
               "\"utterances\": %lld, \"clusters_used\": %lld, \"cluster_min\": %lld, \"cluster_max\": %lld}\n",
               cb.k, cb.dim, cb.mel_bins, cb.sample_rate, cb.hop, cb.pool,
               (double)cb.sample_rate / cb.hop / cb.pool, s2s_units_norm_name(cb.norm),
               (unsigned long long)cb.seed, cb.max_iters, cb.stats.iterations, cb.stats.converged ? "true" : "false",
               cb.stats.relocated, cb.stats.inertia, (long long)cb.frames, (long long)cb.frames_seen,
               (long long)cb.utterances, (long long)used, (long long)lo, (long long)hi);
    else {
        printf("%s: s2s units codebook\n", path);
        printf("  k %d centroids of %d: Whisper log-mel, %d bins, %d Hz, hop %d, mean-pooled by %d (%g Hz), norm %s\n",
               cb.k, cb.dim, cb.mel_bins, cb.sample_rate, cb.hop, cb.pool, (double)cb.sample_rate / cb.hop / cb.pool,
               s2s_units_norm_name(cb.norm));
        printf("  fitted with seed %llu: k-means++, %d Lloyd iterations of at most %d (%s), %d empty clusters "
               "re-seeded\n", (unsigned long long)cb.seed, cb.stats.iterations, cb.max_iters,
               cb.stats.converged ? "converged" : "iteration limit", cb.stats.relocated);
        printf("  %lld frames clustered of %lld from %lld audios, inertia %.6g\n", (long long)cb.frames,
               (long long)cb.frames_seen, (long long)cb.utterances, cb.stats.inertia);
        printf("  clusters used %lld of %d, sizes %lld..%lld\n", (long long)used, cb.k, (long long)lo, (long long)hi);
    }
    s2s_units_codebook_free(&cb);
    return 0;
}

static int run(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "fit")) return cmd_fit(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "encode")) return cmd_encode(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "info")) return cmd_info(argc - 1, argv + 1);
    int help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    usage(help ? stdout : stderr);
    return help ? 0 : 2;
}

const s2s_cmd s2s_cmd_units = {"units", "speech units: fit a k-means codebook on log-mel, encode audio / manifests", run};
