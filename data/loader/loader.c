// loader.c — the loader's life cycle and its producer/consumer queue. One background thread (the producer) walks
// the stream (epoch, step) -> plan -> this rank's batch, fills the next free slot of a ring of prefetch + 1 batches
// and marks it ready; s2s_loader_next hands out slots strictly in ring order and frees the one it handed out the
// previous time. So batches arrive in stream order whatever the timing, the producer runs at most `prefetch`
// batches ahead, and a read error travels through its slot to the consumer with the file and sample named.
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "loader_internal.h"

enum { SLOT_EMPTY, SLOT_READY, SLOT_ERROR };

typedef struct slot {
    s2s_batch b;
    int state;
    s2s_derr err;
} slot;

struct s2s_loader {
    loader_index ix;
    loader_settings st;
    uint64_t plan_hash;
    int prefetch, mel_threads;
    // Producer side (the thread's while it runs; next()'s when prefetch is 0).
    loader_reader reader;
    loader_plan plan;
    int64_t prod_epoch, prod_step, prod_base;
    int wi;
    // The ring.
    slot *slots;
    int n_slots;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int running;
    atomic_int stop;
    // Consumer side.
    int ri, held;
    s2s_loader_cursor cur;
    int failed;
    s2s_derr err;
};

// Fills slot s with the batch at the producer's position (rolling over finished epochs) and advances it.
// Returns 0, 1 when stopped, -1 on error.
static int produce(s2s_loader *l, slot *s, s2s_derr *e) {
    for (;;) {
        if (l->plan.epoch != l->prod_epoch && loader_plan_build(&l->plan, &l->ix, &l->st, l->prod_epoch, e)) return -1;
        const int64_t steps = loader_plan_steps(&l->plan, &l->st, l->prod_base);
        if (steps == 0 && l->prod_base == 0)
            return s2s_derr_set(e, "loader: epoch %lld forms no step (%lld samples, world %d)", (long long)l->prod_epoch,
                                (long long)l->ix.n, l->st.world);
        if (l->prod_step < steps) break;
        l->prod_epoch++, l->prod_step = 0, l->prod_base = 0;
    }
    int64_t b = loader_plan_batch(&l->plan, &l->st, l->prod_base, l->prod_step);
    int64_t lo = l->plan.batch_off[b], hi = l->plan.batch_off[b + 1];
    int rc = loader_reader_fill(&l->reader, l->plan.ids + lo, hi - lo, &s->b, &l->stop, e);
    if (rc) return rc;
    s->b.epoch = l->prod_epoch, s->b.step = l->prod_step;
    s->b.steps_in_epoch = loader_plan_steps(&l->plan, &l->st, l->prod_base);
    l->prod_step++;
    return 0;
}

static void *producer_main(void *arg) {
    s2s_loader *l = arg;
    // This thread's own OpenMP team size: the trainer's threads are untouched.
    omp_set_num_threads(l->mel_threads > 0 ? l->mel_threads : 1);
    for (;;) {
        pthread_mutex_lock(&l->mu);
        while (!atomic_load(&l->stop) && l->slots[l->wi].state != SLOT_EMPTY) pthread_cond_wait(&l->cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
        if (atomic_load(&l->stop)) break;
        slot *s = &l->slots[l->wi];
        int rc = produce(l, s, &s->err);
        if (rc == 1) break;
        pthread_mutex_lock(&l->mu);
        s->state = rc ? SLOT_ERROR : SLOT_READY;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        if (rc) break;
        l->wi = (l->wi + 1) % l->n_slots;
    }
    return NULL;
}

static void producer_stop(s2s_loader *l) {
    if (!l->running) return;
    pthread_mutex_lock(&l->mu);
    atomic_store(&l->stop, 1);
    pthread_cond_broadcast(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = 0;
}

// Restarts the stream at (epoch, base, step) with an empty ring.
static int restart(s2s_loader *l, int64_t epoch, int64_t base, int64_t step, s2s_derr *e) {
    producer_stop(l);
    for (int i = 0; i < l->n_slots; i++) l->slots[i].state = SLOT_EMPTY;
    l->wi = l->ri = l->held = 0;
    l->failed = 0;
    l->prod_epoch = epoch, l->prod_step = step, l->prod_base = base;
    l->cur.epoch = epoch, l->cur.step = step, l->cur.base = base;
    atomic_store(&l->stop, 0);
    if (l->prefetch == 0) return 0;
    if (pthread_create(&l->thread, NULL, producer_main, l)) {  // next() then reports it instead of waiting forever
        l->failed = 1;
        s2s_derr_set(&l->err, "loader: cannot start its thread");
        return s2s_derr_set(e, "loader: cannot start its thread");
    }
    l->running = 1;
    return 0;
}

void s2s_loader_close(s2s_loader *l) {
    if (!l) return;
    producer_stop(l);
    for (int i = 0; l->slots && i < l->n_slots; i++) s2s_batch_free(&l->slots[i].b);
    free(l->slots);
    loader_reader_free(&l->reader);
    loader_plan_free(&l->plan);
    loader_index_free(&l->ix);
    pthread_cond_destroy(&l->cv);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

static int check_config(const s2s_loader_config *c, s2s_derr *e) {
    int world = c->world ? c->world : 1;
    if (world < 1 || c->rank < 0 || c->rank >= world)
        return s2s_derr_set(e, "loader: rank %d of world %d is not a rank of the job", c->rank, world);
    if ((c->batch_samples > 0) == (c->token_budget > 0))
        return s2s_derr_set(e, "loader: set exactly one of batch_samples (%lld) and token_budget (%lld)",
                            (long long)c->batch_samples, (long long)c->token_budget);
    if (c->batch_samples < 0 || c->token_budget < 0 || c->bucket_window < 0 || c->prefetch < 0 || c->prefetch > 1024 ||
        c->mel_threads < 0 || c->max_open < 0)
        return s2s_derr_set(e, "loader: batch_samples, token_budget, bucket_window, prefetch (<= 1024), mel_threads "
                               "and max_open must not be negative");
    return 0;
}

s2s_loader *s2s_loader_open(const s2s_loader_config *cfg, s2s_derr *e) {
    if (check_config(cfg, e)) return NULL;
    s2s_loader *l = calloc(1, sizeof *l);
    if (!l) return s2s_derr_set(e, "loader: out of memory"), NULL;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    l->plan.epoch = -1;
    l->st = (loader_settings){cfg->seed, cfg->rank, cfg->world ? cfg->world : 1, cfg->batch_samples,
                              cfg->token_budget, cfg->bucket_window, cfg->no_shuffle != 0, cfg->pad_last != 0};
    l->prefetch = cfg->prefetch, l->mel_threads = cfg->mel_threads;
    l->n_slots = cfg->prefetch > 0 ? cfg->prefetch + 1 : 1;
    if (loader_index_build(&l->ix, cfg, e)) goto fail;
    l->plan_hash = loader_plan_hash(&l->ix, &l->st);
    if (loader_plan_build(&l->plan, &l->ix, &l->st, 0, e)) goto fail;
    if (loader_plan_steps(&l->plan, &l->st, 0) == 0) {
        s2s_derr_set(e, "loader: %lld samples in %d shard(s) form no step of %d rank(s) with %s %lld", (long long)l->ix.n,
                     l->ix.n_shards, l->st.world, cfg->batch_samples > 0 ? "batch_samples" : "token_budget",
                     (long long)(cfg->batch_samples > 0 ? cfg->batch_samples : cfg->token_budget));
        goto fail;
    }
    if (loader_reader_init(&l->reader, &l->ix, cfg->max_open, cfg->mel != 0, e)) goto fail;
    if (!(l->slots = calloc(l->n_slots, sizeof *l->slots))) {
        s2s_derr_set(e, "loader: out of memory");
        goto fail;
    }
    l->cur = (s2s_loader_cursor){.seed = l->st.seed, .world = l->st.world, .plan_hash = l->plan_hash};
    if (restart(l, 0, 0, 0, e)) goto fail;
    return l;
fail:
    s2s_loader_close(l);
    return NULL;
}

int s2s_loader_next(s2s_loader *l, const s2s_batch **out, s2s_derr *e) {
    *out = NULL;
    if (l->failed) return s2s_derr_set(e, "%s", l->err.msg);
    slot *s;
    if (l->prefetch == 0) {
        s = &l->slots[0];
        if (produce(l, s, &l->err)) {
            l->failed = 1;
            return s2s_derr_set(e, "%s", l->err.msg);
        }
    } else {
        pthread_mutex_lock(&l->mu);
        if (l->held) {  // the batch handed out last time is done with: its slot is free again
            l->slots[l->ri].state = SLOT_EMPTY;
            l->ri = (l->ri + 1) % l->n_slots;
            l->held = 0;
            pthread_cond_broadcast(&l->cv);
        }
        while (l->slots[l->ri].state == SLOT_EMPTY) pthread_cond_wait(&l->cv, &l->mu);
        s = &l->slots[l->ri];
        int bad = s->state == SLOT_ERROR;
        if (!bad) l->held = 1;
        pthread_mutex_unlock(&l->mu);
        if (bad) {
            l->failed = 1;
            l->err = s->err;
            return s2s_derr_set(e, "%s", l->err.msg);
        }
    }
    *out = &s->b;
    l->cur.epoch = s->b.epoch, l->cur.step = s->b.step + 1;
    if (l->cur.step == s->b.steps_in_epoch) l->cur.epoch++, l->cur.step = 0, l->cur.base = 0;
    return 0;
}

s2s_loader_cursor s2s_loader_tell(const s2s_loader *l) { return l->cur; }

int s2s_loader_seek(s2s_loader *l, const s2s_loader_cursor *c, s2s_derr *e) {
    if (c->seed != l->st.seed)
        return s2s_derr_set(e, "loader: the cursor is of seed %llu, this job has seed %llu",
                            (unsigned long long)c->seed, (unsigned long long)l->st.seed);
    if (c->plan_hash != l->plan_hash)
        return s2s_derr_set(e, "loader: the cursor's plan hash %016llx differs from this job's %016llx: the shards "
                               "(their sizes) or the batching settings changed since it was saved",
                            (unsigned long long)c->plan_hash, (unsigned long long)l->plan_hash);
    if (c->epoch < 0 || c->step < 0 || c->base < 0 || c->world < 1)
        return s2s_derr_set(e, "loader: cursor epoch %lld base %lld step %lld world %d is out of range",
                            (long long)c->epoch, (long long)c->base, (long long)c->step, c->world);
    // Checked before the running stream is touched.
    loader_plan p = {.epoch = -1};
    if (loader_plan_build(&p, &l->ix, &l->st, c->epoch, e)) {
        loader_plan_free(&p);
        return -1;
    }
    loader_settings then = l->st;
    then.world = c->world;
    const int64_t steps = loader_plan_steps(&p, &then, c->base);
    int64_t epoch = c->epoch, base = c->base, step = c->step;
    int rc = 0;
    if (step > steps) {
        rc = s2s_derr_set(e, "loader: cursor step %lld is past the %lld steps of epoch %lld", (long long)step,
                          (long long)steps, (long long)epoch);
    } else if (c->world != l->st.world) {
        // Another world size: what its ranks consumed stays consumed; this world deals the rest of the epoch.
        base += step * c->world, step = 0;
        if (base > p.n_batches) base = p.n_batches;  // pad_last repeats past the end: the epoch is done
        if (loader_plan_steps(&p, &l->st, base) == 0) epoch++, base = 0;
    }
    loader_plan_free(&p);
    return rc ? rc : restart(l, epoch, base, step, e);
}

int64_t s2s_loader_steps_in_epoch(s2s_loader *l, int64_t epoch, s2s_derr *e) {
    loader_plan p = {.epoch = -1};
    int64_t steps = loader_plan_build(&p, &l->ix, &l->st, epoch, e) ? -1 : loader_plan_steps(&p, &l->st, 0);
    loader_plan_free(&p);
    return steps;
}

int64_t s2s_loader_num_samples(const s2s_loader *l) { return l->ix.n; }
int s2s_loader_num_shards(const s2s_loader *l) { return l->ix.n_shards; }
const char *s2s_loader_shard_path(const s2s_loader *l, int shard) { return l->ix.paths[shard]; }
s2s_shard_kind s2s_loader_kind(const s2s_loader *l) { return l->ix.kind; }
