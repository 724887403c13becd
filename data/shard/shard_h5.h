// shard_h5.h — the few HDF5 idioms the shard writer and reader share: silencing HDF5's own error printing (we
// report through s2s_derr instead), describing and matching stored types, scalar attributes, and 1-D / row-wise
// appends and hyperslab reads. Internal to data/shard/shard_*.c.
#pragma once
#include <hdf5.h>
#include <stdint.h>
#include "data/errors.h"

// HDF5 prints an error stack to stderr on every failed call unless told not to. Each public shard function
// saves the caller's setting, turns printing off, and restores it on the way out.
typedef struct s2s_h5_quiet {
    H5E_auto2_t fn;
    void *data;
} s2s_h5_quiet;
s2s_h5_quiet s2s_h5_quiet_begin(void);
void s2s_h5_quiet_end(s2s_h5_quiet q);

// The innermost message on HDF5's error stack (the root cause), or "" when the stack is empty.
void s2s_h5_last_error(char *buf, size_t n);

// Copies a string read from a file into out with bytes outside printable ASCII as \xNN, for error messages.
const char *s2s_h5_printable(const char *in, char *out, size_t n);

// s2s_derr_set with HDF5's reason appended (": <cause>"); call it right after the failing HDF5 call, since the
// next call clears the error stack.
int s2s_h5_fail(s2s_derr *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A stored type in numpy-ish words: "int32", "uint8", "float64", "string", "compound"...
void s2s_h5_type_name(hid_t type, char *buf, size_t n);
// Whether a stored type is the integer (is_float 0) or float (1) of `size` bytes and signedness `is_signed`.
// Byte order is not checked: HDF5 converts either to native on read.
int s2s_h5_type_is(hid_t type, int is_float, size_t size, int is_signed);

// Scalar (or one-element) root attributes. Return 0, 1 when absent, -1 on a fault (message in e).
int s2s_h5_attr_get_i64(hid_t loc, const char *name, int64_t *out, const char *path, s2s_derr *e);
int s2s_h5_attr_get_str(hid_t loc, const char *name, char *out, size_t n, const char *path, s2s_derr *e);
int s2s_h5_attr_put_i64(hid_t loc, const char *name, int64_t v);
int s2s_h5_attr_put_str(hid_t loc, const char *name, const char *v);  // variable-length UTF-8, as h5py writes

// Creates an empty chunked dataset [0] (row == 0) or [0, row], extendible along the first axis.
hid_t s2s_h5_create_ext(hid_t file, const char *name, hid_t file_type, int64_t chunk_rows, int64_t row);
// Appends nrows rows of `row` elements (row 0 = 1-D) from buf, converted from mem_type.
int s2s_h5_append(hid_t dset, hid_t mem_type, const void *buf, int64_t nrows, int64_t row);
// Reads rows [start, start+nrows) (each of `row` elements; 0 = 1-D) into buf as mem_type.
int s2s_h5_read_rows(hid_t dset, hid_t mem_type, int64_t start, int64_t nrows, int64_t row, void *buf);
