// grad_sync.c — bucketed gradient all-reduce (grad_sync.h).
#include "grad_sync.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"

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

// ---- overlapped with backward ----------------------------------------------------------------------------------

static void submit_ready(s2s_grad_overlap *o) {
    while (o->next >= 0 && o->pending[o->next] == 0) {
        const int64_t off = o->next * o->per, n = off + o->per <= o->P->flat_grad_n ? o->per : o->P->flat_grad_n - off;
        o->last = s2s_comm_allreduce_async(o->c, o->P->flat_grad + off, n, S2S_COMM_F32, S2S_COMM_SUM);
        o->next--;
    }
}

static void complete(s2s_grad_overlap *o, int k) {
    const s2s_param *p = &o->P->items[o->param[k]];
    const int64_t lo = p->goff, hi = p->goff + s2s_numel(p->t);
    for (int64_t b = lo / o->per; b <= (hi - 1) / o->per; b++) o->pending[b]--;
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

void s2s_grad_overlap_begin(s2s_grad_overlap *o, s2s_comm *c, s2s_ctx *ctx, s2s_params *P, double bucket_mb) {
    memset(o, 0, sizeof *o);
    o->c = c, o->P = P, o->ctx = ctx;
    S2S_CHECK(P->flat_grad, "grad_sync: the registry's gradients are not flattened (s2s_params_flatten first)");
    for (int i = 0; i < P->n; i++) o->n += P->items[i].trainable;
    o->param = s2s_malloc((size_t)(o->n + 1) * sizeof *o->param);
    o->order = s2s_malloc((size_t)(o->n + 1) * sizeof *o->order);
    o->first_use = s2s_malloc((size_t)(o->n + 1) * sizeof *o->first_use);
    o->per = bucket_elems(bucket_mb);
    o->nb = (P->flat_grad_n + o->per - 1) / o->per;
    o->next = o->nb - 1;
    o->pending = s2s_calloc((size_t)(o->nb + 1), sizeof *o->pending);
    for (int i = 0, k = 0; i < P->n; i++) {
        s2s_param *p = &P->items[i];
        if (!p->trainable) continue;
        o->param[k] = i, o->order[k] = k, o->first_use[k] = INT32_MAX;  // unused: complete from the start
        p->t->track = k + 1;
        const int64_t lo = p->goff, hi = p->goff + s2s_numel(p->t);
        for (int64_t b = lo / o->per; b <= (hi - 1) / o->per; b++) o->pending[b]++;
        k++;
    }
    ctx->first_use = o->first_use;
    ctx->on_node = on_node, ctx->on_node_user = o;
}

int64_t s2s_grad_overlap_end(s2s_grad_overlap *o, int64_t *nb) {
    const int64_t early = o->early;
    *nb = o->nb;
    o->ctx->first_use = NULL;
    o->ctx->on_node = NULL, o->ctx->on_node_user = NULL;
    while (o->done < o->n) complete(o, o->order[o->done++]);
    submit_ready(o);
    S2S_CHECK(o->next < 0, "grad_sync: bucket %lld never completed", (long long)o->next);
    s2s_comm_wait(o->c, o->last);
    for (int k = 0; k < o->n; k++) o->P->items[o->param[k]].t->track = 0;
    free(o->param), free(o->order), free(o->first_use), free(o->pending);
    memset(o, 0, sizeof *o);
    return early;
}
