#include "arena.h"
#include "check.h"
#include "device.h"

static s2s_arena_block *block_new(s2s_device dev, size_t cap) {
    s2s_arena_block *b = s2s_calloc(1, sizeof *b);
    b->base = s2s_dev_alloc(dev, cap);
    b->cap = cap;
    return b;
}

void s2s_arena_init(s2s_arena *a, s2s_device dev, size_t initial_bytes) {
    a->device = dev;
    a->head = block_new(dev, initial_bytes < 4096 ? 4096 : initial_bytes);
    a->used = a->peak = a->grow_events = 0;
    a->host = NULL;
    if (dev != S2S_CPU) {  // headers and nodes: a few hundred bytes per op, so a small start suffices
        a->host = s2s_calloc(1, sizeof *a->host);
        s2s_arena_init(a->host, S2S_CPU, (size_t)1 << 20);
    }
}

void *s2s_arena_alloc_host(s2s_arena *a, size_t bytes) {
    return s2s_arena_alloc(a->host ? a->host : a, bytes);
}

void *s2s_arena_alloc(s2s_arena *a, size_t bytes) {
    size_t need = (bytes + 63) & ~(size_t)63;
    if (need == 0) need = 64;
    if (a->head->used + need > a->head->cap) {
        size_t cap = a->head->cap * 2 > need ? a->head->cap * 2 : need;
        s2s_arena_block *b = block_new(a->device, cap);
        b->next = a->head;
        a->head = b;
        a->grow_events++;
    }
    void *p = a->head->base + a->head->used;
    a->head->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void s2s_arena_reset(s2s_arena *a) {
    if (a->head->next) {  // merge: one block big enough for everything the last step needed
        size_t total = 0;
        for (s2s_arena_block *b = a->head; b; b = b->next) total += b->cap;
        s2s_arena_block *b = a->head;
        while (b) {
            s2s_arena_block *n = b->next;
            s2s_dev_free(a->device, b->base);
            free(b);
            b = n;
        }
        a->head = block_new(a->device, total);
    }
    a->head->used = 0;
    a->used = 0;
    if (a->host) s2s_arena_reset(a->host);
}

void s2s_arena_free(s2s_arena *a) {
    s2s_arena_block *b = a->head;
    while (b) {
        s2s_arena_block *n = b->next;
        s2s_dev_free(a->device, b->base);
        free(b);
        b = n;
    }
    a->head = NULL;
    if (a->host) {
        s2s_arena_free(a->host);
        free(a->host);
        a->host = NULL;
    }
}

s2s_arena_mark s2s_arena_get_mark(const s2s_arena *a) {
    s2s_arena_mark m = {a->head, a->head->used, a->used, NULL, 0, 0};
    if (a->host) {
        m.host_head = a->host->head;
        m.host_head_used = a->host->head->used;
        m.host_used = a->host->used;
    }
    return m;
}

void s2s_arena_rewind(s2s_arena *a, s2s_arena_mark m) {
    // Everything in blocks newer than the mark was allocated after it: the newest (largest) block
    // is emptied and reused; any in between sit idle until reset merges them.
    if (a->head == m.head) a->head->used = m.head_used;
    else a->head->used = 0;
    a->used = m.used;
    if (a->host) s2s_arena_rewind(a->host, (s2s_arena_mark){m.host_head, m.host_head_used, m.host_used, NULL, 0, 0});
}
