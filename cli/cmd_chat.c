// cmd_chat.c — `s2s chat`: one turn answered as OpenS2S's model_worker.py answers it, text streamed to stdout and
// units to --units-out as each round produces them (eval/session.h does the work).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "args.h"
#include "autograd/check.h"
#include "cli.h"
#include "data/prep/npy.h"
#include "eval/session.h"

typedef struct stream {
    s2s_session *s;
    bool quiet;           // --json: no streaming on stdout
    FILE *units;          // --units-out
    int32_t *text;        // the text ids so far
    int64_t n_text, cap;
    size_t printed;       // bytes of the decoded text already on stdout
} stream;

// Prints the text decoded so far beyond what is out, holding back an incomplete UTF-8 character at the end
// (the lossy decode shows it as U+FFFD until its last byte arrives).
static void flush_text(stream *st, bool final) {
    size_t len = 0;
    s2s_derr de;
    char *t = s2s_tok_decode(st->s->tok, st->text, (size_t)st->n_text, 1, &len, &de);
    if (!t) return;
    size_t upto = len;
    if (!final && len >= 3 && !memcmp(t + len - 3, "\xEF\xBF\xBD", 3)) upto = len - 3;
    if (upto > st->printed) {
        fwrite(t + st->printed, 1, upto - st->printed, stdout);
        fflush(stdout);
        st->printed = upto;
    }
    free(t);
}

static void on_text(void *user, int b, const int32_t *ids, int64_t n) {
    (void)b;
    stream *st = user;
    if (st->n_text + n > st->cap) {
        st->cap = (st->n_text + n) * 2 + 64;
        st->text = s2s_realloc(st->text, (size_t)st->cap * sizeof *st->text);
    }
    memcpy(st->text + st->n_text, ids, (size_t)n * sizeof *ids);
    st->n_text += n;
    if (!st->quiet) flush_text(st, false);
}

static void on_units(void *user, int b, const int32_t *ids, int64_t n) {
    (void)b;
    stream *st = user;
    if (!st->units) return;
    int32_t *u = s2s_malloc((size_t)(n + 1) * sizeof *u);
    const int64_t k = s2s_session_units(st->s, ids, n, u);
    for (int64_t i = 0; i < k; i++) fprintf(st->units, "%d\n", u[i]);
    fflush(st->units);
    free(u);
}

static cJSON *ints(const int32_t *v, int64_t n) {
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
    return a;
}

static int run(int argc, char **argv) {
    const char *model = NULL, *audio = NULL, *text = NULL, *system = NULL, *spk_path = NULL, *units_out = NULL;
    const char *device = "cpu";
    int64_t max_new = 0, tts_max_new = 0, seed = 0, threads = 0;
    double temperature = -1, top_p = -1;
    bool json = false, tts_sample = false, print_prompt = false;
    const s2s_arg args[] = {
        {"--model", S2S_ARG_STR, &model, "DIR", "OpenS2S / exported directory, training checkpoint, or run directory"},
        {"--audio", S2S_ARG_STR, &audio, "FILE", "the user's speech (any libsndfile format; resampled to 16 kHz)"},
        {"--text", S2S_ARG_STR, &text, "STR", "the user's text (after the audio when both are given)"},
        {"--system", S2S_ARG_STR, &system, "STR", "system prompt (default \"You are a helpful assistant.\")"},
        {"--max-new", S2S_ARG_INT, &max_new, "N", "text tokens at most (default: generation_config.json, else 512)"},
        {"--tts-max-new", S2S_ARG_INT, &tts_max_new, "N", "speech units at most (default: tts/, else 512)"},
        {"--temperature", S2S_ARG_F64, &temperature, "T", "0: greedy; > 0: sample the text (default: the config's)"},
        {"--top-p", S2S_ARG_F64, &top_p, "P", "nucleus sampling of the text (default: the config's)"},
        {"--tts-sample", S2S_ARG_FLAG, &tts_sample, NULL, "sample the units too (model_worker.py does)"},
        {"--seed", S2S_ARG_INT, &seed, "S", "sampling seed (same seed, same reply)"},
        {"--spk", S2S_ARG_STR, &spk_path, "FILE.npy", "speaker embedding [512] (OpenS2S's generate uses zeros)"},
        {"--units-out", S2S_ARG_STR, &units_out, "FILE", "speech units 0..16383, one per line, as produced"},
        {"--json", S2S_ARG_FLAG, &json, NULL, "one JSON line at the end: text, text_ids, units, timings"},
        {"--print-prompt", S2S_ARG_FLAG, &print_prompt, NULL, "print the prompt's token ids as JSON and exit"},
        {"--device", S2S_ARG_STR, &device, "cpu|cuda", "where the model runs (default cpu)"},
        {"--threads", S2S_ARG_INT, &threads, "N", "CPU threads (default: OpenMP's)"},
        {NULL},
    };
    const s2s_cli cli = {
        .cmd = "chat", .synopsis = "--model DIR (--audio FILE | --text STR) [options]", .args = args,
        .epilog = "The prompt is OpenS2S model_worker.py's (Qwen3 chat template, thinking off, <|im_tts_start|>); the\n"
                  "reply is OmniSpeechModel.generate(units_gen=True)'s, greedy unless a config or --temperature says\n"
                  "otherwise. Text goes to stdout as each round of the interleave produces it.\n"};
    int prc = s2s_args_parse(&cli, argc, argv, NULL, NULL);
    if (prc) return prc == 1 ? 0 : 2;
    if (!model || (!audio && !text)) {
        fprintf(stderr, "s2s chat: --model and one of --audio / --text are required\n\n");
        s2s_args_usage(&cli, stderr);
        return 2;
    }
    char err[4096];
    float spk[512];
    if (spk_path) {
        s2s_derr de;
        if (s2s_npy_spk(spk_path, spk, 512, &de)) {
            fprintf(stderr, "s2s chat: --spk: %s\n", de.msg);
            return 1;
        }
    }
    s2s_session s;
    if (s2s_session_open(&s, model, device, (int)threads, err, sizeof err)) {
        fprintf(stderr, "s2s chat: %s\n", err);
        return 1;
    }
    const s2s_turn turn = {.system = system, .audio = audio, .text = text};
    if (print_prompt) {
        s2s_prompt_item items[2];
        int n = 0;
        if (audio) items[n++] = (s2s_prompt_item){.text = NULL};
        if (text) items[n++] = (s2s_prompt_item){.text = text};
        s2s_prompt p;
        int rc = s2s_prompt_build(s.enc, system, items, n, &p, err, sizeof err);
        if (!rc) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "prompt", p.text);
            cJSON_AddItemToObject(j, "input_ids", ints(p.ids, p.n));
            char *o = cJSON_PrintUnformatted(j);
            printf("%s\n", o);
            free(o), cJSON_Delete(j);
            s2s_prompt_free(&p);
        } else {
            fprintf(stderr, "s2s chat: %s\n", err);
        }
        s2s_session_close(&s);
        return rc ? 1 : 0;
    }
    stream st = {.s = &s, .quiet = json};
    if (units_out && !(st.units = fopen(units_out, "w"))) {
        fprintf(stderr, "s2s chat: --units-out %s: cannot open\n", units_out);
        s2s_session_close(&s);
        return 1;
    }
    s2s_reply_opts o = s2s_reply_defaults();
    o.max_new_tokens = max_new, o.tts_max_new_tokens = tts_max_new, o.temperature = temperature, o.top_p = top_p;
    o.tts_sample = tts_sample, o.seed = (uint64_t)seed, o.spk = spk_path ? spk : NULL;
    o.on_text = on_text, o.on_units = on_units, o.user = &st;
    s2s_reply r;
    int rc = s2s_session_reply(&s, &turn, &o, &r, err, sizeof err);
    if (rc) fprintf(stderr, "s2s chat: %s\n", err);
    if (!rc && !json) {
        flush_text(&st, true);
        printf("\n");
    }
    if (!rc && json) {
        size_t len = 0;
        s2s_derr de;
        char *t = s2s_tok_decode(s.tok, r.out.text_ids, (size_t)r.out.n_text, 1, &len, &de);
        int32_t *u = s2s_malloc((size_t)(r.out.n_units + 1) * sizeof *u);
        const int64_t nu = s2s_session_units(&s, r.out.units, r.out.n_units, u);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "text", t ? t : "");
        cJSON_AddItemToObject(j, "text_ids", ints(r.out.text_ids, r.out.n_text));
        cJSON_AddItemToObject(j, "units", ints(u, nu));
        cJSON_AddItemToObject(j, "tts_ids", ints(r.out.units, r.out.n_units));
        cJSON *tm = cJSON_AddObjectToObject(j, "timings");
        cJSON_AddNumberToObject(tm, "prompt_s", r.t_prompt);
        cJSON_AddNumberToObject(tm, "first_text_s", r.t_prompt + r.out.t_first_text);
        cJSON_AddNumberToObject(tm, "first_units_s", r.t_prompt + r.out.t_first_units);
        cJSON_AddNumberToObject(tm, "llm_tokens_per_s", r.out.t_llm > 0 ? (double)r.out.n_text / r.out.t_llm : 0);
        cJSON_AddNumberToObject(tm, "tts_tokens_per_s", r.out.t_tts > 0 ? (double)r.out.n_units / r.out.t_tts : 0);
        cJSON_AddNumberToObject(tm, "rounds", (double)r.out.rounds);
        cJSON_AddStringToObject(tm, "device", s.device);
        char *o2 = cJSON_PrintUnformatted(j);
        printf("%s\n", o2);
        free(o2), cJSON_Delete(j), free(t), free(u);
    }
    if (!rc) s2s_reply_free(&r);
    if (st.units) fclose(st.units);
    free(st.text);
    s2s_session_close(&s);
    return rc ? 1 : 0;
}

const s2s_cmd s2s_cmd_chat = {"chat", "answer one turn (speech and/or text in; text and speech units out)", run};
