// config.c — YAML recipes through libyaml, flattened to dotted keys (config.h).
#include "config.h"
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "autograd/check.h"

void s2s_cfg_init(s2s_cfg *c) { memset(c, 0, sizeof *c); }

static void entry_clear(s2s_cfg_entry *e) {
    free(e->val);
    for (int i = 0; i < e->n_items; i++) free(e->items[i]);
    free(e->items);
    e->val = NULL, e->items = NULL, e->n_items = 0, e->is_list = false;
}

void s2s_cfg_free(s2s_cfg *c) {
    for (int i = 0; i < c->n; i++) {
        entry_clear(&c->e[i]);
        free(c->e[i].key);
    }
    free(c->e);
    memset(c, 0, sizeof *c);
}

s2s_cfg_entry *s2s_cfg_find(const s2s_cfg *c, const char *key) {
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key)) return &c->e[i];
    return NULL;
}

static s2s_cfg_entry *slot(s2s_cfg *c, const char *key, const char *origin) {
    s2s_cfg_entry *e = s2s_cfg_find(c, key);
    if (!e) {
        if (c->n == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 32;
            c->e = s2s_realloc(c->e, (size_t)c->cap * sizeof *c->e);
        }
        e = &c->e[c->n++];
        memset(e, 0, sizeof *e);
        e->key = strdup(key);
    }
    entry_clear(e);
    snprintf(e->origin, sizeof e->origin, "%s", origin);
    return e;
}

void s2s_cfg_put(s2s_cfg *c, const char *key, const char *val, const char *origin) {
    slot(c, key, origin)->val = strdup(val);
}

void s2s_cfg_put_list(s2s_cfg *c, const char *key, char *const *items, int n, const char *origin) {
    s2s_cfg_entry *e = slot(c, key, origin);
    e->is_list = true;
    e->items = s2s_calloc((size_t)n + 1, sizeof *e->items);
    for (int i = 0; i < n; i++) e->items[i] = strdup(items[i]);
    e->n_items = n;
}

// ---- reading ------------------------------------------------------------------------------------------------

typedef struct reader {
    yaml_parser_t p;
    const char *name;  // file name or "--set"
    char *err;
    size_t errlen;
} reader;

static int next(reader *r, yaml_event_t *ev) {
    if (!yaml_parser_parse(&r->p, ev))
        return s2s_errf(r->err, r->errlen, "%s:%zu: YAML error: %s", r->name, r->p.problem_mark.line + 1,
                        r->p.problem ? r->p.problem : "malformed");
    return 0;
}

// The value after a key: a scalar, a list of scalars or a mapping (recursing with the key as prefix).
static int value(reader *r, s2s_cfg *c, const char *key, yaml_event_t *ev);

static int mapping(reader *r, s2s_cfg *c, const char *prefix) {
    for (;;) {
        yaml_event_t ev;
        if (next(r, &ev)) return -1;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            size_t line = ev.start_mark.line + 1;
            yaml_event_delete(&ev);
            return s2s_errf(r->err, r->errlen, "%s:%zu: a key must be a plain name", r->name, line);
        }
        char key[512];
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", (const char *)ev.data.scalar.value);
        yaml_event_delete(&ev);
        yaml_event_t v;
        if (next(r, &v)) return -1;
        int rc = value(r, c, key, &v);
        yaml_event_delete(&v);
        if (rc) return -1;
    }
}

static int value(reader *r, s2s_cfg *c, const char *key, yaml_event_t *ev) {
    char origin[300];
    snprintf(origin, sizeof origin, "%s:%zu", r->name, ev->start_mark.line + 1);
    if (ev->type == YAML_SCALAR_EVENT) {
        s2s_cfg_put(c, key, (const char *)ev->data.scalar.value, origin);
        return 0;
    }
    if (ev->type == YAML_MAPPING_START_EVENT) return mapping(r, c, key);
    if (ev->type != YAML_SEQUENCE_START_EVENT)
        return s2s_errf(r->err, r->errlen, "%s: '%s' must be a value, a list or a mapping", origin, key);
    char **items = NULL;
    int n = 0, rc = 0;
    for (;;) {
        yaml_event_t it;
        if (next(r, &it)) { rc = -1; break; }
        if (it.type == YAML_SEQUENCE_END_EVENT) { yaml_event_delete(&it); break; }
        if (it.type != YAML_SCALAR_EVENT) {
            yaml_event_delete(&it);
            rc = s2s_errf(r->err, r->errlen, "%s: '%s' must be a list of plain values", origin, key);
            break;
        }
        items = s2s_realloc(items, (size_t)(n + 1) * sizeof *items);
        items[n++] = strdup((const char *)it.data.scalar.value);
        yaml_event_delete(&it);
    }
    if (!rc) s2s_cfg_put_list(c, key, items, n, origin);
    for (int i = 0; i < n; i++) free(items[i]);
    free(items);
    return rc;
}

// A whole document: a mapping at the top (prefix "") or, for --set, one value under `key`.
static int document(reader *r, s2s_cfg *c, const char *key) {
    int rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (next(r, &ev)) return -1;
        yaml_event_type_t t = ev.type;
        if (t == YAML_STREAM_END_EVENT) { yaml_event_delete(&ev); break; }
        if (t == YAML_MAPPING_START_EVENT && !key) rc = mapping(r, c, "");
        else if (key && (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT))
            rc = value(r, c, key, &ev);
        else if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT)
            rc = s2s_errf(r->err, r->errlen, "%s:%zu: the recipe must be a mapping of keys", r->name,
                          ev.start_mark.line + 1);
        yaml_event_delete(&ev);
        if (rc) return -1;
    }
    return 0;
}

int s2s_cfg_load_yaml(s2s_cfg *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return s2s_errf(err, errlen, "%s: cannot open the recipe", path);
    reader r = {.name = path, .err = err, .errlen = errlen};
    yaml_parser_initialize(&r.p);
    yaml_parser_set_input_file(&r.p, f);
    int rc = document(&r, c, NULL);
    yaml_parser_delete(&r.p);
    fclose(f);
    return rc;
}

int s2s_cfg_set(s2s_cfg *c, const char *a, char *err, size_t errlen) {
    const char *eq = strchr(a, '=');
    if (!eq || eq == a) return s2s_errf(err, errlen, "--set %s: expected key=value (e.g. --set optim.lr=2e-5)", a);
    char key[512];
    snprintf(key, sizeof key, "%.*s", (int)(eq - a), a);
    const char *v = eq + 1;
    reader r = {.name = "--set", .err = err, .errlen = errlen};
    yaml_parser_initialize(&r.p);
    yaml_parser_set_input_string(&r.p, (const unsigned char *)v, strlen(v));
    int rc = *v ? document(&r, c, key) : 0;
    yaml_parser_delete(&r.p);
    if (!*v) s2s_cfg_put(c, key, "", "--set");
    if (!rc) snprintf(s2s_cfg_find(c, key)->origin, sizeof c->e[0].origin, "--set");
    return rc;
}

// ---- writing ----------------------------------------------------------------------------------------------

// A scalar as YAML: plain when that reads back the same, else double-quoted.
static void scalar(FILE *f, const char *v) {
    bool plain = *v && !strpbrk(v, ":#{}[],&*!|>'\"%@`\n") && v[0] != ' ' && v[0] != '-' && v[strlen(v) - 1] != ' ';
    if (plain) {
        fputs(v, f);
        return;
    }
    fputc('"', f);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') fputc('\\', f);
        if (*p == '\n') { fputs("\\n", f); continue; }
        fputc(*p, f);
    }
    fputc('"', f);
}

static int cmp_key(const void *a, const void *b) {
    return strcmp((*(const s2s_cfg_entry *const *)a)->key, (*(const s2s_cfg_entry *const *)b)->key);
}

void s2s_cfg_write_yaml(const s2s_cfg *c, FILE *f, const char *const *order, int n_order) {
    const s2s_cfg_entry **v = s2s_calloc((size_t)c->n + 1, sizeof *v);
    int n = 0;
    if (order) {
        for (int i = 0; i < n_order; i++) {
            const s2s_cfg_entry *e = s2s_cfg_find(c, order[i]);
            if (e) v[n++] = e;
        }
    } else {
        for (int i = 0; i < c->n; i++) v[n++] = &c->e[i];
        qsort(v, (size_t)n, sizeof *v, cmp_key);
    }
    const char *prev = "";
    for (int i = 0; i < n; i++) {
        // Open the mappings this key needs that the previous key did not share.
        const char *k = v[i]->key;
        int depth = 0;
        size_t common = 0;
        for (size_t j = 0; k[j] && prev[j] == k[j]; j++)
            if (k[j] == '.') common = j + 1;
        for (size_t j = 0; j < common; j++) depth += k[j] == '.';
        const char *seg = k + common;
        for (const char *dot; (dot = strchr(seg, '.')); seg = dot + 1, depth++)
            fprintf(f, "%*s%.*s:\n", 2 * depth, "", (int)(dot - seg), seg);
        fprintf(f, "%*s%s: ", 2 * depth, "", seg);
        if (v[i]->is_list) {
            fputc('[', f);
            for (int j = 0; j < v[i]->n_items; j++) {
                if (j) fputs(", ", f);
                scalar(f, v[i]->items[j]);
            }
            fputc(']', f);
        } else {
            scalar(f, v[i]->val);
        }
        fputc('\n', f);
        prev = k;
    }
    free(v);
}
