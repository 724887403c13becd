// tok_encode.c — HF's encode pipeline, step for step:
//   1. split the raw text on the non-normalized added tokens;
//   2. NFC-normalise each remaining piece and split it on the normalized added tokens;
//   3. split each remaining piece with the pre-tokenizer regexes (PCRE2, UTF + Unicode properties, JIT);
//   4. byte-level BPE on each pre-token.
// Empty pieces are dropped at every step, as HF's PreTokenizedString does.
#include <stdlib.h>
#include "tok_internal.h"

int s2s_tok_ids_push(s2s_tok_ids *v, int32_t id) {
    if (v->n == v->cap) {
        size_t c = v->cap ? v->cap * 2 : 256;
        int32_t *p = realloc(v->ids, c * sizeof *p);
        if (!p) return -1;
        v->ids = p;
        v->cap = c;
    }
    v->ids[v->n++] = id;
    return 0;
}

s2s_tok_encoder *s2s_tok_encoder_new(const s2s_tokenizer *t, s2s_derr *err) {
    s2s_tok_encoder *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->t = t;
    e->md = pcre2_match_data_create(8, NULL);
    e->mctx = pcre2_match_context_create(NULL);
    // the JIT's default 32 KiB stack is too small for some backtracking on long whitespace runs
    e->jit_stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!e->md || !e->mctx || !e->jit_stack || tok_strmap_init(&e->cache, 4096)) goto oom;
    pcre2_jit_stack_assign(e->mctx, NULL, e->jit_stack);
    return e;
oom:
    s2s_tok_encoder_free(e);
    s2s_derr_set(err, "%s: out of memory for an encoder", t->file);
    return NULL;
}

void s2s_tok_encoder_free(s2s_tok_encoder *e) {
    if (!e) return;
    pcre2_match_data_free(e->md);
    pcre2_match_context_free(e->mctx);
    if (e->jit_stack) pcre2_jit_stack_free(e->jit_stack);
    if (e->cache.slot) tok_strmap_free(&e->cache);
    free(e->cache_ids);
    tok_nfc_buf_free(&e->nfc);
    free(e->pfx);
    free(e->sym);
    free(e->heap);
    free(e);
}

// ---- 3. pre-tokenizer regexes ----------------------------------------------------------------------------

static int split_regex(s2s_tok_encoder *e, int k, const char *s, size_t n, s2s_tok_ids *out, s2s_derr *err);

static int regex_match(s2s_tok_encoder *e, int k, const char *s, size_t n, size_t at, size_t *ms, size_t *me,
                       s2s_derr *err) {
    const s2s_tokenizer *t = e->t;
    int rc = PCRE2_ERROR_JIT_STACKLIMIT;
    if (t->re_jit[k]) rc = pcre2_jit_match(t->re[k], (PCRE2_SPTR)s, n, at, 0, e->md, e->mctx);
    if (rc == PCRE2_ERROR_JIT_STACKLIMIT)  // (or no JIT) the interpreter keeps its backtracking on the heap
        rc = pcre2_match(t->re[k], (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, e->md, e->mctx);
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        return s2s_derr_set(err, "%s: pre_tokenizer regex %d failed at byte %zu: %s", t->file, k, at, (char *)msg);
    }
    const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(e->md);
    *ms = ov[0], *me = ov[1];
    return 1;
}

// Isolated behaviour: every match and every gap between matches is a piece.
static int split_regex(s2s_tok_encoder *e, int k, const char *s, size_t n, s2s_tok_ids *out, s2s_derr *err) {
    if (k == e->t->n_re) return tok_bpe_word(e, s, n, out) ? s2s_derr_set(err, "out of memory") : 0;
    size_t last = 0, at = 0, ms, me;
    while (at < n) {
        int r = regex_match(e, k, s, n, at, &ms, &me, err);
        if (r < 0) return -1;
        if (!r) break;
        if (ms > last && split_regex(e, k + 1, s + last, ms - last, out, err)) return -1;
        if (me > ms) {
            if (split_regex(e, k + 1, s + ms, me - ms, out, err)) return -1;
            last = at = me;
        } else {  // an empty match splits nothing; step over one code point
            int adv;
            last = ms;
            at = ms;
            if (at < n) tok_utf8_get((const unsigned char *)s + at, &adv), at += (size_t)adv;
        }
    }
    if (last < n && split_regex(e, k + 1, s + last, n - last, out, err)) return -1;
    return 0;
}

static int pre_tokenize(s2s_tok_encoder *e, const char *s, size_t n, s2s_tok_ids *out, s2s_derr *err) {
    if (!n) return 0;
    if (e->t->add_prefix_space && s[0] != ' ') {
        if (n + 1 > e->pfx_cap) {
            size_t c = (n + 1) * 2;
            char *p = realloc(e->pfx, c);
            if (!p) return s2s_derr_set(err, "out of memory");
            e->pfx = p;
            e->pfx_cap = c;
        }
        e->pfx[0] = ' ';
        memcpy(e->pfx + 1, s, n);
        s = e->pfx, n++;
    }
    return split_regex(e, 0, s, n, out, err);
}

// ---- 2. normalisation, then normalized added tokens -------------------------------------------------------

static int is_ascii(const char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull) return 0;
    }
    for (; i < n; i++)
        if ((unsigned char)s[i] & 0x80) return 0;
    return 1;
}

static int normalized_piece(s2s_tok_encoder *e, const char *s, size_t n, s2s_tok_ids *out, s2s_derr *err) {
    const s2s_tokenizer *t = e->t;
    if (t->nfc && !is_ascii(s, n)) {
        int64_t r = tok_nfc(&e->nfc, s, n);
        if (r < 0) return s2s_derr_set(err, "%s: NFC normalisation failed (out of memory?)", t->file);
        s = e->nfc.out, n = (size_t)r;
    }
    if (t->trie_norm.empty) return pre_tokenize(e, s, n, out, err);
    return tok_added_split(e, &t->trie_norm, s, n, pre_tokenize, out, err);
}

// ---- 1. the whole text ------------------------------------------------------------------------------------

int s2s_tok_encode(s2s_tok_encoder *e, const char *text, size_t len, s2s_tok_ids *out, s2s_derr *err) {
    size_t valid = tok_utf8_valid_prefix((const unsigned char *)text, len);
    if (valid != len) return s2s_derr_set(err, "invalid UTF-8 at byte %zu of the text", valid);
    const s2s_tokenizer *t = e->t;
    if (t->trie_raw.empty) return len ? normalized_piece(e, text, len, out, err) : 0;
    return tok_added_split(e, &t->trie_raw, text, len, normalized_piece, out, err);
}
