// tok_unicode.c — the small Unicode facts the tokenizer needs besides PCRE2 and utf8proc: UTF-8 validity,
// GPT-2's byte <-> code point table, and the two character classes HF's added-token matching uses.
#include <stdlib.h>
#include <utf8proc.h>
#include "tok_internal.h"

size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        // ASCII runs dominate real text: skip them 8 bytes at a time
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF;  // allowed range of the second byte
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if (c == 0xED) need = 2, hi = 0x9F;  // no surrogates
        else if (c >= 0xE1 && c <= 0xEF) need = 2;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else return i;
        if (i + need >= n) return i;  // truncated sequence
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

// bytes_to_unicode: printable Latin-1 bytes stand for themselves; the other 68 bytes (0x00-0x20,
// 0x7F-0xA0, 0xAD) map in order to U+0100 upwards.
int32_t tok_byte_to_cp(int b) {
    if (b <= 0x20) return 256 + b;
    if (b >= 0x7F && b <= 0xA0) return 256 + 33 + (b - 0x7F);
    if (b == 0xAD) return 256 + 33 + 34;
    return b;
}

int tok_cp_to_byte(int32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return cp;
    if (cp >= 256 && cp < 256 + 33) return cp - 256;
    if (cp >= 256 + 33 && cp < 256 + 33 + 34) return 0x7F + (cp - 256 - 33);
    if (cp == 256 + 33 + 34) return 0xAD;
    return -1;
}

int tok_is_white_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

int tok_is_word_char(int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (c == 0x200C || c == 0x200D) return 1;  // Join_Control
    // Other_Alphabetic symbols (circled / squared Latin letters)
    if ((c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return 1;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}

int tok_nfc_is_inert(int32_t cp) {
    if (cp < tok_nfc_inert[0][0]) return 0;
    int lo = 0, hi = tok_nfc_inert_n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < tok_nfc_inert[mid][0]) hi = mid - 1;
        else if (cp > tok_nfc_inert[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int reserve(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = need * 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

// utf8proc NFC of one segment, appended at b->out + at.
static int64_t nfc_segment(tok_nfc_buf *b, const char *s, size_t n, size_t at) {
    const utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
    for (;;) {
        utf8proc_ssize_t r = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n,
                                                (utf8proc_int32_t *)b->cps, (utf8proc_ssize_t)b->cps_cap, opt);
        if (r < 0) return -1;
        if ((size_t)r > b->cps_cap) {
            if (reserve((void **)&b->cps, &b->cps_cap, (size_t)r, sizeof *b->cps)) return -1;
            continue;
        }
        r = utf8proc_reencode((utf8proc_int32_t *)b->cps, r, opt);  // composes, then UTF-8 in place
        if (r < 0 || reserve((void **)&b->out, &b->out_cap, at + (size_t)r + 1, 1)) return -1;
        memcpy(b->out + at, b->cps, (size_t)r);
        return (int64_t)r;
    }
}

int64_t tok_nfc(tok_nfc_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t seg = 0, at = 0;
    for (size_t i = 0; i < n;) {
        int adv;
        int32_t cp = u[i] < 0x80 ? (adv = 1, u[i]) : tok_utf8_get(u + i, &adv);
        if (cp >= tok_nfc_inert[0][0] && tok_nfc_is_inert(cp)) {
            // normalise what precedes it on its own, copy the inert code point as it is
            int64_t r = i > seg ? nfc_segment(b, s + seg, i - seg, at) : 0;
            if (r < 0 || reserve((void **)&b->out, &b->out_cap, at + (size_t)r + (size_t)adv + 1, 1)) return -1;
            at += (size_t)r;
            memcpy(b->out + at, s + i, (size_t)adv);
            at += (size_t)adv;
            seg = i + (size_t)adv;
        }
        i += (size_t)adv;
    }
    int64_t r = n > seg ? nfc_segment(b, s + seg, n - seg, at) : 0;
    if (r < 0) return -1;
    return (int64_t)(at + (size_t)r);
}

void tok_nfc_buf_free(tok_nfc_buf *b) {
    free(b->cps);
    free(b->out);
    memset(b, 0, sizeof *b);
}
