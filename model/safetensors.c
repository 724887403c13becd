#include "safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../autograd/check.h"
#include "../base/fs.h"
#include "../autograd/device.h"

#define ST_MAX_HEADER ((uint64_t)100000000)  // the reference implementation's limit (100 MB)

// Every dtype the format defines, with its element size, so files holding tensors s2s never computes
// with (an I64 buffer, say) still open and list; only loading such a tensor is refused.
static const struct { const char *name; int size; int s2s; } st_dtypes[] = {
    {"F32", 4, S2S_F32}, {"BF16", 2, S2S_BF16}, {"F16", 2, S2S_F16}, {"I32", 4, S2S_I32},
    {"F64", 8, -1}, {"I64", 8, -1}, {"U64", 8, -1}, {"U32", 4, -1}, {"I16", 2, -1}, {"U16", 2, -1},
    {"I8", 1, -1}, {"U8", 1, -1}, {"BOOL", 1, -1}, {"F8_E5M2", 1, -1}, {"F8_E4M3", 1, -1},
    {"F8_E8M0", 1, -1}, {"C64", 8, -1},
};

static int dtype_lookup(const char *s) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof *st_dtypes; i++)
        if (strcmp(st_dtypes[i].name, s) == 0) return (int)i;
    return -1;
}

// A JSON number that is an exact non-negative integer small enough to be one in a double.
static bool json_u64(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return false;
    double v = x->valuedouble;
    if (!isfinite(v) || v < 0 || v > 9007199254740992.0 || v != floor(v)) return false;
    *out = (uint64_t)v;
    return true;
}

// The reference reader decodes the header as UTF-8 and rejects anything else; NUL is refused too
// because it is not JSON and would cut C strings short.
static const char *utf8_problem(const unsigned char *s, size_t n, size_t *at) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        *at = i;
        if (c == 0) return "a NUL byte";
        if (!len || (len == 2 && c < 0xc2) || (len == 4 && c > 0xf4) || i + len > n) return "invalid UTF-8";
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return "invalid UTF-8";
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return "invalid UTF-8";
        i += len;
    }
    return NULL;
}

typedef struct { uint64_t lo, hi; int idx; } span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->lo != y->lo) return x->lo < y->lo ? -1 : 1;
    if (x->hi != y->hi) return x->hi < y->hi ? -1 : 1;
    return 0;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const s2s_st_entry *)a)->name, ((const s2s_st_entry *)b)->name);
}

static int parse_entry(const char *p, const cJSON *it, s2s_st_entry *e, span *sp, char *err, size_t n) {
    const char *nm = it->string;
    if (!cJSON_IsObject(it)) return s2s_errf(err, n, "%s: header entry '%s' is not an object", p, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt)) return s2s_errf(err, n, "%s: tensor '%s': 'dtype' is missing or not a string", p, nm);
    if (!cJSON_IsArray(sh)) return s2s_errf(err, n, "%s: tensor '%s': 'shape' is missing or not an array", p, nm);
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return s2s_errf(err, n, "%s: tensor '%s': 'data_offsets' must be an array [begin, end]", p, nm);
    int k = dtype_lookup(dt->valuestring);
    if (k < 0) return s2s_errf(err, n, "%s: tensor '%s': unknown or unsupported dtype '%.20s'", p, nm, dt->valuestring);
    snprintf(e->dtype_name, sizeof e->dtype_name, "%s", st_dtypes[k].name);
    e->supported = st_dtypes[k].s2s >= 0;
    e->dtype = e->supported ? (s2s_dtype)st_dtypes[k].s2s : S2S_F32;
    e->ndim = cJSON_GetArraySize(sh);
    if (e->ndim > S2S_ST_MAX_DIMS)
        return s2s_errf(err, n, "%s: tensor '%s' has %d dimensions (s2s reads at most %d)", p, nm, e->ndim,
                        S2S_ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        uint64_t d;
        if (!json_u64(cJSON_GetArrayItem(sh, i), &d))
            return s2s_errf(err, n, "%s: tensor '%s': shape[%d] is not a non-negative integer", p, nm, i);
        if (d && numel > UINT64_MAX / d) return s2s_errf(err, n, "%s: tensor '%s': shape overflows", p, nm);
        e->shape[i] = (int64_t)d;
        numel *= d;
    }
    uint64_t lo, hi;
    if (!json_u64(cJSON_GetArrayItem(off, 0), &lo) || !json_u64(cJSON_GetArrayItem(off, 1), &hi) || hi < lo)
        return s2s_errf(err, n, "%s: tensor '%s': data_offsets must be integers with begin <= end", p, nm);
    uint64_t want = numel * (uint64_t)st_dtypes[k].size;
    if (numel && want / numel != (uint64_t)st_dtypes[k].size)
        return s2s_errf(err, n, "%s: tensor '%s': shape overflows", p, nm);
    if (hi - lo != want)
        return s2s_errf(err, n, "%s: tensor '%s': data_offsets [%llu, %llu] span %llu bytes, but %llu elements of %s "
                        "need %llu", p, nm, (unsigned long long)lo, (unsigned long long)hi,
                        (unsigned long long)(hi - lo), (unsigned long long)numel, e->dtype_name,
                        (unsigned long long)want);
    e->name = strdup(nm);
    e->nbytes = (size_t)want;
    sp->lo = lo;
    sp->hi = hi;
    return 0;
}

static int parse_meta(s2s_st_file *f, const cJSON *it, char *err, size_t n) {
    if (!cJSON_IsObject(it)) return s2s_errf(err, n, "%s: __metadata__ is not an object of strings", f->path);
    int m = cJSON_GetArraySize(it);
    f->meta_keys = s2s_calloc((size_t)m + 1, sizeof(char *));
    f->meta_vals = s2s_calloc((size_t)m + 1, sizeof(char *));
    const cJSON *kv;
    cJSON_ArrayForEach(kv, it) {
        if (!cJSON_IsString(kv))
            return s2s_errf(err, n, "%s: __metadata__ value '%s' is not a string", f->path, kv->string);
        f->meta_keys[f->n_meta] = strdup(kv->string);
        f->meta_vals[f->n_meta++] = strdup(kv->valuestring);
    }
    return 0;
}

// Parse and validate the header; data_len is the size of the region after it.
static int parse_header(s2s_st_file *f, const char *hdr, size_t hlen, size_t data_len, char *err, size_t n) {
    const char *p = f->path;
    size_t at;
    const char *bad = utf8_problem((const unsigned char *)hdr, hlen, &at);
    if (bad) return s2s_errf(err, n, "%s: header contains %s at byte %zu: not a safetensors file", p, bad, at);
    if (hlen == 0 || hdr[0] != '{')
        return s2s_errf(err, n, "%s: header does not start with '{': not a safetensors file", p);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t off = cJSON_GetErrorPtr() && cJSON_GetErrorPtr() >= hdr ? (size_t)(cJSON_GetErrorPtr() - hdr) : 0;
        return s2s_errf(err, n, "%s: header is not valid JSON (near byte %zu of %zu)", p, off, hlen);
    }
    for (const char *q = end; q < hdr + hlen; q++)  // padding after the object may only be whitespace
        if (*q != ' ' && *q != '\t' && *q != '\n' && *q != '\r') {
            cJSON_Delete(root);
            return s2s_errf(err, n, "%s: header has data after the JSON object (byte %zu)", p, (size_t)(q - hdr));
        }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return s2s_errf(err, n, "%s: header is not a JSON object", p);
    }
    int cnt = cJSON_GetArraySize(root);
    f->entries = s2s_calloc((size_t)cnt + 1, sizeof *f->entries);
    span *sp = s2s_calloc((size_t)cnt + 1, sizeof *sp);
    int rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (f->meta_keys) { rc = s2s_errf(err, n, "%s: __metadata__ appears twice", p); break; }
            if ((rc = parse_meta(f, it, err, n))) break;
            continue;
        }
        if ((rc = parse_entry(p, it, &f->entries[f->n], &sp[f->n], err, n))) break;
        sp[f->n].idx = f->n;
        f->n++;
    }
    cJSON_Delete(root);
    if (rc) { free(sp); return rc; }
    // The tensors must tile [0, data_len) exactly: in offset order, each begins where the last one ended.
    qsort(sp, (size_t)f->n, sizeof *sp, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < f->n && !rc; i++) {
        const char *nm = f->entries[sp[i].idx].name;
        if (sp[i].hi > data_len)
            rc = s2s_errf(err, n, "%s: tensor '%s' ends at byte %llu of the data, past its end (%zu bytes): the file "
                          "is truncated or the offsets are wrong", p, nm, (unsigned long long)sp[i].hi, data_len);
        else if (sp[i].lo < pos)
            rc = s2s_errf(err, n, "%s: tensor '%s' (data_offsets [%llu, %llu]) overlaps the tensor before it, which "
                          "ends at %llu", p, nm, (unsigned long long)sp[i].lo, (unsigned long long)sp[i].hi,
                          (unsigned long long)pos);
        else if (sp[i].lo > pos)
            rc = s2s_errf(err, n, "%s: gap in the data before tensor '%s': it begins at byte %llu, the previous tensor "
                          "ends at %llu", p, nm, (unsigned long long)sp[i].lo, (unsigned long long)pos);
        pos = sp[i].hi;
    }
    if (!rc && pos != data_len)
        rc = s2s_errf(err, n, "%s: the tensors cover %llu bytes but the data region holds %zu: offsets are wrong or "
                      "the file has trailing bytes", p, (unsigned long long)pos, data_len);
    const char *data = hdr + hlen;
    for (int i = 0; i < f->n && !rc; i++) f->entries[sp[i].idx].data = data + sp[i].lo;
    free(sp);
    if (rc) return rc;
    qsort(f->entries, (size_t)f->n, sizeof *f->entries, cmp_entry);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->entries[i - 1].name, f->entries[i].name) == 0)
            return s2s_errf(err, n, "%s: tensor '%s' appears twice in the header", p, f->entries[i].name);
    return 0;
}

int s2s_st_open(s2s_st_file *f, const char *path, char *err, size_t n) {
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { s2s_errf(err, n, "%s: cannot open: %s", path, strerror(errno)); goto bad; }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        s2s_errf(err, n, "%s: not a regular file", path);
        goto bad;
    }
    if (st.st_size < 8) {
        close(fd);
        s2s_errf(err, n, "%s: %lld bytes is too short for a safetensors file (truncated?)", path,
                 (long long)st.st_size);
        goto bad;
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        s2s_errf(err, n, "%s: mmap failed: %s", path, strerror(errno));
        goto bad;
    }
    const unsigned char *b = f->map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | b[i];  // little-endian on any host
    if (hlen > ST_MAX_HEADER) {
        s2s_errf(err, n, "%s: header length %llu is over the 100 MB limit: not a safetensors file", path,
                 (unsigned long long)hlen);
        goto bad;
    }
    if (hlen > f->map_len - 8) {
        s2s_errf(err, n, "%s: header length %llu is larger than the rest of the file (%zu bytes): truncated or not a "
                 "safetensors file", path, (unsigned long long)hlen, f->map_len - 8);
        goto bad;
    }
    if (parse_header(f, (const char *)b + 8, (size_t)hlen, f->map_len - 8 - (size_t)hlen, err, n)) goto bad;
    return 0;
bad:
    s2s_st_close(f);
    return -1;
}

void s2s_st_close(s2s_st_file *f) {
    if (f->entries)
        for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    if (f->meta_keys)
        for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
    free(f->entries);
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const s2s_st_entry *s2s_st_find(const s2s_st_file *f, const char *name) {
    int lo = 0, hi = f->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(f->entries[mid].name, name);
        if (c == 0) return &f->entries[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

const char *s2s_st_meta(const s2s_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

int64_t s2s_st_numel(const s2s_st_entry *e) {
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    return n;
}

// ---- writer ----------------------------------------------------------------------------------------

void s2s_st_writer_init(s2s_st_writer *w) { memset(w, 0, sizeof *w); }

void s2s_st_writer_add_from(s2s_st_writer *w, const char *name, s2s_dtype dt, int ndim, const int64_t *shape,
                            const void *src, s2s_dtype sdt, s2s_device sdev) {
    S2S_CHECK(ndim >= 0 && ndim <= S2S_MAX_DIMS, "tensor %s: %d dims", name, ndim);
    S2S_CHECK(dt == sdt || (dt != S2S_I32 && sdt != S2S_I32), "tensor %s: cannot store %s data as %s", name,
              s2s_dtype_name(sdt), s2s_dtype_name(dt));
    S2S_CHECK(strcmp(name, "__metadata__") != 0 && name[0], "tensor name '%s' is reserved", name);
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->entries = s2s_realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    s2s_st_wentry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->dtype = dt;
    e->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        S2S_CHECK(shape[i] >= 0, "tensor %s: negative dim", name);
        e->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    e->nbytes = numel * s2s_dtype_size(dt);
    e->src = src;
    e->src_dtype = sdt;
    e->src_device = sdev;
}

void s2s_st_writer_add(s2s_st_writer *w, const char *name, s2s_dtype dt, int ndim, const int64_t *shape,
                       const void *data) {
    s2s_st_writer_add_from(w, name, dt, ndim, shape, data, dt, S2S_CPU);
}

void s2s_st_writer_meta(s2s_st_writer *w, const char *key, const char *val) {
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta_keys[i], key) == 0) {
            free(w->meta_vals[i]);
            w->meta_vals[i] = strdup(val);
            return;
        }
    w->meta_keys = s2s_realloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_vals = s2s_realloc(w->meta_vals, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_keys[w->n_meta] = strdup(key);
    w->meta_vals[w->n_meta++] = strdup(val);
}

size_t s2s_st_writer_data_bytes(const s2s_st_writer *w) {
    size_t s = 0;
    for (int i = 0; i < w->n; i++) s += w->entries[i].nbytes;
    return s;
}

static int cmp_wentry_name(const void *a, const void *b) {
    return strcmp((*(const s2s_st_wentry *const *)a)->name, (*(const s2s_st_wentry *const *)b)->name);
}

// Largest element first, then by name: every tensor starts at a multiple of its element size, and the
// layout is independent of the order tensors were added in.
static int cmp_wentry_layout(const void *a, const void *b) {
    const s2s_st_wentry *x = *(const s2s_st_wentry *const *)a, *y = *(const s2s_st_wentry *const *)b;
    size_t sx = s2s_dtype_size(x->dtype), sy = s2s_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

// Stream one tensor into fp: chunks are copied to the host and converted as needed.
static int write_tensor(FILE *fp, const s2s_st_wentry *e, void *stage, void *conv, size_t chunk) {
    size_t ssz = s2s_dtype_size(e->src_dtype), dsz = s2s_dtype_size(e->dtype);
    size_t numel = e->nbytes / dsz;
    if (numel == 0) return 1;
    if (e->src_device == S2S_CPU && e->src_dtype == e->dtype) return fwrite(e->src, 1, e->nbytes, fp) == e->nbytes;
    for (size_t at = 0; at < numel; at += chunk) {
        size_t k = numel - at < chunk ? numel - at : chunk;
        const void *src = (const char *)e->src + at * ssz;
        if (e->src_device != S2S_CPU) {
            s2s_dev_copy(S2S_CPU, stage, e->src_device, src, k * ssz);
            src = stage;
        }
        const void *out = src;
        if (e->dtype != e->src_dtype) {
            s2s_convert_host(conv, e->dtype, src, e->src_dtype, (int64_t)k);
            out = conv;
        }
        if (fwrite(out, dsz, k, fp) != k) return 0;
    }
    return 1;
}

int s2s_st_writer_write(s2s_st_writer *w, const char *path, char *err, size_t n) {
    s2s_st_wentry **order = s2s_malloc(((size_t)w->n + 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = &w->entries[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_wentry_name);
    for (int i = 1; i < w->n; i++)
        S2S_CHECK(strcmp(order[i - 1]->name, order[i]->name) != 0, "tensor %s added twice to %s", order[i]->name, path);
    qsort(order, (size_t)w->n, sizeof *order, cmp_wentry_layout);

    cJSON *root = cJSON_CreateObject();
    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < w->n_meta; i++) cJSON_AddStringToObject(m, w->meta_keys[i], w->meta_vals[i]);
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const s2s_st_wentry *e = order[i];
        cJSON *o = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(o, "dtype", s2s_dtype_name(e->dtype));
        cJSON *sh = cJSON_AddArrayToObject(o, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *of = cJSON_AddArrayToObject(o, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + e->nbytes)));
        off += e->nbytes;
    }
    char *hdr = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t hl = strlen(hdr), padded = (hl + 7) / 8 * 8;  // 8-byte aligned data, as the reference pads
    s2s_atomic_file a;
    if (s2s_atomic_open(&a, path, err, n)) { free(hdr); free(order); return -1; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    int ok = fwrite(len8, 8, 1, a.fp) == 1 && fwrite(hdr, 1, hl, a.fp) == hl;
    for (size_t i = hl; i < padded && ok; i++) ok = fputc(' ', a.fp) != EOF;
    free(hdr);
    const size_t chunk = (size_t)1 << 20;
    void *stage = s2s_malloc(chunk * 4), *conv = s2s_malloc(chunk * 4);
    for (int i = 0; i < w->n && ok; i++) ok = write_tensor(a.fp, order[i], stage, conv, chunk);
    int e = errno;
    free(stage);
    free(conv);
    free(order);
    if (!ok) {
        s2s_atomic_abort(&a);
        return s2s_errf(err, n, "%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    return s2s_atomic_commit(&a, err, n);
}

void s2s_st_writer_free(s2s_st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) { free(w->meta_keys[i]); free(w->meta_vals[i]); }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_vals);
    memset(w, 0, sizeof *w);
}
