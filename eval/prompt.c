// prompt.c — Qwen3's chat template for plain messages, and model_worker.py's prompt built on it (prompt.h).
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

static void put_n(buf *b, const char *s, size_t k) {
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = s2s_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k);
    b->n += k;
    b->s[b->n] = 0;
}

// The last occurrence of needle in [s, s+n), or NULL.
static const char *last_of(const char *s, size_t n, const char *needle) {
    const size_t k = strlen(needle);
    for (size_t i = n >= k ? n - k + 1 : 0; i-- > 0;)
        if (!memcmp(s + i, needle, k)) return s + i;
    return NULL;
}

// An assistant message as the template splits it: reasoning = content.split('</think>')[0].rstrip('\n')
// .split('<think>')[-1].lstrip('\n'), content = content.split('</think>')[-1].lstrip('\n').
static void split_think(const char *c, const char **r0, size_t *rn, const char **c0) {
    const char *first = strstr(c, "</think>");
    *r0 = c, *rn = 0, *c0 = c;
    if (!first) return;
    size_t n = (size_t)(first - c);
    while (n && c[n - 1] == '\n') n--;
    const char *open = last_of(c, n, "<think>");
    const char *r = open ? open + strlen("<think>") : c;
    n -= (size_t)(r - c);
    while (n && *r == '\n') r++, n--;
    const char *last = last_of(c, strlen(c), "</think>") + strlen("</think>");
    while (*last == '\n') last++;
    *r0 = r, *rn = n, *c0 = last;
}

char *s2s_prompt_render_qwen3(const s2s_chat_msg *m, int n, bool add_generation_prompt, bool enable_thinking) {
    buf b = {0};
    put(&b, "");
    if (n > 0 && !strcmp(m[0].role, "system")) {
        put(&b, "<|im_start|>system\n"), put(&b, m[0].content), put(&b, "<|im_end|>\n");
    }
    int last_query = n - 1;  // ns.last_query_index: the last user message (none holds a tool response here)
    for (int i = n - 1; i >= 0; i--)
        if (!strcmp(m[i].role, "user")) {
            last_query = i;
            break;
        }
    for (int i = 0; i < n; i++) {
        const char *role = m[i].role, *c = m[i].content ? m[i].content : "";
        S2S_CHECK(strcmp(role, "tool"), "prompt: message %d: tool messages are not rendered here", i);
        if (!strcmp(role, "user") || (!strcmp(role, "system") && i > 0)) {
            put(&b, "<|im_start|>"), put(&b, role), put(&b, "\n"), put(&b, c), put(&b, "<|im_end|>\n");
        } else if (!strcmp(role, "assistant")) {
            const char *r, *content;
            size_t rn;
            split_think(c, &r, &rn, &content);
            put(&b, "<|im_start|>assistant\n");
            if (i > last_query && (i == n - 1 || rn)) {
                while (rn && *r == '\n') r++, rn--;  // reasoning_content.strip('\n')
                while (rn && r[rn - 1] == '\n') rn--;
                put(&b, "<think>\n"), put_n(&b, r, rn), put(&b, "\n</think>\n\n");
                while (*content == '\n') content++;
            }
            put(&b, content), put(&b, "<|im_end|>\n");
        }  // any other role: the template renders nothing
    }
    if (add_generation_prompt) {
        put(&b, "<|im_start|>assistant\n");
        if (!enable_thinking) put(&b, "<think>\n\n</think>\n\n");
    }
    return b.s;
}

int s2s_prompt_build(s2s_tok_encoder *enc, const char *system, const s2s_prompt_item *items, int n_items,
                     s2s_prompt *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!system) system = S2S_PROMPT_SYSTEM;
    buf u = {0};  // the user's content: its items in order
    put(&u, "");
    for (int i = 0; i < n_items; i++)
        put(&u, items[i].text ? items[i].text : "<|im_audio_start|>" AUDIO_TOKEN "<|im_audio_end|>");
    const s2s_chat_msg msgs[2] = {{"system", system}, {"user", u.s}};
    const int sys = *system != 0;  // model_worker skips a falsy system prompt
    buf b = {.s = s2s_prompt_render_qwen3(msgs + !sys, 1 + sys, true, false)};
    b.n = b.cap = strlen(b.s);
    free(u.s);
    put(&b, "<|im_tts_start|>");
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
