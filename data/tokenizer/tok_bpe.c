// tok_bpe.c — byte-level BPE of one pre-token: start from the byte symbols, repeatedly apply the adjacent
// merge of lowest rank (leftmost on ties), exactly HF's Word::merge_all. Results are cached per word, since
// real text repeats its words.
#include <stdlib.h>
#include "tok_internal.h"

enum {
    CACHE_MAX_WORD = 256,          // longer pre-tokens are rare and rarely repeat
    CACHE_MAX_ENTRIES = 1 << 17,   // past either bound the cache starts over: bounded memory (~20 MB),
    CACHE_MAX_IDS = 1 << 22,       // no eviction bookkeeping
    SMALL_WORD = 64,               // up to this many symbols a linear scan beats the heap
};

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static inline int32_t pair_rank(const tok_u64map *m, int32_t a, int32_t b, int32_t *merged) {
    const struct tok_u64ent *e = tok_u64map_get(m, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (!e) return INT32_MAX;
    *merged = e->b;
    return e->a;
}

// Short words: symbols and the rank of each adjacent pair in flat arrays; each step scans for the lowest
// rank and closes the gap. O(n^2) in the worst case with a tiny constant.
static size_t merge_small(const tok_u64map *m, int32_t *ids, size_t n, int32_t *rank, int32_t *merged) {
    for (size_t i = 0; i + 1 < n; i++) rank[i] = pair_rank(m, ids[i], ids[i + 1], &merged[i]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == INT32_MAX) break;
        ids[best] = merged[best];
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
        memmove(rank + best + 1, rank + best + 2, (n > best + 2 ? n - best - 3 : 0) * sizeof *rank);
        memmove(merged + best + 1, merged + best + 2, (n > best + 2 ? n - best - 3 : 0) * sizeof *merged);
        n--;
        if (best > 0) rank[best - 1] = pair_rank(m, ids[best - 1], ids[best], &merged[best - 1]);
        if (best + 1 < n) rank[best] = pair_rank(m, ids[best], ids[best + 1], &merged[best]);
    }
    return n;
}

// Binary min-heap on (rank, pos), HF's order.
static inline int merge_less(const struct tok_merge *a, const struct tok_merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}
static void heap_push(struct tok_merge *h, size_t *n, struct tok_merge x) {
    size_t i = (*n)++;
    while (i && merge_less(&x, &h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = x;
}
static struct tok_merge heap_pop(struct tok_merge *h, size_t *n) {
    struct tok_merge top = h[0], x = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_less(&h[c + 1], &h[c])) c++;
        if (!merge_less(&h[c], &x)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = x;
    return top;
}

// Long words: a linked list of symbols and a heap of candidate merges with lazy invalidation.
static size_t merge_large(s2s_tok_encoder *e, int32_t *ids, size_t n) {
    const tok_u64map *m = &e->t->merges;
    struct tok_sym *s = e->sym;
    struct tok_merge *h = e->heap;
    size_t hn = 0;
    for (size_t i = 0; i < n; i++) s[i] = (struct tok_sym){ids[i], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t id = -1, r = pair_rank(m, ids[i], ids[i + 1], &id);
        if (r != INT32_MAX) heap_push(h, &hn, (struct tok_merge){r, (int32_t)i, id});
    }
    while (hn) {
        struct tok_merge top = heap_pop(h, &hn);
        struct tok_sym *cur = &s[top.pos];
        if (cur->id < 0 || cur->next < 0) continue;  // removed, or last symbol
        int32_t nid = -1, r = pair_rank(m, cur->id, s[cur->next].id, &nid);
        if (r != top.rank || nid != top.id) continue;  // stale entry
        int32_t right = cur->next;
        cur->id = top.id;
        cur->next = s[right].next;
        s[right].id = -1;
        if (cur->next >= 0) s[cur->next].prev = top.pos;
        if (cur->prev >= 0) {
            r = pair_rank(m, s[cur->prev].id, cur->id, &nid);
            if (r != INT32_MAX) heap_push(h, &hn, (struct tok_merge){r, cur->prev, nid});
        }
        if (cur->next >= 0) {
            r = pair_rank(m, cur->id, s[cur->next].id, &nid);
            if (r != INT32_MAX) heap_push(h, &hn, (struct tok_merge){r, top.pos, nid});
        }
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0 && (size_t)i < n; i = s[i].next) ids[k++] = s[i].id;
    return k;
}

static int cache_store(s2s_tok_encoder *e, const char *w, size_t n, const int32_t *ids, size_t k) {
    if (e->cache.n >= CACHE_MAX_ENTRIES || e->cache_ids_n + k + 1 > CACHE_MAX_IDS) {
        tok_strmap_clear(&e->cache);
        e->cache_ids_n = 0;
    }
    if (grow((void **)&e->cache_ids, &e->cache_ids_cap, e->cache_ids_n + k + 1, sizeof *e->cache_ids)) return -1;
    int32_t off = (int32_t)e->cache_ids_n;
    e->cache_ids[off] = (int32_t)k;
    memcpy(e->cache_ids + off + 1, ids, k * sizeof *ids);
    e->cache_ids_n += k + 1;
    return tok_strmap_put(&e->cache, w, n, off);
}

static int append(s2s_tok_ids *out, const int32_t *ids, size_t k) {
    if (grow((void **)&out->ids, &out->cap, out->n + k, sizeof *out->ids)) return -1;
    memcpy(out->ids + out->n, ids, k * sizeof *ids);
    out->n += k;
    return 0;
}

// The whole word as its byte-level string, looked up in the vocabulary (ignore_merges = true).
static int32_t whole_word_id(const s2s_tokenizer *t, const char *w, size_t n) {
    char buf[2 * CACHE_MAX_WORD];  // byte-level code points are at most U+0143: 2 UTF-8 bytes
    size_t bn = 0;
    if (n > CACHE_MAX_WORD) return -1;
    for (size_t i = 0; i < n; i++) bn += (size_t)tok_utf8_put(buf + bn, tok_byte_to_cp((unsigned char)w[i]));
    return tok_strmap_get(&t->vocab, buf, bn, -1);
}

int tok_bpe_word(s2s_tok_encoder *e, const char *w, size_t n, s2s_tok_ids *out) {
    const s2s_tokenizer *t = e->t;
    if (n == 1) {
        int32_t id = t->byte_id[(unsigned char)w[0]];
        return id < 0 ? 0 : append(out, &id, 1);
    }
    if (n <= CACHE_MAX_WORD) {
        int64_t f = tok_strmap_find(&e->cache, w, n, tok_hash_bytes(w, n));
        if (f >= 0) {
            const int32_t *c = e->cache_ids + e->cache.ent[f].val;
            return append(out, c + 1, (size_t)c[0]);
        }
    }
    // the symbols live in out's tail: merged in place, then kept
    if (grow((void **)&out->ids, &out->cap, out->n + n, sizeof *out->ids)) return -1;
    int32_t *ids = out->ids + out->n;
    int32_t whole = t->ignore_merges ? whole_word_id(t, w, n) : -1;
    size_t k = 0;
    if (whole >= 0) {
        ids[k++] = whole;
    } else {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_id[(unsigned char)w[i]];
            if (id >= 0) ids[k++] = id;  // a byte outside the vocabulary is dropped, as HF does without unk
        }
        if (k <= SMALL_WORD) {
            int32_t rank[SMALL_WORD], merged[SMALL_WORD];
            k = merge_small(&t->merges, ids, k, rank, merged);
        } else {
            // pushes: k - 1 initial pairs + at most 2 per merge
            if (grow((void **)&e->sym, &e->sym_cap, k, sizeof *e->sym) ||
                grow((void **)&e->heap, &e->heap_cap, 3 * k, sizeof *e->heap))
                return -1;
            k = merge_large(e, ids, k);
        }
    }
    out->n += k;
    return n <= CACHE_MAX_WORD ? cache_store(e, w, n, ids, k) : 0;
}
