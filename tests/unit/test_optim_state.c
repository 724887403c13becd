// test_optim_state.c — flat parameter / gradient storage (autograd/params.c) and the name-keyed AdamW state
// (train/optim.c): views keep values, alignment, re-layout on freeze, decay rules, save / load by name.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "autograd/ctx.h"
#include "autograd/params.h"
#include "autograd/rng.h"
#include "expect.h"
#include "train/optim.h"

static void fill(s2s_tensor *t, s2s_rng *r) {
    float *v = t->data;
    for (int64_t i = 0; i < s2s_numel(t); i++) v[i] = s2s_rng_normal(r);
}

// The same parameters registered in two orders (the optimizer state must not care).
static void make(s2s_params *P, bool reversed) {
    s2s_params_init(P, S2S_CPU);
    const char *names[] = {"m.embed_tokens.weight", "m.layers.0.input_layernorm.weight", "m.q_norm.weight",
                           "m.ln.bias", "m.proj.weight", "m.frozen.weight"};
    const int64_t shapes[][2] = {{7, 5}, {5, 1}, {3, 1}, {5, 1}, {9, 5}, {4, 4}};
    for (int k = 0; k < 6; k++) {
        int i = reversed ? 5 - k : k;
        s2s_tensor *t = s2s_params_add(P, names[i], "m", shapes[i][1] == 1 ? 1 : 2, shapes[i], i != 5, true);
        if (i == 1 || i == 2) s2s_params_set_norm(P, t, S2S_NORM_RMS);
        if (i == 3) s2s_params_set_norm(P, t, S2S_NORM_LAYER);
        s2s_rng r;
        s2s_rng_seed(&r, 7 + (uint64_t)i);
        fill(t, &r);
    }
}

static void flat_storage(void) {
    s2s_params P;
    make(&P, false);
    float before[45];
    memcpy(before, s2s_params_find(&P, "m.proj.weight")->t->data, sizeof before);
    s2s_params_flatten(&P);
    EXPECT(P.flat && P.flat_grad, "flatten made no buffers");
    int64_t want = 0, gwant = 0;
    for (int i = 0; i < P.n; i++) {
        s2s_param *q = &P.items[i];
        EXPECT(q->off >= 0 && (float *)q->t->data == P.flat + q->off, "%s is not a view", q->name);
        EXPECT(((uintptr_t)q->t->data % 64) == 0, "%s is not 64-byte aligned", q->name);
        want += (s2s_numel(q->t) + 15) / 16 * 16;
        if (q->trainable) {
            EXPECT(q->goff >= 0 && (float *)q->t->grad->data == P.flat_grad + q->goff, "%s grad not a view", q->name);
            gwant += (s2s_numel(q->t) + 15) / 16 * 16;
        } else {
            EXPECT(q->goff < 0 && !q->t->grad, "frozen %s holds a gradient", q->name);
        }
    }
    EXPECT(P.flat_n == want && P.flat_grad_n == gwant, "flat sizes %lld / %lld, want %lld / %lld",
           (long long)P.flat_n, (long long)P.flat_grad_n, (long long)want, (long long)gwant);
    EXPECT(!memcmp(before, s2s_params_find(&P, "m.proj.weight")->t->data, sizeof before), "values changed");
    // Freezing re-lays the gradients out; zero_grad clears all of them in one go.
    for (int64_t i = 0; i < P.flat_grad_n; i++) P.flat_grad[i] = 1.0f;
    s2s_params_set_trainable(&P, "m.embed_tokens", false);
    EXPECT(P.flat_grad_n == gwant - 48, "after freezing the embedding the gradient buffer has %lld", (long long)P.flat_grad_n);
    s2s_params_zero_grad(&P);
    for (int64_t i = 0; i < P.flat_grad_n; i++) EXPECT(P.flat_grad[i] == 0.0f, "grad %lld not zeroed", (long long)i);
    s2s_params_unflatten(&P);
    EXPECT(!P.flat && !P.flat_grad, "unflatten kept a buffer");
    EXPECT(!memcmp(before, s2s_params_find(&P, "m.proj.weight")->t->data, sizeof before), "values changed on unflatten");
    s2s_params_free(&P);
}

static void decay_rules(void) {
    s2s_params P;
    make(&P, false);
    // hf: the LayerNorm module and "bias" / "layernorm" names are exempt; q_norm (an RMSNorm) decays.
    const char *hf_no[] = {"m.layers.0.input_layernorm.weight", "m.ln.bias"};
    const char *hf_yes[] = {"m.embed_tokens.weight", "m.q_norm.weight", "m.proj.weight"};
    for (int i = 0; i < 2; i++) EXPECT(!s2s_decay_applies(s2s_params_find(&P, hf_no[i]), S2S_DECAY_HF), "%s", hf_no[i]);
    for (int i = 0; i < 3; i++) EXPECT(s2s_decay_applies(s2s_params_find(&P, hf_yes[i]), S2S_DECAY_HF), "%s", hf_yes[i]);
    EXPECT(!s2s_decay_applies(s2s_params_find(&P, "m.q_norm.weight"), S2S_DECAY_NORMS), "norms: q_norm decays");
    EXPECT(s2s_decay_applies(s2s_params_find(&P, "m.proj.weight"), S2S_DECAY_NORMS), "norms: proj does not decay");
    s2s_params_free(&P);
}

static void state_by_name(void) {
    s2s_ctx *ctx = s2s_ctx_new((s2s_ctx_opts){.device = S2S_CPU, .n_threads = 1});
    s2s_params A, B;
    make(&A, false);
    make(&B, true);
    s2s_adam_state sa, sb;
    s2s_adam_init(&sa, &A);
    s2s_adam_init(&sb, &B);
    s2s_rng r;
    s2s_rng_seed(&r, 3);
    for (int step = 0; step < 3; step++) {
        for (int64_t i = 0; i < A.flat_grad_n; i++) A.flat_grad[i] = s2s_rng_normal(&r);
        s2s_adam_step(ctx, &sa, &A, 1e-2f, 1.0);
    }
    char path[] = "/tmp/s2s_optim_XXXXXX", err[512];
    int fd = mkstemp(path);
    close(fd);
    EXPECT(s2s_adam_save(&sa, path, err, sizeof err) == 0, "save: %s", err);
    EXPECT(s2s_adam_load(&sb, path, err, sizeof err) == 0, "load: %s", err);
    EXPECT(sb.step == 3, "step %lld", (long long)sb.step);
    for (int k = 0; k < sa.n_slots; k++) {
        const s2s_adam_slot *x = &sa.slots[k];
        const s2s_adam_slot *y = NULL;
        for (int j = 0; j < sb.n_slots; j++)
            if (!strcmp(sb.slots[j].name, x->name)) y = &sb.slots[j];
        EXPECT(y && y->n == x->n, "%s missing", x->name);
        if (y) EXPECT(!memcmp(sa.m + x->off, sb.m + y->off, (size_t)x->n * 4) &&
                          !memcmp(sa.v + x->off, sb.v + y->off, (size_t)x->n * 4), "%s moments differ", x->name);
        EXPECT(y && x->decay == y->decay, "%s decay differs", x->name);
    }
    // Another set of trainable parameters is refused, naming what is wrong; the state is left as it was.
    s2s_params C;
    make(&C, false);
    s2s_params_set_trainable(&C, "m.frozen", true);
    s2s_adam_state sc;
    s2s_adam_init(&sc, &C);
    EXPECT(s2s_adam_load(&sc, path, err, sizeof err) != 0 && strstr(err, "trainable"), "mismatch accepted: %s", err);
    EXPECT(sc.step == 0, "a refused load changed the step");
    unlink(path);
    s2s_adam_free(&sa), s2s_adam_free(&sb), s2s_adam_free(&sc);
    s2s_params_free(&A), s2s_params_free(&B), s2s_params_free(&C);
    s2s_ctx_free(ctx);
}

int main(void) {
    flat_storage();
    decay_rules();
    state_by_name();
    if (!failures) printf("test_optim_state: ok\n");
    return failures != 0;
}
