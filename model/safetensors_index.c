#include "safetensors_index.h"
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../autograd/check.h"
#include "../base/fs.h"

#define INDEX_MAX_BYTES ((long)256 << 20)

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = s2s_malloc(n);
    snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static char *dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_ref(const void *a, const void *b) {
    return strcmp(((const s2s_st_ref *)a)->e->name, ((const s2s_st_ref *)b)->e->name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int open_single(s2s_st_dir *d, const char *file, char *err, size_t n) {
    d->files = s2s_calloc(1, sizeof *d->files);
    if (s2s_st_open(&d->files[0], file, err, n)) return -1;
    d->n_files = 1;
    d->n = d->files[0].n;
    d->refs = s2s_calloc((size_t)d->n + 1, sizeof *d->refs);
    for (int i = 0; i < d->n; i++) d->refs[i] = (s2s_st_ref){&d->files[0].entries[i], 0};
    return 0;
}

static char *read_text(const char *path, char *err, size_t n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) { s2s_errf(err, n, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    if (len < 0 || len > INDEX_MAX_BYTES) {
        fclose(fp);
        s2s_errf(err, n, "%s: %ld bytes is not a plausible index file", path, len);
        return NULL;
    }
    char *buf = s2s_malloc((size_t)len + 1);
    size_t got = fread(buf, 1, (size_t)len, fp);
    fclose(fp);
    if (got != (size_t)len) { free(buf); s2s_errf(err, n, "%s: read failed", path); return NULL; }
    buf[len] = 0;
    return buf;
}

// A shard name from the weight map must stay inside the checkpoint directory.
static bool safe_shard_name(const char *s) {
    if (!s[0] || s[0] == '/' || strlen(s) > 1024) return false;
    for (const char *p = s; *p; p++)
        if ((p == s || p[-1] == '/') && p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2])) return false;
    return true;
}

static int open_index(s2s_st_dir *d, const char *index, char *err, size_t n) {
    d->index_path = strdup(index);
    char *text = read_text(index, err, n);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    int rc = 0;
    char **shards = NULL;
    int n_shards = 0;
    char *base = dir_of(index);
    const cJSON *wm = cJSON_IsObject(root) ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(root)) { rc = s2s_errf(err, n, "%s: not a JSON object", index); goto done; }
    if (!cJSON_IsObject(wm)) {
        rc = s2s_errf(err, n, "%s: 'weight_map' is missing or not an object", index);
        goto done;
    }
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta && !cJSON_IsObject(meta) && !cJSON_IsNull(meta)) {
        rc = s2s_errf(err, n, "%s: 'metadata' is not an object", index);
        goto done;
    }
    int cnt = cJSON_GetArraySize(wm);
    if (cnt == 0) { rc = s2s_errf(err, n, "%s: 'weight_map' is empty", index); goto done; }
    shards = s2s_calloc((size_t)cnt, sizeof *shards);
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it)) {
            rc = s2s_errf(err, n, "%s: weight_map['%s'] is not a file name", index, it->string);
            goto done;
        }
        if (!safe_shard_name(it->valuestring)) {
            rc = s2s_errf(err, n, "%s: weight_map['%s'] = '%.200s' is not a file inside the checkpoint directory",
                          index, it->string, it->valuestring);
            goto done;
        }
        shards[n_shards++] = it->valuestring;
    }
    qsort(shards, (size_t)n_shards, sizeof *shards, cmp_str);
    int u = 0;
    for (int i = 0; i < n_shards; i++)
        if (u == 0 || strcmp(shards[u - 1], shards[i]) != 0) shards[u++] = shards[i];
    n_shards = u;
    d->files = s2s_calloc((size_t)n_shards, sizeof *d->files);
    for (int i = 0; i < n_shards; i++) {
        char *p = join(base, shards[i]);
        char sub[1024];
        int r = s2s_st_open(&d->files[i], p, sub, sizeof sub);
        free(p);
        if (r) { rc = s2s_errf(err, n, "%s (a shard listed in %s)", sub, index); goto done; }
        d->n_files++;
    }
    d->refs = s2s_calloc((size_t)cnt, sizeof *d->refs);
    cJSON_ArrayForEach(it, wm) {
        const char **hit = bsearch(&it->valuestring, shards, (size_t)n_shards, sizeof *shards, cmp_str);
        int fi = (int)(hit - (const char **)shards);
        const s2s_st_entry *e = s2s_st_find(&d->files[fi], it->string);
        if (!e) {
            rc = s2s_errf(err, n, "%s: lists tensor '%s' in %s, but that shard has no such tensor", index, it->string,
                          d->files[fi].path);
            goto done;
        }
        d->refs[d->n++] = (s2s_st_ref){e, fi};
    }
    qsort(d->refs, (size_t)d->n, sizeof *d->refs, cmp_ref);
    for (int i = 1; i < d->n; i++)
        if (strcmp(d->refs[i - 1].e->name, d->refs[i].e->name) == 0) {
            rc = s2s_errf(err, n, "%s: tensor '%s' is listed twice in weight_map", index, d->refs[i].e->name);
            goto done;
        }
    // Shards may hold nothing the index does not know about: such a tensor would silently be ignored.
    for (int f = 0; f < d->n_files; f++)
        for (int i = 0; i < d->files[f].n; i++) {
            const s2s_st_file *file = NULL;
            const s2s_st_entry *e = s2s_st_dir_find(d, d->files[f].entries[i].name, &file);
            if (!e || file != &d->files[f]) {
                rc = s2s_errf(err, n, "%s: holds tensor '%s', which %s does not map to it", d->files[f].path,
                              d->files[f].entries[i].name, index);
                goto done;
            }
        }
done:
    free(shards);
    free(base);
    cJSON_Delete(root);
    return rc;
}

int s2s_st_dir_open(s2s_st_dir *d, const char *path, char *err, size_t n) {
    memset(d, 0, sizeof *d);
    d->path = strdup(path);
    struct stat st;
    int rc;
    if (stat(path, &st) != 0) {
        rc = s2s_errf(err, n, "%s: cannot open: %s", path, strerror(errno));
    } else if (S_ISDIR(st.st_mode)) {
        char *single = join(path, S2S_ST_SINGLE_NAME), *index = join(path, S2S_ST_INDEX_NAME);
        if (is_file(single)) rc = open_single(d, single, err, n);
        else if (is_file(index)) rc = open_index(d, index, err, n);
        else rc = s2s_errf(err, n, "%s: holds neither %s nor %s", path, S2S_ST_SINGLE_NAME, S2S_ST_INDEX_NAME);
        free(single);
        free(index);
    } else {
        size_t len = strlen(path);
        if (len >= 5 && strcmp(path + len - 5, ".json") == 0) rc = open_index(d, path, err, n);
        else rc = open_single(d, path, err, n);
    }
    if (rc) s2s_st_dir_close(d);
    return rc;
}

void s2s_st_dir_close(s2s_st_dir *d) {
    if (d->files)
        for (int i = 0; i < d->n_files; i++) s2s_st_close(&d->files[i]);
    free(d->files);
    free(d->refs);
    free(d->path);
    free(d->index_path);
    memset(d, 0, sizeof *d);
}

const s2s_st_entry *s2s_st_dir_find(const s2s_st_dir *d, const char *name, const s2s_st_file **file) {
    int lo = 0, hi = d->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(d->refs[mid].e->name, name);
        if (c == 0) {
            if (file) *file = &d->files[d->refs[mid].file];
            return d->refs[mid].e;
        }
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

// ---- sharded writer --------------------------------------------------------------------------------

static int cmp_wentry_name(const void *a, const void *b) {
    return strcmp((*(const s2s_st_wentry *const *)a)->name, (*(const s2s_st_wentry *const *)b)->name);
}

static void shard_name(char *buf, size_t n, int i, int total) {
    snprintf(buf, n, "model-%05d-of-%05d.safetensors", i + 1, total);
}

// Weight files of another layout would shadow or confuse the new one (a loader prefers model.safetensors).
static void remove_stale(const char *dir, int keep_total) {
    DIR *dp = opendir(dir);
    if (!dp) return;
    struct dirent *de;
    while ((de = readdir(dp))) {
        int a, b, end = 0;
        bool stale = false;
        if (sscanf(de->d_name, "model-%5d-of-%5d.safetensors%n", &a, &b, &end) == 2 && de->d_name[end] == 0 &&
            end == (int)strlen("model-00001-of-00001.safetensors"))
            stale = b != keep_total;
        else if (keep_total > 1 && strcmp(de->d_name, S2S_ST_SINGLE_NAME) == 0)
            stale = true;
        else if (keep_total <= 1 && strcmp(de->d_name, S2S_ST_INDEX_NAME) == 0)
            stale = true;
        if (stale) {
            char *p = join(dir, de->d_name);
            unlink(p);
            free(p);
        }
    }
    closedir(dp);
    s2s_fsync_dir(dir);
}

static void copy_meta(s2s_st_writer *dst, const s2s_st_writer *src) {
    for (int i = 0; i < src->n_meta; i++) s2s_st_writer_meta(dst, src->meta_keys[i], src->meta_vals[i]);
    bool has_format = false;
    for (int i = 0; i < src->n_meta; i++) has_format |= strcmp(src->meta_keys[i], "format") == 0;
    // transformers refuses safetensors without a known "format" in their metadata.
    if (!has_format) s2s_st_writer_meta(dst, "format", "pt");
}

// One file holding the tensors of w assigned to shard s.
static int write_part(const s2s_st_writer *w, const int *shard_of, int s, const char *path, char *err, size_t n) {
    s2s_st_writer part;
    s2s_st_writer_init(&part);
    for (int i = 0; i < w->n; i++) {
        if (shard_of[i] != s) continue;
        const s2s_st_wentry *e = &w->entries[i];
        s2s_st_writer_add_from(&part, e->name, e->dtype, e->ndim, e->shape, e->src, e->src_dtype, e->src_device);
    }
    copy_meta(&part, w);
    int rc = s2s_st_writer_write(&part, path, err, n);
    s2s_st_writer_free(&part);
    return rc;
}

int s2s_st_write_sharded(s2s_st_writer *w, const char *dir, size_t max_shard, char *err, size_t n) {
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) return s2s_errf(err, n, "%s: not a directory", dir);
    // Sorted by name: duplicates are caught before anything is written, and the index lists tensors in
    // sorted order as transformers writes it.
    const s2s_st_wentry **order = s2s_malloc(((size_t)w->n + 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) order[i] = &w->entries[i];
    qsort(order, (size_t)w->n, sizeof *order, cmp_wentry_name);
    for (int i = 1; i < w->n; i++)
        S2S_CHECK(strcmp(order[i - 1]->name, order[i]->name) != 0, "tensor %s added twice", order[i]->name);
    int *shard_of = s2s_malloc(((size_t)w->n + 1) * sizeof *shard_of);
    int n_shards = 0;
    size_t cur = 0, total = 0;
    for (int i = 0; i < w->n; i++) {
        size_t b = w->entries[i].nbytes;
        if (n_shards == 0 || (max_shard && cur > 0 && cur + b > max_shard)) { n_shards++; cur = 0; }
        shard_of[i] = n_shards - 1;
        cur += b;
        total += b;
    }
    if (n_shards == 0) n_shards = 1;
    int rc = 0;
    char name[64];
    if (n_shards == 1) {
        char *p = join(dir, S2S_ST_SINGLE_NAME);
        rc = write_part(w, shard_of, 0, p, err, n);
        free(p);
        if (!rc) remove_stale(dir, 1);
        free(shard_of);
        free(order);
        return rc;
    }
    for (int s = 0; s < n_shards && !rc; s++) {
        shard_name(name, sizeof name, s, n_shards);
        char *p = join(dir, name);
        rc = write_part(w, shard_of, s, p, err, n);
        free(p);
    }
    if (!rc) {
        cJSON *root = cJSON_CreateObject();
        cJSON *meta = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddNumberToObject(meta, "total_size", (double)total);
        cJSON *wm = cJSON_AddObjectToObject(root, "weight_map");
        for (int i = 0; i < w->n; i++) {
            shard_name(name, sizeof name, shard_of[order[i] - w->entries], n_shards);
            cJSON_AddStringToObject(wm, order[i]->name, name);
        }
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        char *p = join(dir, S2S_ST_INDEX_NAME);
        rc = s2s_write_file_atomic(p, text, strlen(text), err, n);
        free(p);
        free(text);
    }
    if (!rc) remove_stale(dir, n_shards);
    free(shard_of);
    free(order);
    return rc;
}
