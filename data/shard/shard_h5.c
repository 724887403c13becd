#include "shard_h5.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

s2s_h5_quiet s2s_h5_quiet_begin(void) {
    s2s_h5_quiet q = {0};
    H5Eget_auto2(H5E_DEFAULT, &q.fn, &q.data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return q;
}

void s2s_h5_quiet_end(s2s_h5_quiet q) { H5Eset_auto2(H5E_DEFAULT, q.fn, q.data); }

typedef struct {
    char *buf;
    size_t n;
} last_error_ctx;

static herr_t last_error_visit(unsigned n, const H5E_error2_t *err, void *data) {
    last_error_ctx *c = data;
    // Walking downward, the last entry visited is the deepest one: the cause rather than "can't open file".
    if (err->desc && err->desc[0]) snprintf(c->buf, c->n, "%s", err->desc);
    else if (H5Eget_msg(err->min_num, NULL, c->buf, c->n) <= 0 && c->n) c->buf[0] = 0;
    return 0;
}

void s2s_h5_last_error(char *buf, size_t n) {
    if (!n) return;
    buf[0] = 0;
    last_error_ctx c = {buf, n};
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, last_error_visit, &c);
    if (!buf[0]) snprintf(buf, n, "no detail from HDF5");
}

const char *s2s_h5_printable(const char *in, char *out, size_t n) {
    size_t o = 0;
    for (; *in && o + 5 < n; in++) {
        unsigned char c = (unsigned char)*in;
        if (c >= 0x20 && c < 0x7f) out[o++] = (char)c;
        else o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    }
    out[o] = 0;
    return out;
}

int s2s_h5_fail(s2s_derr *e, const char *fmt, ...) {
    char why[256], msg[768];
    s2s_h5_last_error(why, sizeof why);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return s2s_derr_set(e, "%s: %s", msg, why);
}

void s2s_h5_type_name(hid_t type, char *buf, size_t n) {
    size_t size = H5Tget_size(type);
    switch (H5Tget_class(type)) {
    case H5T_INTEGER:
        if (size > 8) snprintf(buf, n, "a %zu-byte integer", size);
        else
            snprintf(buf, n, "%sint%zu%s", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", size * 8,
                     H5Tget_order(type) == H5T_ORDER_BE ? " (big-endian)" : "");
        break;
    case H5T_FLOAT:
        if (size > 16) snprintf(buf, n, "a %zu-byte float", size);
        else snprintf(buf, n, "float%zu", size * 8);
        break;
    case H5T_STRING: snprintf(buf, n, "string"); break;
    case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
    case H5T_ENUM: snprintf(buf, n, "enum (h5py bool?)"); break;
    case H5T_ARRAY: snprintf(buf, n, "array"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length sequence"); break;
    case H5T_OPAQUE: snprintf(buf, n, "opaque"); break;
    case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
    default: snprintf(buf, n, "an unsupported type"); break;
    }
}

int s2s_h5_type_is(hid_t type, int is_float, size_t size, int is_signed) {
    H5T_class_t c = H5Tget_class(type);
    if (H5Tget_size(type) != size) return 0;
    if (is_float) return c == H5T_FLOAT;
    return c == H5T_INTEGER && (H5Tget_sign(type) != H5T_SGN_NONE) == (is_signed != 0);
}

// Opens attribute `name`, checking it holds exactly one value. Returns the attribute, 0 when absent, -1 on fault.
static hid_t attr_open_scalar(hid_t loc, const char *name, const char *path, s2s_derr *e) {
    htri_t ex = H5Aexists(loc, name);
    if (ex < 0) return s2s_h5_fail(e, "%s: cannot query root attribute '%s'", path, name);
    if (!ex) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return s2s_h5_fail(e, "%s: cannot open root attribute '%s'", path, name);
    hid_t sp = H5Aget_space(a);
    hssize_t npts = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (npts != 1) {
        H5Aclose(a);
        return s2s_derr_set(e, "%s: root attribute '%s' holds %lld values, expected one", path, name,
                            (long long)npts);
    }
    return a;
}

int s2s_h5_attr_get_i64(hid_t loc, const char *name, int64_t *out, const char *path, s2s_derr *e) {
    hid_t a = attr_open_scalar(loc, name, path, e);
    if (a <= 0) return a == 0 ? 1 : -1;
    hid_t t = H5Aget_type(a);
    int rc = 0;
    if (H5Tget_class(t) != H5T_INTEGER) {
        char tn[64];
        s2s_h5_type_name(t, tn, sizeof tn);
        rc = s2s_derr_set(e, "%s: root attribute '%s' is %s, expected an integer", path, name, tn);
    } else if (H5Aread(a, H5T_NATIVE_INT64, out) < 0) {
        rc = s2s_h5_fail(e, "%s: cannot read root attribute '%s' as int64", path, name);
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int s2s_h5_attr_get_str(hid_t loc, const char *name, char *out, size_t n, const char *path, s2s_derr *e) {
    hid_t a = attr_open_scalar(loc, name, path, e);
    if (a <= 0) return a == 0 ? 1 : -1;
    hid_t t = H5Aget_type(a);
    int rc = 0;
    if (H5Tget_class(t) != H5T_STRING) {
        char tn[64];
        s2s_h5_type_name(t, tn, sizeof tn);
        rc = s2s_derr_set(e, "%s: root attribute '%s' is %s, expected a string", path, name, tn);
    } else if (H5Tis_variable_str(t) > 0) {
        // Variable-length (h5py's str): HDF5 allocates the string, we copy and free it.
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(t));
        char *s = NULL;
        if (H5Aread(a, mt, &s) < 0 || !s)
            rc = s2s_h5_fail(e, "%s: cannot read root attribute '%s'", path, name);
        else if (strlen(s) >= n)
            rc = s2s_derr_set(e, "%s: root attribute '%s' is %zu bytes long, at most %zu allowed", path, name,
                              strlen(s), n - 1);
        else
            strcpy(out, s);
        if (s) H5free_memory(s);
        H5Tclose(mt);
    } else {
        // Fixed-length (numpy bytes): may be NUL-padded, space-padded or exactly full with no terminator.
        size_t sz = H5Tget_size(t);
        char *s = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(t);
        if (!s || H5Aread(a, mt, s) < 0) {
            rc = s2s_h5_fail(e, "%s: cannot read root attribute '%s'", path, name);
        } else {
            size_t len = strnlen(s, sz);
            while (len && s[len - 1] == ' ') len--;
            if (len >= n)
                rc = s2s_derr_set(e, "%s: root attribute '%s' is %zu bytes long, at most %zu allowed", path,
                                  name, len, n - 1);
            else
                memcpy(out, s, len), out[len] = 0;
        }
        H5Tclose(mt);
        free(s);
    }
    H5Tclose(t);
    H5Aclose(a);
    return rc;
}

int s2s_h5_attr_put_i64(hid_t loc, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &v) < 0) ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

int s2s_h5_attr_put_str(hid_t loc, const char *name, const char *v) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a < 0 || H5Awrite(a, t, &v) < 0) ? -1 : 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

hid_t s2s_h5_create_ext(hid_t file, const char *name, hid_t file_type, int64_t chunk_rows, int64_t row) {
    int rank = row ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)row}, maxdims[2] = {H5S_UNLIMITED, (hsize_t)row};
    hsize_t chunk[2] = {(hsize_t)(chunk_rows > 0 ? chunk_rows : 1), (hsize_t)row};
    hid_t sp = H5Screate_simple(rank, dims, maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_obj_track_times(dcpl, 0);  // no timestamps: the same input gives byte-identical shards
    hid_t d = H5Dcreate2(file, name, file_type, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    H5Sclose(sp);
    return d;
}

int s2s_h5_append(hid_t dset, hid_t mem_type, const void *buf, int64_t nrows, int64_t row) {
    if (nrows <= 0) return 0;
    int rank = row ? 2 : 1;
    hid_t fs = H5Dget_space(dset);
    hsize_t dims[2];
    H5Sget_simple_extent_dims(fs, dims, NULL);
    H5Sclose(fs);
    hsize_t start[2] = {dims[0], 0}, count[2] = {(hsize_t)nrows, (hsize_t)row};
    dims[0] += (hsize_t)nrows;
    if (H5Dset_extent(dset, dims) < 0) return -1;
    fs = H5Dget_space(dset);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    int rc = -1;
    if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) >= 0 &&
        H5Dwrite(dset, mem_type, ms, fs, H5P_DEFAULT, buf) >= 0)
        rc = 0;
    hid_t err = rc ? H5Eget_current_stack() : -1;  // closing would clear the cause
    H5Sclose(ms);
    H5Sclose(fs);
    if (err >= 0) H5Eset_current_stack(err);
    return rc;
}

int s2s_h5_read_rows(hid_t dset, hid_t mem_type, int64_t start, int64_t nrows, int64_t row, void *buf) {
    if (nrows <= 0) return 0;
    int rank = row ? 2 : 1;
    hsize_t st[2] = {(hsize_t)start, 0}, count[2] = {(hsize_t)nrows, (hsize_t)row};
    hid_t fs = H5Dget_space(dset);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    int rc = -1;
    if (fs >= 0 && ms >= 0 && H5Sselect_hyperslab(fs, H5S_SELECT_SET, st, NULL, count, NULL) >= 0 &&
        H5Dread(dset, mem_type, ms, fs, H5P_DEFAULT, buf) >= 0)
        rc = 0;
    hid_t err = rc ? H5Eget_current_stack() : -1;  // closing would clear the cause
    if (ms >= 0) H5Sclose(ms);
    if (fs >= 0) H5Sclose(fs);
    if (err >= 0) H5Eset_current_stack(err);
    return rc;
}
