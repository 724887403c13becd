// tok_added.c — added / special tokens: a byte trie for leftmost-longest matching (HF uses an Aho-Corasick
// automaton in LeftmostLongest mode, which finds the same matches), and HF's find_matches rules for
// single_word, lstrip and rstrip.
#include <stdlib.h>
#include "tok_internal.h"

static int32_t new_node(tok_trie *tr) {
    if (tr->n_nodes == tr->cap) {
        int32_t c = tr->cap ? tr->cap * 2 : 256;
        int32_t *p = realloc(tr->term, (size_t)c * sizeof *p);
        if (!p) return -1;
        tr->term = p;
        tr->cap = c;
    }
    tr->term[tr->n_nodes] = -1;
    return tr->n_nodes++;
}

int tok_trie_build(tok_trie *tr, const s2s_tokenizer *t, int normalized_set, s2s_derr *err) {
    memset(tr, 0, sizeof *tr);
    tr->empty = 1;
    if (tok_u64map_init(&tr->edges, 64) || new_node(tr) < 0) return s2s_derr_set(err, "%s: out of memory", t->file);
    // added_map entries are in file order, so on duplicates the first token wins, like HF's pattern order
    for (uint32_t i = 0; i < t->added_map.n; i++) {
        const struct tok_strent *e = &t->added_map.ent[i];
        const tok_added *a = &t->added[e->val];
        if (a->normalized != normalized_set) continue;
        const char *s = t->added_map.arena + e->off;
        size_t n = e->len;
        tok_nfc_buf norm = {0};
        if (normalized_set && t->nfc) {  // normalized tokens match the normalized text: normalize them too
            int64_t r = tok_nfc(&norm, s, n);
            if (r < 0) return s2s_derr_set(err, "%s: added_tokens: cannot NFC-normalise \"%.64s\"", t->file, s);
            s = norm.out, n = (size_t)r;
        }
        int32_t node = 0;
        for (size_t k = 0; k < n; k++) {
            uint64_t key = (uint64_t)node << 8 | (unsigned char)s[k];
            const struct tok_u64ent *edge = tok_u64map_get(&tr->edges, key);
            if (edge) {
                node = edge->a;
                continue;
            }
            int32_t child = new_node(tr);
            if (child < 0 || tok_u64map_put(&tr->edges, key, child, 0)) {
                tok_nfc_buf_free(&norm);
                return s2s_derr_set(err, "%s: out of memory", t->file);
            }
            node = child;
        }
        if (n && tr->term[node] < 0) tr->term[node] = e->val;
        if (n) tr->first[(unsigned char)s[0]] = 1, tr->empty = 0;
        tok_nfc_buf_free(&norm);
    }
    return 0;
}

void tok_trie_free(tok_trie *tr) {
    tok_u64map_free(&tr->edges);
    free(tr->term);
    memset(tr, 0, sizeof *tr);
}

// The leftmost match starting at or after `from`, longest at that position. Returns the added-token index
// or -1; [*ms, *me) is the match.
int32_t tok_trie_next(const tok_trie *tr, const unsigned char *s, size_t n, size_t from, size_t *ms, size_t *me) {
    for (size_t i = from; i < n; i++) {
        if (!tr->first[s[i]]) continue;
        int32_t node = 0, best = -1;
        size_t end = 0;
        for (size_t j = i; j < n; j++) {
            const struct tok_u64ent *edge = tok_u64map_get(&tr->edges, (uint64_t)node << 8 | s[j]);
            if (!edge) break;
            node = edge->a;
            if (tr->term[node] >= 0) best = tr->term[node], end = j + 1;
        }
        if (best >= 0) {
            *ms = i, *me = end;
            return best;
        }
    }
    return -1;
}

// Start of the code point that ends just before s[i].
static size_t prev_cp(const unsigned char *s, size_t i) {
    do i--; while (i && (s[i] & 0xC0) == 0x80);
    return i;
}

static int ends_with_word(const unsigned char *s, size_t end) {
    if (!end) return 0;
    int adv;
    return tok_is_word_char(tok_utf8_get(s + prev_cp(s, end), &adv));
}

static int starts_with_word(const unsigned char *s, size_t start, size_t n) {
    int adv;
    return start < n && tok_is_word_char(tok_utf8_get(s + start, &adv));
}

int tok_added_split(s2s_tok_encoder *e, const tok_trie *tr, const char *text, size_t n, tok_piece_fn gap,
                    s2s_tok_ids *out, s2s_derr *err) {
    const unsigned char *s = (const unsigned char *)text;
    const s2s_tokenizer *t = e->t;
    size_t start_offset = 0, pos = 0, ms, me;
    int32_t idx;
    while (pos < n && (idx = tok_trie_next(tr, s, n, pos, &ms, &me)) >= 0) {
        const tok_added *a = &t->added[idx];
        pos = me;  // HF's iterator resumes after the match, whatever lstrip / rstrip take
        if (a->single_word && ((ms && ends_with_word(s, ms)) || (me < n && starts_with_word(s, me, n)))) continue;
        size_t start = ms, stop = me;
        if (a->lstrip) {
            size_t ns = start;
            int adv;
            while (ns && tok_is_white_space(tok_utf8_get(s + prev_cp(s, ns), &adv))) ns = prev_cp(s, ns);
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            int adv;
            while (stop < n && tok_is_white_space(tok_utf8_get(s + stop, &adv))) stop += (size_t)adv;
        }
        if (start_offset < start && gap(e, text + start_offset, start - start_offset, out, err)) return -1;
        if (s2s_tok_ids_push(out, a->id)) return s2s_derr_set(err, "out of memory");
        start_offset = stop;
    }
    if (start_offset < n && gap(e, text + start_offset, n - start_offset, out, err)) return -1;
    return 0;
}
