// safetensors_index.h — a Hugging Face checkpoint directory as one set of named tensors: either a single
// model.safetensors, or model.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map":
// {tensor: shard file}}) plus its shards. Every shard is memory-mapped; lookups search one sorted table.
#pragma once
#include "safetensors.h"

#define S2S_ST_SINGLE_NAME "model.safetensors"
#define S2S_ST_INDEX_NAME "model.safetensors.index.json"

typedef struct s2s_st_ref {
    const s2s_st_entry *e;
    int file;  // index into s2s_st_dir.files
} s2s_st_ref;

typedef struct s2s_st_dir {
    char *path;        // what was opened (a directory, a .safetensors file or an index.json)
    char *index_path;  // the index file, or NULL for a single file
    s2s_st_file *files;
    int n_files;
    s2s_st_ref *refs;  // every tensor, sorted by name
    int n;
} s2s_st_dir;

// path: a directory (model.safetensors is used when present, else model.safetensors.index.json), a
// .safetensors file, or an index .json file. The index must agree with its shards: every tensor it lists is
// in the named shard and every shard tensor is listed. On failure err names the file at fault and -1 is
// returned with d closed.
int s2s_st_dir_open(s2s_st_dir *d, const char *path, char *err, size_t errlen);
void s2s_st_dir_close(s2s_st_dir *d);
// NULL when absent; *file (if non-NULL) receives the shard holding the tensor.
const s2s_st_entry *s2s_st_dir_find(const s2s_st_dir *d, const char *name, const s2s_st_file **file);

// Write w's tensors into directory dir (which must exist) the way Hugging Face save_pretrained does:
// everything in one model.safetensors when it fits max_shard_bytes (0 = no limit), otherwise shards
// model-00001-of-0000N.safetensors filled greedily in the order tensors were added (a tensor larger than
// the limit gets a shard of its own) plus the index with metadata.total_size. Every shard carries w's
// metadata and "format": "pt". Each file is written atomically and the index last, so a reader never sees
// an index that names a missing or partial shard; afterwards weight files of an older layout in dir
// (a stale model.safetensors, index or shards of another count) are removed.
int s2s_st_write_sharded(s2s_st_writer *w, const char *dir, size_t max_shard_bytes, char *err, size_t errlen);
