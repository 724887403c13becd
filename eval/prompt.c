// prompt.c — model_worker.py's prompt (prompt.h).
#include "prompt.h"
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "base/err.h"

#define AUDIO_TOKEN "<|im_audio|>"

typedef struct buf {
    char *s;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s) {
    const size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = s2s_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

int s2s_prompt_build(s2s_tok_encoder *enc, const char *system, const s2s_prompt_item *items, int n_items,
                     s2s_prompt *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    buf b = {0};
    put(&b, "");
    if (!system) system = S2S_PROMPT_SYSTEM;
    if (*system) {
        put(&b, "<|im_start|>system\n");
        put(&b, system);
        put(&b, "<|im_end|>\n");
    }
    put(&b, "<|im_start|>user\n");
    for (int i = 0; i < n_items; i++) {
        if (items[i].text) put(&b, items[i].text);
        else put(&b, "<|im_audio_start|>" AUDIO_TOKEN "<|im_audio_end|>"), out->n_audio++;
    }
    put(&b, "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n<|im_tts_start|>");
    // Segment by segment: BPE never merges across an audio, and the placeholder sits between.
    s2s_tok_ids ids = {0};
    const char *seg = b.s;
    int rc = 0;
    for (;;) {
        const char *next = strstr(seg, AUDIO_TOKEN);
        const size_t len = next ? (size_t)(next - seg) : strlen(seg);
        s2s_derr de;
        if (len && s2s_tok_encode(enc, seg, len, &ids, &de)) {
            rc = s2s_errf(err, errlen, "prompt: %s", de.msg);
            break;
        }
        if (!next) break;
        if (s2s_tok_ids_push(&ids, S2S_AUDIO_PLACEHOLDER)) {
            rc = s2s_errf(err, errlen, "prompt: out of memory");
            break;
        }
        seg = next + strlen(AUDIO_TOKEN);
    }
    if (rc) {
        free(ids.ids), free(b.s);
        return -1;
    }
    int n_placeholders = 0;
    for (size_t i = 0; i < ids.n; i++) n_placeholders += ids.ids[i] == S2S_AUDIO_PLACEHOLDER;
    out->n_audio = n_placeholders;  // a text item may itself hold <|im_audio|>: OpenS2S splits there too
    out->ids = ids.ids, out->n = (int64_t)ids.n, out->text = b.s;
    return 0;
}

void s2s_prompt_free(s2s_prompt *p) {
    free(p->ids), free(p->text);
    memset(p, 0, sizeof *p);
}
