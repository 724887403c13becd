// tok_internal.h — what the tok_*.c files share: the loaded tokenizer, its hash maps and UTF-8 helpers.
// Not part of the data/ API; include data/tokenizer/tokenizer.h instead.
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdint.h>
#include <string.h>
#include "data/tokenizer/tokenizer.h"

// NFC as HF computes it (see tok_nfc_is_inert), into b->out, valid until the next call. Returns the length,
// or -1 on failure (allocation, or utf8proc's error).
typedef struct tok_nfc_buf {
    int32_t *cps;
    size_t cps_cap;
    char *out;
    size_t out_cap;
} tok_nfc_buf;
int64_t tok_nfc(tok_nfc_buf *b, const char *s, size_t n);
void tok_nfc_buf_free(tok_nfc_buf *b);

// ---- hash maps -------------------------------------------------------------------------------------------

// Byte string -> int32. Keys are copied into the map's own arena; open addressing, linear probing.
typedef struct tok_strmap {
    uint32_t *slot;  // entry index + 1; 0 = empty
    uint32_t mask;
    struct tok_strent { uint64_t hash; uint32_t off, len; int32_t val; } *ent;
    uint32_t n, cap;
    char *arena;
    size_t arena_n, arena_cap;
} tok_strmap;

int tok_strmap_init(tok_strmap *m, uint32_t expected);
void tok_strmap_free(tok_strmap *m);
void tok_strmap_clear(tok_strmap *m);
// Inserts or overwrites. Returns -1 on allocation failure.
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val);
// Returns the entry index, or -1 when absent.
int64_t tok_strmap_find(const tok_strmap *m, const char *key, size_t len, uint64_t hash);
uint64_t tok_hash_bytes(const char *p, size_t n);
static inline int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len, int32_t missing) {
    int64_t i = tok_strmap_find(m, key, len, tok_hash_bytes(key, len));
    return i < 0 ? missing : m->ent[i].val;
}

// uint64 key -> two int32 (BPE merges: (left, right) -> (rank, new id); the added-token trie:
// (node, byte) -> (child, 0)).
typedef struct tok_u64map {
    struct tok_u64ent { uint64_t key; int32_t a, b; } *ent;  // key with bit 63 set = occupied
    uint32_t mask, n;
} tok_u64map;

int tok_u64map_init(tok_u64map *m, uint32_t expected);
void tok_u64map_free(tok_u64map *m);
int tok_u64map_put(tok_u64map *m, uint64_t key, int32_t a, int32_t b);
static inline uint64_t tok_mix64(uint64_t k) {
    k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33; k *= 0xc4ceb9fe1a85ec53ull; k ^= k >> 33;
    return k;
}
static inline const struct tok_u64ent *tok_u64map_get(const tok_u64map *m, uint64_t key) {
    key |= 1ull << 63;
    for (uint32_t i = (uint32_t)tok_mix64(key) & m->mask;; i = (i + 1) & m->mask) {
        const struct tok_u64ent *e = &m->ent[i];
        if (e->key == key) return e;
        if (!e->key) return NULL;
    }
}

// ---- the loaded tokenizer ----------------------------------------------------------------------------------

typedef struct tok_added {
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip, single_word;
} tok_added;

// A trie over added-token contents for leftmost-longest matching (what HF's Aho-Corasick does).
typedef struct tok_trie {
    tok_u64map edges;       // (node << 8 | byte) -> child node
    int32_t *term;          // node -> index into s2s_tokenizer.added, or -1
    int32_t n_nodes, cap;
    uint8_t first[256];     // bytes that start some token: a cheap filter before walking the trie
    int empty;              // no tokens at all
} tok_trie;

enum { TOK_MAX_REGEX = 4 };

struct s2s_tokenizer {
    char file[512];                 // tokenizer.json path, for messages
    // ids: token strings (HF id_to_token) and decode bytes, both NUL-terminated in one arena
    int32_t n_ids;                  // max id + 1
    int32_t n_model;                // entries in model.vocab
    uint32_t *tok_off, *dec_off;    // per id; UINT32_MAX = no token has this id
    uint32_t *dec_len;
    uint8_t *special;               // per id: added token with special = true (skipped by skip_special)
    char *arena;
    size_t arena_n, arena_cap;
    tok_strmap vocab;               // model token string -> id
    tok_strmap added_map;           // added token content -> index into added[]
    tok_added *added;
    int32_t n_added;
    // encode
    int32_t byte_id[256];           // id of each single byte's byte-level symbol (-1: not in vocab)
    tok_u64map merges;              // (left << 32 | right) -> (rank, merged id)
    int ignore_merges;
    int nfc;
    tok_trie trie_raw, trie_norm;   // added tokens matched before / after normalisation
    pcre2_code *re[TOK_MAX_REGEX];  // pre-tokenizer splits, applied in order (Isolated behaviour)
    uint8_t re_jit[TOK_MAX_REGEX];  // JIT-compiled: matched with pcre2_jit_match
    int n_re;
    int add_prefix_space;           // ByteLevel(add_prefix_space = true)
    int byte_decoder;               // decoder ByteLevel (1) or none (0: tokens joined by spaces)
    int32_t eos_id, pad_id;
};

// Built by tok_load.c from the parsed JSON; frees everything in tok_free.
int tok_trie_build(tok_trie *tr, const s2s_tokenizer *t, int normalized_set, s2s_derr *err);
void tok_trie_free(tok_trie *tr);

// ---- per-thread encoder state ----------------------------------------------------------------------------

struct s2s_tok_encoder {
    const s2s_tokenizer *t;
    pcre2_match_data *md;
    pcre2_jit_stack *jit_stack;
    pcre2_match_context *mctx;
    // BPE result cache: word bytes -> ids[cache_ids + off .. + n]
    tok_strmap cache;
    struct { uint32_t off, n; } *cache_ent;
    int32_t *cache_ids;
    size_t cache_ids_n, cache_ids_cap;
    uint32_t cache_ent_cap;
    // scratch
    tok_nfc_buf nfc;                       // normalised pieces
    char *pfx; size_t pfx_cap;             // a piece with ByteLevel's prefix space
    struct tok_sym { int32_t id, prev, next; } *sym; size_t sym_cap;
    struct tok_merge { int32_t rank, pos, id; } *heap; size_t heap_cap;
};

// tok_added.c: splits text on the added tokens of a trie (HF find_matches); the token ids go to out, the
// text between them to `gap`.
typedef int (*tok_piece_fn)(s2s_tok_encoder *e, const char *s, size_t n, s2s_tok_ids *out, s2s_derr *err);
int32_t tok_trie_next(const tok_trie *tr, const unsigned char *s, size_t n, size_t from, size_t *ms, size_t *me);
int tok_added_split(s2s_tok_encoder *e, const tok_trie *tr, const char *text, size_t n, tok_piece_fn gap,
                    s2s_tok_ids *out, s2s_derr *err);

// tok_bpe.c: appends the BPE ids of one pre-token (raw bytes) to out.
int tok_bpe_word(s2s_tok_encoder *e, const char *w, size_t n, s2s_tok_ids *out);

// ---- UTF-8 and Unicode helpers ----------------------------------------------------------------------------

// Byte length of the valid UTF-8 prefix of s[0..n) (== n when valid).
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n);
// Decodes one code point at s (valid UTF-8 assumed); sets *adv to its byte length.
static inline int32_t tok_utf8_get(const unsigned char *s, int *adv) {
    if (s[0] < 0x80) { *adv = 1; return s[0]; }
    if (s[0] < 0xE0) { *adv = 2; return (s[0] & 0x1F) << 6 | (s[1] & 0x3F); }
    if (s[0] < 0xF0) { *adv = 3; return (s[0] & 0x0F) << 12 | (s[1] & 0x3F) << 6 | (s[2] & 0x3F); }
    *adv = 4;
    return (s[0] & 0x07) << 18 | (s[1] & 0x3F) << 12 | (s[2] & 0x3F) << 6 | (s[3] & 0x3F);
}
static inline int tok_utf8_put(char *o, int32_t c) {
    if (c < 0x80) { o[0] = (char)c; return 1; }
    if (c < 0x800) { o[0] = (char)(0xC0 | c >> 6); o[1] = (char)(0x80 | (c & 0x3F)); return 2; }
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12); o[1] = (char)(0x80 | (c >> 6 & 0x3F)); o[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18); o[1] = (char)(0x80 | (c >> 12 & 0x3F));
    o[2] = (char)(0x80 | (c >> 6 & 0x3F)); o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}
// GPT-2's bytes_to_unicode: the printable code point standing for each byte in byte-level tokens.
int32_t tok_byte_to_cp(int b);
// Inverse: the byte a code point stands for, or -1.
int tok_cp_to_byte(int32_t cp);
// Code points HF's (older) NFC data treats as inert starters while utf8proc does not: generated into
// tok_nfc_table.c by tools/tok_nfc_exceptions.py. Sorted, inclusive ranges.
extern const int32_t tok_nfc_inert[][2];
extern const int tok_nfc_inert_n;
int tok_nfc_is_inert(int32_t cp);
// Unicode White_Space (Rust's \s), used by lstrip / rstrip of added tokens.
int tok_is_white_space(int32_t cp);
// Rust regex \w (Alphabetic, marks, Nd, Pc, Join_Control), used by single_word added tokens.
int tok_is_word_char(int32_t cp);
