// zero.c — ZeRO stages 1 and 2 (zero.h). The buffers live on the registry's device (the collectives then run on
// NCCL with the CUDA backend); the arithmetic on them goes through ops' raw-buffer functions.
#include "zero.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/check.h"
#include "autograd/device.h"
#include "ops/ops.h"

static float *zeros(s2s_device dev, int64_t n) {  // [n] on dev
    float *p = s2s_dev_alloc(dev, (size_t)n * sizeof(float));
    s2s_dev_memset0(dev, p, (size_t)n * sizeof(float));
    return p;
}

void s2s_zero_init(s2s_zero *z, s2s_comm *c, s2s_params *P, s2s_adam_state *opt, int level) {
    memset(z, 0, sizeof *z);
    z->rank = s2s_comm_rank(c), z->world = s2s_comm_world(c), z->level = level, z->device = P->device;
    S2S_CHECK(level == 1 || level == 2, "zero: level %d (1 or 2)", level);
    S2S_CHECK(level == 1 || P->grad_on_demand, "zero: stage 2 needs gradients on demand (s2s_params_grad_on_demand)");
    const int64_t n = P->flat_grad_n;
    z->blk = ((n + z->world - 1) / z->world + 15) / 16 * 16;  // 64-byte blocks
    if (z->blk == 0) z->blk = 16;
    const int64_t lo = z->rank * z->blk, hi = lo + z->blk < n ? lo + z->blk : n;
    s2s_adam_shard(opt, lo < n ? lo : n, lo < n ? hi : n);
    if (level == 1 && z->world * z->blk != n) z->send = zeros(z->device, z->world * z->blk);
    z->g = zeros(z->device, z->blk);
    if (level == 2) {
        z->rank_lo = s2s_malloc((size_t)(z->world + 1) * sizeof *z->rank_lo);
        for (int r = 0; r <= z->world; r++) z->rank_lo[r] = r * z->blk < n ? r * z->blk : n;
        z->shard = (s2s_grad_shard){.lo = z->rank_lo[z->rank], .hi = z->rank_lo[z->rank + 1], .rank_lo = z->rank_lo};
    }
    z->pack = zeros(z->device, z->blk);
    z->all = zeros(z->device, z->world * z->blk);
}

void s2s_zero_free(s2s_zero *z) {
    s2s_dev_free(z->device, z->send), s2s_dev_free(z->device, z->g), s2s_dev_free(z->device, z->pack);
    s2s_dev_free(z->device, z->all), s2s_dev_free(z->device, z->stage);
    free(z->rank_lo);
    memset(z, 0, sizeof *z);
}

double s2s_zero_reduce(s2s_zero *z, s2s_comm *c, s2s_ctx *ctx, const s2s_params *P) {
    if (z->level == 1) {
        const float *src = P->flat_grad;
        if (z->send) {
            s2s_dev_copy(z->device, z->send, z->device, P->flat_grad, (size_t)P->flat_grad_n * sizeof(float));
            src = z->send;  // the tail past the layout stays zero
        }
        s2s_comm_wait(c, s2s_comm_reduce_scatter_async(c, src, z->g, z->blk));
    }
    double ss = s2s_buf_sumsq(ctx, z->g, z->blk);
    s2s_comm_allreduce(c, &ss, 1, S2S_COMM_F64, S2S_COMM_SUM);
    return sqrt(ss);
}

const s2s_grad_shard *s2s_zero_shard(s2s_zero *z, int64_t micro) {
    S2S_CHECK(z->level == 2, "zero: a gradient shard is stage 2's");
    if (micro > 0 && !z->stage) z->stage = zeros(z->device, z->blk);
    z->shard.recv = micro == 0 ? z->g : z->stage;  // the first micro-batch's slices overwrite last step's
    return &z->shard;
}

void s2s_zero_accumulate(s2s_zero *z, s2s_ctx *ctx, int64_t micro) {
    if (micro == 0) return;
    s2s_buf_add(ctx, z->g, z->stage, z->shard.hi - z->shard.lo);
}

void s2s_zero_clip(s2s_zero *z, s2s_ctx *ctx, double norm, double max_norm) {
    const double f = max_norm / (norm + 1e-6);
    if (max_norm <= 0 || f >= 1.0) return;
    s2s_buf_scale(ctx, z->g, z->blk, (float)f);
}

void s2s_zero_update(s2s_zero *z, s2s_ctx *ctx, s2s_adam_state *opt, s2s_params *P, double lr) {
    s2s_adam_update_range(ctx, opt, P, lr, z->g);
}

void s2s_zero_gather(s2s_zero *z, s2s_comm *c, const s2s_adam_state *opt, s2s_params *P) {
    // Pack this rank's range of the values (gradient layout), gather everyone's, unpack into every parameter.
    s2s_dev_memset0(z->device, z->pack, (size_t)z->blk * sizeof(float));
    for (int k = 0; k < opt->n_slots; k++) {
        const s2s_adam_slot *sl = &opt->slots[k];
        const int64_t a = sl->off > opt->lo ? sl->off : opt->lo;
        const int64_t b = sl->off + sl->n < opt->hi ? sl->off + sl->n : opt->hi;
        if (a >= b) continue;
        const s2s_param *p = s2s_params_find(P, sl->name);
        s2s_dev_copy(z->device, z->pack + (a - opt->lo), z->device, (const float *)p->t->data + (a - sl->off),
                     (size_t)(b - a) * sizeof(float));
    }
    s2s_comm_wait(c, s2s_comm_allgather_async(c, z->pack, z->all, z->blk));
    for (int k = 0; k < opt->n_slots; k++) {
        const s2s_adam_slot *sl = &opt->slots[k];
        s2s_param *p = s2s_params_find(P, sl->name);
        s2s_dev_copy(z->device, p->t->data, z->device, z->all + sl->off, (size_t)sl->n * sizeof(float));
    }
}

void s2s_zero_memory(const s2s_params *P, const s2s_adam_state *opt, const s2s_zero *z, int64_t *params,
                     int64_t *grads, int64_t *state) {
    *params = P->flat_n * (int64_t)sizeof(float);
    *grads = (z && z->level == 2 ? z->blk : P->flat_grad_n) * (int64_t)sizeof(float);
    *state = 2 * (opt->hi - opt->lo) * (int64_t)sizeof(float);
}
