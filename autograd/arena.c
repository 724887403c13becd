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
}

s2s_arena_mark s2s_arena_get_mark(const s2s_arena *a) {
    return (s2s_arena_mark){a->head, a->head->used, a->used};
}

void s2s_arena_rewind(s2s_arena *a, s2s_arena_mark m) {
    // Everything in blocks newer than the mark was allocated after it: the newest (largest) block
    // is emptied and reused; any in between sit idle until reset merges them.
    if (a->head == m.head) a->head->used = m.head_used;
    else a->head->used = 0;
    a->used = m.used;
}
