// grad_sync.c — bucketed gradient all-reduce and ZeRO-2's bucketed reduce-scatter (grad_sync.h).
#include "grad_sync.h"
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"

static int64_t bucket_elems(double bucket_mb) {
    int64_t per = (int64_t)(bucket_mb * (1 << 20) / sizeof(float));
    return per < 1024 ? 1024 : per;
}

void s2s_grad_allreduce(s2s_comm *c, s2s_params *P, double bucket_mb) {
    if (s2s_comm_world(c) == 1 || P->flat_grad_n == 0) return;
    S2S_CHECK(P->flat_grad, "grad_sync: the registry's gradients are not flattened (s2s_params_flatten first)");
    const int64_t per = bucket_elems(bucket_mb);
    const int64_t nb = (P->flat_grad_n + per - 1) / per;
    s2s_comm_handle last = 0;
    for (int64_t b = nb - 1; b >= 0; b--) {  // the overlapped path's order (every rank must issue the same)
        const int64_t off = b * per, n = off + per <= P->flat_grad_n ? per : P->flat_grad_n - off;
        last = s2s_comm_allreduce_async(c, P->flat_grad + off, n, S2S_COMM_F32, S2S_COMM_SUM);
    }
    s2s_comm_wait(c, last);  // in order: the last done means all done
}

// ---- bucket layouts -----------------------------------------------------------------------------------------------

// Replicated: fixed slices of the flat buffer (a parameter may span several). start [nb + 1].
static int64_t *layout_fixed(const s2s_params *P, int64_t per, int64_t *nb) {
    *nb = (P->flat_grad_n + per - 1) / per;
    int64_t *start = s2s_malloc((size_t)(*nb + 1) * sizeof *start);
    for (int64_t b = 0; b < *nb; b++) start[b] = b * per;
    start[*nb] = P->flat_grad_n;
    return start;
}

// ZeRO-2: whole parameters (a gradient tensor needs one piece of memory), at least per elements a bucket, in
// layout order; a bucket ends where the next starts (padding included), the last at the layout's end.
static int by_int64(const void *a, const void *b) {
    const int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t *layout_params(const s2s_params *P, int64_t per, int64_t *nb) {
    int64_t *goff = s2s_malloc((size_t)(P->n + 1) * sizeof *goff);  // the parameters' starts, in layout order
    int n = 0;
    for (int i = 0; i < P->n; i++)
        if (P->items[i].trainable) goff[n++] = P->items[i].goff;
    qsort(goff, (size_t)n, sizeof *goff, by_int64);
    int64_t *start = s2s_malloc((size_t)(n + 2) * sizeof *start);
    int64_t k = 0;
    for (int i = 0; i < n; i++)
        if (k == 0 || goff[i] - start[k - 1] >= per) start[k++] = goff[i];
    *nb = k;
    start[k] = P->flat_grad_n;
    free(goff);
    return start;
}

static int64_t bucket_find(const s2s_grad_overlap *o, int64_t at) {  // the bucket holding element at
    int64_t lo = 0, hi = o->nb - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (o->start[mid] <= at) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// ---- ZeRO-2 bucket memory -----------------------------------------------------------------------------------------

static void bucket_alloc(s2s_grad_overlap *o, int64_t b) {
    const int64_t n = o->start[b + 1] - o->start[b];
    o->buf[b] = s2s_dev_alloc(o->P->device, (size_t)n * sizeof(float));
    s2s_dev_memset0(o->P->device, o->buf[b], (size_t)n * sizeof(float));  // zero: gradients accumulate into it
    o->live += n * (int64_t)sizeof(float);
    if (o->live > o->peak) o->peak = o->live;
}

static void bucket_release(s2s_grad_overlap *o, int64_t b) {
    if (!o->buf[b]) return;
    s2s_dev_free(o->P->device, o->buf[b]);
    o->buf[b] = NULL;
    o->live -= (o->start[b + 1] - o->start[b]) * (int64_t)sizeof(float);
}

// Free the memory of sent buckets whose reduce-scatter has finished (they finish in submission order). At most
// two stay in flight (DeepSpeed's double-buffered reduce buckets): past that the backward waits for the oldest, so
// the memory held is bounded by the gradients still being written plus two buckets, however slow the network.
#define IN_FLIGHT 2
static void reap(s2s_grad_overlap *o, bool wait) {
    for (; o->oldest > o->next; o->oldest--) {
        if (wait || o->oldest - o->next > IN_FLIGHT) s2s_comm_wait(o->c, o->h[o->oldest]);
        else if (!s2s_comm_test(o->c, o->h[o->oldest])) break;
        bucket_release(o, o->oldest);
    }
}

// ctx->param_grad: the parameter's gradient, a view into its bucket's memory.
static void param_grad(void *user, s2s_tensor *t) {
    s2s_grad_overlap *o = user;
    S2S_CHECK(t->track > 0, "grad_sync: parameter %s is not trainable in this step's layout", t->name);
    const int k = t->track - 1;
    const int64_t b = o->bucket_of[k];
    S2S_CHECK(b <= o->next, "grad_sync: parameter %s gets a gradient after its bucket was sent (a node used it "
              "earlier on the tape than recorded)", t->name);
    if (!o->buf[b]) bucket_alloc(o, b);
    const s2s_param *p = &o->P->items[o->param[k]];
    s2s_tensor *g = &o->heads[k];
    memset(g, 0, sizeof *g);
    g->dtype = S2S_F32, g->device = t->device, g->ndim = t->ndim;
    memcpy(g->shape, t->shape, sizeof g->shape);
    g->data = o->buf[b] + (p->goff - o->start[b]);
    g->flat_view = true;
    t->grad = g;
}

// The slice of bucket [a, e) each rank owns, into counts [world].
static void slice_counts(const s2s_grad_shard *s, int world, int64_t a, int64_t e, int *counts) {
    for (int r = 0; r < world; r++) {
        const int64_t lo = s->rank_lo[r] > a ? s->rank_lo[r] : a, hi = s->rank_lo[r + 1] < e ? s->rank_lo[r + 1] : e;
        counts[r] = hi > lo ? (int)(hi - lo) : 0;
    }
}

// ---- overlapped with backward ----------------------------------------------------------------------------------

static void submit(s2s_grad_overlap *o, int64_t b) {
    const int64_t a = o->start[b], e = o->start[b + 1];
    if (!o->shard) {
        o->last = s2s_comm_allreduce_async(o->c, o->P->flat_grad + a, e - a, S2S_COMM_F32, S2S_COMM_SUM);
        return;
    }
    if (!o->buf[b]) bucket_alloc(o, b);  // no gradient reached it this micro-batch: zeros
    for (int k = 0; k < o->n; k++)       // nothing writes to the bucket any more
        if (o->bucket_of[k] == b) o->P->items[o->param[k]].t->grad = NULL;
    int *counts = o->counts + b * o->world;
    slice_counts(o->shard, o->world, a, e, counts);
    const int64_t mine = a > o->shard->lo ? a : o->shard->lo;
    float *recv = o->shard->recv + (counts[o->rank] ? mine - o->shard->lo : 0);
    o->h[b] = o->last = s2s_comm_reduce_scatter_v_async(o->c, o->buf[b], recv, counts);
}

static void submit_ready(s2s_grad_overlap *o) {
    while (o->next >= 0 && o->pending[o->next] == 0) {
        submit(o, o->next--);
        if (o->shard) reap(o, false);
    }
}

static void complete(s2s_grad_overlap *o, int k) {
    const s2s_param *p = &o->P->items[o->param[k]];
    const int64_t lo = p->goff, hi = p->goff + s2s_numel(p->t);
    for (int64_t b = bucket_find(o, lo); b < o->nb && o->start[b] < hi; b++) o->pending[b]--;
}

static const int32_t *sort_key;
static int by_first_use_desc(const void *a, const void *b) {
    const int32_t x = sort_key[*(const int *)a], y = sort_key[*(const int *)b];
    return x < y ? 1 : x > y ? -1 : *(const int *)a - *(const int *)b;
}

static void on_node(void *user, int position) {
    s2s_grad_overlap *o = user;
    if (!o->sorted) {  // the forward is over: its first uses are known
        sort_key = o->first_use;
        qsort(o->order, (size_t)o->n, sizeof *o->order, by_first_use_desc);
        o->sorted = true;
    }
    while (o->done < o->n && o->first_use[o->order[o->done]] >= position) complete(o, o->order[o->done++]);
    const int64_t before = o->next;
    submit_ready(o);
    o->early += before - o->next;
}

void s2s_grad_overlap_begin(s2s_grad_overlap *o, s2s_comm *c, s2s_ctx *ctx, s2s_params *P, double bucket_mb,
                            const s2s_grad_shard *shard) {
    memset(o, 0, sizeof *o);
    o->c = c, o->P = P, o->ctx = ctx, o->shard = shard;
    if (shard)
        S2S_CHECK(P->grad_on_demand, "grad_sync: ZeRO-2 needs a registry without gradient memory "
                  "(s2s_params_grad_on_demand)");
    else
        S2S_CHECK(P->flat_grad, "grad_sync: the registry's gradients are not flattened (s2s_params_flatten first)");
    for (int i = 0; i < P->n; i++) o->n += P->items[i].trainable;
    o->param = s2s_malloc((size_t)(o->n + 1) * sizeof *o->param);
    o->order = s2s_malloc((size_t)(o->n + 1) * sizeof *o->order);
    o->first_use = s2s_malloc((size_t)(o->n + 1) * sizeof *o->first_use);
    const int64_t per = bucket_elems(bucket_mb);
    o->start = shard ? layout_params(P, per, &o->nb) : layout_fixed(P, per, &o->nb);
    o->next = o->oldest = o->nb - 1;
    o->pending = s2s_calloc((size_t)(o->nb + 1), sizeof *o->pending);
    if (shard) {
        o->world = s2s_comm_world(c), o->rank = s2s_comm_rank(c);
        o->bucket_of = s2s_malloc((size_t)(o->n + 1) * sizeof *o->bucket_of);
        o->heads = s2s_calloc((size_t)(o->n + 1), sizeof *o->heads);
        o->buf = s2s_calloc((size_t)(o->nb + 1), sizeof *o->buf);
        o->h = s2s_calloc((size_t)(o->nb + 1), sizeof *o->h);
        o->counts = s2s_calloc((size_t)((o->nb + 1) * o->world), sizeof *o->counts);
        for (int64_t b = 0; b < o->nb; b++)
            S2S_CHECK(o->start[b + 1] - o->start[b] < INT_MAX, "grad_sync: a bucket of %lld elements exceeds MPI's "
                      "int counts", (long long)(o->start[b + 1] - o->start[b]));
    }
    for (int i = 0, k = 0; i < P->n; i++) {
        s2s_param *p = &P->items[i];
        if (!p->trainable) continue;
        o->param[k] = i, o->order[k] = k, o->first_use[k] = INT32_MAX;  // unused: complete from the start
        p->t->track = k + 1;
        const int64_t lo = p->goff, hi = p->goff + s2s_numel(p->t);
        const int64_t b0 = bucket_find(o, lo);
        if (shard) o->bucket_of[k] = (int)b0;
        for (int64_t b = b0; b < o->nb && o->start[b] < hi; b++) o->pending[b]++;
        k++;
    }
    ctx->first_use = o->first_use;
    ctx->on_node = on_node, ctx->on_node_user = o;
    if (shard) ctx->param_grad = param_grad, ctx->param_grad_user = o;
}

int64_t s2s_grad_overlap_end(s2s_grad_overlap *o, int64_t *nb, int64_t *peak_bytes) {
    const int64_t early = o->early;
    *nb = o->nb;
    if (peak_bytes) *peak_bytes = o->peak;
    o->ctx->first_use = NULL;
    o->ctx->on_node = NULL, o->ctx->on_node_user = NULL;
    o->ctx->param_grad = NULL, o->ctx->param_grad_user = NULL;
    while (o->done < o->n) complete(o, o->order[o->done++]);
    while (o->next >= 0 && o->pending[o->next] == 0) submit(o, o->next--);
    S2S_CHECK(o->next < 0, "grad_sync: bucket %lld never completed", (long long)o->next);
    s2s_comm_wait(o->c, o->last);
    if (o->shard) reap(o, true);
    for (int k = 0; k < o->n; k++) o->P->items[o->param[k]].t->track = 0;
    free(o->param), free(o->order), free(o->first_use), free(o->pending), free(o->start);
    free(o->bucket_of), free(o->heads), free(o->buf), free(o->h), free(o->counts);
    memset(o, 0, sizeof *o);
    return early;
}

void s2s_grad_shard_idle(s2s_comm *c, s2s_params *P, double bucket_mb, const s2s_grad_shard *shard) {
    s2s_ctx dummy;  // no backward runs: the tracking hooks are set on a context nobody uses
    memset(&dummy, 0, sizeof dummy);
    s2s_grad_overlap o;
    s2s_grad_overlap_begin(&o, c, &dummy, P, bucket_mb, shard);
    int64_t nb;
    s2s_grad_overlap_end(&o, &nb, NULL);
}
