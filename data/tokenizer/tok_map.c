// tok_map.c — the tokenizer's two hash maps: byte string -> int32 (vocabulary, added tokens, BPE cache)
// and uint64 -> (int32, int32) (merge ranks, trie edges). Open addressing with linear probing at load factor
// <= 1/2, so a lookup is usually one cache line.
#include <stdlib.h>
#include "tok_internal.h"

// 8 bytes at a time with a multiply-mix; pre-tokens are short, so the tail handling matters as much as the
// loop.
uint64_t tok_hash_bytes(const char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ tok_mix64(w)) * 0x9E3779B97F4A7C15ull;
        p += 8, n -= 8;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, p, n);
        h = (h ^ tok_mix64(w ^ ((uint64_t)n << 59))) * 0x9E3779B97F4A7C15ull;
    }
    return tok_mix64(h);
}

static uint32_t pow2_at_least(uint64_t x) {
    uint32_t p = 16;
    while (p < x) p <<= 1;
    return p;
}

int tok_strmap_init(tok_strmap *m, uint32_t expected) {
    memset(m, 0, sizeof *m);
    uint32_t nslot = pow2_at_least((uint64_t)expected * 2 + 1);
    m->slot = calloc(nslot, sizeof *m->slot);
    m->cap = expected > 8 ? expected : 8;
    m->ent = malloc(m->cap * sizeof *m->ent);
    m->arena_cap = (size_t)m->cap * 8;
    m->arena = malloc(m->arena_cap);
    if (!m->slot || !m->ent || !m->arena) {
        tok_strmap_free(m);
        return -1;
    }
    m->mask = nslot - 1;
    return 0;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->slot);
    free(m->ent);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

void tok_strmap_clear(tok_strmap *m) {
    memset(m->slot, 0, ((size_t)m->mask + 1) * sizeof *m->slot);
    m->n = 0;
    m->arena_n = 0;
}

int64_t tok_strmap_find(const tok_strmap *m, const char *key, size_t len, uint64_t hash) {
    for (uint32_t i = (uint32_t)hash & m->mask;; i = (i + 1) & m->mask) {
        uint32_t s = m->slot[i];
        if (!s) return -1;
        const struct tok_strent *e = &m->ent[s - 1];
        if (e->hash == hash && e->len == len && !memcmp(m->arena + e->off, key, len)) return s - 1;
    }
}

static int strmap_grow(tok_strmap *m) {
    uint32_t nslot = (m->mask + 1) * 2;
    uint32_t *slot = calloc(nslot, sizeof *slot);
    if (!slot) return -1;
    for (uint32_t k = 0; k < m->n; k++) {
        uint32_t i = (uint32_t)m->ent[k].hash & (nslot - 1);
        while (slot[i]) i = (i + 1) & (nslot - 1);
        slot[i] = k + 1;
    }
    free(m->slot);
    m->slot = slot;
    m->mask = nslot - 1;
    return 0;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val) {
    uint64_t h = tok_hash_bytes(key, len);
    int64_t f = tok_strmap_find(m, key, len, h);
    if (f >= 0) {
        m->ent[f].val = val;
        return 0;
    }
    if ((uint64_t)(m->n + 1) * 2 > m->mask + 1 && strmap_grow(m)) return -1;
    if (m->n == m->cap) {
        void *p = realloc(m->ent, (size_t)m->cap * 2 * sizeof *m->ent);
        if (!p) return -1;
        m->ent = p;
        m->cap *= 2;
    }
    if (m->arena_n + len + 1 > m->arena_cap) {
        size_t c = m->arena_cap * 2;
        while (c < m->arena_n + len + 1) c *= 2;
        char *p = realloc(m->arena, c);
        if (!p) return -1;
        m->arena = p;
        m->arena_cap = c;
    }
    memcpy(m->arena + m->arena_n, key, len);
    m->arena[m->arena_n + len] = 0;
    m->ent[m->n] = (struct tok_strent){h, (uint32_t)m->arena_n, (uint32_t)len, val};
    m->arena_n += len + 1;
    uint32_t i = (uint32_t)h & m->mask;
    while (m->slot[i]) i = (i + 1) & m->mask;
    m->slot[i] = ++m->n;
    return 0;
}

int tok_u64map_init(tok_u64map *m, uint32_t expected) {
    uint32_t nslot = pow2_at_least((uint64_t)expected * 2 + 1);
    m->ent = calloc(nslot, sizeof *m->ent);
    m->mask = nslot - 1;
    m->n = 0;
    return m->ent ? 0 : -1;
}

void tok_u64map_free(tok_u64map *m) {
    free(m->ent);
    memset(m, 0, sizeof *m);
}

int tok_u64map_put(tok_u64map *m, uint64_t key, int32_t a, int32_t b) {
    if ((uint64_t)(m->n + 1) * 2 > m->mask + 1) {
        tok_u64map bigger;
        if (tok_u64map_init(&bigger, (m->mask + 1))) return -1;
        for (uint32_t i = 0; i <= m->mask; i++)
            if (m->ent[i].key) tok_u64map_put(&bigger, m->ent[i].key & ~(1ull << 63), m->ent[i].a, m->ent[i].b);
        free(m->ent);
        *m = bigger;
    }
    key |= 1ull << 63;
    uint32_t i = (uint32_t)tok_mix64(key) & m->mask;
    while (m->ent[i].key && m->ent[i].key != key) i = (i + 1) & m->mask;
    if (!m->ent[i].key) m->n++;
    m->ent[i] = (struct tok_u64ent){key, a, b};
    return 0;
}
