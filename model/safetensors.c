#include "safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../autograd/check.h"

#define ST_MAX_HEADER ((uint64_t)100 << 20)  // the reference implementation's limit

static int fail(char *err, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (err && n) vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_entry(s2s_st_file *f, const cJSON *it, s2s_st_entry *e, size_t data_len, char *err, size_t n) {
    const char *p = f->path;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return fail(err, n, "%s: tensor '%s': header entry needs dtype, shape and data_offsets[2]", p, it->string);
    int d = s2s_dtype_from_name(dt->valuestring);
    if (d < 0) return fail(err, n, "%s: tensor '%s': unsupported dtype %s (s2s reads F32, BF16, F16, I32)", p,
                           it->string, dt->valuestring);
    e->dtype = (s2s_dtype)d;
    e->ndim = cJSON_GetArraySize(sh);
    if (e->ndim > S2S_MAX_DIMS) return fail(err, n, "%s: tensor '%s' has %d dims (max 4)", p, it->string, e->ndim);
    uint64_t numel = 1;
    for (int i = 0; i < e->ndim; i++) {
        const cJSON *s = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(s) || s->valuedouble < 0 || s->valuedouble > 9.0e15)
            return fail(err, n, "%s: tensor '%s': bad shape entry %d", p, it->string, i);
        e->shape[i] = (int64_t)s->valuedouble;
        numel *= (uint64_t)e->shape[i];
    }
    const cJSON *a = cJSON_GetArrayItem(off, 0), *b = cJSON_GetArrayItem(off, 1);
    if (!cJSON_IsNumber(a) || !cJSON_IsNumber(b) || a->valuedouble < 0 || b->valuedouble < a->valuedouble)
        return fail(err, n, "%s: tensor '%s': bad data_offsets", p, it->string);
    uint64_t lo = (uint64_t)a->valuedouble, hi = (uint64_t)b->valuedouble;
    if (hi > data_len)
        return fail(err, n, "%s: tensor '%s': data_offsets end %llu is past the end of the data (%zu bytes): "
                    "the file is truncated", p, it->string, (unsigned long long)hi, data_len);
    if (hi - lo != numel * s2s_dtype_size(e->dtype))
        return fail(err, n, "%s: tensor '%s': %llu bytes for %llu elements of %s", p, it->string,
                    (unsigned long long)(hi - lo), (unsigned long long)numel, dt->valuestring);
    e->name = strdup(it->string);
    e->nbytes = hi - lo;
    e->data = (const char *)f->map + 8 + (f->map_len - 8 - data_len) + lo;
    return 0;
}

int s2s_st_open(s2s_st_file *f, const char *path, char *err, size_t n) {
    memset(f, 0, sizeof *f);
    f->path = strdup(path);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fail(err, n, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    fstat(fd, &st);
    if (st.st_size < 8) {
        close(fd);
        return fail(err, n, "%s: %lld bytes is too short for a safetensors file (truncated?)", path,
                    (long long)st.st_size);
    }
    f->map_len = (size_t)st.st_size;
    f->map = mmap(NULL, f->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) { f->map = NULL; return fail(err, n, "%s: mmap failed: %s", path, strerror(errno)); }
    uint64_t hlen;
    memcpy(&hlen, f->map, 8);
    if (hlen > ST_MAX_HEADER || hlen > f->map_len - 8)
        return fail(err, n, "%s: header length %llu exceeds the file (%zu bytes) or the 100 MB limit: truncated or "
                    "not a safetensors file", path, (unsigned long long)hlen, f->map_len);
    char *hdr = s2s_malloc(hlen + 1);
    memcpy(hdr, (char *)f->map + 8, hlen);
    hdr[hlen] = 0;
    cJSON *root = cJSON_Parse(hdr);
    free(hdr);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fail(err, n, "%s: header is not a JSON object", path);
    }
    size_t data_len = f->map_len - 8 - hlen;
    int cnt = cJSON_GetArraySize(root);
    f->entries = s2s_calloc((size_t)cnt + 1, sizeof *f->entries);
    const cJSON *it;
    int rc = 0;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            int m = cJSON_GetArraySize(it);
            f->meta_keys = s2s_calloc((size_t)m + 1, sizeof(char *));
            f->meta_vals = s2s_calloc((size_t)m + 1, sizeof(char *));
            const cJSON *kv;
            cJSON_ArrayForEach(kv, it) {
                if (!cJSON_IsString(kv)) { rc = fail(err, n, "%s: __metadata__ value '%s' is not a string", path, kv->string); break; }
                f->meta_keys[f->n_meta] = strdup(kv->string);
                f->meta_vals[f->n_meta++] = strdup(kv->valuestring);
            }
            if (rc) break;
            continue;
        }
        if (!cJSON_IsObject(it)) { rc = fail(err, n, "%s: entry '%s' is not an object", path, it->string); break; }
        if ((rc = parse_entry(f, it, &f->entries[f->n], data_len, err, n))) break;
        f->n++;
    }
    cJSON_Delete(root);
    return rc;
}

void s2s_st_close(s2s_st_file *f) {
    for (int i = 0; i < f->n; i++) free(f->entries[i].name);
    for (int i = 0; i < f->n_meta; i++) { free(f->meta_keys[i]); free(f->meta_vals[i]); }
    free(f->entries);
    free(f->meta_keys);
    free(f->meta_vals);
    if (f->map) munmap(f->map, f->map_len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const s2s_st_entry *s2s_st_find(const s2s_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->entries[i].name, name) == 0) return &f->entries[i];
    return NULL;
}

const char *s2s_st_meta(const s2s_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta_keys[i], key) == 0) return f->meta_vals[i];
    return NULL;
}

// ---- writer ----------------------------------------------------------------------------------------

void s2s_st_writer_init(s2s_st_writer *w) { memset(w, 0, sizeof *w); }

void s2s_st_writer_add(s2s_st_writer *w, const char *name, s2s_dtype dt, int ndim, const int64_t *shape,
                       const void *data) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 32;
        w->entries = s2s_realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    s2s_st_entry *e = &w->entries[w->n++];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->dtype = dt;
    e->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) { e->shape[i] = shape[i]; numel *= (size_t)shape[i]; }
    e->nbytes = numel * s2s_dtype_size(dt);
    e->data = data;
}

void s2s_st_writer_meta(s2s_st_writer *w, const char *key, const char *val) {
    w->meta_keys = s2s_realloc(w->meta_keys, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_vals = s2s_realloc(w->meta_vals, (size_t)(w->n_meta + 1) * sizeof(char *));
    w->meta_keys[w->n_meta] = strdup(key);
    w->meta_vals[w->n_meta++] = strdup(val);
}

int s2s_st_writer_write(s2s_st_writer *w, const char *path, char *err, size_t n) {
    cJSON *root = cJSON_CreateObject();
    if (w->n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; i < w->n_meta; i++) cJSON_AddStringToObject(m, w->meta_keys[i], w->meta_vals[i]);
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        s2s_st_entry *e = &w->entries[i];
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
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *fp = fopen(tmp, "wb");
    if (!fp) { free(hdr); return fail(err, n, "%s: cannot create: %s", tmp, strerror(errno)); }
    uint64_t hl64 = padded;
    int ok = fwrite(&hl64, 8, 1, fp) == 1 && fwrite(hdr, 1, hl, fp) == hl;
    for (size_t i = hl; i < padded && ok; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; i < w->n && ok; i++) ok = fwrite(w->entries[i].data, 1, w->entries[i].nbytes, fp) == w->entries[i].nbytes;
    free(hdr);
    ok = ok && fflush(fp) == 0 && fsync(fileno(fp)) == 0;
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return fail(err, n, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}

void s2s_st_writer_free(s2s_st_writer *w) {
    for (int i = 0; i < w->n; i++) free(w->entries[i].name);
    for (int i = 0; i < w->n_meta; i++) { free(w->meta_keys[i]); free(w->meta_vals[i]); }
    free(w->entries);
    free(w->meta_keys);
    free(w->meta_vals);
    memset(w, 0, sizeof *w);
}
