// loader_plan.c — one epoch's global plan as a pure function of (index, settings, seed, epoch): every rank
// computes the same plan and takes its own batches from it, so ranks agree without talking and a resumed job
// recomputes exactly what it would have seen. docs/loader.md states the algorithm step by step.
#include <stdlib.h>
#include <string.h>
#include "base/mix.h"
#include "loader_internal.h"

// ---- the generator ----------------------------------------------------------------------------------------
// splitmix64 is counter-based: draw k is a pure function of (key, k), so no generator state needs saving and any
// other implementation can reproduce a shuffle from the documented formulas.

uint64_t loader_rng_key(uint64_t seed, int64_t epoch, uint64_t stream) {
    return s2s_mix64(s2s_mix64(s2s_mix64(seed) ^ (uint64_t)epoch) ^ stream);
}

uint64_t loader_rng_draw(uint64_t key, uint64_t k) { return s2s_mix64(key + (k + 1) * S2S_GOLDEN64); }

// Fisher-Yates from the back; j = floor(draw * (i+1) / 2^64) (Lemire's multiply-shift: no modulo bias worth the
// name, and exact integer arithmetic in any language).
void loader_shuffle(int64_t *v, int64_t n, uint64_t key) {
    for (int64_t i = n - 1, k = 0; i >= 1; i--, k++) {
        int64_t j = (int64_t)(((unsigned __int128)loader_rng_draw(key, (uint64_t)k) * (uint64_t)(i + 1)) >> 64);
        int64_t t = v[i];
        v[i] = v[j], v[j] = t;
    }
}

enum { STREAM_SAMPLES = 1, STREAM_BATCHES = 2 };

// ---- hash ------------------------------------------------------------------------------------------------

uint64_t loader_plan_hash(const loader_index *ix, const loader_settings *st) {
    // The world is not an input: the batch list is the same for any number of ranks (they only deal it), so a
    // cursor of one world size continues on another (s2s_loader_seek re-deals the rest of the epoch).
    int64_t v[] = {2 /* plan algorithm version */, st->batch_samples, st->token_budget, st->bucket_window,
                   st->no_shuffle, st->pad_last};
    uint64_t h = s2s_fnv1a(S2S_FNV1A_OFFSET, v, sizeof v);
    return s2s_fnv1a(h, &ix->hash, sizeof ix->hash);
}

// ---- plan ------------------------------------------------------------------------------------------------

static int grow(int64_t **p, int64_t *cap, int64_t need) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    int64_t *q = realloc(*p, sizeof(int64_t) * c);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

// Sorts order[0..n) by cost, ties in their current (shuffled) order: the key packs (cost, position).
static void sort_window(int64_t *order, int64_t n, const int32_t *cost, uint64_t *keys, int64_t *tmp) {
    for (int64_t i = 0; i < n; i++) keys[i] = (uint64_t)(uint32_t)cost[order[i]] << 32 | (uint64_t)i;
    qsort(keys, n, sizeof *keys, cmp_u64);
    memcpy(tmp, order, sizeof(int64_t) * n);
    for (int64_t i = 0; i < n; i++) order[i] = tmp[keys[i] & 0xFFFFFFFFu];
}

int64_t loader_plan_steps(const loader_plan *p, const loader_settings *st, int64_t base) {
    const int64_t left = p->n_batches - base;
    if (left <= 0) return 0;
    return st->pad_last ? (left + st->world - 1) / st->world : left / st->world;
}

int64_t loader_plan_batch(const loader_plan *p, const loader_settings *st, int64_t base, int64_t step) {
    const int64_t b = base + step * st->world + st->rank;
    return b < p->n_batches ? b : b % p->n_batches;  // pad_last: the epoch's first batches again
}

void loader_plan_free(loader_plan *p) {
    free(p->batch_off);
    free(p->ids);
    memset(p, 0, sizeof *p);
    p->epoch = -1;
}

int loader_plan_build(loader_plan *p, const loader_index *ix, const loader_settings *st, int64_t epoch,
                      s2s_derr *e) {
    const int64_t N = ix->n, B = st->batch_samples;
    int64_t W = st->bucket_window > 0 ? st->bucket_window : N;
    if (B > 0) W = (W + B - 1) / B * B;  // whole batches per window: only the epoch's last batch can be short
    if (W > ((int64_t)1 << 32)) W = (int64_t)1 << 32;  // the sort key keeps the position in 32 bits
    if (W < 1) W = 1;
    int64_t *order = malloc(sizeof(int64_t) * (N ? N : 1));    // the epoch's sample order
    int64_t *tmp = malloc(sizeof(int64_t) * (N ? N : 1));
    uint64_t *keys = malloc(sizeof(uint64_t) * (W < N ? W : N ? N : 1));
    int64_t *bounds = NULL, cap_bounds = 0, nb = 0;  // batch b = order[bounds[b] .. bounds[b+1])
    int64_t *perm = NULL;
    int rc = -1;
    if (!order || !tmp || !keys || grow(&bounds, &cap_bounds, 1)) goto oom;
    for (int64_t i = 0; i < N; i++) order[i] = i;
    if (!st->no_shuffle) loader_shuffle(order, N, loader_rng_key(st->seed, epoch, STREAM_SAMPLES));

    // 1. Batches within windows (one window without bucketing).
    bounds[0] = 0;
    int short_last = 0;
    for (int64_t w0 = 0; w0 < N; w0 += W) {
        int64_t wn = N - w0 < W ? N - w0 : W;
        if (st->bucket_window > 0) sort_window(order + w0, wn, ix->cost, keys, tmp);
        for (int64_t i = w0; i < w0 + wn;) {
            int64_t j = i;
            if (B > 0) {
                j = i + B < w0 + wn ? i + B : w0 + wn;
                short_last = j - i < B;
            } else {  // greedy: grow while (count + 1) * max cost fits the budget (every cost alone fits: open checks)
                int64_t mx = 0;
                while (j < w0 + wn) {
                    int64_t c = ix->cost[order[j]], m2 = c > mx ? c : mx;
                    if (j > i && (j - i + 1) * m2 > st->token_budget) break;
                    mx = m2, j++;
                }
            }
            if (grow(&bounds, &cap_bounds, nb + 2)) goto oom;
            bounds[++nb] = j;
            i = j;
        }
    }
    // 2. A short last batch (fixed size only): dropped, or topped up from the epoch's first samples.
    int64_t extra = 0;  // samples appended after order[N-1] by the top-up
    if (short_last && !st->pad_last) nb--;
    else if (short_last) extra = B - (bounds[nb] - bounds[nb - 1]);

    // 3. With bucketing the batches come out sorted by length: shuffle their order.
    if (!(perm = malloc(sizeof(int64_t) * (nb ? nb : 1)))) goto oom;
    for (int64_t b = 0; b < nb; b++) perm[b] = b;
    if (st->bucket_window > 0 && !st->no_shuffle) loader_shuffle(perm, nb, loader_rng_key(st->seed, epoch, STREAM_BATCHES));

    // 4. The epoch's batch list, the same for any world size: whole steps are cut from it when it is dealt
    // (loader_plan_steps).
    int64_t total = nb;
    if (grow(&p->batch_off, &p->cap_batches, total + 1)) goto oom;
    p->batch_off[0] = 0;
    for (int64_t b = 0; b < total; b++) {
        int64_t src = perm[b % (nb ? nb : 1)], lo = bounds[src], hi = bounds[src + 1];
        int64_t len = hi - lo + (src == nb - 1 ? extra : 0);
        int64_t at = p->batch_off[b];
        if (grow(&p->ids, &p->cap_ids, at + len)) goto oom;
        memcpy(p->ids + at, order + lo, sizeof(int64_t) * (hi - lo));
        for (int64_t k = 0; k < len - (hi - lo); k++) p->ids[at + (hi - lo) + k] = order[k % N];
        p->batch_off[b + 1] = at + len;
    }
    p->epoch = epoch;
    p->n_batches = total;
    rc = 0;
    goto done;
oom:
    s2s_derr_set(e, "loader: out of memory planning epoch %lld (%lld samples)", (long long)epoch, (long long)N);
done:
    free(order);
    free(tmp);
    free(keys);
    free(bounds);
    free(perm);
    return rc;
}
