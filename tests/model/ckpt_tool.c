// ckpt_tool — drives model/ checkpoint and config I/O for tests/model/test_checkpoint.py, which builds the
// inputs with Python safetensors / transformers and checks the outputs with them.
//   open PATH                          open a checkpoint (dir, file or index); print "ok N_TENSORS N_FILES"
//   dump PATH OUT                      every float tensor of PATH into OUT as F32 (I32 kept as is)
//   list LAYOUT=PATH...                s2s_ckpt_list
//   resave LAYOUT SRC OUT DTYPE MAX_SHARD PREFIX|-
//                                      registry shaped like SRC, loaded strictly, saved with the options
//   load-hf AUDIO LLM TTS OUT          registry shaped like the mapped three dirs plus OpenS2S's fresh modules,
//                                      s2s_ckpt_load_hf, saved to OUT (f32, OpenS2S names); prints the report
//   config KIND PATH                   parse (KIND qwen3 | encoder | omnispeech) and print the parsed values
//   config-write KIND IN OUT           parse IN, write OUT
// Errors go to stderr with exit status 1.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/params.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/safetensors_index.h"

static int die(const char *msg) {
    fprintf(stderr, "%s\n", msg);
    return 1;
}

static int parse_layout(const char *s, s2s_ckpt_layout *out) {
    static const char *names[] = {"opens2s", "audio", "llm", "tts"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) { *out = (s2s_ckpt_layout)i; return 0; }
    return -1;
}

// Registers one f32 parameter per mapped tensor of the source, as the model code would.
static int add_source_params(s2s_params *p, const char *path, s2s_ckpt_layout layout, char *err, size_t n) {
    s2s_st_dir d;
    if (s2s_st_dir_open(&d, path, err, n)) return -1;
    bool bare = layout == S2S_CKPT_HF_AUDIO;
    for (int i = 0; i < d.n; i++) bare &= strstr(d.refs[i].e->name, "audio_tower.") == NULL;
    for (int i = 0; i < d.n; i++) {
        const s2s_st_entry *e = d.refs[i].e;
        char name[512], module[512];
        if (!s2s_ckpt_map_name(layout, e->name, bare, name, sizeof name)) continue;
        snprintf(module, sizeof module, "%s", name);
        char *dot = strchr(module, '.');
        if (dot) *dot = 0;
        s2s_params_add(p, name, module, e->ndim, e->shape, true, true);
    }
    s2s_st_dir_close(&d);
    return 0;
}

static int cmd_open(int argc, char **argv) {
    char err[4096];
    s2s_st_dir d;
    if (argc != 3) return die("usage: open PATH");
    if (s2s_st_dir_open(&d, argv[2], err, sizeof err)) return die(err);
    printf("ok %d %d\n", d.n, d.n_files);
    s2s_st_dir_close(&d);
    return 0;
}

static int cmd_dump(int argc, char **argv) {
    char err[4096];
    s2s_st_dir d;
    if (argc != 4) return die("usage: dump PATH OUT");
    if (s2s_st_dir_open(&d, argv[2], err, sizeof err)) return die(err);
    s2s_st_writer w;
    s2s_st_writer_init(&w);
    for (int i = 0; i < d.n; i++) {
        const s2s_st_entry *e = d.refs[i].e;
        if (!e->supported) continue;
        s2s_dtype to = e->dtype == S2S_I32 ? S2S_I32 : S2S_F32;
        s2s_st_writer_add_from(&w, e->name, to, e->ndim, e->shape, e->data, e->dtype, S2S_CPU);
    }
    int rc = s2s_st_writer_write(&w, argv[3], err, sizeof err);
    s2s_st_writer_free(&w);
    s2s_st_dir_close(&d);
    return rc ? die(err) : 0;
}

static int cmd_list(int argc, char **argv) {
    char err[4096];
    s2s_ckpt_source src[8];
    int n = 0;
    for (int i = 2; i < argc && n < 8; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) return die("usage: list LAYOUT=PATH...");
        *eq = 0;
        if (parse_layout(argv[i], &src[n].layout)) return die("unknown layout");
        src[n++].path = eq + 1;
    }
    return s2s_ckpt_list(src, n, stdout, err, sizeof err) ? die(err) : 0;
}

static int cmd_resave(int argc, char **argv) {
    char err[4096];
    if (argc != 8) return die("usage: resave LAYOUT SRC OUT DTYPE MAX_SHARD PREFIX|-");
    s2s_ckpt_layout layout;
    if (parse_layout(argv[2], &layout)) return die("unknown layout");
    int dt = s2s_dtype_from_name(argv[5]);
    if (dt < 0) return die("unknown dtype");
    s2s_params p;
    s2s_params_init(&p, S2S_CPU);
    s2s_ckpt_source src = {argv[3], layout};
    s2s_ckpt_save_opts o = {(s2s_dtype)dt, (size_t)strtoull(argv[6], NULL, 10), strcmp(argv[7], "-") ? argv[7] : NULL, NULL};
    int rc = add_source_params(&p, argv[3], layout, err, sizeof err) || s2s_ckpt_load(&p, &src, 1, NULL, NULL, err, sizeof err) ||
             s2s_ckpt_save(&p, argv[4], &o, err, sizeof err);
    s2s_params_free(&p);
    return rc ? die(err) : 0;
}

static int cmd_load_hf(int argc, char **argv) {
    char err[4096];
    if (argc != 6) return die("usage: load-hf AUDIO LLM TTS OUT");
    s2s_params p;
    s2s_params_init(&p, S2S_CPU);
    if (add_source_params(&p, argv[2], S2S_CKPT_HF_AUDIO, err, sizeof err) ||
        add_source_params(&p, argv[3], S2S_CKPT_HF_LLM, err, sizeof err) ||
        add_source_params(&p, argv[4], S2S_CKPT_HF_TTS, err, sizeof err))
        return die(err);
    // The modules OpenS2S creates fresh, and one more vocabulary row than the LLM checkpoint has.
    s2s_params_add(&p, "audio_adapter.fc1.weight", "audio_adapter", 2, (int64_t[]){8, 16}, true, true);
    s2s_params_add(&p, "llm2tts.weight", "llm2tts", 2, (int64_t[]){16, 16}, true, true);
    s2s_param *emb = s2s_params_find(&p, "llm_model.model.embed_tokens.weight");
    int64_t shape[2] = {emb->t->shape[0] + 1, emb->t->shape[1]};
    s2s_params p2;  // registry order matters to nobody; rebuild with the resized embedding
    s2s_params_init(&p2, S2S_CPU);
    for (int i = 0; i < p.n; i++) {
        const s2s_param *q = &p.items[i];
        bool is_emb = strcmp(q->name, "llm_model.model.embed_tokens.weight") == 0;
        s2s_params_add(&p2, q->name, q->module, q->t->ndim, is_emb ? shape : q->t->shape, true, true);
    }
    s2s_params_free(&p);
    s2s_ckpt_report r;
    int rc = s2s_ckpt_load_hf(&p2, argv[2], argv[3], argv[4], NULL, &r, err, sizeof err);
    if (!rc) {
        printf("loaded %d\n", r.n_loaded);
        for (int i = 0; i < r.n_missing; i++) printf("missing %s\n", r.missing[i]);
        for (int i = 0; i < r.n_resized; i++) printf("resized %s\n", r.resized[i]);
        s2s_ckpt_report_free(&r);
        rc = s2s_ckpt_save(&p2, argv[5], &(s2s_ckpt_save_opts){S2S_F32, 0, NULL, NULL}, err, sizeof err);
    }
    s2s_params_free(&p2);
    return rc ? die(err) : 0;
}

static int cmd_config(int argc, char **argv, bool write) {
    char err[4096];
    if (argc != (write ? 5 : 4)) return die("usage: config KIND PATH | config-write KIND IN OUT");
    const char *kind = argv[2], *in = argv[3], *out = write ? argv[4] : NULL;
    cJSON *j = NULL;
    int rc;
    if (strcmp(kind, "qwen3") == 0) {
        s2s_qwen3_config c;
        rc = s2s_qwen3_config_read(&c, in, err, sizeof err);
        if (!rc && out) rc = s2s_qwen3_config_write(&c, out, err, sizeof err);
        if (!rc && !out) j = s2s_qwen3_config_to_json(&c);
    } else if (strcmp(kind, "encoder") == 0) {
        s2s_audio_encoder_config c;
        rc = s2s_audio_encoder_config_read(&c, in, err, sizeof err);
        if (!rc && out) rc = s2s_audio_encoder_config_write(&c, out, err, sizeof err);
        if (!rc && !out) j = s2s_audio_encoder_config_to_json(&c);
    } else if (strcmp(kind, "omnispeech") == 0) {
        s2s_omnispeech_config c;
        rc = s2s_omnispeech_config_read(&c, in, err, sizeof err);
        if (!rc && out) rc = s2s_omnispeech_config_write(&c, out, err, sizeof err);
        if (!rc && !out) j = s2s_omnispeech_config_to_json(&c);
    } else {
        return die("unknown config kind");
    }
    if (rc) return die(err);
    if (j) {  // the parsed values, in the form s2s writes them
        char *text = cJSON_Print(j);
        printf("%s\n", text);
        free(text);
        cJSON_Delete(j);
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) return die("usage: ckpt_tool open|dump|list|resave|load-hf|config|config-write ...");
    const char *c = argv[1];
    if (!strcmp(c, "open")) return cmd_open(argc, argv);
    if (!strcmp(c, "dump")) return cmd_dump(argc, argv);
    if (!strcmp(c, "list")) return cmd_list(argc, argv);
    if (!strcmp(c, "resave")) return cmd_resave(argc, argv);
    if (!strcmp(c, "load-hf")) return cmd_load_hf(argc, argv);
    if (!strcmp(c, "config")) return cmd_config(argc, argv, false);
    if (!strcmp(c, "config-write")) return cmd_config(argc, argv, true);
    return die("unknown command");
}
