// config.h — a training recipe as read from YAML: nested mappings flattened to dotted keys ("optim.lr"), each
// holding a scalar or a list of scalars, with where it came from (file or --set). Typed access and the known-key
// schema live in recipe.h; this layer only reads, overrides and writes.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct s2s_cfg_entry {
    char *key;       // dotted path
    char *val;       // scalar value (NULL for a list)
    char **items;    // list values
    int n_items;
    bool is_list;
    char origin[256];  // "FILE:LINE" or "--set"
} s2s_cfg_entry;

typedef struct s2s_cfg {
    s2s_cfg_entry *e;
    int n, cap;
} s2s_cfg;

void s2s_cfg_init(s2s_cfg *c);
void s2s_cfg_free(s2s_cfg *c);
// Read a YAML file (mappings of scalars / flow or block lists of scalars). Errors name the file and line.
int s2s_cfg_load_yaml(s2s_cfg *c, const char *path, char *err, size_t errlen);
// "key=value" from the command line; value is YAML ("3", "1e-4", "[0.9, 0.95]", "text"). Replaces the key.
int s2s_cfg_set(s2s_cfg *c, const char *assignment, char *err, size_t errlen);
s2s_cfg_entry *s2s_cfg_find(const s2s_cfg *c, const char *key);
// Set or replace a scalar / a list (origin is recorded as given).
void s2s_cfg_put(s2s_cfg *c, const char *key, const char *val, const char *origin);
void s2s_cfg_put_list(s2s_cfg *c, const char *key, char *const *items, int n, const char *origin);
// Nested YAML, keys in the order given by `order` (dotted keys; NULL: sorted), one comment line on top.
void s2s_cfg_write_yaml(const s2s_cfg *c, FILE *f, const char *const *order, int n_order);
