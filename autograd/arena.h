// arena.h — per-step bump allocator on one device. Allocation is a pointer bump; reset() frees
// everything at once. When a step needs more than the current block, an extra block is taken and,
// at the next reset, all blocks are merged into one of the combined size: after the first step the
// steady state does no malloc at all. The high-water mark is what a user sizes memory by.
#pragma once
#include <stddef.h>
#include "tensor.h"

typedef struct s2s_arena_block {
    char *base;
    size_t cap, used;
    struct s2s_arena_block *next;
} s2s_arena_block;

typedef struct s2s_arena {
    s2s_device device;
    s2s_arena_block *head;  // current block (newest first)
    size_t used;            // bytes handed out since the last reset, all blocks
    size_t peak;            // high-water mark of `used` over the arena's lifetime
    size_t grow_events;     // times a new block had to be taken (0 in the steady state)
    // Device arenas only: a host arena beside it for what the host writes and reads (tensor headers,
    // tape nodes, op-private structs). Tensor data lives on the device, the header describing it may
    // not: the host fills it in. NULL for a CPU arena, which is its own host side. Marks, rewinds and
    // resets cover both, so a recompute region or an op workspace releases headers with their data.
    struct s2s_arena *host;
} s2s_arena;

void s2s_arena_init(s2s_arena *a, s2s_device dev, size_t initial_bytes);
void *s2s_arena_alloc(s2s_arena *a, size_t bytes);  // 64-byte aligned, on a->device
void *s2s_arena_alloc_host(s2s_arena *a, size_t bytes);  // host memory released with a (64-byte aligned)
void s2s_arena_reset(s2s_arena *a);
void s2s_arena_free(s2s_arena *a);
// A mark lets a caller free everything allocated after it (used by recompute regions).
typedef struct {
    s2s_arena_block *head;
    size_t head_used, used;
    s2s_arena_block *host_head;  // the host side's position (device arenas)
    size_t host_head_used, host_used;
} s2s_arena_mark;
s2s_arena_mark s2s_arena_get_mark(const s2s_arena *a);
void s2s_arena_rewind(s2s_arena *a, s2s_arena_mark m);
