// gen_tool — drives eval/ (generation, sampling) for tests/eval/test_generate.py, which builds the inputs and
// checks the outputs against transformers.
//   generate MODEL_DIR IN OUT   MODEL_DIR: a Hugging Face Qwen3ForCausalLM directory (config.json + safetensors).
//                               IN: "prompt" i32 [T]; metadata max_new_tokens, eos ("1,5" or ""), do_sample,
//                               temperature, top_k, top_p, seed. OUT: "ids" i32 [n], "hidden" f32 [T + n - 1, H].
//   warp IN OUT                 IN: "logits" f32 [R, V]; metadata temperature, top_k, top_p, seed, draws.
//                               OUT: "warped" f32 [R, V] (HF's warpers), "kept" i32 [R], "ids" i32 [R, draws]
//                               (s2s_sampler_next on each row, draws times, one generator for all rows).
//   config PATH                 s2s_gen_config_read: prints "do_sample T top_k top_p max_new_tokens eos,eos".
// Output buffers are poisoned before use, so a value the library did not write cannot pass. Errors: exit 1.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "eval/gen_config.h"
#include "eval/generate.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

static double meta_num(const s2s_st_file *f, const char *key, double dflt) {
    const char *v = s2s_st_meta(f, key);
    return v && *v ? atof(v) : dflt;
}

static s2s_sample_cfg meta_sample(const s2s_st_file *f) {
    s2s_sample_cfg c = s2s_sample_defaults();
    c.do_sample = meta_num(f, "do_sample", 0) != 0;
    c.temperature = meta_num(f, "temperature", c.temperature);
    c.top_k = (int64_t)meta_num(f, "top_k", (double)c.top_k);
    c.top_p = meta_num(f, "top_p", c.top_p);
    return c;
}

static int cmd_generate(const char *dir, const char *in, const char *outp) {
    char err[512];
    s2s_st_file f;
    S2S_CHECK(s2s_st_open(&f, in, err, sizeof err) == 0, "%s", err);
    const s2s_st_entry *pe = s2s_st_find(&f, "prompt");
    S2S_CHECK(pe && pe->dtype == S2S_I32 && pe->ndim == 1, "%s: needs \"prompt\" i32 [T]", in);
    const int64_t T = pe->shape[0];

    s2s_qwen3_config cfg;
    S2S_CHECK(s2s_qwen3_config_read(&cfg, dir, err, sizeof err) == 0, "%s", err);
    s2s_params p;
    s2s_params_init(&p, S2S_CPU);
    s2s_qwen3 q;
    s2s_qwen3_create(&q, &p, &cfg, "llm_model.", &(s2s_qwen3_opts){.trainable = false});
    s2s_ckpt_source src = {dir, S2S_CKPT_HF_LLM};
    S2S_CHECK(s2s_ckpt_load(&p, &src, 1, NULL, NULL, err, sizeof err) == 0, "%s", err);

    int32_t eos[S2S_CFG_MAX_EOS];
    int n_eos = 0;
    const char *es = s2s_st_meta(&f, "eos");
    for (const char *c = es ? es : ""; *c && n_eos < S2S_CFG_MAX_EOS;) {
        char *end;
        const long v = strtol(c, &end, 10);
        S2S_CHECK(end != c, "%s: eos must be comma-separated ids, got '%s'", in, es);
        eos[n_eos++] = (int32_t)v;
        c = *end == ',' ? end + 1 : end;
    }
    s2s_generate_cfg gc = {.max_new_tokens = (int64_t)meta_num(&f, "max_new_tokens", 16), .eos = eos,
                           .n_eos = n_eos, .sample = meta_sample(&f), .seed = (uint64_t)meta_num(&f, "seed", 0),
                           .want_hidden = true};
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU});
    s2s_kv_cache kv;
    s2s_kv_cache_init_qwen3(&kv, &q, T + gc.max_new_tokens);
    s2s_tensor *ids = s2s_new1(ctx, S2S_I32, T);  // ids [T]
    memcpy(ids->data, pe->data, pe->nbytes);
    s2s_no_grad_begin(ctx);
    s2s_tensor *x = s2s_qwen3_embed(ctx, &q, ids);  // x [T, H]
    s2s_no_grad_end(ctx);
    s2s_generate_out go;
    memset(&go, 0xa5, sizeof go);  // poisoned: everything must be set by the library
    s2s_generate_qwen3(ctx, &q, &kv, x, &gc, &go);
    S2S_CHECK(go.n_hidden == T + go.n_ids - 1, "generate: %lld hidden rows for %lld prompt rows and %lld ids",
              (long long)go.n_hidden, (long long)T, (long long)go.n_ids);

    s2s_st_writer w;
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "ids", S2S_I32, 1, (int64_t[]){go.n_ids}, go.ids);
    s2s_st_writer_add(&w, "hidden", S2S_F32, 2, (int64_t[]){go.n_hidden, go.hidden_size}, go.hidden);
    s2s_st_writer_meta(&w, "hit_eos", go.hit_eos ? "1" : "0");
    S2S_CHECK(s2s_st_writer_write(&w, outp, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    s2s_generate_out_free(&go);
    s2s_kv_cache_free(&kv);
    s2s_ctx_free(ctx);
    s2s_qwen3_free(&q);
    s2s_params_free(&p);
    s2s_st_close(&f);
    return 0;
}

static int cmd_warp(const char *in, const char *outp) {
    char err[512];
    s2s_st_file f;
    S2S_CHECK(s2s_st_open(&f, in, err, sizeof err) == 0, "%s", err);
    const s2s_st_entry *le = s2s_st_find(&f, "logits");
    S2S_CHECK(le && le->dtype == S2S_F32 && le->ndim == 2, "%s: needs \"logits\" f32 [R, V]", in);
    const int64_t R = le->shape[0], V = le->shape[1], draws = (int64_t)meta_num(&f, "draws", 0);
    s2s_sample_cfg c = meta_sample(&f);
    c.do_sample = true;
    s2s_sampler s;
    s2s_sampler_init(&s, &c, V, (uint64_t)meta_num(&f, "seed", 0));
    float *warped = malloc((size_t)(R * V) * sizeof(float)), *row = malloc((size_t)V * sizeof(float));
    int32_t *kept = malloc((size_t)R * sizeof(int32_t)), *ids = malloc((size_t)(R * draws + 1) * sizeof(int32_t));
    memset(warped, 0xff, (size_t)(R * V) * sizeof(float));  // poisoned (NaN)
    memset(kept, 0xff, (size_t)R * sizeof(int32_t));
    memset(ids, 0xff, (size_t)(R * draws + 1) * sizeof(int32_t));
    const float *lg = le->data;
    for (int64_t r = 0; r < R; r++) {
        memcpy(warped + r * V, lg + r * V, (size_t)V * sizeof(float));
        kept[r] = (int32_t)s2s_sampler_warp(&s, warped + r * V);
        for (int64_t d = 0; d < draws; d++) {
            memcpy(row, lg + r * V, (size_t)V * sizeof(float));
            ids[r * draws + d] = s2s_sampler_next(&s, row);
        }
    }
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    s2s_st_writer_add(&w, "warped", S2S_F32, 2, (int64_t[]){R, V}, warped);
    s2s_st_writer_add(&w, "kept", S2S_I32, 1, (int64_t[]){R}, kept);
    if (draws > 0) s2s_st_writer_add(&w, "ids", S2S_I32, 2, (int64_t[]){R, draws}, ids);
    S2S_CHECK(s2s_st_writer_write(&w, outp, err, sizeof err) == 0, "%s", err);
    s2s_st_writer_free(&w);
    free(warped), free(row), free(kept), free(ids);
    s2s_sampler_free(&s);
    s2s_st_close(&f);
    return 0;
}

static int cmd_config(const char *path) {
    char err[512];
    s2s_gen_config c;
    if (s2s_gen_config_read(&c, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    printf("%d %.17g %lld %.17g %lld ", c.sample.do_sample, c.sample.temperature, (long long)c.sample.top_k,
           c.sample.top_p, (long long)c.max_new_tokens);
    for (int i = 0; i < c.n_eos; i++) printf("%s%d", i ? "," : "", c.eos[i]);
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "config")) return cmd_config(argv[2]);
    if (argc == 5 && !strcmp(argv[1], "generate")) return cmd_generate(argv[2], argv[3], argv[4]);
    if (argc == 4 && !strcmp(argv[1], "warp")) return cmd_warp(argv[2], argv[3]);
    fprintf(stderr, "usage: gen_tool generate MODEL_DIR IN OUT | warp IN OUT | config PATH\n");
    return 1;
}
