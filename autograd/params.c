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

// A view into a flat buffer frees only its header.
static void free_view(s2s_device dev, s2s_tensor *t, bool view) {
    if (!t) return;
    if (view) free(t);
    else free_tensor(dev, t);
}

void s2s_params_free(s2s_params *p) {
    for (int i = 0; i < p->n; i++) {
        s2s_param *q = &p->items[i];
        free_view(p->device, q->t->grad, q->goff >= 0);
        free_view(p->device, q->t, q->off >= 0);
        free(q->name);
        free(q->module);
    }
    s2s_dev_free(p->device, p->flat);
    s2s_dev_free(p->device, p->flat_grad);
    free(p->items);
    memset(p, 0, sizeof *p);
}

static s2s_tensor *tensor_persistent(s2s_device dev, int ndim, const int64_t *shape, bool shapes_only) {
    s2s_tensor *t = s2s_calloc(1, sizeof *t);
    t->dtype = S2S_F32;
    t->device = dev;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    if (shapes_only) return t;  // a layout-only registry (s2s_params_shapes_only): no values
    t->data = s2s_dev_alloc(dev, s2s_nbytes(t));
    s2s_dev_memset0(dev, t->data, s2s_nbytes(t));
    return t;
}

// Called with the gradients unflattened (each owns its memory).
static void set_trainable(s2s_params *p, s2s_param *q, bool trainable) {
    q->trainable = trainable;
    q->t->requires_grad = trainable;
    if (trainable && !q->t->grad && !p->grad_on_demand) q->t->grad = tensor_persistent(p->device, q->t->ndim, q->t->shape, false);
    if (!trainable && q->t->grad) {  // a frozen parameter holds no gradient memory
        free_tensor(p->device, q->t->grad);
        q->t->grad = NULL;
    }
}

// ---- flat storage ----------------------------------------------------------------------------------------

#define FLAT_ALIGN 16  // floats: every view starts on a 64-byte boundary, as arena allocations do

static int64_t padded(int64_t n) { return (n + FLAT_ALIGN - 1) / FLAT_ALIGN * FLAT_ALIGN; }

// Give every view of one kind (values or gradients) its own memory again and drop the flat buffer.
static void unflatten_kind(s2s_params *p, bool grads) {
    float **flat = grads ? &p->flat_grad : &p->flat;
    if (grads && p->grad_on_demand) {  // a layout without memory
        for (int i = 0; i < p->n; i++) p->items[i].goff = -1;
        p->flat_grad_n = 0;
        return;
    }
    if (!*flat) return;
    for (int i = 0; i < p->n; i++) {
        s2s_param *q = &p->items[i];
        int64_t *off = grads ? &q->goff : &q->off;
        s2s_tensor *t = grads ? q->t->grad : q->t;
        if (*off < 0 || !t) continue;
        void *own = s2s_dev_alloc(p->device, s2s_nbytes(t));
        s2s_dev_copy(p->device, own, p->device, t->data, s2s_nbytes(t));
        t->data = own;
        t->flat_view = false;
        *off = -1;
    }
    s2s_dev_free(p->device, *flat);
    *flat = NULL;
    *(grads ? &p->flat_grad_n : &p->flat_n) = 0;
}

// Lay every tensor of one kind out in one buffer, registry order.
// The order of the gradient layout: by layout key, then registration. order [p->n].
static void grad_order(const s2s_params *p, int *order) {
    for (int i = 0; i < p->n; i++) order[i] = i;
    for (int i = 1; i < p->n; i++) {  // insertion sort: stable, and the keys come in runs
        const int x = order[i];
        int j = i - 1;
        while (j >= 0 && p->items[order[j]].layout > p->items[x].layout) order[j + 1] = order[j], j--;
        order[j + 1] = x;
    }
}

static void flatten_kind(s2s_params *p, bool grads) {
    unflatten_kind(p, grads);
    int *order = s2s_malloc((size_t)(p->n + 1) * sizeof *order);
    if (grads) grad_order(p, order);
    else for (int i = 0; i < p->n; i++) order[i] = i;
    if (grads && p->grad_on_demand) {
        int64_t at = 0;
        for (int k = 0; k < p->n; k++) {
            s2s_param *q = &p->items[order[k]];
            if (q->trainable) q->goff = at, at += padded(s2s_numel(q->t));
        }
        p->flat_grad_n = at;
        free(order);
        return;
    }
    int64_t total = 0;
    for (int i = 0; i < p->n; i++) {
        s2s_tensor *t = grads ? p->items[i].t->grad : p->items[i].t;
        if (t) total += padded(s2s_numel(t));
    }
    if (total == 0) {
        free(order);
        return;
    }
    float *flat = s2s_dev_alloc(p->device, (size_t)total * sizeof(float));  // [total]
    s2s_dev_memset0(p->device, flat, (size_t)total * sizeof(float));
    int64_t at = 0;
    for (int k = 0; k < p->n; k++) {
        s2s_param *q = &p->items[order[k]];
        s2s_tensor *t = grads ? q->t->grad : q->t;
        if (!t) continue;
        s2s_dev_copy(p->device, flat + at, p->device, t->data, s2s_nbytes(t));
        s2s_dev_free(p->device, t->data);
        t->data = flat + at;
        t->flat_view = true;
        *(grads ? &q->goff : &q->off) = at;
        at += padded(s2s_numel(t));
    }
    *(grads ? &p->flat_grad : &p->flat) = flat;
    *(grads ? &p->flat_grad_n : &p->flat_n) = total;
    free(order);
}

void s2s_params_flatten(s2s_params *p) {
    S2S_CHECK(!p->shapes_only, "params: a layout-only registry (s2s_params_shapes_only) has no values to flatten");
    flatten_kind(p, false);
    flatten_kind(p, true);
}

void s2s_params_unflatten(s2s_params *p) {
    unflatten_kind(p, false);
    unflatten_kind(p, true);
}

int s2s_params_set_layout(s2s_params *p, const char *prefix, int32_t key) {
    const size_t n = strlen(prefix);
    const bool flat = p->flat_grad != NULL || (p->grad_on_demand && p->flat_grad_n > 0);
    int hits = 0;
    unflatten_kind(p, true);
    for (int i = 0; i < p->n; i++)
        if (!strncmp(p->items[i].name, prefix, n)) p->items[i].layout = key, hits++;
    if (flat) flatten_kind(p, true);
    return hits;
}

void s2s_params_grad_on_demand(s2s_params *p) {
    const bool flat = p->flat_grad != NULL;
    unflatten_kind(p, true);
    for (int i = 0; i < p->n; i++) {
        s2s_param *q = &p->items[i];
        S2S_CHECK(q->goff < 0, "params: %s still in a flat gradient buffer", q->name);
        free_tensor(p->device, q->t->grad);
        q->t->grad = NULL;
    }
    p->grad_on_demand = true;
    if (flat) flatten_kind(p, true);
}

void s2s_params_shapes_only(s2s_params *p) {
    S2S_CHECK(p->n == 0, "params: s2s_params_shapes_only on a registry that already holds %d parameters", p->n);
    p->shapes_only = true;
    p->grad_on_demand = true;
}

void s2s_params_set_norm(s2s_params *p, const s2s_tensor *t, s2s_norm_kind kind) {
    for (int i = 0; i < p->n; i++)
        if (p->items[i].t == t) {
            p->items[i].norm = kind;
            return;
        }
    S2S_CHECK(0, "params_set_norm: %s is not a parameter of this registry", t->name ? t->name : "(unnamed)");
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
    q->off = q->goff = -1;
    q->t = tensor_persistent(p->device, ndim, shape, p->shapes_only);
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
    const bool flat = p->flat_grad != NULL;
    unflatten_kind(p, true);
    for (int i = 0; i < p->n; i++)
        if (strncmp(p->items[i].name, prefix, n) == 0) {
            set_trainable(p, &p->items[i], trainable);
            hits++;
        }
    if (flat) flatten_kind(p, true);
    return hits;
}

void s2s_params_zero_grad(s2s_params *p) {
    if (p->flat_grad) s2s_dev_memset0(p->device, p->flat_grad, (size_t)p->flat_grad_n * sizeof(float));
    for (int i = 0; i < p->n; i++)
        if (p->items[i].t->grad && p->items[i].goff < 0)
            s2s_dev_memset0(p->device, p->items[i].t->grad->data, s2s_nbytes(p->items[i].t->grad));
}

int64_t s2s_params_count(const s2s_params *p, bool trainable_only) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (!trainable_only || p->items[i].trainable) n += s2s_numel(p->items[i].t);
    return n;
}
