// fs.h — crash-safe file output and directory helpers, shared by model/ (safetensors, config.json), train/
// (run checkpoints, metrics) and data/ (shards, prep.json). A file is published by writing a temporary beside
// it, fsync'ing it, renaming it over the final name and fsync'ing the directory, so a crash at any moment
// leaves either the old file or the complete new one. Errors go to err[errlen] (base/err.h); NULL is allowed.
#pragma once
#include <stddef.h>
#include <stdio.h>

// mkdir -p (mode 0777 less the umask): 0 when path is, or has become, a directory; -1 with errno otherwise.
int s2s_mkdir_p(const char *path);
// Removes a file or a whole directory tree; 0 on success, -1 with errno (the first failure) otherwise.
int s2s_rm_rf(const char *path);
// fsync of the file or directory at path; 0 on success.
int s2s_fsync_path(const char *path);
// fsync of the directory holding path (makes a rename or a new entry in it durable); 0 on success.
int s2s_fsync_dir(const char *path_in_dir);

// For writers that produce the temporary themselves (HDF5 shards): fsync tmp, rename it over path, fsync the
// directory. 0 on success; on failure tmp is left for the caller to remove.
int s2s_publish(const char *tmp, const char *path, char *err, size_t errlen);

// A streaming atomic write: s2s_atomic_open creates the temporary "<path>.tmp.<pid>" (s2s_atomic_open_tmp: a
// temporary of the caller's choosing, for writers whose clean-up recognises it), the caller writes to fp, and
// s2s_atomic_commit flushes, fsyncs, renames and fsyncs the directory; on failure, or on s2s_atomic_abort, the
// temporary is removed and path is untouched.
typedef struct s2s_atomic_file {
    FILE *fp;
    char *path, *tmp;
} s2s_atomic_file;

int s2s_atomic_open(s2s_atomic_file *a, const char *path, char *err, size_t errlen);
int s2s_atomic_open_tmp(s2s_atomic_file *a, const char *path, const char *tmp, char *err, size_t errlen);
int s2s_atomic_commit(s2s_atomic_file *a, char *err, size_t errlen);
void s2s_atomic_abort(s2s_atomic_file *a);
// The whole file at once: open, write len bytes, commit.
int s2s_write_file_atomic(const char *path, const void *data, size_t len, char *err, size_t errlen);
// Copies the file src to dst atomically (dst's directory must exist); err names the file that failed.
int s2s_copy_file(const char *src, const char *dst, char *err, size_t errlen);
// The whole file, NUL-terminated (malloc'd; *len without the NUL when len is given); NULL with errno set when it
// cannot be read.
char *s2s_read_file(const char *path, size_t *len);
