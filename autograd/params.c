#include "params.h"
#include <string.h>
#include "check.h"
#include "device.h"

void s2s_params_init(s2s_params *p, s2s_device dev) {
    memset(p, 0, sizeof *p);
    p->device = dev;
}

static void free_tensor(s2s_device dev, s2s_tensor *t) {
    if (!t) return;
    s2s_dev_free(dev, t->data);
    free(t);
}

void s2s_params_free(s2s_params *p) {
    for (int i = 0; i < p->n; i++) {
        if (p->items[i].t->grad) free_tensor(p->device, p->items[i].t->grad);
        free_tensor(p->device, p->items[i].t);
        free(p->items[i].name);
        free(p->items[i].module);
    }
    free(p->items);
    memset(p, 0, sizeof *p);
}

static s2s_tensor *tensor_persistent(s2s_device dev, int ndim, const int64_t *shape) {
    s2s_tensor *t = s2s_calloc(1, sizeof *t);
    t->dtype = S2S_F32;
    t->device = dev;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->data = s2s_dev_alloc(dev, s2s_nbytes(t));
    s2s_dev_memset0(dev, t->data, s2s_nbytes(t));
    return t;
}

static void set_trainable(s2s_params *p, s2s_param *q, bool trainable) {
    q->trainable = trainable;
    q->t->requires_grad = trainable;
    if (trainable && !q->t->grad) q->t->grad = tensor_persistent(p->device, q->t->ndim, q->t->shape);
    if (!trainable && q->t->grad) {  // a frozen parameter holds no gradient memory
        free_tensor(p->device, q->t->grad);
        q->t->grad = NULL;
    }
}

s2s_tensor *s2s_params_add(s2s_params *p, const char *name, const char *module, int ndim,
                           const int64_t *shape, bool trainable, bool weight_decay) {
    S2S_CHECK(!s2s_params_find(p, name), "parameter %s registered twice", name);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->items = s2s_realloc(p->items, (size_t)p->cap * sizeof *p->items);
    }
    s2s_param *q = &p->items[p->n++];
    memset(q, 0, sizeof *q);
    q->name = strdup(name);
    q->module = strdup(module ? module : "");
    q->weight_decay = weight_decay;
    q->t = tensor_persistent(p->device, ndim, shape);
    q->t->is_param = true;
    q->t->name = q->name;
    set_trainable(p, q, trainable);
    return q->t;
}

s2s_param *s2s_params_find(s2s_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0) return &p->items[i];
    return NULL;
}

int s2s_params_set_trainable(s2s_params *p, const char *prefix, bool trainable) {
    int hits = 0;
    size_t n = strlen(prefix);
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->items[i].name, prefix, n) == 0) {
            set_trainable(p, &p->items[i], trainable);
            hits++;
        }
    return hits;
}

void s2s_params_zero_grad(s2s_params *p) {
    for (int i = 0; i < p->n; i++)
        if (p->items[i].t->grad) s2s_dev_memset0(p->device, p->items[i].t->grad->data, s2s_nbytes(p->items[i].t->grad));
}

int64_t s2s_params_count(const s2s_params *p, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!trainable_only || p->items[i].trainable) n += s2s_numel(p->items[i].t);
    return n;
}
