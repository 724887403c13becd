// safetensors.h — read (memory-mapped) and write Hugging Face safetensors files.
// Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}},
// then the raw data. Every malformed file is an error that names the file and what is wrong.
#pragma once
#include <stdint.h>
#include <stddef.h>
#include "../autograd/tensor.h"

typedef struct s2s_st_entry {
    char *name;
    s2s_dtype dtype;
    int ndim;
    int64_t shape[S2S_MAX_DIMS];
    const void *data;  // into the mapping
    size_t nbytes;
} s2s_st_entry;

typedef struct s2s_st_file {
    char *path;
    void *map;
    size_t map_len;
    s2s_st_entry *entries;
    int n;
    char **meta_keys, **meta_vals;  // "__metadata__" string map
    int n_meta;
} s2s_st_file;

// Returns 0 on success; on failure writes a message naming the file into err and returns -1.
int s2s_st_open(s2s_st_file *f, const char *path, char *err, size_t errlen);
void s2s_st_close(s2s_st_file *f);
const s2s_st_entry *s2s_st_find(const s2s_st_file *f, const char *name);
const char *s2s_st_meta(const s2s_st_file *f, const char *key);  // NULL if absent

// Writer: collect tensors (host memory, not copied: keep them alive until write), then write
// atomically (temporary file, fsync, rename).
typedef struct s2s_st_writer {
    s2s_st_entry *entries;
    int n, cap;
    char **meta_keys, **meta_vals;
    int n_meta;
} s2s_st_writer;

void s2s_st_writer_init(s2s_st_writer *w);
void s2s_st_writer_add(s2s_st_writer *w, const char *name, s2s_dtype dt, int ndim, const int64_t *shape,
                       const void *host_data);
void s2s_st_writer_meta(s2s_st_writer *w, const char *key, const char *val);
int s2s_st_writer_write(s2s_st_writer *w, const char *path, char *err, size_t errlen);
void s2s_st_writer_free(s2s_st_writer *w);
