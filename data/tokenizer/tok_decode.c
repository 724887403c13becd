// tok_decode.c — ids back to text, as HF's decode: each token's bytes (precomputed at load), special tokens
// optionally skipped, then invalid UTF-8 replaced the way Rust's String::from_utf8_lossy does (one U+FFFD per
// maximal invalid subsequence), so partial multi-byte tokens decode to the same string HF gives.
#include <stdlib.h>
#include "tok_internal.h"

// Length of the invalid subsequence at s[0..n) that Rust replaces by one U+FFFD: the longest prefix of a
// well-formed sequence, at least one byte.
static size_t invalid_run(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) need = 2;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else return 1;
    size_t k = 1;
    if (k < n && s[k] >= lo && s[k] <= hi) {
        k++;
        while (k <= need && k < n && (s[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

char *s2s_tok_decode(const s2s_tokenizer *t, const int32_t *ids, size_t n, int skip_special, size_t *len,
                     s2s_derr *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || t->dec_off[id] == UINT32_MAX) {
            s2s_derr_set(err, "%s: id %d (position %zu) is not in the vocabulary (size %d)", t->file, id, i, t->n_ids);
            return NULL;
        }
        total += t->dec_len[id] + (t->byte_decoder ? 0 : 1);
    }
    // raw bytes first; fixing invalid UTF-8 can at most triple a byte (one byte -> U+FFFD)
    unsigned char *raw = malloc(total + 1);
    char *res = malloc(3 * total + 1);
    if (!raw || !res) {
        free(raw);
        free(res);
        s2s_derr_set(err, "out of memory decoding %zu ids", n);
        return NULL;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (skip_special && t->special[ids[i]]) continue;
        if (!t->byte_decoder && m) raw[m++] = ' ';  // without a decoder HF joins the tokens with spaces
        memcpy(raw + m, t->arena + t->dec_off[ids[i]], t->dec_len[ids[i]]);
        m += t->dec_len[ids[i]];
    }
    size_t o = 0;
    for (size_t i = 0; i < m;) {
        size_t v = tok_utf8_valid_prefix(raw + i, m - i);
        memcpy(res + o, raw + i, v);
        o += v, i += v;
        if (i < m) {
            i += invalid_run(raw + i, m - i);
            memcpy(res + o, "\xEF\xBF\xBD", 3);
            o += 3;
        }
    }
    res[o] = 0;
    free(raw);
    if (len) *len = o;
    return res;
}
