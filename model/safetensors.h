// safetensors.h — read (memory-mapped) and write Hugging Face safetensors files.
// Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets}, optional
// "__metadata__": {string: string}}, then the raw data. The reader validates a file the way the reference
// implementation does (header bounds, UTF-8 JSON object, offsets that tile the data region exactly, byte
// counts that match dtype x shape, no duplicate names); every malformed file is an error that names the
// file and what is wrong, never a crash.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include "../autograd/tensor.h"

#define S2S_ST_MAX_DIMS 8  // what the reader accepts; loading into a tensor needs <= S2S_MAX_DIMS

typedef struct s2s_st_entry {
    char *name;
    char dtype_name[12];  // safetensors spelling: "F32", "BF16", "I64", ...
    bool supported;       // dtype is one s2s computes with (F32/BF16/F16/I32); others are listed, not loadable
    s2s_dtype dtype;      // meaningful when supported
    int ndim;
    int64_t shape[S2S_ST_MAX_DIMS];
    const void *data;     // into the mapping; not necessarily aligned to the element size
    size_t nbytes;
} s2s_st_entry;

typedef struct s2s_st_file {
    char *path;
    void *map;
    size_t map_len;
    s2s_st_entry *entries;  // sorted by name
    int n;
    char **meta_keys, **meta_vals;  // "__metadata__" string map
    int n_meta;
} s2s_st_file;

// Returns 0 on success; on failure writes a message naming the file into err, leaves f closed and
// returns -1. s2s_st_close is safe on a closed or failed file.
int s2s_st_open(s2s_st_file *f, const char *path, char *err, size_t errlen);
void s2s_st_close(s2s_st_file *f);
const s2s_st_entry *s2s_st_find(const s2s_st_file *f, const char *name);  // binary search; NULL if absent
const char *s2s_st_meta(const s2s_st_file *f, const char *key);           // NULL if absent
int64_t s2s_st_numel(const s2s_st_entry *e);

// Writer: collect tensors, then write atomically (base/fs.h: temporary file, fsync, rename, fsync of the directory).
// that every tensor starts aligned to its element size (as the reference writer does).
typedef struct s2s_st_wentry {
    char *name;
    s2s_dtype dtype;      // as stored in the file
    int ndim;
    int64_t shape[S2S_MAX_DIMS];
    const void *src;      // the values, in src_dtype on src_device
    s2s_dtype src_dtype;
    s2s_device src_device;
    size_t nbytes;        // in the file
} s2s_st_wentry;

typedef struct s2s_st_writer {
    s2s_st_wentry *entries;
    int n, cap;
    char **meta_keys, **meta_vals;
    int n_meta;
} s2s_st_writer;

void s2s_st_writer_init(s2s_st_writer *w);
// Host data already in the file dtype.
void s2s_st_writer_add(s2s_st_writer *w, const char *name, s2s_dtype dt, int ndim, const int64_t *shape,
                       const void *host_data);
// Data in src_dtype on src_device, converted (f32/bf16/f16) and copied to the host in chunks while writing,
// so saving an f32 model on the GPU as bf16 needs no second copy of it.
void s2s_st_writer_add_from(s2s_st_writer *w, const char *name, s2s_dtype file_dtype, int ndim,
                            const int64_t *shape, const void *src, s2s_dtype src_dtype, s2s_device src_device);
void s2s_st_writer_meta(s2s_st_writer *w, const char *key, const char *val);  // replaces an existing key
size_t s2s_st_writer_data_bytes(const s2s_st_writer *w);
int s2s_st_writer_write(s2s_st_writer *w, const char *path, char *err, size_t errlen);
void s2s_st_writer_free(s2s_st_writer *w);
